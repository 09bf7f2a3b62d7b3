// The live frame's back-projection views on ONNX Runtime (backend onnx: the live worker runs the
// exported backward graphs) against the same frames on wasm, in every mode with back diffs and
// Grad-CAM; and the backprop view on ORT against central finite differences of ORT's own forward.
// Independent float32 forwards put a few rectifier units on the other side of their kink, so the
// 8-bit views are compared by correlation and a small byte tolerance, not for equality; the
// engine-level 1e-4 comparison with shared forward values is in engine-onnx.test.ts.
import * as tf from '@tensorflow/tfjs-core';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FrameReplyT, Reply } from '../contract/messages.js';
import { backproject, loadModel, rgbaToModelPixels, selectBackend, targetNode, type Model } from '../main/engine/index.js';
import { EngineSession } from '../main/session/engine-session.js';
import { photo } from './support/fixtures.js';
import { validReply } from './support/replies.js';
import { pearson } from './support/numeric.js';

const MODEL = 'mobilenet-v1-0.25';
const SOURCE = { layer: 'conv_pw_5_relu', unit: 7 };
const GRID = 'conv_pw_3_relu';

let onnx: EngineSession;
let wasm: EngineSession;
let dog: Uint8Array;

function frame(frameId: number, mode: 'backprop' | 'deconv' | 'guided') {
  return { type: 'frame', frameId, width: 224, height: 224, rgba: dog, layer: GRID, unit: 2, back: { mode, filter: 'raw', ...SOURCE }, gradcam: {}, grid: 'backDiffs' } as const;
}

async function frameOf(s: EngineSession, msg: unknown): Promise<FrameReplyT> {
  const r: Reply = validReply(await s.handle(msg));
  if (r.type !== 'frame') throw new Error(`expected a frame, got ${JSON.stringify(r).slice(0, 300)}`);
  return r;
}

/** Pearson correlation, mean and max absolute difference of two byte images. */
function compare(a: Uint8Array, b: Uint8Array): { corr: number; mean: number; max: number } {
  let sum = 0, max = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i]! - b[i]!);
    sum += d;
    if (d > max) max = d;
  }
  return { corr: pearson(a, b), mean: sum / a.length, max };
}

beforeAll(async () => {
  const { data } = await sharp(photo('dog')).resize(224, 224, { fit: 'cover' }).ensureAlpha().raw().toBuffer({ resolveWithObject: true });
  dog = new Uint8Array(data);
  wasm = await EngineSession.create({ backend: 'wasm', model: MODEL, workers: 1 });
  onnx = await EngineSession.create({ backend: 'onnx', model: MODEL, workers: 1 });
  await Promise.all([wasm.liveWorker.ready, onnx.liveWorker.ready]);
}, 120_000);

afterAll(async () => {
  await Promise.all([onnx?.dispose(), wasm?.dispose()]);
});

describe('live back-projection on ONNX Runtime', () => {
  it('the live worker runs the network on ONNX Runtime', () => {
    expect(onnx.liveWorker.description).toMatch(/^backend onnx \(ONNX Runtime/);
    expect(wasm.liveWorker.description).toMatch(/^backend wasm /);
  });

  for (const mode of ['backprop', 'deconv', 'guided'] as const) {
    it(`${mode}: the back-projection, back diffs and Grad-CAM match the wasm engine's`, async () => {
      const [o, w] = [await frameOf(onnx, frame(1, mode)), await frameOf(wasm, frame(1, mode))];
      expect(o.top5.map((t) => t.index)).toEqual(w.top5.map((t) => t.index));
      const back = compare(o.back!.rgb, w.back!.rgb);
      const diffs = compare(o.backDiffs!.data, w.backDiffs!.data);
      const heat = compare(o.gradcam!.heat, w.gradcam!.heat);
      console.log(`${mode} onnx vs wasm: back corr ${back.corr.toFixed(5)} mean ${back.mean.toFixed(3)} max ${back.max}; diffs corr ${diffs.corr.toFixed(5)} mean ${diffs.mean.toFixed(3)} max ${diffs.max}; heat corr ${heat.corr.toFixed(5)} max ${heat.max}`);
      for (const [what, c] of [['back', back], ['diffs', diffs], ['heat', heat]] as const) {
        expect(c.corr, what).toBeGreaterThanOrEqual(0.999);
        expect(c.mean, what).toBeLessThanOrEqual(0.05);
        expect(c.max, what).toBeLessThanOrEqual(3);
      }
      // The views are not trivially equal: another source unit gives another map.
      const other = await frameOf(onnx, { ...frame(2, mode), back: { mode, filter: 'raw', layer: SOURCE.layer, unit: SOURCE.unit + 1 } });
      expect(compare(other.back!.rgb, o.back!.rgb).corr).toBeLessThan(0.99);
      expect(o.backDiffs!.scale / w.backDiffs!.scale).toBeCloseTo(1, 2);
      expect(o.gradcam!.classIndex).toBe(w.gradcam!.classIndex);
      expect(o.gradcam!.layer).toBe(w.gradcam!.layer);
    });
  }

  it('backprop on ORT is the gradient of ½‖A_c‖² of ORT’s own forward (central finite differences)', async () => {
    await selectBackend('onnx');
    const model: Model = await loadModel(MODEL);
    try {
      const t = { kind: 'channel' as const, layer: SOURCE.layer, channel: SOURCE.unit };
      const x = tf.tidy(() => model.preprocess(rgbaToModelPixels(dog, 224, 224, model.inputSize)));
      const node = targetNode(model, t);
      expect(node).toBeGreaterThan(0);
      const f = (xi: tf.Tensor4D) =>
        tf.tidy(() => {
          const a = tf.slice(model.forward(xi, { taps: [t.layer], logits: false }).taps[t.layer]!, [0, 0, 0, t.channel], [-1, -1, -1, 1]);
          return tf.mul(tf.sum(tf.square(a)), 0.5).dataSync()[0]!;
        });
      const g = backproject(model, x, t, 'backprop');
      for (const seed of [3, 5]) {
        const d = tf.tidy(() => {
          const r = tf.randomNormal(g.shape, 0, 1, 'float32', seed);
          const v = tf.add(tf.div(g, tf.norm(g)), tf.div(r, tf.norm(r)));
          return tf.div(v, tf.norm(v)) as tf.Tensor4D;
        });
        const eps = 1e-3;
        const [xp, xm] = [tf.add(x, tf.mul(d, eps)) as tf.Tensor4D, tf.sub(x, tf.mul(d, eps)) as tf.Tensor4D];
        const fd = (f(xp) - f(xm)) / (2 * eps);
        const analytic = tf.tidy(() => tf.sum(tf.mul(g, d)).dataSync()[0]!);
        expect(Math.abs(fd - analytic) / Math.abs(analytic), `fd ${fd} vs ${analytic}`).toBeLessThan(2e-2);
        tf.dispose([d, xp, xm]);
      }
      tf.dispose([g, x]);
    } finally {
      model.dispose();
    }
  });
});
