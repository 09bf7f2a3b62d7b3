// What the network sees of a batch of synthesised images, on plain arrays: each image rolled by its
// own jitter (with wrap-around), clipped to 0…255 about grey and preprocessed, in one pass; and the
// roll's inverse for the gradient that comes back, with the finite check folded in.
import * as tf from '@tensorflow/tfjs-core';
import type { Model } from '../model.js';
import { GREY, type Warp } from './batch.js';
import { tidyData } from '../tensor-data.js';
import { KernelArena, type ViewMap } from '../kernels/synthesis-kernels.js';

/** x_c = Σ_k a[c][k]·p_k + o[c]: the network input from RGB pixels 0…255 (channel order included). */
export interface InputAffine {
  a: number[][];
  o: number[];
}

/**
 * Model.preprocess as the affine map it is, measured from preprocess itself so that there stays
 * one definition of it: the input for black, and for 255 in each channel alone (255 rather than 1
 * keeps float32 from rounding the scale away against the offset).
 */
export function inputAffine(model: Model): InputAffine {
  const v = tidyData(() => model.preprocess(tf.tensor4d([0, 0, 0, 255, 0, 0, 0, 255, 0, 0, 0, 255], [1, 1, 4, 3])));
  const o = [v[0]!, v[1]!, v[2]!];
  const a = [0, 1, 2].map((c) => [0, 1, 2].map((k) => (v[(1 + k) * 3 + c]! - o[c]!) / 255));
  return { a, o };
}

/** Image b's rows and columns as its roll by (dy, dx) reads them: view[y][x] = image[ry(y)][rx(x)]. */
function source(shift: readonly [number, number], h: number, w: number): { sy: number; sx: number } {
  return { sy: ((shift[0] % h) + h) % h, sx: ((shift[1] % w) + w) % w };
}

/** A centred value as the pixel the network sees: clipped to 0…255. */
const toPixel = (v: number): number => (v < -GREY ? 0 : v > GREY ? 255 : v + GREY);

/** 3×3 identity: viewImage of centred pixels. */
const IDENTITY = [
  [1, 0, 0],
  [0, 1, 0],
  [0, 0, 1],
];

/**
 * The network input for centred images `img` ([n, h, w, 3]): image b rolled by shifts[b] (as
 * `roll` in run.ts: view[y][x] = img[(y − dy) mod h][(x − dx) mod w]), clipped, preprocessed.
 */
export function viewInput(img: Float32Array, n: number, h: number, w: number, shifts: readonly (readonly [number, number])[], f: InputAffine, out: Float32Array = new Float32Array(img.length)): Float32Array {
  for (let b = 0; b < n; b++) viewImage(img, b * h * w * 3, b, h, w, shifts[b]!, f, out, IDENTITY);
  return out;
}

/**
 * Image b of viewInput, from `src` at `base` ([h, w, 3]) read through `colour` first (centred
 * pixels = colour · src): the pyramid hands its decorrelated sum straight to the view, so the
 * image itself is never written in a step.
 */
export function viewImage(src: Float32Array, base: number, b: number, h: number, w: number, shift: readonly [number, number], f: InputAffine, out: Float32Array, colour: readonly (readonly number[])[]): void {
  const [[a00, a01, a02], [a10, a11, a12], [a20, a21, a22]] = f.a as [number[], number[], number[]];
  const [o0, o1, o2] = f.o as [number, number, number];
  const [[m00, m01, m02], [m10, m11, m12], [m20, m21, m22]] = colour as [number[], number[], number[]];
  const { sy, sx } = source(shift, h, w);
  for (let y = 0; y < h; y++) {
    const row = base + y * w * 3;
    const dst = (b * h + ((y + sy) % h)) * w * 3;
    for (let x = 0; x < w; x++) {
      const i = row + x * 3;
      const d0 = src[i]!;
      const d1 = src[i + 1]!;
      const d2 = src[i + 2]!;
      const v0 = m00! * d0 + m01! * d1 + m02! * d2;
      const v1 = m10! * d0 + m11! * d1 + m12! * d2;
      const v2 = m20! * d0 + m21! * d1 + m22! * d2;
      const p0 = toPixel(v0);
      const p1 = toPixel(v1);
      const p2 = toPixel(v2);
      const j = dst + (x + sx < w ? x + sx : x + sx - w) * 3;
      out[j] = a00! * p0 + a01! * p1 + a02! * p2 + o0;
      out[j + 1] = a10! * p0 + a11! * p1 + a12! * p2 + o1;
      out[j + 2] = a20! * p0 + a21! * p1 + a22! * p2 + o2;
    }
  }
}

/**
 * The gradient at each rolled view → at its image (the roll is a permutation: its adjoint is its
 * inverse), into `out`. Returns whether every value is finite.
 */
export function unrollGradient(g: Float32Array, n: number, h: number, w: number, shifts: readonly (readonly [number, number])[], out: Float32Array): boolean {
  let sum = 0;
  for (let b = 0; b < n; b++) {
    const { sy, sx } = source(shifts[b]!, h, w);
    for (let y = 0; y < h; y++) {
      const dst = (b * h + ((y - sy + h) % h)) * w * 3;
      const src = (b * h + y) * w * 3;
      for (let x = 0; x < w; x++) {
        const xs = x < sx ? x - sx + w : x - sx;
        const i = dst + xs * 3;
        const j = src + x * 3;
        const g0 = g[j]!;
        const g1 = g[j + 1]!;
        const g2 = g[j + 2]!;
        out[i] = g0;
        out[i + 1] = g1;
        out[i + 2] = g2;
        sum += g0 + g1 + g2;
      }
    }
  }
  // A NaN or an infinity anywhere makes the sum so; finite values cannot overflow a double here.
  return Number.isFinite(sum);
}

/**
 * The arrays of a batch's scaled and turned views, in the WebAssembly memory where their passes
 * run: image b seen rolled by shifts[b] and scaled and rotated by warps[b] about the centre,
 * view[y][x] = img at R(−angle)/scale · ((y, x) − shift − c) + c, bilinear, wrapping round the
 * borders as the roll does (with scale 1 and angle 0 it is viewInput's roll exactly).
 */
export class WarpedViews {
  /** The rendered images, centred pixels [n, h, w, 3]: what input() reads. */
  readonly img: Float32Array;
  /** The network input of the views. */
  readonly x: Float32Array;
  /** The gradient at the views, copied in for unwarp(). */
  private readonly atViews: Float32Array;
  /** The gradient at the images, four floats a pixel ([n, h, w, 4], the fourth 0): what unwarp() writes. */
  readonly atImages: Float32Array;
  private readonly affine: Float32Array;
  private readonly arena: KernelArena;

  /** What the views take of a kernel arena. */
  static kernelFloats(n: number, h: number, w: number): number {
    return 3 * KernelArena.floatsFor(n * h * w * 3) + KernelArena.floatsFor(n * h * w * 4) + KernelArena.floatsFor(16);
  }

  /** In `arena` (kernelFloats of room) when given, so that other passes there can read img and atImages; else in one of its own. */
  constructor(
    readonly n: number,
    readonly h: number,
    readonly w: number,
    f: InputAffine,
    arena: KernelArena = new KernelArena(WarpedViews.kernelFloats(n, h, w)),
  ) {
    const size = n * h * w * 3;
    this.arena = arena;
    this.img = this.arena.alloc(size);
    this.x = this.arena.alloc(size);
    this.atViews = this.arena.alloc(size);
    this.atImages = this.arena.alloc(n * h * w * 4);
    this.affine = this.arena.alloc(16);
    // A's columns, then the offset: x = Σ_k column_k · p_k + o.
    for (let k = 0; k < 3; k++) for (let c = 0; c < 3; c++) this.affine[k * 4 + c] = f.a[c]![k]!;
    for (let c = 0; c < 3; c++) this.affine[12 + c] = f.o[c]!;
  }

  private maps(shifts: readonly (readonly [number, number])[], warps: readonly Warp[]): ViewMap[] {
    return warps.map((wp, b) => ({ dy: shifts[b]![0], dx: shifts[b]![1], ...inverseRotation(wp) }));
  }

  /** The network input of the views of `img` (each source pixel clipped before it is interpolated, as viewInput clips), in x. */
  input(shifts: readonly (readonly [number, number])[], warps: readonly Warp[]): Float32Array {
    this.arena.warpInput(this.img, this.x, this.n, this.h, this.w, this.maps(shifts, warps), this.affine, GREY);
    return this.x;
  }

  /** input()'s adjoint (the clip taken as if it were not there, as everywhere): the gradient at the views → at the images, in atImages (four floats a pixel). */
  unwarp(g: Float32Array, shifts: readonly (readonly [number, number])[], warps: readonly Warp[]): Float32Array {
    this.atViews.set(g);
    this.arena.unwarpGradient(this.atViews, this.atImages, this.n, this.h, this.w, this.maps(shifts, warps));
    return this.atImages;
  }
}

/** An array of four floats a pixel as three ([n, h, w, 4] → [n, h, w, 3]). */
export function threeChannels(a: Float32Array): Float32Array {
  const out = new Float32Array((a.length / 4) * 3);
  for (let p = 0, q = 0; p < a.length; p += 4, q += 3) {
    out[q] = a[p]!;
    out[q + 1] = a[p + 1]!;
    out[q + 2] = a[p + 2]!;
  }
  return out;
}

/** The view → image map's rotation and scale: R(−angle) / scale. */
function inverseRotation({ scale, angle }: Warp): { cos: number; sin: number } {
  return { cos: Math.cos(angle) / scale, sin: Math.sin(angle) / scale };
}
