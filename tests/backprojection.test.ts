// Back-projection (backprop / deconv / guided) with known answers:
//  - a hand-built network (weights below) where the three rules differ in signs and zeros that are
//    worked out by hand in the comments, through the real compiler (Keras topology → fused GraphNet);
//  - the rectifier rules op by op, ReLU6 and LeakyReLU included;
//  - the display filters on small tensors;
//  - on the real models: what theory guarantees about signs (see "theory" below), that deconv
//    ignores the forward pass except for max-pool switches, that our backward traversal matches
//    tfjs' tape over the same per-op rules on wasm and cpu, the DVT seed's meaning, batches, memory.
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { compileKeras } from '../main/engine/compile.js';
import type { ModelDescriptor } from '../main/engine/descriptor.js';
import type { KerasGraph, KerasLayer } from '../main/engine/keras-topology.js';
import { activationBackward, convInputGrad, type Activation, type BackwardRule } from '../main/engine/ops.js';
import {
  backproject,
  backwardRule,
  filterMap,
  displayBytes,
  gaussianBlur,
  loadImageForModel,
  loadModel,
  Model,
  selectBackend,
  targetNode,
  targetSeed,
  type BackMode,
  type BackTarget,
} from '../main/engine/index.js';
import { MODEL_IDS, photo } from './support/fixtures.js';

const MODES: BackMode[] = ['backprop', 'deconv', 'guided'];

function values(t: tf.Tensor): number[] {
  return Array.from(t.dataSync());
}

function expectClose(actual: number[], expected: number[], label: string, tol = 1e-5): void {
  expect(actual.length, label).toBe(expected.length);
  actual.forEach((a, i) => expect(Math.abs(a - expected[i]!), `${label}[${i}]: ${a} vs ${expected[i]}`).toBeLessThanOrEqual(tol));
}

// ── The hand-built network ───────────────────────────────────────────────────────────────────────
// Input (x1, x2, x3), 1×1 pixels; x3 has zero weights everywhere.
//   z = (x1 + x2 − 1,  x1 − x2,  x2 − 0.5)        h = ReLU(z)           ("relu_a", fused into conv_a)
//   v = (h1 + h2 − h3,  −h1 + h2)                 g = LeakyReLU_0.1(v)  ("leaky_b", fused into conv_b)
//   logits = (−2·g1 + 3·g2,  g1 + g2)                                    ("logits")
// At x = (1, 2, 7): z = (2, −1, 1.5), h = (2, 0, 1.5); v = (0.5, −2), g = (0.5, −0.2).
function conv(name: string, input: string): KerasLayer {
  return { className: 'Conv2D', name, config: { kernel_size: [1, 1], strides: 1, padding: 'valid', activation: 'linear', use_bias: true }, inputs: [input] };
}
const GRAPH: KerasGraph = {
  inputShape: [null, 1, 1, 3],
  outputs: ['logits'],
  layers: [
    { className: 'InputLayer', name: 'input', config: {}, inputs: [] },
    conv('conv_a', 'input'),
    { className: 'ReLU', name: 'relu_a', config: {}, inputs: ['conv_a'] },
    conv('conv_b', 'relu_a'),
    { className: 'LeakyReLU', name: 'leaky_b', config: { alpha: 0.1 }, inputs: ['conv_b'] },
    conv('logits', 'leaky_b'),
  ],
};

async function handModel(): Promise<Model> {
  // Kernels are [1, 1, in, out]: row i lists input i's weight into each output.
  const weights = {
    'conv_a/kernel': tf.tensor4d([1, 1, 0, 1, -1, 1, 0, 0, 0], [1, 1, 3, 3]),
    'conv_a/bias': tf.tensor1d([-1, 0, -0.5]),
    'conv_b/kernel': tf.tensor4d([1, -1, 1, 1, -1, 0], [1, 1, 3, 2]),
    'conv_b/bias': tf.tensor1d([0, 0]),
    'logits/kernel': tf.tensor4d([-2, 1, 3, 1], [1, 1, 2, 2]),
    'logits/bias': tf.tensor1d([0, 0]),
  };
  const descriptor: ModelDescriptor = {
    id: 'hand',
    title: 'hand-built',
    inputSize: [1, 1],
    preprocess: { channelOrder: 'RGB', scale: 1, offset: 0 },
    classes: { names: 'none' },
    layers: [
      { name: 'relu_a', display: 'a' },
      { name: 'leaky_b', display: 'b' },
      { name: 'logits', display: 'logits' },
    ],
    weights: { modelJson: 'model.json' },
  };
  const compiled = compileKeras(GRAPH, weights, new Set(['relu_a', 'leaky_b', 'logits']));
  tf.dispose(Object.values(weights));
  // conv_a + relu_a and conv_b + leaky_b must have been fused: the rules are applied inside the conv node.
  expect(compiled.net.nodes.map((n) => n.op.kind)).toEqual(['input', 'conv', 'conv', 'conv']);
  const classes = [0, 1].map((index) => ({ index, wnid: null, name: `class ${index}` }));
  return new Model(descriptor, '.', 'none', compiled, classes);
}

describe('back-projection on a hand-built network (answers worked out by hand)', () => {
  let model: Model;
  let x: tf.Tensor4D;
  beforeAll(async () => {
    await selectBackend('cpu');
    model = await handModel();
    x = tf.tensor4d([1, 2, 7], [1, 1, 1, 3]);
  });

  it('forward pass is what the comments say', () => {
    const r = model.forward(x, { taps: ['relu_a', 'leaky_b'] });
    expectClose(values(r.taps.relu_a!), [2, 0, 1.5], 'h');
    expectClose(values(r.taps.leaky_b!), [0.5, -0.2], 'g');
    expectClose(values(r.logits!), [-2 * 0.5 + 3 * -0.2, 0.5 - 0.2], 'logits');
    tf.dispose([r.logits!, ...Object.values(r.taps)]);
  });

  // Class 0, seed one-hot: dL/dg = (−2, 3).
  //  leaky_b (v = (0.5, −2)):  backprop (−2·1, 3·0.1) = (−2, 0.3)
  //                            deconv   leaky(−2, 3) = (−0.2, 3)              [forward ignored]
  //                            guided   leaky(−2, 3)·(1, 0.1) = (−0.2, 0.3)
  //  dL/dh = W_bᵀ dv = (dv1 − dv2, dv1 + dv2, −dv1):
  //                            backprop (−2.3, −1.7, 2);  deconv (−3.2, 2.8, 0.2);  guided (−0.5, 0.1, 0.2)
  //  relu_a (z = (2, −1, 1.5)): backprop gate (1, 0, 1)      → (−2.3, 0, 2)
  //                   unit 2: forward negative, signal positive → passes deconv only:
  //                            deconv relu(dh)                → (0, 2.8, 0.2)
  //                   unit 1: forward positive, signal negative → passes backprop only:
  //                            guided relu(dh)·gate           → (0, 0, 0.2)
  //  dL/dx = W_aᵀ dz = (dz1 + dz2, dz1 − dz2 + dz3, 0):
  //                            backprop (−2.3, −0.3, 0);  deconv (2.8, −2.6, 0);  guided (0, 0.2, 0)
  const CLASS0: Record<BackMode, { input: number[]; atA: number[] }> = {
    backprop: { input: [-2.3, -0.3, 0], atA: [-2.3, -1.7, 2] },
    deconv: { input: [2.8, -2.6, 0], atA: [-3.2, 2.8, 0.2] },
    guided: { input: [0, 0.2, 0], atA: [-0.5, 0.1, 0.2] },
  };

  it.each(MODES)('class 0, %s: input map and the signal at relu_a match the hand computation', (mode) => {
    const t: BackTarget = { kind: 'class', index: 0 };
    const m = backproject(model, x, t, mode);
    expect(m.shape).toEqual([1, 1, 1, 3]);
    expectClose(values(m), CLASS0[mode].input, `${mode} input`);
    const a = backproject(model, x, t, mode, { to: 'a' });
    expectClose(values(a), CLASS0[mode].atA, `${mode} at relu_a`);
    tf.dispose([m, a]);
  });

  it('backprop is the true gradient (tfjs autodiff of the logit)', () => {
    const g = tf.grad((xi: tf.Tensor) => tf.sum(tf.mul(model.forward(xi as tf.Tensor4D, { mode: 'reference' }).logits!, tf.tensor2d([[1, 0]]))))(x);
    expectClose(values(g), CLASS0.backprop.input, 'autodiff');
    g.dispose();
  });

  // Channel targets are seeded with their own activation (DVT): leaky_b:0 → seed (0.5, 0), an
  // active unit: dh = 0.5·(1, 1, −1) in every mode, then relu_a decides:
  //   backprop (0.5, 0, −0.5) → x (0.5, 0);  deconv (0.5, 0.5, 0) → x (1, 0);  guided (0.5, 0, 0) → x (0.5, 0.5).
  // leaky_b:1 → seed (0, −0.2), a unit in its negative regime (v2 = −2):
  //   backprop: dv2 = −0.2·0.1 = −0.02;  deconv: leaky(−0.2) = −0.02;  guided: leaky(−0.2)·0.1 = −0.002
  //   dh = dv2·(−1, 1, 0) → (0.02, −0.02, 0)·k; ReLU passes only unit 1 in every mode → x = dh1·(1, 1).
  it.each(MODES)('channel seeds (own activation), %s', (mode) => {
    const expected0: Record<BackMode, number[]> = { backprop: [0.5, 0, 0], deconv: [1, 0, 0], guided: [0.5, 0.5, 0] };
    const expected1: Record<BackMode, number[]> = { backprop: [0.02, 0.02, 0], deconv: [0.02, 0.02, 0], guided: [0.002, 0.002, 0] };
    const m0 = backproject(model, x, { kind: 'channel', layer: 'b', channel: 0 }, mode);
    const m1 = backproject(model, x, { kind: 'channel', layer: 'leaky_b', channel: 1 }, mode);
    expectClose(values(m0), expected0[mode], `${mode} b:0`);
    expectClose(values(m1), expected1[mode], `${mode} b:1`);
    tf.dispose([m0, m1]);
  });

  // A batch seeds each item with its own forward pass. Second item x' = (−1, 3, 0):
  // z = (1, −4, 2.5), h = (1, 0, 2.5), v = (−1.5, −1): both leaky units negative.
  //   backprop: dv = (−0.2, 0.3) → dh = (−0.5, 0.1, 0.2) → gate (1,0,1) → x (−0.5, −0.3)
  //   deconv:   the same as for x — no forward gate and no max-pool switch is consulted
  //   guided:   dv = (−0.2, 3)·0.1 = (−0.02, 0.3) → dh = (−0.32, 0.28, 0.02) → (0, 0, 0.02) → x (0, 0.02)
  it.each(MODES)('batch of two, %s: each item gets its own gates', (mode) => {
    const second: Record<BackMode, number[]> = { backprop: [-0.5, -0.3, 0], deconv: [2.8, -2.6, 0], guided: [0, 0.02, 0] };
    const xb = tf.tensor4d([1, 2, 7, -1, 3, 0], [2, 1, 1, 3]);
    const m = backproject(model, xb, { kind: 'class', index: 0 }, mode);
    expectClose(values(m), [...CLASS0[mode].input, ...second[mode]], `${mode} batch`);
    tf.dispose([xb, m]);
  });

  it('runs the same on wasm', async () => {
    await selectBackend('wasm');
    const wasmModel = await handModel();
    const xw = tf.tensor4d([1, 2, 7], [1, 1, 1, 3]);
    for (const mode of MODES) {
      const m = backproject(wasmModel, xw, { kind: 'class', index: 0 }, mode);
      expectClose(values(m), CLASS0[mode].input, `wasm ${mode}`);
      m.dispose();
    }
    xw.dispose();
    wasmModel.dispose();
    await selectBackend('cpu');
  });

  it('rejects bad targets with a message naming them', () => {
    expect(() => backproject(model, x, { kind: 'class', index: 2 }, 'guided')).toThrow(/class 2 is out of range/);
    expect(() => backproject(model, x, { kind: 'channel', layer: 'b', channel: 5 }, 'guided')).toThrow(/unit 5 is out of range for layer b/);
    expect(() => backproject(model, x, { kind: 'channel', layer: 'nope', channel: 0 }, 'guided')).toThrow(/no displayed layer "nope"/);
    expect(() => backproject(model, x, { kind: 'channel', layer: 'a', channel: 0 }, 'guided', { to: 'b' })).toThrow(/comes after/);
    expect(() => backproject(model, x, { kind: 'class', index: 0 }, 'sideways' as BackMode)).toThrow(/unknown back-projection mode/);
  });
});

describe('rectifier rules, op by op', () => {
  // Forward outputs y and incoming signals g, one element per case.
  const cases: { act: Activation; y: number[]; g: number[]; expect: Record<BackwardRule, number[]> }[] = [
    {
      act: { kind: 'relu' },
      // y>0,g>0 | y>0,g<0 | y=0,g>0 | y=0,g<0
      y: [2, 2, 0, 0],
      g: [3, -3, 3, -3],
      expect: { gradient: [3, -3, 0, 0], deconv: [3, 0, 3, 0], guided: [3, 0, 0, 0] },
    },
    {
      // ReLU6: saturated units (y = 6) block the gradient and guided but not deconv (upper clip ignored).
      act: { kind: 'relu6' },
      y: [6, 6, 3, 0],
      g: [1, -1, 1, 1],
      expect: { gradient: [0, 0, 1, 0], deconv: [1, 0, 1, 1], guided: [0, 0, 1, 0] },
    },
    {
      // LeakyReLU(0.1): "rectify" = the unit's own nonlinearity on the signal; guided = both gates.
      act: { kind: 'leaky', alpha: 0.1 },
      y: [2, 2, -0.5, -0.5],
      g: [3, -3, 3, -3],
      expect: { gradient: [3, -3, 0.3, -0.3], deconv: [3, -0.3, 3, -0.3], guided: [3, -0.3, 0.3, -0.03] },
    },
  ];
  it.each(cases.flatMap((c) => (['gradient', 'deconv', 'guided'] as const).map((rule) => ({ ...c, rule, label: `${c.act.kind} ${rule}` }))))(
    '$label',
    async ({ act, y, g, rule, expect: want }) => {
      for (const b of ['cpu', 'wasm']) {
        await selectBackend(b);
        const out = tf.tidy(() => activationBackward(tf.tensor1d(g), tf.tensor1d(y), act, rule));
        expectClose(values(out), want[rule], `${b} ${act.kind} ${rule}`, 1e-6);
        out.dispose();
      }
    },
  );

  it('maps modes to rules', () => {
    expect(MODES.map(backwardRule)).toEqual(['gradient', 'deconv', 'guided']);
  });
});

describe('display filters', () => {
  beforeAll(async () => {
    await selectBackend('wasm');
  });
  // Two pixels (1×2), channels (R, G, B).
  const map = () => tf.tensor4d([2, -1, 0, -4, 0.5, 3], [1, 1, 2, 3]);

  it('raw: zero is grey, each channel scaled by its own max |value| (or one shared scale)', () => {
    const m = map();
    // R: max|R| = 4 → 2/8 + .5, −4/8 + .5; G: max 1 → −1/2 + .5, .5/2 + .5; B: max 3 → 0 + .5, 3/6 + .5
    expectClose(values(filterMap(m, 'raw')), [0.75, 0, 0.5, 0, 0.75, 1], 'raw');
    // Shared (DVT's norm01c): one scale 4 for all channels.
    expectClose(values(filterMap(m, 'raw', { rawScale: 'shared' })), [0.75, 0.375, 0.5, 0, 0.5625, 0.875], 'raw shared');
    m.dispose();
  });

  it('gray: channel mean, zero is grey', () => {
    const m = map();
    // means: 1/3, −0.5/3 → max 1/3 → 0.5 + 0.5, 0.5 − 0.25
    expectClose(values(filterMap(m, 'gray')), [1, 1, 1, 0.25, 0.25, 0.25], 'gray');
    m.dispose();
  });

  it('norm: RGB L2 norm, min–max per image; 8-bit output', () => {
    const m = map();
    expectClose(values(filterMap(m, 'norm')), [0, 0, 0, 1, 1, 1], 'norm');
    const b = displayBytes(m, 'norm');
    expect(b.dtype).toBe('int32');
    expect(values(b)).toEqual([0, 0, 0, 255, 255, 255]);
    tf.dispose([m, b]);
  });

  it('normblur: a point spreads as a σ = 4 Gaussian, then min–max', () => {
    const size = 41;
    const pt = tf.tidy(() => tf.tensor4d(Array.from({ length: size * size * 3 }, (_, i) => (i === (20 * size + 20) * 3 ? 1 : 0)), [1, size, size, 3]));
    const f = filterMap(pt, 'normblur');
    const row = values(tf.tidy(() => tf.slice(f, [0, 20, 0, 0], [1, 1, size, 1])));
    expect(row[20]).toBeCloseTo(1, 5);
    // Gaussian profile: exp(−d²/(2σ²)) relative to the peak (the kernel is separable).
    expect(row[24]).toBeCloseTo(Math.exp(-16 / 32), 3);
    expect(row[28]).toBeCloseTo(Math.exp(-64 / 32), 3);
    const blurred = gaussianBlur(tf.ones([1, 9, 9, 1]), 4);
    expectClose(values(blurred), new Array(81).fill(1), 'blur keeps a constant (reflected borders)', 1e-5);
    tf.dispose([pt, f, blurred]);
  });
});

// ── The real models ──────────────────────────────────────────────────────────────────────────────
// Theory: with deconv or guided, the signal leaving a ReLU/ReLU6 backwards (w.r.t. its input, the
// conv's pre-activation) is ≥ 0 — for guided also 0 wherever the forward unit is off (or saturated).
// Nothing constrains the sign past the next linear map: the input-space map is the first conv's
// transposed filters applied to a non-negative field, and has both signs. Our fused graph keeps
// no node at the pre-activation, so the test takes backward(…, {to: conv node}) and the unit's own
// backward step. For LeakyReLU (darknet-tiny) "rectified" keeps α·(negative part): no sign
// guarantee, but negatives shrink by α at every unit.
function firstConv(model: Model): number {
  return model.compiled.net.nodes.findIndex((n) => n.op.kind === 'conv');
}

function rectifiedConvNodes(model: Model, upTo: number): number[] {
  const out: number[] = [];
  model.compiled.net.nodes.forEach((n, i) => {
    if (i <= upTo && n.op.kind === 'conv' && n.op.spec.activation.kind !== 'linear') out.push(i);
  });
  return out;
}

describe.each([...MODEL_IDS])('%s back-projection', (id) => {
  let model: Model;
  let x: tf.Tensor4D;
  let xKite: tf.Tensor4D;
  let targets: BackTarget[];

  beforeAll(async () => {
    await selectBackend('wasm');
    model = await loadModel(id);
    const [dog, kite] = await Promise.all([loadImageForModel(photo('dog'), model.inputSize), loadImageForModel(photo('kite'), model.inputSize)]);
    x = model.preprocess(dog);
    xKite = model.preprocess(kite);
    tf.dispose([dog, kite]);
    const top = tf.tidy(() => tf.argMax(model.forward(x).logits!, 1).dataSync()[0]!);
    const mid = model.layers[Math.floor(model.layers.length / 2)]!;
    // The mid layer's channel with the largest total activation on the dog photo.
    const channel = tf.tidy(() => tf.argMax(tf.sum(model.forward(x, { taps: [mid.name], logits: false }).taps[mid.name]!, [0, 1, 2])).dataSync()[0]!);
    targets = [
      { kind: 'class', index: top },
      { kind: 'channel', layer: mid.name, channel },
    ];
  });

  it('guided/deconv: the signal leaving each rectifier backwards obeys the sign theory; the input map has both signs', () => {
    const net = model.compiled.net;
    for (const t of targets) {
      const from = targetNode(model, t);
      for (const mode of ['deconv', 'guided'] as const) {
        const rule = backwardRule(mode);
        tf.tidy(() => {
          const vals = net.run(x, { until: from });
          const seed = targetSeed(vals[from]!, t);
          const nodes = rectifiedConvNodes(model, from);
          // Check the first conv and a few above it (every node would be slow on the big model).
          const probe = [...new Set([nodes[0]!, nodes[1]!, nodes[Math.floor(nodes.length / 2)]!, nodes[nodes.length - 1]!])];
          for (const k of probe) {
            const op = net.nodes[k]!.op;
            if (op.kind !== 'conv') throw new Error('not a conv');
            const s = net.backward(vals, from, seed, { rule, to: k });
            const pre = activationBackward(s, vals[k]!, op.spec.activation, rule);
            const label = `${mode} ${JSON.stringify(t)} node ${k} (${net.nodes[k]!.names[0]})`;
            expect(tf.max(tf.abs(s)).dataSync()[0], `${label}: signal reaches the node`).toBeGreaterThan(0);
            if (op.spec.activation.kind === 'leaky') {
              // Negatives shrink by α (deconv) or by α or α² (guided); positives of s pass where the gate is open.
              const a = op.spec.activation.alpha;
              const negS = tf.sum(tf.relu(tf.neg(s))).dataSync()[0]!;
              const negPre = tf.sum(tf.relu(tf.neg(pre))).dataSync()[0]!;
              expect(negPre, label).toBeLessThanOrEqual(a * negS * (1 + 1e-5) + 1e-12);
            } else {
              expect(tf.min(pre).dataSync()[0], `${label}: non-negative`).toBeGreaterThanOrEqual(0);
              if (mode === 'guided') {
                const y = vals[k]!;
                const off = op.spec.activation.kind === 'relu6' ? tf.logicalOr(tf.lessEqual(y, 0), tf.greaterEqual(y, 6)) : tf.lessEqual(y, 0);
                expect(tf.max(tf.abs(tf.where(off, pre, tf.zerosLike(pre)))).dataSync()[0], `${label}: zero where the unit is off`).toBe(0);
              }
            }
          }
          // The input map is the first conv's transposed filters applied to the field below its rectifier.
          const k0 = firstConv(model);
          const op0 = net.nodes[k0]!.op;
          if (op0.kind !== 'conv') throw new Error('not a conv');
          const s0 = net.backward(vals, from, seed, { rule, to: k0 });
          const field = activationBackward(s0, vals[k0]!, op0.spec.activation, rule) as tf.Tensor4D;
          const viaField = convInputGrad(field, op0.spec, x.shape);
          const map = backproject(model, x, t, mode);
          const err = tf.max(tf.abs(tf.sub(map, viaField))).dataSync()[0]!;
          expect(err, `${mode}: input map = conv1ᵀ(field)`).toBeLessThanOrEqual(1e-5 * tf.max(tf.abs(map)).dataSync()[0]!);
          expect(tf.min(map).dataSync()[0], `${mode}: input map has negative values (not sign-constrained)`).toBeLessThan(0);
          expect(tf.max(map).dataSync()[0], `${mode}: input map has positive values`).toBeGreaterThan(0);
        });
      }
    }
  });

  it('deconv ignores the forward pass except for max-pool switches (class seed: same map for two photos iff no max-pool)', () => {
    const hasMaxPool = model.compiled.net.nodes.some((n) => n.op.kind === 'pool' && n.op.spec.kind === 'max');
    const t = targets[0]!;
    const diff = (mode: BackMode) =>
      tf.tidy(() => {
        const a = backproject(model, x, t, mode);
        const b = backproject(model, xKite, t, mode);
        return tf.div(tf.norm(tf.sub(a, b)), tf.norm(a)).dataSync()[0]!;
      });
    if (hasMaxPool) expect(diff('deconv'), 'deconv depends on the switches').toBeGreaterThan(0.05);
    else expect(diff('deconv'), 'deconv without max-pools is input-independent').toBeLessThan(1e-5);
    expect(diff('backprop')).toBeGreaterThan(0.05);
    expect(diff('guided')).toBeGreaterThan(0.05);
  });

  it('our backward traversal matches tfjs’ tape over the same rules on wasm; wasm matches cpu for mobilenet-v1-0.25 (cosine ≥ 0.999)', async () => {
    const t = targets[1]!;
    const from = targetNode(model, t);
    const ours: Record<string, Float32Array> = {};
    for (const mode of MODES) {
      const m = backproject(model, x, t, mode);
      ours[mode] = m.dataSync().slice() as Float32Array;
      m.dispose();
      // tfjs' tape through the taped ops (customGrad with the rule), upstream gradient = the DVT seed.
      const taped = tf.tidy(() => {
        const seed = targetSeed(model.compiled.net.run(x, { until: from })[from]!, t);
        return tf.grad((xi: tf.Tensor) => model.compiled.net.run(xi as tf.Tensor4D, { until: from, mode: 'taped', rule: backwardRule(mode) })[from]!)(x, seed);
      });
      const cos = tf.tidy(() => tf.sum(tf.mul(taped, tf.tensor4d(ours[mode]!, x.shape))).div(tf.norm(taped).mul(tf.norm(tf.tensor4d(ours[mode]!, x.shape)))).dataSync()[0]!);
      expect(cos, `${mode} vs tape on wasm`).toBeGreaterThanOrEqual(0.999);
      taped.dispose();
    }
    if (id !== 'mobilenet-v1-0.25') return; // cpu is slow: one model is enough for the backend check
    await selectBackend('cpu');
    const cpuModel = await loadModel(id);
    const xc = tf.tensor4d(x.dataSync().slice(), x.shape);
    for (const mode of MODES) {
      const m = backproject(cpuModel, xc, t, mode);
      const cos = tf.tidy(() => {
        const o = tf.tensor4d(ours[mode]!, x.shape);
        return tf.sum(tf.mul(m, o)).div(tf.norm(m).mul(tf.norm(o))).dataSync()[0]!;
      });
      expect(cos, `${mode} cpu vs wasm`).toBeGreaterThanOrEqual(0.999);
      m.dispose();
    }
    tf.dispose(xc);
    cpuModel.dispose();
    await selectBackend('wasm');
  });

  it('the DVT channel seed makes backprop the gradient of ½‖A_c‖² (central finite differences)', () => {
    const t = targets[1]! as Extract<BackTarget, { kind: 'channel' }>;
    const from = targetNode(model, t);
    const f = (xi: tf.Tensor4D) =>
      tf.tidy(() => {
        const a = tf.slice(model.compiled.net.run(xi, { until: from })[from]!, [0, 0, 0, t.channel], [-1, -1, -1, 1]);
        return tf.mul(tf.sum(tf.square(a)), 0.5).dataSync()[0]!;
      });
    const g = backproject(model, x, t, 'backprop');
    const d = tf.tidy(() => {
      const r = tf.randomNormal(g.shape, 0, 1, 'float32', 3);
      const v = tf.add(tf.div(g, tf.norm(g)), tf.div(r, tf.norm(r)));
      return tf.div(v, tf.norm(v)) as tf.Tensor4D;
    });
    const eps = 1e-3;
    const fd = (f(tf.add(x, tf.mul(d, eps)) as tf.Tensor4D) - f(tf.sub(x, tf.mul(d, eps)) as tf.Tensor4D)) / (2 * eps);
    const analytic = tf.tidy(() => tf.sum(tf.mul(g, d)).dataSync()[0]!);
    expect(Math.abs(fd - analytic) / Math.abs(analytic), `fd ${fd} vs ${analytic}`).toBeLessThan(2e-2);
    tf.dispose([g, d]);
  });

  it('a batch of two gives each image its own map; nothing leaks', () => {
    const before = tf.memory().numTensors;
    const xb = tf.concat([x, xKite]) as tf.Tensor4D;
    for (const mode of MODES) {
      const b = backproject(model, xb, targets[1]!, mode);
      [x, xKite].forEach((xi, i) => {
        const s = backproject(model, xi, targets[1]!, mode);
        const err = tf.tidy(() => tf.max(tf.abs(tf.sub(tf.slice(b, [i, 0, 0, 0], [1, -1, -1, -1]), s))).div(tf.max(tf.abs(s)).add(1e-30)).dataSync()[0]!);
        expect(err, `${mode} item ${i}`).toBeLessThan(1e-4);
        s.dispose();
      });
      b.dispose();
    }
    xb.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });
});
