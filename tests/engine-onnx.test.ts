// The ONNX Runtime engine (backend "onnx") against the engine it replaces, on every bundled model:
// the same top-5 as wasm on every fixture photo; input gradients that agree with central finite
// differences of ORT's own forward pass; and, against the engine's backward pass on the cpu
// backend, within 1e-4 relative for input gradients, back-projection in every mode, back diffs
// at a layer and Grad-CAM.
// The 1e-4 comparison runs the cpu backward pass over ORT's forward values: independent float32
// forwards (wasm against cpu as much as ORT against cpu) put a few deep ReLU6/ReLU units on the
// other side of their kink, which moves a logit's gradient by 1e-3–1e-2 relative; with the same
// gates every difference left is the exported backward graph's. End to end (each its own forward)
// the bar is the wasm suite's: cosine ≥ 0.999, norms within 1%.
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  BACK_MODES,
  backproject,
  gradCam,
  inputGradient,
  loadImageForModel,
  loadModel,
  objectiveValue,
  selectBackend,
  targetNode,
  targetSeed,
  type BackTarget,
  type Model,
  type UnitObjective,
} from '../main/engine/index.js';
import { gradCamFromValues } from '../main/engine/gradcam.js';
import { objectiveNode, objectiveSeed } from '../main/engine/objectives.js';
import { nativeForward, nativeSessionStats } from '../main/engine/onnx/native-net.js';
import type { BackwardOptions } from '../main/engine/network.js';
import { MODEL_IDS, PHOTOS, photo } from './support/fixtures.js';
import { CASES, direction, dot, gradientObjectives, relError, type LabelledObjective } from './support/gradient-cases.js';

function cosineOf(a: ArrayLike<number>, b: ArrayLike<number>): { cos: number; ratio: number } {
  let ab = 0;
  let aa = 0;
  let bb = 0;
  for (let i = 0; i < b.length; i++) {
    ab += a[i]! * b[i]!;
    aa += a[i]! ** 2;
    bb += b[i]! ** 2;
  }
  return { cos: ab / Math.sqrt(aa * bb), ratio: Math.sqrt(aa / bb) };
}

/** The objective read from ORT's forward pass (model.forward runs on ORT while onnx is selected). */
function forwardValue(model: Model, x: tf.Tensor4D, o: UnitObjective): number {
  return tf.tidy(() => {
    if (o.kind === 'class') return objectiveValue(model.forward(x).logits!, o).dataSync()[0]!;
    return objectiveValue(model.forward(x, { taps: [o.layer], logits: false }).taps[o.layer]!, o).dataSync()[0]!;
  });
}

describe.each(MODEL_IDS)('%s on ONNX Runtime (cpu provider)', (id) => {
  let onnxModel: Model;
  let cpuModel: Model;
  let x: tf.Tensor4D;
  let xData: Float32Array;
  let objectives: LabelledObjective[];

  /** Run f on the cpu backend with the cpu-loaded model and this input; return its numbers. */
  async function onCpu(f: (m: Model, x: tf.Tensor4D) => tf.Tensor): Promise<Float32Array> {
    await selectBackend('cpu');
    const xc = tf.tensor4d(xData, x.shape);
    const r = f(cpuModel, xc);
    const out = r.dataSync().slice() as Float32Array;
    tf.dispose([xc, r]);
    await selectBackend('onnx');
    return out;
  }

  /**
   * The engine's backward pass on the cpu backend over ORT's forward values (nodes 0…from), seeded
   * by `seed` (built on cpu from those values).
   */
  async function cpuBackwardOnOrtValues(from: number, seed: (values: tf.Tensor[]) => tf.Tensor, opts: BackwardOptions, extra?: (values: tf.Tensor[]) => tf.Tensor): Promise<Float32Array> {
    const nodes = Array.from({ length: from + 1 }, (_, i) => i);
    const ort = nativeForward(onnxModel, x, nodes);
    const data = ort.map((t) => ({ d: t.dataSync().slice(), shape: t.shape }));
    tf.dispose(ort);
    return onCpu(() =>
      tf.tidy(() => {
        const values = data.map((v) => tf.tensor(v.d, v.shape));
        return extra ? extra(values) : cpuModel.compiled.net.backward(values, from, seed(values), opts);
      }),
    );
  }

  beforeAll(async () => {
    await selectBackend('cpu');
    cpuModel = await loadModel(id);
    const report = await selectBackend('onnx');
    expect(report.choice).toBe('onnx');
    onnxModel = await loadModel(id);
    // As the wasm gradient suite: a real photo plus a little noise, so max-pools have no ties.
    const px = await loadImageForModel(photo('dog'), onnxModel.inputSize);
    x = tf.tidy(() => onnxModel.preprocess(tf.add(px, tf.randomNormal(px.shape, 0, 2, 'float32', 11)) as tf.Tensor4D));
    px.dispose();
    xData = x.dataSync().slice() as Float32Array;
    objectives = gradientObjectives(onnxModel, x);
  });

  it('gives the same top-5 as wasm on every fixture photo', async () => {
    const imgs = await Promise.all(PHOTOS.map((p) => loadImageForModel(photo(p), onnxModel.inputSize)));
    const pixels = tf.concat(imgs) as tf.Tensor4D;
    tf.dispose(imgs);
    await selectBackend('wasm');
    const wasmTop = await onnxModel.classify(pixels, 5);
    await selectBackend('onnx');
    const onnxTop = await onnxModel.classify(pixels, 5);
    pixels.dispose();
    PHOTOS.forEach((p, i) => {
      expect(onnxTop[i]!.map((t) => t.name), `${p}: top-5 classes`).toEqual(wasmTop[i]!.map((t) => t.name));
      onnxTop[i]!.forEach((t, k) => expect(Math.abs(t.prob - wasmTop[i]![k]!.prob), `${p}: p(${t.name})`).toBeLessThan(1e-4));
    });
  });

  it('input gradients agree with central finite differences of its own forward pass (rel. error ≤ 2e-2)', () => {
    let worst = 0;
    for (const { label, o } of objectives) {
      const { grad, value } = inputGradient(onnxModel, x, o);
      expect(value.dataSync()[0], `${label}: value = the forward pass's`).toBeCloseTo(forwardValue(onnxModel, x, o), 4);
      for (const seed of [1, 2]) {
        const d = direction(grad, seed);
        const eps = 1e-3;
        const up = tf.tidy(() => tf.add(x, tf.mul(d, eps)) as tf.Tensor4D);
        const down = tf.tidy(() => tf.sub(x, tf.mul(d, eps)) as tf.Tensor4D);
        const fd = (forwardValue(onnxModel, up, o) - forwardValue(onnxModel, down, o)) / (2 * eps);
        const analytic = dot(grad, d);
        const rel = Math.abs(fd - analytic) / Math.max(Math.abs(analytic), Math.abs(fd), 1e-12);
        expect(rel, `${label} seed ${seed}: fd ${fd} vs g·d ${analytic}`).toBeLessThanOrEqual(2e-2);
        worst = Math.max(worst, rel);
        tf.dispose([d, up, down]);
      }
      expect(tf.norm(grad).dataSync()[0], `${label}: gradient is not zero`).toBeGreaterThan(0);
      tf.dispose([grad, value]);
    }
    console.log(`${id} onnx: worst finite-difference relative error ${worst.toExponential(2)} over ${objectives.length} objectives × 2 directions`);
  });

  it('input gradients are within 1e-4 relative of the engine on the cpu backend (same forward values)', async () => {
    let worst = 0;
    for (const { label, o } of objectives) {
      const r = inputGradient(onnxModel, x, o);
      const ours = r.grad.dataSync().slice();
      tf.dispose([r.grad, r.value]);
      const from = objectiveNode(onnxModel, o);
      const ref = await cpuBackwardOnOrtValues(from, (v) => objectiveSeed(v[from]!.shape, o), {});
      const rel = relError(ours, ref);
      expect(rel, `${label}: ‖g_onnx − g_cpu‖/‖g_cpu‖`).toBeLessThanOrEqual(1e-4);
      worst = Math.max(worst, rel);
    }
    console.log(`${id} onnx: worst input-gradient relative error to cpu ${worst.toExponential(2)}`);
  });

  it('input gradients match the cpu engine end to end, each with its own forward pass (cosine ≥ 0.999, norms within 1%)', async () => {
    let worstCos = 1;
    // The deep objectives, where independent forwards can disagree on a gate; the shallow ones
    // agree to 1e-6 either way (the test above).
    for (const { label, o } of objectives.filter((k) => k.o.kind === 'class' || k.o.at === 'mean')) {
      const r = inputGradient(onnxModel, x, o);
      const ours = r.grad.dataSync().slice();
      const ourValue = r.value.dataSync()[0]!;
      tf.dispose([r.grad, r.value]);
      let refValue = 0;
      const ref = await onCpu((m, xc) => {
        const g = inputGradient(m, xc, o);
        refValue = g.value.dataSync()[0]!;
        g.value.dispose();
        return g.grad;
      });
      const { cos, ratio } = cosineOf(ours, ref);
      expect(cos, `${label}: cosine`).toBeGreaterThanOrEqual(0.999);
      expect(ratio, `${label}: norm ratio`).toBeCloseTo(1, 2);
      expect(Math.abs(ourValue - refValue) / Math.max(Math.abs(refValue), 1e-3), `${label}: value`).toBeLessThan(1e-4);
      worstCos = Math.min(worstCos, cos);
    }
    console.log(`${id} onnx: lowest end-to-end cosine to cpu ${worstCos.toFixed(6)}`);
  });

  it('back-projects in every mode (and back diffs at a layer) within 1e-4 relative of the cpu backend (same forward values)', async () => {
    const middle = CASES[id]!.middle[1]!;
    const early = CASES[id]!.early;
    const unit = objectives.find((o) => o.label === `middle ${middle}`)!.o as { channel: number };
    const targets: { label: string; t: BackTarget; to?: string }[] = [
      { label: `${middle}:${unit.channel}`, t: { kind: 'channel', layer: middle, channel: unit.channel } },
      { label: `${middle}:${unit.channel} → ${early}`, t: { kind: 'channel', layer: middle, channel: unit.channel }, to: early },
      { label: 'class of the top logit', t: { kind: 'class', index: (objectives.find((o) => o.label === 'logit of the top class')!.o as { index: number }).index } },
    ];
    let worst = 0;
    for (const mode of BACK_MODES) {
      for (const { label, t, to } of targets) {
        const g = backproject(onnxModel, x, t, mode, { to });
        const ours = g.dataSync().slice();
        g.dispose();
        const from = targetNode(onnxModel, t);
        const toNode = to === undefined ? 0 : onnxModel.compiled.net.nodeIndex(onnxModel.layer(to).name);
        const ref = await cpuBackwardOnOrtValues(from, (v) => targetSeed(v[from]!, t), { rule: mode === 'backprop' ? 'gradient' : mode, to: toNode });
        const rel = relError(ours, ref);
        expect(rel, `${mode} ${label}`).toBeLessThanOrEqual(1e-4);
        expect(ref.some((v) => v !== 0), `${mode} ${label}: not all zero`).toBe(true);
        worst = Math.max(worst, rel);
      }
    }
    console.log(`${id} onnx: worst back-projection relative error to cpu ${worst.toExponential(2)} (3 modes × ${targets.length} targets)`);
  });

  it('computes Grad-CAM within 1e-4 relative of the cpu backend (same forward values)', async () => {
    const t: BackTarget = { kind: 'class', index: (objectives.find((o) => o.label === 'logit of bald eagle')!.o as { index: number }).index };
    const r = gradCam(onnxModel, x, t);
    const ours = r.coarse.dataSync().slice();
    tf.dispose([r.heat, r.coarse]);
    const from = targetNode(onnxModel, t);
    const ref = await cpuBackwardOnOrtValues(from, () => tf.scalar(0), {}, (v) => gradCamFromValues(cpuModel, v, t, r.layer, onnxModel.inputSize).coarse);
    expect(relError(ours, ref)).toBeLessThanOrEqual(1e-4);
  });

  it('gives each batch item its own gradient (batch of 3 = three singles) and reuses its sessions', () => {
    const o = objectives[1]!.o;
    const flipped = tf.reverse(x, 2) as tf.Tensor4D;
    const noisy = tf.add(x, tf.randomNormal(x.shape, 0, 0.1, 'float32', 7)) as tf.Tensor4D;
    const batch = tf.concat([x, flipped, noisy]) as tf.Tensor4D;
    const b = inputGradient(onnxModel, batch, o);
    const built = nativeSessionStats().built;
    [x, flipped, noisy].forEach((xi, i) => {
      const s = inputGradient(onnxModel, xi, o);
      const slice = tf.slice(b.grad, [i, 0, 0, 0], [1, -1, -1, -1]);
      expect(tf.tidy(() => tf.max(tf.abs(tf.sub(slice, s.grad))).dataSync()[0]!)).toBeLessThan(1e-4);
      expect(b.value.dataSync()[i]).toBeCloseTo(s.value.dataSync()[0]!, 4);
      tf.dispose([slice, s.grad, s.value]);
    });
    // The batch axis is dynamic: single images ran on the session the batch built.
    expect(nativeSessionStats().built).toBe(built);
    tf.dispose([flipped, noisy, batch, b.grad, b.value]);
  });
});
