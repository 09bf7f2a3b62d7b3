// The fast presets' image: a Laplacian-pyramid-like sum of bilinearly upsampled images at 1/16 …
// 1/1 scale, in a decorrelated colour space (Lucid's ImageNet colour correlation). A step on the
// levels moves coarse structure and natural colours first.
//
// Held as plain Float32Arrays, with the forward map and its adjoint written as fused loops: as
// tfjs ops on the single-threaded wasm backend, rendering, the adjoint and Adam around a 4×224 px
// batch cost about 100 ms a step, more than a small network's whole input gradient.
import * as tf from '@tensorflow/tfjs-core';
import { COLOR, COLOR_INV } from './parameterization.js';
import { KernelArena } from '../kernels/synthesis-kernels.js';

/** Pixels per unit of decorrelated colour: unit variance ≈ natural colour variation about grey. */
const PIXELS_PER_UNIT = 127.5;

/**
 * One axis of a bilinear resize from `from` to `to` samples, as tfjs' ResizeBilinear computes it
 * with alignCorners and halfPixelCenters both off (the image the tfjs form of this pyramid made):
 * output i reads inputs lo[i] and hi[i] with weight 1 − f[i] and f[i].
 */
interface Axis {
  lo: Int32Array;
  hi: Int32Array;
  f: Float32Array;
}

function axis(from: number, to: number): Axis {
  const lo = new Int32Array(to);
  const hi = new Int32Array(to);
  const f = new Float32Array(to);
  const ratio = from / to;
  for (let i = 0; i < to; i++) {
    const src = ratio * i;
    lo[i] = Math.max(0, Math.floor(src));
    hi[i] = Math.min(from - 1, Math.ceil(src));
    f[i] = src - lo[i]!;
  }
  return { lo, hi, f };
}

/** Each level's [h, w], coarsest first: 1/2^(levels−1) … 1/1 of the image, at least one pixel. */
function levelShapes(h: number, w: number, levels: number): [number, number][] {
  const shapes: [number, number][] = [];
  for (let l = levels - 1; l >= 0; l--) shapes.push([Math.max(1, Math.ceil(h / 2 ** l)), Math.max(1, Math.ceil(w / 2 ** l))]);
  return shapes;
}

interface Level {
  h: number;
  w: number;
  /** The level's weight in the sum. */
  weight: number;
  /** Upsampling to the image (null: the level is full size). */
  rows: Axis | null;
  cols: Axis | null;
}

export class Pyramid {
  /** The variables, coarsest first, each [n, h_l, w_l, 3] (NHWC, decorrelated colour). */
  readonly levels: Float32Array[];
  /** Every level, in that order. */
  readonly storage: Float32Array;
  readonly shapes: [number, number][];
  private readonly geo: Level[];
  /** Scratch: one image's level upsampled along x ([h_l, w, 3]), per coarse level. */
  private readonly wide: Float32Array[];
  private readonly row: Float32Array;

  /** Every level's values of a batch of n, one after the other: the length of `storage`. */
  static floats(n: number, h: number, w: number, levels = 5): number {
    return levelShapes(h, w, levels).reduce((sum, [ph, pw]) => sum + n * ph * pw * 3, 0);
  }

  /** What a pyramid built on a kernel arena takes of it at most: its levels, one image's sums (halving pyramids), the colour matrices. */
  static kernelFloats(n: number, h: number, w: number, levels = 5): number {
    const one = levelShapes(h, w, levels).reduce((sum, [ph, pw]) => sum + KernelArena.floatsFor(ph * pw * 3) + KernelArena.floatsFor(ph * 2 * pw * 3), 0);
    return KernelArena.floatsFor(Pyramid.floats(n, h, w, levels)) + one + 2 * KernelArena.floatsFor(16);
  }

  /** The arena whose SIMD passes render and take back this pyramid's image (halving pyramids). */
  private readonly kernels: KernelArena | null;
  /** M's columns and M's rows, as the colour passes read them (arena only). */
  private readonly colourColumns: Float32Array | null;
  private readonly colourRows: Float32Array | null;

  /**
   * `seeds[i]` alone draws image i's start (level l from N(0, initStd²) seeded seed·31 + l), so a
   * seed starts the same wherever it runs and whichever seeds share its batch. With an `arena`
   * (Pyramid.kernelFloats of room) the levels are consecutive parts of `storage` there, so that a
   * pass over every variable is one pass over it, and a halving pyramid's image is rendered and
   * taken back by its SIMD passes; without, in plain arrays (the reference the tests hold them to).
   */
  constructor(
    readonly n: number,
    readonly h: number,
    readonly w: number,
    seeds: readonly number[],
    opts: { levels?: number; initStd?: number; arena?: KernelArena } = {},
  ) {
    const levels = opts.levels ?? 5;
    const initStd = opts.initStd ?? 0.01;
    if (seeds.length !== n) throw new Error(`${seeds.length} seeds for a batch of ${n}`);
    const arena = opts.arena ?? null;
    const array = (length: number) => (arena ? arena.alloc(length) : new Float32Array(length));
    this.storage = array(Pyramid.floats(n, h, w, levels));
    this.shapes = levelShapes(h, w, levels);
    // Level i (0 = coarsest) weighs falloff^i: like a 1/f spectrum, so that Adam’s
    // equal-sized steps on every variable still move coarse structure more than fine detail.
    const falloff = 0.5;
    this.geo = this.shapes.map(([ph, pw], i) => {
      const full = ph === h && pw === w;
      return { h: ph, w: pw, weight: falloff ** i, rows: full ? null : axis(ph, h), cols: full ? null : axis(pw, w) };
    });
    this.levels = this.split(this.storage);
    this.levels.forEach((data, i) => {
      const [ph, pw] = this.shapes[i]!;
      seeds.forEach((sd, b) => {
        const t = tf.randomNormal([1, ph, pw, 3], 0, initStd, 'float32', sd * 31 + i);
        data.set(t.dataSync(), b * ph * pw * 3);
        t.dispose();
      });
    });
    this.wide = this.geo.map((g) => new Float32Array(g.rows ? g.h * w * 3 : 0));
    this.row = new Float32Array(w * 3);
    // When each level is exactly half the next, upsampling level by level (×2 each time) gives the
    // same image as resizing each level straight to full size (linear interpolation of a linear
    // interpolant on a grid it refines is itself; both hold the last sample past the end), for
    // about half the arithmetic.
    this.halving = this.shapes.every(([ph, pw], i) => i === 0 || (ph === 2 * this.shapes[i - 1]![0] && pw === 2 * this.shapes[i - 1]![1]));
    this.sums = this.halving ? this.shapes.map(([ph, pw]) => array(ph * pw * 3)) : [];
    this.half = this.halving ? this.shapes.map(([ph, pw]) => array(ph * 2 * pw * 3)) : [];
    this.kernels = arena && this.halving ? arena : null;
    if (this.kernels) {
      const m = this.colour;
      this.colourColumns = this.kernels.alloc(16);
      this.colourRows = this.kernels.alloc(16);
      for (let k = 0; k < 3; k++) {
        this.colourColumns.set([m[0]![k]!, m[1]![k]!, m[2]![k]!], 4 * k);
        this.colourRows.set(m[k]!.slice(0, 3), 4 * k);
      }
    } else {
      this.colourColumns = this.colourRows = null;
    }
  }

  /** An array laid out as `storage` (every level in turn), as one view per level. */
  split(block: Float32Array): Float32Array[] {
    if (block.length !== this.storage.length) throw new Error(`a pyramid of ${this.storage.length} values split ${block.length}`);
    let start = 0;
    return this.shapes.map(([ph, pw]) => block.subarray(start, (start += this.n * ph * pw * 3)));
  }

  private readonly halving: boolean;
  private unrolled: Float32Array | undefined;
  /** One image's running sum at each level's size (halving pyramids). */
  private readonly sums: Float32Array[];
  /** One image's level sum doubled along x only. */
  private readonly half: Float32Array[];

  /**
   * Image b's decorrelated image by ×2 steps: sum_0 = w_0·L_0, sum_i = up2(sum_(i−1)) + w_i·L_i.
   * The last sum is the full-size image.
   */
  private cascade(b: number, levels: readonly Float32Array[] = this.levels): Float32Array {
    const { geo, sums, half } = this;
    if (this.kernels && levels === this.levels) {
      for (let i = 0; i < geo.length; i++) {
        const size = geo[i]!.h * geo[i]!.w * 3;
        const level = levels[i]!.subarray(b * size, (b + 1) * size);
        if (i === 0) this.kernels.scale(sums[0]!, level, geo[0]!.weight);
        else this.kernels.upsample2(sums[i - 1]!, half[i - 1]!, sums[i]!, level, geo[i - 1]!.h, geo[i - 1]!.w, geo[i]!.weight);
      }
      return sums[geo.length - 1]!;
    }
    for (let i = 0; i < geo.length; i++) {
      const g = geo[i]!;
      const sum = sums[i]!;
      const lv = levels[i]!;
      const size = g.h * g.w * 3;
      const base = b * size;
      const wt = g.weight;
      if (i === 0) {
        for (let k = 0; k < size; k++) sum[k] = wt * lv[base + k]!;
        continue;
      }
      const prev = sums[i - 1]!;
      const ph = geo[i - 1]!.h;
      const pw = geo[i - 1]!.w;
      const t = half[i - 1]!;
      const w3 = g.w * 3;
      // Along x: out[2j] = in[j], out[2j+1] = (in[j] + in[min(j+1, n−1)]) / 2.
      for (let r = 0; r < ph; r++) {
        const src = r * pw * 3;
        const dst = r * w3;
        for (let j = 0; j < pw; j++) {
          const a = src + j * 3;
          const c = j + 1 < pw ? a + 3 : a;
          const o = dst + j * 6;
          t[o] = prev[a]!;
          t[o + 1] = prev[a + 1]!;
          t[o + 2] = prev[a + 2]!;
          t[o + 3] = 0.5 * (prev[a]! + prev[c]!);
          t[o + 4] = 0.5 * (prev[a + 1]! + prev[c + 1]!);
          t[o + 5] = 0.5 * (prev[a + 2]! + prev[c + 2]!);
        }
      }
      // Along y, plus this level.
      for (let r = 0; r < ph; r++) {
        const r0 = r * w3;
        const r1 = (r + 1 < ph ? r + 1 : r) * w3;
        const even = 2 * r * w3;
        const odd = even + w3;
        for (let k = 0; k < w3; k++) {
          const v0 = t[r0 + k]!;
          sum[even + k] = v0 + wt * lv[base + even + k]!;
          sum[odd + k] = 0.5 * (v0 + t[r1 + k]!) + wt * lv[base + odd + k]!;
        }
      }
    }
    return sums[geo.length - 1]!;
  }

  /**
   * The transpose of cascade: the decorrelated gradient of image b (in sums' last buffer) onto every
   * level; by the SIMD passes when `out` is the arena's (which also write the finest level's share).
   */
  private cascadeAdjoint(b: number, out: Float32Array[], simd: boolean): void {
    const { geo, sums, half } = this;
    if (simd) {
      for (let i = geo.length - 1; i >= 0; i--) {
        const size = geo[i]!.h * geo[i]!.w * 3;
        this.kernels!.scale(out[i]!.subarray(b * size, (b + 1) * size), sums[i]!, geo[i]!.weight);
        if (i > 0) this.kernels!.downsample2(sums[i]!, half[i - 1]!, sums[i - 1]!, geo[i - 1]!.h, geo[i - 1]!.w);
      }
      return;
    }
    for (let i = geo.length - 1; i >= 0; i--) {
      const g = geo[i]!;
      const sum = sums[i]!;
      const size = g.h * g.w * 3;
      const dst = out[i]!;
      const base = b * size;
      const wt = g.weight;
      // The finest level's share is written with the colour transpose (adjointOfViews).
      if (i < geo.length - 1) for (let k = 0; k < size; k++) dst[base + k] = wt * sum[k]!;
      if (i === 0) break;
      const prev = sums[i - 1]!;
      const ph = geo[i - 1]!.h;
      const pw = geo[i - 1]!.w;
      const t = half[i - 1]!;
      const w3 = g.w * 3;
      // Along y: row r of the half-upsampled image fed rows 2r (1), 2r+1 (½) and 2r−1 (½); the
      // last row also row 2r+1's other half.
      for (let r = 0; r < ph; r++) {
        const even = 2 * r * w3;
        const odd = even + w3;
        const o = r * w3;
        if (r === 0) for (let k = 0; k < w3; k++) t[o + k] = sum[even + k]! + 0.5 * sum[odd + k]!;
        else {
          const before = even - w3;
          for (let k = 0; k < w3; k++) t[o + k] = sum[even + k]! + 0.5 * (sum[odd + k]! + sum[before + k]!);
        }
        if (r === ph - 1) for (let k = 0; k < w3; k++) t[o + k]! += 0.5 * sum[odd + k]!;
      }
      // Along x, the same.
      for (let r = 0; r < ph; r++) {
        const src = r * w3;
        const o = r * pw * 3;
        // Entry j fed columns 2j (1), 2j+1 (½) and 2j−1 (½); the last also 2j+1's other half.
        prev[o] = t[src]! + 0.5 * t[src + 3]!;
        prev[o + 1] = t[src + 1]! + 0.5 * t[src + 4]!;
        prev[o + 2] = t[src + 2]! + 0.5 * t[src + 5]!;
        for (let j = 1; j < pw; j++) {
          const e = src + j * 6;
          const d = o + j * 3;
          prev[d] = t[e]! + 0.5 * (t[e + 3]! + t[e - 3]!);
          prev[d + 1] = t[e + 1]! + 0.5 * (t[e + 4]! + t[e - 2]!);
          prev[d + 2] = t[e + 2]! + 0.5 * (t[e + 5]! + t[e - 1]!);
        }
        const last = o + (pw - 1) * 3;
        const e = src + (pw - 1) * 6;
        prev[last]! += 0.5 * t[e + 3]!;
        prev[last + 1]! += 0.5 * t[e + 4]!;
        prev[last + 2]! += 0.5 * t[e + 5]!;
      }
    }
  }

  /** Image i's level l upsampled along x into this.wide[l]. */
  private widen(l: number, b: number, levels: readonly Float32Array[]): void {
    const g = this.geo[l]!;
    const { lo, hi, f } = g.cols!;
    const src = levels[l]!;
    const out = this.wide[l]!;
    const w = this.w;
    for (let r = 0; r < g.h; r++) {
      const base = (b * g.h + r) * g.w * 3;
      const o = r * w * 3;
      for (let x = 0; x < w; x++) {
        const a = base + lo[x]! * 3;
        const c = base + hi[x]! * 3;
        const fx = f[x]!;
        const ex = 1 - fx;
        const k = o + x * 3;
        out[k] = src[a]! * ex + src[c]! * fx;
        out[k + 1] = src[a + 1]! * ex + src[c + 1]! * fx;
        out[k + 2] = src[a + 2]! * ex + src[c + 2]! * fx;
      }
    }
  }

  /** Centred pixels per unit of each decorrelated component: image = colour · decorrelated sum. */
  readonly colour: readonly (readonly number[])[] = COLOR.map((r) => r.map((v) => v * PIXELS_PER_UNIT));

  /**
   * Image b's decorrelated sum ([h, w, 3]; centred pixels = colour · it), valid until the next
   * call; null when the levels do not halve (render() then resizes each level on its own).
   */
  decorrelated(b: number): Float32Array | null {
    return this.halving ? this.cascade(b) : null;
  }

  /** Whether decorrelated() gives the sums (each level exactly half the next). */
  get halves(): boolean {
    return this.halving;
  }

  /**
   * The image of `levels` (the current ones when absent; else arrays shaped like them), centred
   * pixels [n, h, w, 3] (0 = grey), into `out` (allocated when absent).
   */
  render(out: Float32Array = new Float32Array(this.n * this.h * this.w * 3), levels: readonly Float32Array[] = this.levels): Float32Array {
    const { n, h, w, geo, row } = this;
    const w3 = w * 3;
    const [m00, m01, m02] = this.colour[0]!;
    const [m10, m11, m12] = this.colour[1]!;
    const [m20, m21, m22] = this.colour[2]!;
    if (this.kernels && levels === this.levels && this.kernels.holds(out)) {
      const size = h * w3;
      for (let b = 0; b < n; b++) this.kernels.colour(this.cascade(b), out.subarray(b * size, (b + 1) * size), this.colourColumns!);
      return out;
    }
    for (let b = 0; b < n; b++) {
      if (this.halving) {
        const d = this.cascade(b, levels);
        const o = b * h * w3;
        for (let k = 0; k < h * w3; k += 3) {
          const d0 = d[k]!;
          const d1 = d[k + 1]!;
          const d2 = d[k + 2]!;
          out[o + k] = m00! * d0 + m01! * d1 + m02! * d2;
          out[o + k + 1] = m10! * d0 + m11! * d1 + m12! * d2;
          out[o + k + 2] = m20! * d0 + m21! * d1 + m22! * d2;
        }
        continue;
      }
      for (let l = 0; l < geo.length; l++) if (geo[l]!.rows) this.widen(l, b, levels);
      for (let y = 0; y < h; y++) {
        row.fill(0);
        for (let l = 0; l < geo.length; l++) {
          const g = geo[l]!;
          const src = levels[l]!;
          if (!g.rows) {
            const base = (b * h + y) * w3;
            for (let k = 0; k < w3; k++) row[k]! += g.weight * src[base + k]!;
            continue;
          }
          const fy = g.rows.f[y]!;
          const a0 = g.weight * (1 - fy);
          const a1 = g.weight * fy;
          const t = this.wide[l]!;
          const r0 = g.rows.lo[y]! * w3;
          const r1 = g.rows.hi[y]! * w3;
          for (let k = 0; k < w3; k++) row[k]! += a0 * t[r0 + k]! + a1 * t[r1 + k]!;
        }
        // rgb = M · decor (COLOR's columns are the decorrelated components).
        const o = (b * h + y) * w3;
        for (let k = 0; k < w3; k += 3) {
          const d0 = row[k]!;
          const d1 = row[k + 1]!;
          const d2 = row[k + 2]!;
          out[o + k] = m00! * d0 + m01! * d1 + m02! * d2;
          out[o + k + 1] = m10! * d0 + m11! * d1 + m12! * d2;
          out[o + k + 2] = m20! * d0 + m21! * d1 + m22! * d2;
        }
      }
    }
    return out;
  }

  /**
   * The adjoint of render: a gradient with respect to the image's centred pixels → with respect to
   * each level (the exact transpose of the linear map render computes), into `out` when given.
   */
  adjoint(g: Float32Array, out: Float32Array[] = this.levels.map((v) => new Float32Array(v.length))): Float32Array[] {
    this.adjointOfViews(g, Array.from({ length: this.n }, () => [0, 0] as const), out);
    return out;
  }

  /**
   * adjoint() of a gradient taken at the images rolled by shifts[b] (view[y][x] =
   * image[(y − dy) mod h][(x − dx) mod w]): the roll's inverse is read in the same pass. `g` holds
   * `stride` floats a pixel (3, or 4 as WarpedViews.unwarp writes them). Returns whether every
   * value of `g` is finite.
   */
  adjointOfViews(g: Float32Array, shifts: readonly (readonly [number, number])[], out: Float32Array[], stride: 3 | 4 = 3): boolean {
    const { n, h, w, geo } = this;
    const w3 = w * 3;
    const [m00, m01, m02] = this.colour[0]!;
    const [m10, m11, m12] = this.colour[1]!;
    const [m20, m21, m22] = this.colour[2]!;
    let finite = true;
    const simd = this.kernels !== null && out.every((o) => this.kernels!.holds(o));
    if (simd && this.kernels!.holds(g) && shifts.every(([dy, dx]) => dy % h === 0 && dx % w === 0)) {
      const size = h * w * stride;
      const d = this.sums[geo.length - 1]!;
      for (let b = 0; b < n; b++) {
        if (!this.kernels!.colourTranspose(g.subarray(b * size, (b + 1) * size), d, this.colourRows!, stride)) finite = false;
        this.cascadeAdjoint(b, out, true);
      }
      return finite;
    }
    const d = this.halving ? this.sums[geo.length - 1]! : (this.unrolled ??= new Float32Array(n * h * w3));
    for (let b = 0; b < n; b++) {
      const sy = ((shifts[b]![0] % h) + h) % h;
      const sx = ((shifts[b]![1] % w) + w) % w;
      const o = this.halving ? 0 : b * h * w3;
      // The SIMD cascadeAdjoint writes the finest level's share itself.
      const fine = this.halving && !simd ? out[geo.length - 1]! : null;
      const fineBase = b * h * w3;
      const fineWeight = geo[geo.length - 1]!.weight;
      for (let y = 0; y < h; y++) {
        const src = (b * h + ((y + sy) % h)) * w * stride;
        const dst = o + y * w3;
        for (let x = 0; x < w; x++) {
          const xs = x + sx < w ? x + sx : x + sx - w;
          const i = src + xs * stride;
          const g0 = g[i]!;
          const g1 = g[i + 1]!;
          const g2 = g[i + 2]!;
          // ×0 is NaN for NaN and ±Infinity: a test per pixel, without a running sum's chain of adds.
          if ((g0 + g1 + g2) * 0 !== 0) finite = false;
          const k = dst + x * 3;
          // decor gradient = Mᵀ · rgb gradient.
          const d0 = m00! * g0 + m10! * g1 + m20! * g2;
          const d1 = m01! * g0 + m11! * g1 + m21! * g2;
          const d2 = m02! * g0 + m12! * g1 + m22! * g2;
          d[k] = d0;
          d[k + 1] = d1;
          d[k + 2] = d2;
          if (fine) {
            const f = fineBase + k;
            fine[f] = fineWeight * d0;
            fine[f + 1] = fineWeight * d1;
            fine[f + 2] = fineWeight * d2;
          }
        }
      }
      if (this.halving) this.cascadeAdjoint(b, out, simd);
    }
    if (!this.halving) this.spread(d, out);
    return finite;
  }

  /** Unpyramids without exact halving: the decorrelated gradient `d` ([n,h,w,3]) onto every level, by each level's own resize. */
  private spread(d: Float32Array, out: Float32Array[]): void {
    const { n, h, w, geo, row } = this;
    const w3 = w * 3;
    for (const o of out) o.fill(0);
    for (let b = 0; b < n; b++) {
      for (const t of this.wide) t.fill(0);
      for (let y = 0; y < h; y++) {
        const o = (b * h + y) * w3;
        row.set(d.subarray(o, o + w3));
        for (let l = 0; l < geo.length; l++) {
          const gl = geo[l]!;
          if (!gl.rows) {
            const dst = out[l]!;
            for (let k = 0; k < w3; k++) dst[o + k] = gl.weight * row[k]!;
            continue;
          }
          const fy = gl.rows.f[y]!;
          const a0 = gl.weight * (1 - fy);
          const a1 = gl.weight * fy;
          const t = this.wide[l]!;
          const r0 = gl.rows.lo[y]! * w3;
          const r1 = gl.rows.hi[y]! * w3;
          for (let k = 0; k < w3; k++) {
            const v = row[k]!;
            t[r0 + k]! += a0 * v;
            t[r1 + k]! += a1 * v;
          }
        }
      }
      // Then along x, the transpose of widen.
      for (let l = 0; l < geo.length; l++) {
        const gl = geo[l]!;
        if (!gl.cols) continue;
        const { lo, hi, f } = gl.cols;
        const t = this.wide[l]!;
        const dst = out[l]!;
        for (let r = 0; r < gl.h; r++) {
          const base = (b * gl.h + r) * gl.w * 3;
          const o = r * w3;
          for (let x = 0; x < w; x++) {
            const a = base + lo[x]! * 3;
            const c = base + hi[x]! * 3;
            const fx = f[x]!;
            const ex = 1 - fx;
            const k = o + x * 3;
            dst[a]! += ex * t[k]!;
            dst[a + 1]! += ex * t[k + 1]!;
            dst[a + 2]! += ex * t[k + 2]!;
            dst[c]! += fx * t[k]!;
            dst[c + 1]! += fx * t[k + 1]!;
            dst[c + 2]! += fx * t[k + 2]!;
          }
        }
      }
    }
  }

  /**
   * Move the variables so that render() gives `img` (after the pixel-space regularisers): the
   * finest level is full size and takes up the whole difference, exactly.
   */
  setImage(img: Float32Array): void {
    const now = this.render();
    const l = this.geo.length - 1;
    const g = this.geo[l]!;
    if (g.rows) throw new Error('the finest pyramid level must be full size');
    const finest = this.levels[l]!;
    const s = 1 / (g.weight * PIXELS_PER_UNIT);
    const [i00, i01, i02] = COLOR_INV[0]!;
    const [i10, i11, i12] = COLOR_INV[1]!;
    const [i20, i21, i22] = COLOR_INV[2]!;
    for (let k = 0; k < img.length; k += 3) {
      const d0 = img[k]! - now[k]!;
      const d1 = img[k + 1]! - now[k + 1]!;
      const d2 = img[k + 2]! - now[k + 2]!;
      finest[k]! += s * (i00! * d0 + i01! * d1 + i02! * d2);
      finest[k + 1]! += s * (i10! * d0 + i11! * d1 + i12! * d2);
      finest[k + 2]! += s * (i20! * d0 + i21! * d1 + i22! * d2);
    }
  }
}
