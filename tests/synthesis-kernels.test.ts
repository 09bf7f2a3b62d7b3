// The synthesis's WebAssembly passes against plain double-precision forms of what they compute:
// Adam's step, the warped views' input and its adjoint; and that the module the engine runs is the
// one its text assembles to.
import { readFileSync } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import { selectBackend } from '../main/engine/backend.js';
import { KernelArena, type ViewMap } from '../main/engine/kernels/synthesis-kernels.js';
import { Pyramid } from '../main/engine/synthesis/pyramid.js';
import { assembleKernels } from '../scripts/build-kernels.mjs';
import { rel } from './support/numeric.js';

/** A small deterministic generator: the same numbers on every machine. */
function random(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

it('the engine runs the module synthesis-kernels.wat assembles to (node scripts/build-kernels.mjs writes it)', async () => {
  const committed = readFileSync(new URL('../main/engine/kernels/synthesis-kernels-wasm.ts', import.meta.url), 'utf8');
  expect(committed).toBe(await assembleKernels());
});

describe('adam', () => {
  it('three steps match the double-precision update, an odd length included, and the next allocation stays untouched', () => {
    const n = 1003;
    const arena = new KernelArena(5 * KernelArena.floatsFor(n));
    const [v, g, m, s, after] = [0, 1, 2, 3, 4].map(() => arena.alloc(n)) as Float32Array[];
    after!.fill(7);
    const r = random(1);
    const ref = { v: new Float64Array(n), m: new Float64Array(n), s: new Float64Array(n) };
    const [lr, b1, b2] = [0.1, 0.5, 0.999];
    for (let t = 1; t <= 3; t++) {
      for (let i = 0; i < n; i++) g![i] = (r() - 0.5) * 10 ** (r() * 4 - 2);
      arena.adam(v!, g!, m!, s!, t, lr, b1, b2);
      for (let i = 0; i < n; i++) {
        ref.m[i] = b1 * ref.m[i]! + (1 - b1) * g![i]!;
        ref.s[i] = b2 * ref.s[i]! + (1 - b2) * g![i]! ** 2;
        ref.v[i]! += (lr * ref.m[i]!) / (1 - b1 ** t) / (Math.sqrt(ref.s[i]! / (1 - b2 ** t)) + 1e-8);
      }
    }
    expect(rel(v!, ref.v)).toBeLessThan(1e-5);
    expect(rel(m!, ref.m)).toBeLessThan(1e-5);
    expect(rel(s!, ref.s)).toBeLessThan(1e-5);
    expect(after!.every((x) => x === 7)).toBe(true);
  });

  it('refuses arrays that are not whole allocations of its arena', () => {
    const arena = new KernelArena(4 * KernelArena.floatsFor(16));
    const [v, g, m, s] = [0, 1, 2, 3].map(() => arena.alloc(16)) as Float32Array[];
    expect(() => arena.adam(new Float32Array(16), g!, m!, s!, 1, 0.1, 0.5, 0.999)).toThrow(/not an array of this kernel arena/);
    expect(() => arena.adam(v!.subarray(4), g!.subarray(4), m!.subarray(4), s!.subarray(4), 1, 0.1, 0.5, 0.999)).toThrow(/not a whole one/);
    expect(() => arena.alloc(1)).toThrow(/is full/);
  });
});

describe('warped views', () => {
  const [n, h, w] = [2, 13, 10];
  const size = h * w * 3;
  const GREY = 127.5;
  // Shifts beyond the image's size and a turn: every tap wraps somewhere.
  const views: ViewMap[] = [
    { dy: 3, dx: -25, cos: Math.cos(0.3) / 1.1, sin: Math.sin(0.3) / 1.1 },
    { dy: -30, dx: 4, cos: Math.cos(-0.2) / 0.9, sin: Math.sin(-0.2) / 0.9 },
  ];
  const A = [
    [0.5, 0.1, 0],
    [0, 0.7, -0.2],
    [0.3, 0, 1.1],
  ];
  const o = [-1, 0.25, 2];

  /** Each view pixel's four source pixels (image indices of their first channel) and weights, in doubles. */
  function taps(b: number): { at: number[]; wt: number[] }[] {
    const { dy, dx, cos, sin } = views[b]!;
    const [cy, cx] = [(h - 1) / 2, (w - 1) / 2];
    const mod = (i: number, k: number) => ((i % k) + k) % k;
    const out: { at: number[]; wt: number[] }[] = [];
    for (let y = 0; y < h; y++)
      for (let x = 0; x < w; x++) {
        const [u, v] = [y - dy - cy, x - dx - cx];
        const [sy, sx] = [cy + cos * u + sin * v, cx - sin * u + cos * v];
        const [fy, fx] = [Math.floor(sy), Math.floor(sx)];
        const [ty, tx] = [sy - fy, sx - fx];
        const px = (yy: number, xx: number) => b * size + (mod(yy, h) * w + mod(xx, w)) * 3;
        out.push({ at: [px(fy, fx), px(fy, fx + 1), px(fy + 1, fx), px(fy + 1, fx + 1)], wt: [(1 - ty) * (1 - tx), (1 - ty) * tx, ty * (1 - tx), ty * tx] });
      }
    return out;
  }

  function setUp() {
    const arena = new KernelArena(3 * KernelArena.floatsFor(n * size) + KernelArena.floatsFor(n * h * w * 4) + KernelArena.floatsFor(16));
    const [img, out, g] = [0, 1, 2].map(() => arena.alloc(n * size)) as Float32Array[];
    const back = arena.alloc(n * h * w * 4);
    const affine = arena.alloc(16);
    for (let k = 0; k < 3; k++) for (let c = 0; c < 3; c++) affine[k * 4 + c] = A[c]![k]!;
    for (let c = 0; c < 3; c++) affine[12 + c] = o[c]!;
    const r = random(5);
    // Some pixels past the clip on either side.
    for (let i = 0; i < img!.length; i++) img![i] = (r() - 0.5) * 400;
    for (let i = 0; i < g!.length; i++) g![i] = r() - 0.5;
    return { arena, img: img!, out: out!, g: g!, back: back!, affine };
  }

  it('warpInput: bilinear taps that wrap round the borders, each clipped, then the affine map', () => {
    const { arena, img, out, affine } = setUp();
    arena.warpInput(img, out, n, h, w, views, affine, GREY);
    const ref = new Float64Array(n * size);
    const clip = (v: number) => Math.min(GREY, Math.max(-GREY, v)) + GREY;
    for (let b = 0; b < n; b++)
      taps(b).forEach(({ at, wt }, p) => {
        const px = [0, 1, 2].map((c) => at.reduce((s, i, k) => s + wt[k]! * clip(img[i + c]!), 0));
        for (let c = 0; c < 3; c++) ref[b * size + p * 3 + c] = A[c]![0]! * px[0]! + A[c]![1]! * px[1]! + A[c]![2]! * px[2]! + o[c]!;
      });
    expect(rel(out, ref)).toBeLessThan(1e-6);
  });

  it('unwarpGradient: the same taps transposed, over whatever the output held, four floats a pixel with the fourth 0', () => {
    const { arena, g, back } = setUp();
    back.fill(3);
    arena.unwarpGradient(g, back, n, h, w, views);
    const ref = new Float64Array(n * h * w * 4);
    // taps() gives indices of three floats a pixel: pixel i / 3, channel c at (i / 3) · 4 + c.
    for (let b = 0; b < n; b++) taps(b).forEach(({ at, wt }, p) => at.forEach((i, k) => [0, 1, 2].forEach((c) => (ref[(i / 3) * 4 + c]! += wt[k]! * g[b * size + p * 3 + c]!))));
    expect(rel(back, ref)).toBeLessThan(1e-6);
    expect(back.filter((_, i) => i % 4 === 3).every((v) => v === 0)).toBe(true);
  });

  it('a NaN in the image reaches the input (the clip does not hide it)', () => {
    const { arena, img, out, affine } = setUp();
    img.fill(Number.NaN, 0, 3);
    arena.warpInput(img, out, n, h, w, views, affine, GREY);
    expect(out.some(Number.isNaN)).toBe(true);
  });
});

describe('pyramid passes', () => {
  // The pyramids' starts are drawn by tfjs.
  beforeAll(() => selectBackend('cpu'));

  // 224²: the fast preset's size (14 … 224 px levels, rows of 42 … 672 floats: whole vectors and
  // not); 96×80 (6×5 … 96×80); 32×16: a one-pixel-wide coarsest level.
  const SIZES: [number, number, number][] = [
    [224, 224, 5],
    [96, 80, 5],
    [32, 16, 5],
  ];

  /** A pyramid in a kernel arena, with an array after it there, and the same levels in plain arrays. */
  function pair(n: number, h: number, w: number, levels: number) {
    const size = n * h * w * 3;
    const values = Pyramid.floats(n, h, w, levels);
    const arena = new KernelArena(Pyramid.kernelFloats(n, h, w, levels) + 2 * KernelArena.floatsFor(values) + 2 * KernelArena.floatsFor(size) + KernelArena.floatsFor((size / 3) * 4));
    const seeds = Array.from({ length: n }, (_, i) => 11 + i);
    const simd = new Pyramid(n, h, w, seeds, { levels, initStd: 0.3, arena });
    const plain = new Pyramid(n, h, w, seeds, { levels, initStd: 0.3 });
    const img = arena.alloc(size);
    const grads = simd.split(arena.alloc(values));
    const fence = arena.alloc(8).fill(7);
    return { arena, simd, plain, img, grads, fence, size };
  }

  it.each(SIZES)('%i×%i, %i levels: render and its adjoint give the plain arrays’ image and gradient, writing nothing else', (h, w, levels) => {
    const n = 3;
    const { arena, simd, plain, img, grads, fence, size } = pair(n, h, w, levels);
    expect(simd.halves).toBe(true);
    plain.levels.forEach((v, i) => expect(rel(simd.levels[i]!, v)).toBe(0));
    expect(rel(simd.render(img), plain.render())).toBeLessThan(1e-6);

    const r = random(5);
    const g = arena.alloc(size);
    for (let k = 0; k < size; k++) g[k] = r() - 0.5;
    const ref = plain.adjoint(Float32Array.from(g));
    const zero = Array.from({ length: n }, () => [0, 0] as const);
    expect(simd.adjointOfViews(g, zero, grads)).toBe(true);
    ref.forEach((l, i) => expect(rel(grads[i]!, l), `level ${i}`).toBeLessThan(1e-6));
    expect(Array.from(fence)).toEqual(new Array(8).fill(7));
    // A shift of a whole image is none: the same pass.
    expect(simd.adjointOfViews(g, zero.map(() => [h, -w] as const), grads)).toBe(true);
    ref.forEach((l, i) => expect(rel(grads[i]!, l), `level ${i}, shifted by the image's size`).toBeLessThan(1e-6));

    // The same gradient four floats a pixel (as the warped views' adjoint writes it).
    const g4 = arena.alloc((size / 3) * 4);
    for (let p = 0; p < size / 3; p++) g4.set([g[3 * p]!, g[3 * p + 1]!, g[3 * p + 2]!, 99], 4 * p);
    expect(simd.adjointOfViews(g4, zero, grads, 4)).toBe(true);
    ref.forEach((l, i) => expect(rel(grads[i]!, l), `level ${i}, four floats a pixel`).toBeLessThan(1e-6));
    // And through the plain loops (a pyramid outside the arena).
    const loops = plain.levels.map((v) => new Float32Array(v.length));
    expect(plain.adjointOfViews(g4, zero, loops, 4)).toBe(true);
    ref.forEach((l, i) => expect(rel(loops[i]!, l), `level ${i}, four floats a pixel, plain loops`).toBeLessThan(1e-6));

    g[size - 1] = Number.NaN;
    expect(simd.adjointOfViews(g, zero, grads)).toBe(false);
    g[size - 1] = 0;
    g[0] = Number.POSITIVE_INFINITY;
    expect(simd.adjointOfViews(g, zero, grads)).toBe(false);
  });

  it('rolled views and arrays from outside the arena take the plain loops, with the same result', () => {
    const [n, h, w, levels] = [2, 48, 48, 3];
    const { simd, plain, grads } = pair(n, h, w, levels);
    const r = random(9);
    const g = Float32Array.from({ length: n * h * w * 3 }, () => r() - 0.5);
    const shifts = [
      [3, -5],
      [-2, 4],
    ] as const;
    const ref = plain.levels.map((v) => new Float32Array(v.length));
    expect(plain.adjointOfViews(g, shifts, ref)).toBe(true);
    expect(simd.adjointOfViews(g, shifts, grads)).toBe(true);
    ref.forEach((l, i) => expect(rel(grads[i]!, l), `level ${i}`).toBeLessThan(1e-6));
    expect(rel(simd.render(), plain.render())).toBeLessThan(1e-6);
  });
});
