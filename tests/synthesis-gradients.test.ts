// The gradient that reaches the optimised variables of the fast presets — the pyramid's levels (on
// plain arrays) and MACO's phase (tensors) — with jitter on, at a small size and a batch of two:
// against central finite differences of the same objective, and against the tfjs path on the cpu
// backend. And what the array pyramid promises besides: the image of the tfjs form it replaced,
// an exact adjoint, setImage, each seed on its own, no tensor left behind.
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { loadModel, resolveClass, selectBackend, type Model } from '../main/engine/index.js';
import { objectiveNode, type UnitObjective } from '../main/engine/objectives.js';
import { nativeSessionStats } from '../main/engine/onnx/native-net.js';
import { COLOR, macoParam } from '../main/engine/synthesis/parameterization.js';
import { Pyramid } from '../main/engine/synthesis/pyramid.js';
import { pyramidGradient } from '../main/engine/synthesis/pyramid-batch.js';
import { inputAffine, WarpedViews } from '../main/engine/synthesis/view.js';
import { KernelArena } from '../main/engine/kernels/synthesis-kernels.js';
import { tensorParamGradients } from '../main/engine/synthesis/tensor-batch.js';
import { presetSettings, synthesize } from '../main/engine/synthesis/index.js';
import { directionalCheckArrays, rel } from './support/numeric.js';

const SIZE = 48;
const ID = 'mobilenet-v1-0.25';
let onnx: Model;
let cpu: Model;
let objectives: UnitObjective[];
let node: number;

beforeAll(async () => {
  await selectBackend('cpu');
  cpu = await loadModel(ID);
  expect((await selectBackend('onnx')).choice).toBe('onnx');
  onnx = await loadModel(ID);
  // Two different classes: one objective per seed, as an atlas batch has.
  objectives = ['n02007558', 'n02279972'].map((w) => ({ kind: 'class' as const, index: resolveClass(onnx.classes, w, ID).index }));
  node = objectiveNode(onnx, objectives[0]!);
});

const dot = (a: Float32Array[], b: Float32Array[]) => a.reduce((s, x, l) => s + x.reduce((t, v, i) => t + v * b[l]![i]!, 0), 0);

/**
 * Central differences along the gradient's own direction: moving a fresh pyramid's levels by ±eps
 * along ĝ changes the summed objective by 2·eps·|g| — with |g| over the model's pixels, since a step
 * takes ∂a/∂(network input) (pixelScale input units per pixel).
 */
function pyramidDirectionalCheck(levels: Float32Array[], fresh: () => Pyramid, values: (q: Pyramid) => ArrayLike<number>, eps: number): void {
  const { fd, gn: inInput } = directionalCheckArrays(
    levels,
    (d, s) => {
      const q = fresh();
      q.levels.forEach((v, l) => v.forEach((_, k) => (v[k]! += s * d[l]![k]!)));
      return Array.from(values(q)).reduce((a, b) => a + b, 0);
    },
    eps,
  );
  const gn = inInput / onnx.pixelScale;
  expect(Math.abs(fd - gn) / gn, `directional derivative ${fd} vs |g| ${gn}`).toBeLessThan(2e-2);
}

/** A pyramid with levels large enough that the image is not a faint grey (but far from the clip). */
function pyramidWith(seeds: number[], size = SIZE): Pyramid {
  const p = new Pyramid(seeds.length, size, size, seeds, { levels: 3, initStd: 0.15 });
  return p;
}

const SHIFTS: [number, number][] = [
  [3, -5],
  [-2, 4],
];

describe('pyramid (plain arrays)', () => {
  // 96×80: each level half the next (upsampled ×2 level by level); 90×70: not (each level resized to full size).
  const SIZES: [number, number][] = [
    [96, 80],
    [90, 70],
  ];

  it.each(SIZES)('%i×%i: renders the image of the tfjs form it replaced (bilinear resizes, weighted, decorrelated colour)', (h, w) => {
    const p = new Pyramid(2, h, w, [4, 7], { levels: 5, initStd: 0.15 });
    const ours = p.render();
    const ref = tf.tidy(() => {
      const parts = p.levels.map((v, i) => {
        const [ph, pw] = p.shapes[i]!;
        const t = tf.mul(tf.tensor4d(v, [2, ph, pw, 3]), 0.5 ** i) as tf.Tensor4D;
        return ph === h && pw === w ? t : tf.image.resizeBilinear(t, [h, w], false, false);
      });
      const d = tf.reshape(tf.addN(parts), [-1, 3]);
      return tf.mul(tf.matMul(d, tf.transpose(tf.tensor2d(COLOR))), 127.5).dataSync();
    });
    expect(rel(ours, ref)).toBeLessThan(1e-5);
  });

  it.each(SIZES)('%i×%i: its adjoint is the exact transpose of render (⟨J·δ, g⟩ = ⟨δ, Jᵀ·g⟩)', (h, w) => {
    const p = new Pyramid(2, h, w, [7, 8], { levels: 5 });
    const g = tf.tidy(() => tf.randomNormal([2 * h * w * 3], 0, 1, 'float32', 3).dataSync() as Float32Array);
    const deltas = p.levels.map((v, i) => tf.tidy(() => tf.randomNormal([v.length], 0, 1, 'float32', 10 + i).dataSync() as Float32Array));
    const before = p.render();
    p.levels.forEach((v, i) => v.forEach((_, k) => (v[k]! += deltas[i]![k]!)));
    const after = p.render();
    const lhs = after.reduce((s, a, k) => s + (a - before[k]!) * g[k]!, 0);
    const rhs = dot(p.adjoint(g), deltas);
    expect(Math.abs(lhs - rhs) / Math.abs(lhs)).toBeLessThan(1e-4);
  });

  it('setImage makes render() the given image (the regulariser path)', () => {
    const p = new Pyramid(1, 64, 64, [2], { levels: 3 });
    const target = tf.tidy(() => tf.randomNormal([64 * 64 * 3], 0, 30, 'float32', 4).dataSync() as Float32Array);
    p.setImage(target);
    const img = p.render();
    expect(img.reduce((m, v, k) => Math.max(m, Math.abs(v - target[k]!)), 0)).toBeLessThan(1e-3);
  });

  // 48 px: levels that halve (each image's sum goes straight into its view); 45 px: levels that do not (the image is rendered, then viewed).
  it.each([SIZE, 45])('%i px, with jitter: the gradient on the levels is the objective’s own: central differences on ONNX Runtime, and the cpu backend’s', async (size) => {
    const pyramid = (seeds: number[]) => pyramidWith(seeds, size);
    const p = pyramid([3, 8]);
    expect(p.halves).toBe(size === SIZE);
    // The step's own buffers, reused: the second call's input and gradient are written over the first's.
    const bufs = { levels: p.levels.map((v) => new Float32Array(v.length)), x: new Float32Array(2 * size * size * 3) };
    const other = pyramid([5, 6]);
    pyramidGradient(onnx, other, objectives, node, SHIFTS, { logits: false, ...bufs });
    const fresh = pyramidGradient(onnx, p, objectives, node, SHIFTS, { logits: false });
    const g = pyramidGradient(onnx, p, objectives, node, SHIFTS, { logits: false, ...bufs });
    expect(g.levels).toBe(bufs.levels);
    g.levels.forEach((l, i) => expect(rel(l, fresh.levels[i]!), `level ${i}, reused buffers`).toBeLessThan(1e-6));
    expect(g.finite).toBe(true);
    pyramidDirectionalCheck(g.levels, () => pyramid([3, 8]), (q) => pyramidGradient(onnx, q, objectives, node, SHIFTS, { logits: false }).value, 2e-3);

    await selectBackend('cpu');
    try {
      const c = pyramidGradient(cpu, p, objectives, node, SHIFTS, { logits: true });
      expect(rel(c.value, g.value)).toBeLessThan(1e-4);
      g.levels.forEach((l, i) => expect(rel(l, c.levels[i]!), `level ${i}`).toBeLessThan(1e-3));
    } finally {
      await selectBackend('onnx');
    }
  });

  it.each([false, true])('scaled and rotated views (in one kernel arena with the pyramid, as the fast preset holds them: %s): the gradient on the levels is still the objective’s own (central differences), and scale 1, angle 0 is the plain roll', async (shared) => {
    const warps = [
      { scale: 1.08, angle: 0.12 },
      { scale: 0.92, angle: -0.17 },
    ];
    // The fast preset's own layout: levels, their gradient and the views in one arena, where the
    // image is rendered and taken back by the SIMD passes; else plain arrays and the loops.
    const build = (seeds: number[]) => {
      if (!shared) return { q: pyramidWith(seeds), bufs: {} };
      const [n, levels] = [seeds.length, 3];
      const arena = new KernelArena(Pyramid.kernelFloats(n, SIZE, SIZE, levels) + KernelArena.floatsFor(Pyramid.floats(n, SIZE, SIZE, levels)) + WarpedViews.kernelFloats(n, SIZE, SIZE));
      const q = new Pyramid(n, SIZE, SIZE, seeds, { levels, initStd: 0.15, arena });
      return { q, bufs: { levels: q.split(arena.alloc(q.storage.length)), views: new WarpedViews(n, SIZE, SIZE, inputAffine(onnx), arena) } };
    };
    const { q: p, bufs } = build([3, 8]);
    const g = pyramidGradient(onnx, p, objectives, node, SHIFTS, { logits: false, warps, ...bufs });
    expect(g.finite).toBe(true);
    // A smaller step than the roll's: the objective curves more along a warped view's direction (measured: 0.4 % off at 1e-3, 2.5 % at 2e-3, 5 % at 4e-3).
    pyramidDirectionalCheck(g.levels, () => build([3, 8]).q, (q) => pyramidGradient(onnx, q, objectives, node, SHIFTS, { logits: false, warps }).value, 1e-3);
    // The arena's passes against the plain loops.
    const loops = pyramidGradient(onnx, pyramidWith([3, 8]), objectives, node, SHIFTS, { logits: false, warps });
    expect(rel(g.value, loops.value)).toBeLessThan(1e-5);
    loops.levels.forEach((l, i) => expect(rel(g.levels[i]!, l), `level ${i}, against the plain loops`).toBeLessThan(1e-5));
    // A warp that neither scales nor turns sees (and differentiates) exactly what the roll does.
    const plain = pyramidGradient(onnx, p, objectives, node, SHIFTS, { logits: false });
    const still = pyramidGradient(onnx, p, objectives, node, SHIFTS, { logits: false, warps: SHIFTS.map(() => ({ scale: 1, angle: 0 })), ...bufs });
    // (Up to float rounding: the roll reads each seed's decorrelated sum straight into its view, the
    // warp reads the rendered image — in the arena rendered in float32 arithmetic, 1e-7 off the
    // loops' doubles, which shows in the objective's value as 2e-5 relative.)
    expect(rel(still.value, plain.value)).toBeLessThan(shared ? 5e-5 : 1e-5);
    plain.levels.forEach((l, i) => expect(rel(still.levels[i]!, l), `level ${i}`).toBeLessThan(1e-5));
    // And a real warp changes what the network sees.
    expect(rel(g.value, plain.value)).toBeGreaterThan(1e-3);
  });

  it.each(['fast', 'maco'] as const)('%s: each seed’s image depends on that seed only: alone or beside another, the same image', async (preset) => {
    const s = { ...presetSettings(preset), iterations: 6, stop: null };
    const alone = await synthesize({ model: onnx, objective: objectives[0]!, settings: s, seeds: [5], size: [64, 64] });
    const pair = await synthesize({ model: onnx, objective: objectives[0]!, settings: s, seeds: [9, 5], size: [64, 64] });
    const a = alone.images[0]!.rgb;
    const b = pair.images[1]!.rgb;
    let worst = 0;
    for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i]! - b[i]!));
    expect(worst, 'largest difference, grey levels').toBeLessThanOrEqual(1);
    expect(Buffer.compare(Buffer.from(pair.images[0]!.rgb), Buffer.from(b)), 'the other seed differs').not.toBe(0);
  });

  it.each([
    ['onnx', 'fast'],
    ['wasm', 'fast'],
    ['onnx', 'maco'],
    ['wasm', 'maco'],
  ] as const)('%s: 50 %s steps leave no tensor and no ONNX Runtime session behind', async (backend, preset) => {
    await selectBackend(backend);
    try {
      const s = { ...presetSettings(preset), iterations: 50, stop: null };
      const run = () => synthesize({ model: onnx, objective: objectives, settings: s, seeds: [1, 2], size: [64, 64], onProgress: () => {}, previewEveryMs: 1 });
      await run();
      const tensors = tf.memory().numTensors;
      const sessions = nativeSessionStats().sessions;
      const r = await run();
      expect(r.iterations).toBe(50);
      expect(tf.memory().numTensors).toBe(tensors);
      expect(nativeSessionStats().sessions).toBe(sessions);
    } finally {
      await selectBackend('onnx');
    }
  });
});

describe('MACO (its phase a tensor, its view on plain arrays)', () => {
  it('with each seed’s own jitter, the gradient on the phase is the objective’s own: central differences on ONNX Runtime, and the cpu backend’s', async () => {
    const shift = SHIFTS;
    const make = () => macoParam(2, SIZE, SIZE, [6, 2]);
    const p = make();
    const g = tensorParamGradients(onnx, p, objectives, node, shift);
    const grad = g.grads[0]!.dataSync().slice() as Float32Array;
    const gn = Math.sqrt(grad.reduce((s, v) => s + v * v, 0));
    const total = (delta: number) => {
      const q = make();
      q.params[0]!.assign(tf.tidy(() => tf.add(q.params[0]!, tf.mul(tf.tensor(grad, q.params[0]!.shape), delta / gn))));
      const r = tensorParamGradients(onnx, q, objectives, node, shift);
      const v = Array.from(r.value.dataSync()).reduce((a, b) => a + b, 0);
      tf.dispose([r.value, ...r.grads]);
      q.dispose();
      return v;
    };
    const eps = 1e-3;
    const fd = (total(eps) - total(-eps)) / (2 * eps);
    expect(Math.abs(fd - gn / onnx.pixelScale) / (gn / onnx.pixelScale), `directional derivative ${fd} vs |g| ${gn / onnx.pixelScale}`).toBeLessThan(2e-2);
    const value = g.value.dataSync().slice();
    tf.dispose([g.value, ...g.grads]);
    // The written adjoint against tfjs' autodiff of the image, on a gradient with every pixel and channel in it.
    const gImage = tf.randomNormal([2, SIZE, SIZE, 3], 0, 1, 'float32', 9) as tf.Tensor4D;
    const [written] = p.paramGrads(gImage);
    const [taped] = p.tapedParamGrads(gImage);
    expect(rel(written!.dataSync(), taped!.dataSync())).toBeLessThan(1e-4);
    tf.dispose([gImage, written!, taped!]);
    p.dispose();

    await selectBackend('cpu');
    try {
      const q = make();
      const c = tensorParamGradients(cpu, q, objectives, node, shift);
      expect(rel(c.value.dataSync(), value)).toBeLessThan(1e-4);
      expect(rel(c.grads[0]!.dataSync(), grad)).toBeLessThan(1e-3);
      tf.dispose([c.value, ...c.grads]);
      q.dispose();
    } finally {
      await selectBackend('onnx');
    }
  });
});
