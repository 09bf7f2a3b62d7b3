// The live frame's typed-array passes (frame-arrays.ts) against the tfjs ops they replace, on real
// models and photos: the network input bit for bit equal to model.preprocess of the crop, the tiles,
// channel maxima, scale and unit map exactly those of relu / max / round (banker's) / slice, top-5
// the same classes as softmax + topk.
import * as tf from '@tensorflow/tfjs-core';
import sharp from 'sharp';
import { beforeAll, describe, expect, it } from 'vitest';
import { loadModel, rgbaToModelPixels, selectBackend, type Model } from '../main/engine/index.js';
import { channelTiles, frameInput, topClasses, unitMap } from '../main/session/frame-arrays.js';
import { photo, photoRgba } from './support/fixtures.js';

const models: Record<string, Model> = {};

beforeAll(async () => {
  await selectBackend('wasm');
  for (const id of ['mobilenet-v1-0.25', 'darknet-tiny']) models[id] = await loadModel(id);
}, 120_000);

/** The tiles as live-frame.ts computed them with tfjs ops before the typed-array passes. */
function tfjsTiles(act: tf.Tensor4D, unit: number) {
  return tf.tidy(() => {
    const [, h, w, c] = act.shape;
    const chw = tf.transpose(tf.reshape(act, [h * w, c]), [1, 0]);
    const pos = tf.relu(chw);
    const channelMax = tf.max(pos, 1);
    const scale = tf.max(channelMax);
    const k = tf.div(tf.scalar(255), tf.maximum(scale, tf.scalar(1e-30)));
    return {
      data: Uint8Array.from(tf.round(tf.mul(pos, k)).dataSync()),
      channelMax: channelMax.dataSync() as Float32Array,
      scale: scale.dataSync()[0]!,
      unit: tf.slice(chw, [unit, 0], [1, h * w]).dataSync() as Float32Array,
    };
  });
}

const bits = (a: Float32Array) => new Uint32Array(a.buffer, a.byteOffset, a.length);

describe('the network input from a frame', () => {
  it.each(['mobilenet-v1-0.25', 'darknet-tiny'])('is model.preprocess of the crop, bit for bit (%s): at the input size, cropped and resized, and half transparent', async (id) => {
    const m = models[id]!;
    const [h, w] = m.inputSize;
    const frames: { rgba: Uint8Array; width: number; height: number }[] = [{ rgba: await photoRgba('dog', h), width: w, height: h }];
    const { data } = await sharp(photo('giraffe')).resize(320, 240, { fit: 'fill' }).ensureAlpha().raw().toBuffer({ resolveWithObject: true });
    frames.push({ rgba: new Uint8Array(data), width: 320, height: 240 });
    const seeThrough = frames[0]!.rgba.slice();
    for (let i = 3; i < seeThrough.length / 2; i += 4) seeThrough[i] = 100;
    frames.push({ rgba: seeThrough, width: w, height: h });
    for (const f of frames) {
      const want = tf.tidy(() => m.preprocess(rgbaToModelPixels(f.rgba, f.width, f.height, m.inputSize)).dataSync() as Float32Array);
      const got = frameInput(m, f.rgba, f.width, f.height);
      expect(got.length).toBe(want.length);
      expect(Buffer.from(bits(got).buffer).equals(Buffer.from(bits(want).buffer))).toBe(true);
      // A reused buffer is filled the same.
      const again = frameInput(m, f.rgba, f.width, f.height, new Float32Array(got.length).fill(7));
      expect(Array.from(again)).toEqual(Array.from(got));
    }
  });
});

describe('the packing of a layer', () => {
  it('gives the tiles, channel maxima, scale and unit map of the tfjs ops, exactly, at every layer of a real frame', async () => {
    const m = models['mobilenet-v1-0.25']!;
    const rgba = await photoRgba('kite');
    const x = tf.tidy(() => m.preprocess(rgbaToModelPixels(rgba, 224, 224, m.inputSize)));
    const layers = m.layers.map((l) => l.name);
    expect(layers).toContain(m.logitsLayer);
    for (const name of layers) {
      const act = tf.tidy(() => m.forward(x, { taps: [name], logits: false }).taps[name]!);
      const [, h, w, c] = act.shape;
      const unit = Math.min(3, c - 1);
      const want = tfjsTiles(act, unit);
      const values = act.dataSync() as Float32Array;
      const got = channelTiles(values, h * w, c);
      expect(got.scale, name).toBe(want.scale);
      expect(Array.from(got.channelMax), name).toEqual(Array.from(want.channelMax));
      expect(Buffer.from(got.data).equals(Buffer.from(want.data)), name).toBe(true);
      const map = unitMap(values, h * w, c, unit);
      expect(Array.from(map.data), name).toEqual(Array.from(want.unit));
      expect(map.max).toBe(Math.max(...want.unit));
      act.dispose();
    }
    x.dispose();
  });

  it('rounds halves to even as tf.round does, and leaves a layer of no positive value black', () => {
    // scale 255 makes the factor exactly 1: the values land on halves.
    const act = new Float32Array([0.5, 1.5, 2.5, 253.5, 255, -3, 127.5, 0]);
    const want = tfjsTiles(tf.tensor4d(act, [1, 1, 8, 1]), 0);
    const got = channelTiles(act, 8, 1);
    expect(Array.from(got.data)).toEqual(Array.from(want.data));
    expect(Array.from(got.data)).toEqual([0, 2, 2, 254, 255, 0, 128, 0]);
    const dark = channelTiles(new Float32Array([-1, -2, 0, -0.5]), 2, 2);
    expect([dark.scale, ...dark.channelMax, ...dark.data]).toEqual([0, 0, 0, 0, 0, 0, 0]);
  });

  it('names the same five classes as softmax and topk, in order, with their probabilities', async () => {
    const m = models['mobilenet-v1-0.25']!;
    for (const name of ['dog', 'eagle', 'scream'] as const) {
      const rgba = await photoRgba(name);
      const logits = tf.tidy(() => m.forward(m.preprocess(rgbaToModelPixels(rgba, 224, 224, m.inputSize))).logits!);
      const want = tf.tidy(() => tf.topk(tf.softmax(logits), 5));
      const [values, indices] = [want.values.dataSync(), want.indices.dataSync()];
      const got = topClasses(logits.dataSync() as Float32Array, 5);
      expect(got.map((t) => t.index), name).toEqual(Array.from(indices));
      got.forEach((t, j) => expect(t.prob).toBeCloseTo(values[j]!, 6));
      tf.dispose([logits, want.values, want.indices]);
    }
    // Ties keep the lower index first, as topk does; fewer classes than asked: all of them.
    expect(topClasses(new Float32Array([1, 3, 3, 0, 3]), 2).map((t) => t.index)).toEqual([1, 2]);
    expect(topClasses(new Float32Array([0, 2]), 5).map((t) => t.index)).toEqual([1, 0]);
  });
});
