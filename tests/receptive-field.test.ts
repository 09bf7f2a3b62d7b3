// Receptive fields computed from the compiled graph: against values worked out by hand from each
// model's Keras config (model.json), and against the input gradient itself — the gradient of a
// unit at (y, x) must be exactly zero outside the computed region and non-zero inside it.
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { cropResize, inputGradient, loadImageForModel, loadModel, selectBackend, type Model } from '../main/engine/index.js';
import { cropGeometry } from '../main/engine/images.js';
import { boxToOriginal, receptiveFields, regionOf, type LayerField } from '../main/engine/receptive-field.js';
import { photo } from './support/fixtures.js';

/**
 * [layer, size, stride, offset] (same on both axes; square 224 inputs). The recurrence, per op with
 * kernel k, stride s and TF padding "before" p = floor(max((out−1)·s + k − n, 0) / 2):
 *   size' = size + (k−1)·stride,  offset' = offset − p·stride,  stride' = stride·s.
 *
 * darknet-tiny (all 'same'; 3×3 s1 convs pad 1 before; 2×2 s2 pools on even maps pad 0; 1×1 add nothing):
 *   conv1 3×3 s1 p1: size 1+2·1 = 3, stride 1, offset 0−1 = −1
 *   pool1 2×2 s2 p0 (224 → 112): size 3+1·1 = 4, stride 2, offset −1
 *   conv2 3×3 p1: size 4+2·2 = 8, offset −1−2 = −3
 *   pool2 (112 → 56): size 8+1·2 = 10, stride 4, offset −3
 *   conv3 1×1: 10, 4, −3;  conv4 3×3: 10+2·4 = 18, offset −3−4 = −7;  conv5 1×1;  conv6 3×3: 26, −11
 *   pool3 (56 → 28): 26+4 = 30, stride 8, −11;  conv8 3×3: 46, −19;  conv10 3×3: 62, −27
 *   pool4 (28 → 14): 62+8 = 70, stride 16, −27;  conv12: 102, −43;  conv14: 134, −59;  classmap 1×1: 134, −59
 *   logits: global average pool → the whole input.
 *
 * mobilenet-v1 (both widths; all 'same'):
 *   conv1 3×3 s2 on 224: out 112, total pad (112−1)·2+3−224 = 1 → 0 before, 1 after (TF puts the odd
 *     pixel at the end): size 3, stride 2, offset 0
 *   dw1 3×3 s1 on 112 (pad 1): size 3+2·2 = 7, offset 0−1·2 = −2; pw1 1×1: same
 *   dw2 3×3 s2 on 112: total (56−1)·2+3−112 = 1 → 0 before: size 7+2·2 = 11, stride 4, offset −2
 *   dw3 s1: 11+2·4 = 19, offset −2−4 = −6
 *   dw4 s2 on 56 (0 before): 19+8 = 27, stride 8, −6
 *   dw5 s1: 27+16 = 43, −14
 *   dw6 s2 on 28 (0 before): 43+16 = 59, stride 16, −14
 *   dw7 … dw11 s1: +32 and −16 each: 91/−30, 123/−46, 155/−62, 187/−78, 219/−94
 *   dw12 s2 on 14 (0 before): 219+32 = 251, stride 32, −94
 *   dw13 s1: 251+64 = 315, −94−32 = −126
 *   logits (conv_preds after global pool + reshape): the whole input.
 */
const EXPECTED: Record<string, Array<[string, number, number, number] | [string, 'global']>> = {
  'darknet-tiny': [
    ['conv1', 3, 1, -1],
    ['pool1', 4, 2, -1],
    ['conv2', 8, 2, -3],
    ['pool2', 10, 4, -3],
    ['conv3', 10, 4, -3],
    ['conv4', 18, 4, -7],
    ['conv6', 26, 4, -11],
    ['pool3', 30, 8, -11],
    ['conv8', 46, 8, -19],
    ['conv10', 62, 8, -27],
    ['pool4', 70, 16, -27],
    ['conv12', 102, 16, -43],
    ['conv14', 134, 16, -59],
    ['classmap', 134, 16, -59],
    ['logits', 'global'],
  ],
  'mobilenet-v1-0.75': [
    ['conv1', 3, 2, 0],
    ['dw1', 7, 2, -2],
    ['pw1', 7, 2, -2],
    ['dw2', 11, 4, -2],
    ['dw3', 19, 4, -6],
    ['dw4', 27, 8, -6],
    ['pw5', 43, 8, -14],
    ['dw6', 59, 16, -14],
    ['dw7', 91, 16, -30],
    ['pw11', 219, 16, -94],
    ['dw12', 251, 32, -94],
    ['pw13', 315, 32, -126],
    ['logits', 'global'],
  ],
  'mobilenet-v1-0.25': [
    ['conv1', 3, 2, 0],
    ['dw2', 11, 4, -2],
    ['dw4', 27, 8, -6],
    ['dw6', 59, 16, -14],
    ['dw12', 251, 32, -94],
    ['pw13', 315, 32, -126],
    ['logits', 'global'],
  ],
};

/** An early and a middle layer per model for the gradient check, with a border and an inner position. */
const GRADIENT_CASES: Record<string, string[]> = {
  'darknet-tiny': ['conv1', 'pool2', 'conv8'],
  'mobilenet-v1-0.75': ['conv1', 'dw4', 'pw7'],
  'mobilenet-v1-0.25': ['conv1', 'pw3', 'dw6'],
};

describe('receptive-field arithmetic without a model', () => {
  it('maps model-input boxes to original pixels like cropResize does', async () => {
    await selectBackend('wasm');
    // A 600×448 (W×H) image whose red channel is the column index: crop 448×448 at left 76, halved.
    const W = 600;
    const H = 448;
    const data = new Uint8Array(H * W * 3);
    for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) data[(y * W + x) * 3] = x % 256;
    const out = tf.tidy(() => cropResize({ width: W, height: H, data }, [224, 224]).dataSync());
    const g = cropGeometry(W, H, [224, 224]);
    expect(g).toMatchObject({ top: 0, left: 76, cropHeight: 448, cropWidth: 448, scaleX: 2, scaleY: 2 });
    // Model pixel 0 averages original columns 76 and 77 (76.5), rounded to a byte; pixel 1 covers 78 and 79.
    expect(Math.abs(out[0]! - 76.5)).toBeLessThanOrEqual(0.5);
    expect(Math.abs(out[3]! - 78.5)).toBeLessThanOrEqual(0.5);
    expect(boxToOriginal({ x: 0, y: 0, w: 1, h: 1 }, g)).toEqual({ x: 76, y: 0, w: 2, h: 2 });
    // A box that crosses the left border into the padding is clipped to the crop, not to the image.
    expect(boxToOriginal({ x: -2, y: -2, w: 4, h: 4 }, g)).toEqual({ x: 76, y: 0, w: 4, h: 4 });
    expect(boxToOriginal({ x: -2, y: -2, w: 4, h: 4 }, g, false)).toEqual({ x: 72, y: -4, w: 8, h: 8 });
    // Non-integer scale (300×200 → 224: crop 200×200 at left 50, 0.893 px per model pixel).
    const g2 = cropGeometry(300, 200, [224, 224]);
    expect(g2).toMatchObject({ left: 50, top: 0, cropWidth: 200 });
    const b = boxToOriginal({ x: 220, y: 220, w: 10, h: 10 }, g2);
    expect(b.x + b.w).toBeLessThanOrEqual(250);
    expect(b.y + b.h).toBeLessThanOrEqual(200);
  });

  it('clips regions at the borders and keeps the unclipped box', () => {
    const f: LayerField = {
      layer: 't',
      mapSize: [112, 112],
      inputSize: [224, 224],
      global: false,
      y: { offset: 0, size: 3, stride: 2, parts: [{ offset: 0, size: 3, stride: 2 }] },
      x: { offset: -1, size: 4, stride: 2, parts: [{ offset: -1, size: 4, stride: 2 }] },
    };
    expect(regionOf(f, 0, 0)).toEqual({ unclipped: { x: -1, y: 0, w: 4, h: 3 }, clipped: { x: 0, y: 0, w: 3, h: 3 } });
    expect(regionOf(f, 111, 111)).toEqual({ unclipped: { x: 221, y: 222, w: 4, h: 3 }, clipped: { x: 221, y: 222, w: 3, h: 2 } });
    expect(() => regionOf(f, 112, 0)).toThrow(/outside/);
  });
});

describe.each(Object.keys(EXPECTED))('%s receptive fields', (id) => {
  let model: Model;
  let x: tf.Tensor4D;

  beforeAll(async () => {
    await selectBackend('wasm');
    model = await loadModel(id);
    const px = await loadImageForModel(photo('giraffe'), model.inputSize);
    x = tf.tidy(() => model.preprocess(tf.add(px, tf.randomNormal(px.shape, 0, 2, 'float32', 5)) as tf.Tensor4D));
    px.dispose();
  });

  it('match the hand-computed values', () => {
    const rfs = receptiveFields(model);
    for (const e of EXPECTED[id]!) {
      const f = rfs.layer(e[0]);
      if (e[1] === 'global') {
        expect(f.global, `${e[0]} is global`).toBe(true);
        expect(rfs.regionFor(e[0], 0, 0).clipped).toEqual({ x: 0, y: 0, w: 224, h: 224 });
        continue;
      }
      const [, size, stride, offset] = e;
      for (const axis of [f.y, f.x]) {
        expect({ layer: e[0], size: axis.size, stride: axis.stride, offset: axis.offset }).toEqual({ layer: e[0], size, stride, offset });
        expect(axis.parts).toHaveLength(1);
      }
      expect(f.global).toBe(false);
    }
    // Every displayed layer gets a field, and its map size is the network's.
    expect(rfs.all().map((f) => f.layer)).toEqual(model.layers.map((l) => l.name));
  });

  it('bound the input gradient: zero outside the region, non-zero inside', () => {
    for (const layer of GRADIENT_CASES[id]!) {
      const info = model.layer(layer);
      const [h, w] = info.shape;
      // A corner (exercises the clipping) and an off-centre inner position (exercises the offset).
      for (const at of [
        { y: 0, x: w - 1 },
        { y: Math.floor(h / 3), x: Math.floor((2 * w) / 3) },
      ]) {
        const act = tf.tidy(() => model.forward(x, { taps: [info.name], logits: false }).taps[info.name]!.slice([0, at.y, at.x, 0], [1, 1, 1, -1]).dataSync());
        // The strongest unsaturated channel at that position: its gradient is not gated to zero.
        let channel = -1;
        for (let c = 0; c < act.length; c++) if (act[c]! > 0 && act[c]! < 5.9 && (channel < 0 || act[c]! > act[channel]!)) channel = c;
        expect(channel, `${layer}@${at.y},${at.x}: some live channel`).toBeGreaterThanOrEqual(0);
        const { grad, value } = inputGradient(model, x, { kind: 'channel', layer: info.name, channel, at });
        const g = tf.tidy(() => tf.sum(tf.abs(grad), 3).dataSync());
        tf.dispose([grad, value]);
        const r = receptiveFields(model).regionFor(layer, at.y, at.x).clipped;
        let outside = 0;
        let inside = 0;
        let bx0 = Infinity;
        let by0 = Infinity;
        let bx1 = -Infinity;
        let by1 = -Infinity;
        const [H, W] = model.inputSize;
        for (let yy = 0; yy < H; yy++) {
          for (let xx = 0; xx < W; xx++) {
            const v = g[yy * W + xx]!;
            if (v === 0) continue;
            const inBox = yy >= r.y && yy < r.y + r.h && xx >= r.x && xx < r.x + r.w;
            if (inBox) inside++;
            else outside++;
            bx0 = Math.min(bx0, xx);
            by0 = Math.min(by0, yy);
            bx1 = Math.max(bx1, xx + 1);
            by1 = Math.max(by1, yy + 1);
          }
        }
        const label = `${id} ${layer}:${channel}@${at.y},${at.x} region ${JSON.stringify(r)} gradient bbox x ${bx0}…${bx1} y ${by0}…${by1}`;
        expect(outside, label).toBe(0);
        expect(inside, label).toBeGreaterThan(0);
        // Early layers (no pooling, no gating in the way): the gradient fills the region exactly,
        // so an off-by-one in the offset or size would show.
        if (layer === 'conv1') expect({ x: bx0, y: by0, w: bx1 - bx0, h: by1 - by0 }, label).toEqual(r);
        // Deeper: the support reaches most of the region (max-pools route to one input per window).
        else {
          expect(bx1 - bx0, label).toBeGreaterThanOrEqual(r.w * 0.5);
          expect(by1 - by0, label).toBeGreaterThanOrEqual(r.h * 0.5);
        }
      }
    }
  });
});
