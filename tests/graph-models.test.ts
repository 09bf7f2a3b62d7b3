// A TF.js graph model (what tensorflowjs_converter writes for a SavedModel or a TF Hub model)
// dropped in as a bare folder: compiled from its TensorFlow ops into the engine's own graph and
// checked against tfjs-converter's own GraphModel reading the same files — outputs, input
// gradients (and finite differences), every back-projection mode, Grad-CAM, the ONNX export,
// listing, classify, synthesis and live top-k. An op DeepVis lacks is refused by name.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  backproject,
  BACK_MODES,
  gradCam,
  inputGradient,
  listModels,
  loadImageForModel,
  loadModel,
  selectBackend,
  SessionTopK,
  tapedInputGradient,
  type Model,
  type UnitObjective,
} from '../main/engine/index.js';
import { displayNames } from '../main/engine/model-infer.js';
import { onnxUnsupported } from '../main/engine/onnx/export.js';
import { presetSettings, synthesize } from '../main/engine/synthesis/index.js';
import { photo, PHOTOS } from './support/fixtures.js';
import { GRAPH_CLASSES, GRAPH_INPUT, GRAPH_SHOWN, loadTfjsGraphModel, writeGraphModel } from './support/graph-model.js';
import { directionalCheck, rel } from './support/numeric.js';

const root = mkdtempSync(join(tmpdir(), 'deepvis-graph-models-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
const ID = 'tiny-graph';
const DIR = join(root, ID);
const VALID_ID = 'tiny-graph-valid-avg';
const VALID_DIR = join(root, VALID_ID);

/** Pixels 0…255 for two reference images. */
let pixels: tf.Tensor4D;
/** tfjs-converter's GraphModel output (probabilities) for them, on cpu. */
let refProbs: Float32Array;
/** ∂probs[0, k]/∂pixels of tfjs' GraphModel on cpu, first image (the "VALID" average-pool variant). */
let refGrad: Float32Array;
const K = 2;

beforeAll(async () => {
  writeGraphModel(DIR);
  await selectBackend('cpu');
  const gm = await loadTfjsGraphModel(DIR);
  pixels = tf.randomUniform([2, ...GRAPH_INPUT, 3], 0, 255, 'float32', 7) as tf.Tensor4D;
  refProbs = tf.tidy(() => (gm.execute(pixels, 'Identity') as tf.Tensor).dataSync() as Float32Array);
  gm.dispose();
  // tfjs' own autodiff of its GraphModel, on the variant whose average pool is "VALID".
  writeGraphModel(VALID_DIR, { avgPadding: 'VALID' });
  const gmValid = await loadTfjsGraphModel(VALID_DIR);
  refGrad = tf.tidy(() => {
    const first = tf.slice(pixels, [0, 0, 0, 0], [1, -1, -1, -1]);
    return tf.grad((x: tf.Tensor) => tf.sum(tf.slice(gmValid.execute(x, 'Identity') as tf.Tensor2D, [0, K], [1, 1])))(first).dataSync() as Float32Array;
  });
  gmValid.dispose();
}, 60_000);

describe('a graph-model folder is listed with an inferred descriptor', () => {
  it('listed, with its input size, own scaling, logits before the softmax, layers by node name', async () => {
    const entries = await listModels(root);
    const e = entries.find((x) => x.id === ID)!;
    expect(e.problem).toBeNull();
    expect(e.inferred!.join(' ')).toMatch(/graph model/);
    const d = e.descriptor!;
    expect(d.inputSize).toEqual(GRAPH_INPUT);
    // The graph scales its own input (x/127.5 − 1): pixels go in as they are.
    expect(d.preprocess).toMatchObject({ scale: 1, offset: 0 });
    expect(d.logits).toBe('logits');
    expect(d.classes).toEqual({ names: 'labels.txt' });
    expect(d.layers.map((l) => l.name)).toEqual(GRAPH_SHOWN);
    expect(d.defaultLayer).toBe('head_conv');
    // Shown by their node names; a path every node shares (a SavedModel's call scopes) is left out.
    expect(d.layers.map((l) => l.display)).toEqual(GRAPH_SHOWN);
    expect(displayNames(['Stateful/model/predict/conv1/Relu', 'Stateful/model/predict/block/add'])).toEqual(['conv1/Relu', 'block/add']);
  });

  it('a graph that scales a 0…1 input itself (x·2 − 1, as TF Hub models do) gets pixel/255, read from its constants', async () => {
    const other = join(root, '..', `${root.split('/').pop()}-unit`);
    writeGraphModel(join(other, 'hub-like'), { unitInput: true });
    try {
      const [e] = await listModels(other);
      expect(e!.problem).toBeNull();
      expect(e!.descriptor!.preprocess).toMatchObject({ scale: 1 / 255, offset: 0 });
      expect(e!.inferred!.join(' ')).toMatch(/scales its own input \(preprocess\/mul\) from 0…1/);
    } finally {
      rmSync(other, { recursive: true, force: true });
    }
  });

  it('an op DeepVis lacks is refused naming the op, the node and "not supported yet"', async () => {
    const other = join(root, '..', `${root.split('/').pop()}-bad`);
    writeGraphModel(join(other, 'erf-model'));
    const mj = JSON.parse(readFileSync(join(other, 'erf-model', 'model.json'), 'utf8'));
    mj.modelTopology.node.find((n: { name: string }) => n.name === 'block1/Relu').op = 'Erf';
    writeFileSync(join(other, 'erf-model', 'model.json'), JSON.stringify(mj));
    try {
      const [e] = await listModels(other);
      expect(e!.problem).toMatch(/model\.json.*graph model.*node "block1\/Relu" uses the op Erf.*not supported yet/);
    } finally {
      rmSync(other, { recursive: true, force: true });
    }
  });
});

describe('compiled graph model against tfjs-converter’s GraphModel', () => {
  let model: Model;
  let cpuModel: Model;
  beforeAll(async () => {
    await selectBackend('cpu');
    cpuModel = await loadModel(ID, root);
    await selectBackend('wasm');
    model = await loadModel(ID, root);
  }, 60_000);
  afterAll(() => {
    model?.dispose();
    cpuModel?.dispose();
  });

  it('the same outputs (within 1e-5) on cpu and wasm, and classify names its classes', async () => {
    for (const m of [cpuModel, model]) {
      await selectBackend(m === cpuModel ? 'cpu' : 'wasm');
      const out = tf.tidy(() => m.compiled.net.run(m.preprocess(pixels))[m.compiled.outputNode]!.dataSync() as Float32Array);
      expect(out.length).toBe(refProbs.length);
      expect(rel(out, refProbs)).toBeLessThan(1e-5);
    }
    expect(model.compiled.softmaxHead).toBe(true);
    const top = await model.classify(pixels, 3);
    expect(top[0]![0]!.name).toBe(GRAPH_CLASSES[Array.from(refProbs.slice(0, 5)).indexOf(Math.max(...refProbs.slice(0, 5)))]);
  });

  it('the input gradient of an output equals tfjs’ own gradient of GraphModel.execute (cpu)', async () => {
    await selectBackend('wasm');
    const valid = await loadModel(VALID_ID, root);
    try {
      const ours = tf.tidy(() => {
        const x = valid.preprocess(tf.slice(pixels, [0, 0, 0, 0], [1, -1, -1, -1]));
        const values = valid.compiled.net.run(x);
        const seed = tf.oneHot(tf.tensor1d([K], 'int32'), 5).toFloat();
        return valid.compiled.net.backward(values, valid.compiled.outputNode, seed).dataSync() as Float32Array;
      });
      expect(rel(ours, refGrad)).toBeLessThan(2e-3);
    } finally {
      valid.dispose();
    }
  });

  it('every displayed layer: input gradient matches cpu reference autodiff and finite differences', async () => {
    const x0 = tf.tidy(() => model.preprocess(tf.slice(pixels, [0, 0, 0, 0], [1, -1, -1, -1])));
    try {
      for (const l of model.layers) {
        const [h, w, c] = l.shape;
        const o: UnitObjective = { kind: 'channel', layer: l.name, channel: c - 1, at: { y: Math.floor(h / 2), x: Math.floor(w / 2) } };
        await selectBackend('cpu');
        const ref = tapedInputGradient(cpuModel, x0, o, 'reference');
        const refData = ref.dataSync();
        const refNorm = tf.tidy(() => tf.norm(ref).dataSync()[0]!);
        ref.dispose();
        await selectBackend('wasm');
        if (refNorm === 0) continue;
        const ours = inputGradient(model, x0, o);
        try {
          expect(rel(ours.grad.dataSync(), refData), l.name).toBeLessThan(2e-3);
          const eps = 0.4;
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

  it('back-projection runs in every mode on every layer kind, and Grad-CAM gives a map', () => {
    const x = model.preprocess(tf.slice(pixels, [0, 0, 0, 0], [1, -1, -1, -1]));
    try {
      for (const layer of ['block1/add', 'branch_a/hswish', 'head_conv']) {
        const grads: Float32Array[] = [];
        for (const mode of BACK_MODES) {
          const g = backproject(model, x, { kind: 'channel', layer, channel: 0 }, mode);
          expect(g.shape).toEqual([1, ...GRAPH_INPUT, 3]);
          const v = g.dataSync() as Float32Array;
          expect(Array.from(v).every(Number.isFinite), `${layer} ${mode}`).toBe(true);
          grads.push(v);
          g.dispose();
        }
        // The rules differ at the rectifiers: deconv and guided are not the plain gradient.
        expect(rel(grads[BACK_MODES.indexOf('deconv')]!, grads[BACK_MODES.indexOf('backprop')]!), layer).toBeGreaterThan(1e-3);
      }
      const top = tf.tidy(() => model.forward(x).logits!.argMax(1).dataSync()[0]!);
      const cam = gradCam(model, x, { kind: 'class', index: top });
      expect(cam.heat.shape).toEqual([1, ...GRAPH_INPUT]);
      const heat = Array.from(cam.heat.dataSync());
      expect(heat.every((v) => v >= 0 && v <= 1)).toBe(true);
      expect(Math.max(...heat)).toBeGreaterThan(0);
      tf.dispose([cam.heat, cam.coarse]);
    } finally {
      x.dispose();
    }
  });

  it('live top-k collects frames for a displayed layer', async () => {
    const topk = new SessionTopK(model, { layer: 'concat', k: 3 });
    let frame = 0;
    for (const name of PHOTOS.slice(0, 3)) {
      const px = await loadImageForModel(photo(name), model.inputSize);
      const tap = tf.tidy(() => model.forward(model.preprocess(px), { taps: ['concat'], logits: false }).taps['concat']!);
      await topk.offer(frame++, tap, px);
      tf.dispose([px, tap]);
    }
    expect(topk.top(0).length).toBeGreaterThan(0);
  });

  it('synthesis raises a class and a channel', async () => {
    // Without the preset's scale and turn: this five-class toy network's probabilities stay near
    // 0.2 whatever the input, so under views that differ this much every step its best image is
    // picked by the draw of the views (measured: the same image at 60 and at 200 steps).
    const fast = await synthesize({ model, objective: { kind: 'class', index: K }, settings: { ...presetSettings('fast'), iterations: 60, scale: 0, rotate: 0 }, seeds: [1] });
    const img = fast.images[0]!;
    expect([img.height, img.width]).toEqual(GRAPH_INPUT);
    expect(img.objectiveBest).toBeGreaterThan(img.objectiveStart);
    expect(img.top5![0]!.index).toBe(K);
    const o: UnitObjective = { kind: 'channel', layer: 'block2/swish', channel: 1, at: { y: 10, x: 12 } };
    const paper = await synthesize({ model, objective: o, settings: { ...presetSettings('paper-3'), iterations: 40 }, seeds: [2] });
    expect(paper.images[0]!.objectiveBest).toBeGreaterThan(paper.images[0]!.objectiveStart + 1e-3);
  }, 120_000);
});

/** Write graph fixture `id`, load it into the engine, and check its outputs against tfjs' GraphModel's (cpu). */
async function loadBesideTfjs(id: string, opts: Parameters<typeof writeGraphModel>[1]): Promise<Model> {
  writeGraphModel(join(root, id), opts);
  await selectBackend('cpu');
  const gm = await loadTfjsGraphModel(join(root, id));
  const ref = tf.tidy(() => (gm.execute(pixels, 'Identity') as tf.Tensor).dataSync() as Float32Array);
  gm.dispose();
  const model = await loadModel(id, root);
  try {
    const out = tf.tidy(() => model.compiled.net.run(model.preprocess(pixels))[model.compiled.outputNode]!.dataSync() as Float32Array);
    expect(rel(out, ref)).toBeLessThan(1e-5);
  } catch (e) {
    model.dispose();
    throw e;
  }
  return model;
}

describe('a graph model reaching its head through Squeeze and ExpandDims', () => {
  it('tfjs’ outputs, and the class gradient equal to the reference autodiff', async () => {
    const id = 'squeezed';
    const model = await loadBesideTfjs(id, { squeeze: true });
    try {
      const x0 = model.preprocess(tf.slice(pixels, [0, 0, 0, 0], [1, -1, -1, -1]));
      const o = { kind: 'class', index: K } as const;
      const refGrad = tapedInputGradient(model, x0, o, 'reference');
      const ours = inputGradient(model, x0, o);
      expect(rel(ours.grad.dataSync(), refGrad.dataSync())).toBeLessThan(2e-3);
      tf.dispose([x0, refGrad, ours.value, ours.grad]);
    } finally {
      model.dispose();
    }
  });
});

describe('a graph model padding by reflection (MirrorPad)', () => {
  it.each(['REFLECT', 'SYMMETRIC'] as const)('%s: tfjs’ outputs, and input gradients equal to the reference autodiff and finite differences', async (mode) => {
    const id = `mirror-${mode.toLowerCase()}`;
    const model = await loadBesideTfjs(id, { mirrorPad: mode });
    try {
      const x0 = model.preprocess(tf.slice(pixels, [0, 0, 0, 0], [1, -1, -1, -1]));
      // A unit whose field covers the padded border.
      const o: UnitObjective = { kind: 'channel', layer: 'branch_b/leaky', channel: 3, at: { y: 0, x: 0 } };
      const refGrad = tapedInputGradient(model, x0, o, 'reference');
      const ours = inputGradient(model, x0, o);
      expect(rel(ours.grad.dataSync(), refGrad.dataSync())).toBeLessThan(2e-3);
      const { fd, gn } = directionalCheck((x) => inputGradient(model, x, o), x0, ours.grad, 0.4);
      expect(Math.abs(fd - gn) / gn).toBeLessThan(0.1);
      tf.dispose([x0, refGrad, ours.value, ours.grad]);
    } finally {
      model.dispose();
    }
  });
});

describe('the ONNX export of the compiled graph model', () => {
  let model: Model;
  beforeAll(async () => {
    await selectBackend('onnx');
    model = await loadModel(ID, root);
  }, 60_000);
  afterAll(() => model?.dispose());

  it('runs on ONNX Runtime (every node exported) with tfjs’ outputs and input gradient', () => {
    expect(onnxUnsupported(model.compiled.net)).toBeNull();
    const probs = tf.tidy(() => tf.softmax(model.forward(model.preprocess(pixels)).logits!).dataSync() as Float32Array);
    expect(rel(probs, refProbs)).toBeLessThan(1e-5);
    const x = model.preprocess(tf.slice(pixels, [0, 0, 0, 0], [1, -1, -1, -1]));
    const r = inputGradient(model, x, { kind: 'class', index: K });
    // ∂logit_k differs from tfjs' ∂prob_k; compare with the compiled graph's own tfjs backward.
    const ref = tf.tidy(() => {
      const values = model.compiled.net.run(x);
      const seed = tf.oneHot(tf.tensor1d([K], 'int32'), 5).toFloat();
      return model.compiled.net.backward(values, model.compiled.logitsNode, seed).dataSync() as Float32Array;
    });
    expect(rel(r.grad.dataSync(), ref)).toBeLessThan(1e-4);
    tf.dispose([x, r.value, r.grad]);
  });
});
