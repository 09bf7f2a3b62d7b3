// A user's own models, built the way users build them (tfjs-layers in Node) and dropped in as
// bare folders — model.json + weights, perhaps labels.txt, no deepvis.json: listed with an
// inferred descriptor, classified as tfjs itself classifies them, and every path (input
// gradients, back-projection modes, Grad-CAM, synthesis, live top-k) working on them. One is a
// small CNN trained here on real MNIST digits (1 channel, 28 px).
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  backproject,
  BACK_MODES,
  defaultGradCamLayer,
  gradCam,
  inputGradient,
  listModels,
  loadImageForModel,
  loadModel,
  rgbaToModelPixels,
  selectBackend,
  SessionTopK,
  tapedInputGradient,
  type Model,
  type UnitObjective,
} from '../main/engine/index.js';
import { presetSettings, synthesize } from '../main/engine/synthesis/index.js';
import { photo, PHOTOS } from './support/fixtures.js';
import { directionalCheck, rel } from './support/numeric.js';
import { DIGITS, mnistDigits, plainLogitsModel, residualSeparableModel, saveBareFolder, trainMnist } from './support/user-models.js';

const root = mkdtempSync(join(tmpdir(), 'deepvis-user-models-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

interface Built {
  id: string;
  /** What tfjs-layers itself outputs (softmax or logits) for the reference inputs, on cpu. */
  reference: Float32Array;
  /** Reference inputs in the model's own input space (what tfjs' predict takes). */
  inputs: tf.Tensor4D;
  /** ∂output[k]/∂input of tfjs' own model on cpu, for the first reference input. */
  refGrad: Float32Array;
  gradClass: number;
  accuracy?: number;
}
const built = new Map<string, Built>();


/** Reference output and input gradient of tfjs' own LayersModel, on the current (cpu) backend. */
function reference(model: tf.LayersModel, inputs: tf.Tensor4D, k: number): { out: Float32Array; grad: Float32Array } {
  const out = tf.tidy(() => (model.predict(inputs) as tf.Tensor).dataSync() as Float32Array);
  const grad = tf.tidy(() => {
    const first = tf.slice(inputs, [0, 0, 0, 0], [1, -1, -1, -1]);
    return tf.grad((x: tf.Tensor) => tf.sum(tf.slice(model.predict(x) as tf.Tensor2D, [0, k], [1, 1])))(first).dataSync() as Float32Array;
  });
  return { out, grad };
}

beforeAll(async () => {
  await selectBackend('wasm');
  // 1-channel MNIST digits, sequential, softmax fused into Dense, trained on real digits.
  const mnist = await trainMnist();
  // References on cpu: tfjs' own kernels and autodiff, independent of our compiled graph.
  await selectBackend('cpu');
  await saveBareFolder(mnist.model, join(root, 'my-digits'), DIGITS);
  const digits = mnistDigits(1, 300);
  const m = reference(mnist.model, digits.x, 3);
  built.set('my-digits', { id: 'my-digits', reference: m.out, inputs: digits.x, refGrad: m.grad, gradClass: 3, accuracy: mnist.accuracy });
  // Functional, non-square, residual + separable, separate Softmax layer, Rescaling first.
  const res = residualSeparableModel();
  await saveBareFolder(res, join(root, 'resnetish'), ['cat', 'dog', 'bird', 'car', 'tree']);
  const resIn = tf.randomUniform([2, 96, 128, 3], 0, 255, 'float32', 5) as tf.Tensor4D;
  const r = reference(res, resIn, 1);
  built.set('resnetish', { id: 'resnetish', reference: r.out, inputs: resIn, refGrad: r.grad, gradClass: 1 });
  // The same model with a Keras Normalization layer (mean 127.5, variance 127.5²) in place of its
  // Rescaling (x/127.5 − 1): the same function, so tfjs' reference for resnetish holds. tfjs-layers
  // has no Normalization layer to build it with; Keras writes it like this.
  await saveBareFolder(res, join(root, 'normalized'), ['cat', 'dog', 'bird', 'car', 'tree']);
  const mj = JSON.parse(readFileSync(join(root, 'normalized', 'model.json'), 'utf8'));
  const layers = (mj.modelTopology.model_config ?? mj.modelTopology).config.layers as { class_name: string; config: Record<string, unknown> }[];
  const rescale = layers.find((l) => l.class_name === 'Rescaling')!;
  rescale.class_name = 'Normalization';
  rescale.config = { name: rescale.config.name, axis: -1, mean: 127.5, variance: 127.5 ** 2 };
  writeFileSync(join(root, 'normalized', 'model.json'), JSON.stringify(mj));
  built.set('normalized', { ...built.get('resnetish')!, id: 'normalized' });
  // Sequential with a logits head (no softmax), no labels file.
  const plain = plainLogitsModel();
  await saveBareFolder(plain, join(root, 'plain logits'));
  const plainIn = tf.randomUniform([2, 112, 112, 3], 0, 1, 'float32', 6) as tf.Tensor4D;
  const p = reference(plain, plainIn, 2);
  built.set('plain-logits', { id: 'plain-logits', reference: p.out, inputs: plainIn, refGrad: p.grad, gradClass: 2 });
}, 180_000);

describe('bare folders are listed with an inferred descriptor', () => {
  it('the MNIST model trained here is a real classifier (≥ 80 % on held-out digits)', () => {
    expect(built.get('my-digits')!.accuracy).toBeGreaterThanOrEqual(0.8);
  });

  it('lists every folder holding a model.json, with what was inferred, and no problem', async () => {
    const entries = await listModels(root);
    expect(entries.map((e) => e.id).sort()).toEqual(['my-digits', 'normalized', 'plain-logits', 'resnetish']);
    for (const e of entries) {
      expect(e.problem, e.id).toBeNull();
      expect(e.inferred?.length, e.id).toBeGreaterThan(0);
    }
    const digits = entries.find((e) => e.id === 'my-digits')!;
    expect(digits.descriptor!.inputSize).toEqual([28, 28]);
    expect(digits.descriptor!.classes).toEqual({ names: 'labels.txt' });
    expect(digits.inferred!.join(' ')).toMatch(/1-channel input: .*luminance/);
    expect(digits.inferred!.join(' ')).toMatch(/softmax head split off/);
    const res = entries.find((e) => e.id === 'resnetish')!;
    expect(res.descriptor!.inputSize).toEqual([96, 128]);
    expect(res.descriptor!.preprocess).toMatchObject({ scale: 1, offset: 0 }); // its own Rescaling layer
    expect(res.descriptor!.logits).toBe('logits');
    // Spatial layers after nonlinearities, by the model's own names; nothing after global pooling.
    const names = res.descriptor!.layers.map((l) => l.name);
    expect(names).toEqual(expect.arrayContaining(['stem_relu', 'res_conv1', 'res_swish', 'sep_relu4', 'branch_gelu', 'join', 'pool']));
    expect(names).not.toContain('gap');
    expect(names).not.toContain('logits');
    const plain = entries.find((e) => e.id === 'plain-logits')!;
    expect(plain.inferred!.join(' ')).toMatch(/no softmax/);
    expect(plain.inferred!.join(' ')).toMatch(/no labels.txt/);
  });
});

describe.each(['my-digits', 'resnetish', 'normalized', 'plain-logits'])('%s', (id) => {
  let model: Model;
  let cpuModel: Model;
  let b: Built;
  /** The reference inputs as RGB pixels 0…255 (what DeepVis feeds). */
  let pixels: tf.Tensor4D;

  beforeAll(async () => {
    b = built.get(id)!;
    await selectBackend('cpu');
    cpuModel = await loadModel(id, root);
    await selectBackend('wasm');
    model = await loadModel(id, root);
    const d = model.descriptor.preprocess;
    const scale = d.scale as number;
    const offset = d.offset as number;
    // Back from the model's input space to pixels; a grey input for the 1-channel model.
    pixels = tf.tidy(() => {
      const px = tf.div(tf.sub(b.inputs, offset), scale);
      return (px.shape[3] === 1 ? tf.tile(px, [1, 1, 1, 3]) : px) as tf.Tensor4D;
    });
  }, 60_000);
  afterAll(() => {
    model?.dispose();
    cpuModel?.dispose();
  });

  it('classifies as tfjs-layers itself does (outputs within 1e-4)', async () => {
    const out = tf.tidy(() => {
      const values = model.compiled.net.run(model.preprocess(pixels));
      return values[model.compiled.outputNode]!.dataSync() as Float32Array;
    });
    expect(out.length).toBe(b.reference.length);
    expect(rel(out, b.reference)).toBeLessThan(1e-4);
    const top = await model.classify(pixels, 3);
    for (const row of top) for (const t of row) expect(Number.isFinite(t.prob)).toBe(true);
    expect(model.compiled.softmaxHead).toBe(id !== 'plain-logits');
    // The inferred descriptor writes it down; the window and CLI read it from there.
    expect(model.descriptor.head).toEqual({ softmax: id !== 'plain-logits' });
    expect(model.softmaxHead).toBe(id !== 'plain-logits');
  });

  it('the input gradient of the output equals tfjs-layers’ own gradient of the model (cpu)', () => {
    const ours = tf.tidy(() => {
      const x = model.preprocess(tf.slice(pixels, [0, 0, 0, 0], [1, -1, -1, -1]));
      const values = model.compiled.net.run(x);
      const out = model.compiled.outputNode;
      const seed = tf.oneHot(tf.tensor1d([b.gradClass], 'int32'), values[out]!.shape[1]!).toFloat();
      let g = model.compiled.net.backward(values, out, seed);
      // A 1-channel model sees luminance: its own input gradient is Σ over RGB of ours.
      if (b.inputs.shape[3] === 1) g = tf.sum(g, 3, true);
      return g.dataSync() as Float32Array;
    });
    expect(rel(ours, b.refGrad)).toBeLessThan(2e-3);
  });

  it('every displayed layer: our input gradient matches the cpu reference autodiff and finite differences', async () => {
    // A little noise: flat regions (MNIST's black background) would otherwise tie in max-pools.
    const x0 = tf.tidy(() => model.preprocess(tf.add(tf.slice(pixels, [0, 0, 0, 0], [1, -1, -1, -1]), tf.randomNormal([1, ...model.inputSize, 3], 0, 6, 'float32', 3)) as tf.Tensor4D));
    try {
      for (const l of model.layers) {
        const [h, w, c] = l.shape;
        const o: UnitObjective = { kind: 'channel', layer: l.name, channel: c - 1, at: { y: Math.floor(h / 2), x: Math.floor(w / 2) } };
        // tfjs' own autodiff of the unfused ops, on the cpu backend.
        await selectBackend('cpu');
        const ref = tapedInputGradient(cpuModel, x0, o, 'reference');
        const refData = ref.dataSync();
        const refNorm = tf.tidy(() => tf.norm(ref).dataSync()[0]!);
        ref.dispose();
        await selectBackend('wasm');
        if (refNorm === 0) continue; // a dead unit: nothing to compare
        const ours = inputGradient(model, x0, o);
        try {
          expect(rel(ours.grad.dataSync(), refData), l.name).toBeLessThan(2e-3);
          // Central differences along the gradient direction (float32 on wasm: a modest step
          // that may cross a few ReLU or max-pool kinks, hence 10 %).
          const eps = (3e-3 * 127.5) / model.pixelScale; // 0.4 grey levels
          const { fd, gn } = directionalCheck((x) => inputGradient(model, x, o), x0, ours.grad, eps);
          expect(Math.abs(fd - gn) / gn, `${l.name}: directional derivative ${fd} vs |g| ${gn}`).toBeLessThan(0.1);
        } finally {
          tf.dispose([ours.value, ours.grad]);
        }
      }
    } finally {
      x0.dispose();
    }
  }, 120_000);

  it('back-projection runs in every mode and Grad-CAM gives a map, for a class and a channel', () => {
    const x = model.preprocess(tf.slice(pixels, [0, 0, 0, 0], [1, -1, -1, -1]));
    try {
      const last = model.layers[model.layers.length - 1]!;
      for (const mode of BACK_MODES) {
        const g = backproject(model, x, { kind: 'channel', layer: last.name, channel: 0 }, mode);
        expect(g.shape).toEqual([1, ...model.inputSize, 3]);
        expect(Array.from(g.dataSync()).every(Number.isFinite), mode).toBe(true);
        g.dispose();
      }
      // The predicted class: its evidence is what Grad-CAM shows (another class's may be nowhere).
      const top = tf.tidy(() => model.forward(x).logits!.argMax(1).dataSync()[0]!);
      const cam = gradCam(model, x, { kind: 'class', index: top });
      expect(cam.heat.shape).toEqual([1, ...model.inputSize]);
      const heat = Array.from(cam.heat.dataSync());
      expect(heat.every((v) => v >= 0 && v <= 1)).toBe(true);
      // Random-weight fixtures have evidence somewhere; the digit model's frozen random features
      // may carry a class only by the absence of activations, where Grad-CAM is zero by design.
      if (b.accuracy === undefined) expect(Math.max(...heat)).toBeGreaterThan(0);
      tf.dispose([cam.heat, cam.coarse]);
    } finally {
      x.dispose();
    }
  });

  it('live top-k collects frames for a displayed layer', async () => {
    const layer = model.layers[Math.floor(model.layers.length / 2)]!;
    const topk = new SessionTopK(model, { layer: layer.name, k: 3 });
    let frame = 0;
    for (const name of PHOTOS.slice(0, 4)) {
      const px = await loadImageForModel(photo(name), model.inputSize);
      const tap = tf.tidy(() => model.forward(model.preprocess(px), { taps: [layer.name], logits: false }).taps[layer.name]!);
      await topk.offer(frame++, tap, px);
      tf.dispose([px, tap]);
    }
    const hits = topk.top(0);
    expect(hits.length).toBeGreaterThan(0);
    expect(hits[0]!.crop.width).toBeGreaterThan(0);
  });

  it('synthesis at the model’s own size: the fast preset makes the class the top-1 (p ≥ 0.9 on the trained model), paper-3 raises a channel', async () => {
    const fast = await synthesize({ model, objective: { kind: 'class', index: b.gradClass }, settings: { ...presetSettings('fast'), iterations: 120 }, seeds: [1] });
    const img = fast.images[0]!;
    expect(img.width).toBe(model.inputSize[1]);
    expect(img.height).toBe(model.inputSize[0]);
    expect(img.objectiveBest).toBeGreaterThan(img.objectiveStart);
    expect(img.top5![0]!.index).toBe(b.gradClass);
    // The trained digit model: a clear class image. The random-weight fixtures' logits move by
    // a few hundredths whatever the input (nothing to find), so only top-1 is asked of them.
    if (b.accuracy !== undefined) expect(img.targetProb!).toBeGreaterThanOrEqual(0.9);
    const layer = model.layers[Math.floor(model.layers.length / 2)]!;
    const [h, w] = layer.shape;
    const o: UnitObjective = { kind: 'channel', layer: layer.name, channel: 0, at: { y: Math.floor(h / 2), x: Math.floor(w / 2) } };
    const paper = await synthesize({ model, objective: o, settings: { ...presetSettings('paper-3'), iterations: 60 }, seeds: [2] });
    const p = paper.images[0]!;
    expect(p.objectiveBest).toBeGreaterThan(p.objectiveStart + Math.max(1e-3, Math.abs(p.objectiveStart)));
  }, 120_000);

  it('a camera frame (RGBA) reaches the model as its own channels', () => {
    const [h, w] = model.inputSize;
    const rgba = new Uint8Array(w * 2 * h * 2 * 4).fill(200);
    const px = rgbaToModelPixels(rgba, w * 2, h * 2, model.inputSize);
    const r = tf.tidy(() => model.forward(model.preprocess(px)).logits!.dataSync());
    px.dispose();
    expect(Array.from(r).every(Number.isFinite)).toBe(true);
  });
});

describe('defaults that depend on the model', () => {
  it('Grad-CAM default layer of the residual model is its last spatial layer before the head', async () => {
    await selectBackend('wasm');
    const model = await loadModel('resnetish', root);
    try {
      expect(defaultGradCamLayer(model, { kind: 'class', index: 0 })).toBe('pool');
    } finally {
      model.dispose();
    }
  });
});
