// The synthesis's WebAssembly passes against plain double-precision forms of what they compute:
// Adam's step, the warped views' input and its adjoint; and that the module the engine runs is the
// one its text assembles to.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { KernelArena, type ViewMap } from '../main/engine/kernels/synthesis-kernels.js';
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
    const arena = new KernelArena(4 * KernelArena.floatsFor(n * size) + KernelArena.floatsFor(16));
    const [img, out, g, back] = [0, 1, 2, 3].map(() => arena.alloc(n * size)) as Float32Array[];
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

  it('unwarpGradient: the same taps transposed, over whatever the output held', () => {
    const { arena, g, back } = setUp();
    back.fill(3);
    arena.unwarpGradient(g, back, n, h, w, views);
    const ref = new Float64Array(n * size);
    for (let b = 0; b < n; b++) taps(b).forEach(({ at, wt }, p) => at.forEach((i, k) => [0, 1, 2].forEach((c) => (ref[i + c]! += wt[k]! * g[b * size + p * 3 + c]!))));
    expect(rel(back, ref)).toBeLessThan(1e-6);
  });

  it('a NaN in the image reaches the input (the clip does not hide it)', () => {
    const { arena, img, out, affine } = setUp();
    img.fill(Number.NaN, 0, 3);
    arena.warpInput(img, out, n, h, w, views, affine, GREY);
    expect(out.some(Number.isNaN)).toBe(true);
  });
});
