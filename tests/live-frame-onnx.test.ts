// A live frame on ONNX Runtime (backend onnx) without back-projection views takes the typed-array
// path: the network input made from the frame's bytes, the layer and logits read from ORT's own
// buffers, no tensor. The same frame with a Grad-CAM view goes through tfjs' preprocessing and
// tensors around the same ORT forward: its tiles, unit map, top-5 and tap must be the same, exactly.
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import type { FrameRequestT } from '../contract/messages.js';
import { loadModel, selectBackend, type Model } from '../main/engine/index.js';
import { nativeEngine } from '../main/engine/onnx/native-net.js';
import { computeFrame } from '../main/session/live-frame.js';
import { photoRgba } from './support/fixtures.js';

let m: Model;

beforeAll(async () => {
  await selectBackend('onnx');
  m = await loadModel('mobilenet-v1-0.25');
}, 120_000);

describe('a live frame on ONNX Runtime', () => {
  it('gives the tiles, unit map, top-5 and tap of the tensor path, exactly, at early, middle and logits layers', async () => {
    expect(nativeEngine(m)).not.toBeNull();
    const rgba = new Uint8Array(await photoRgba('dog'));
    for (const layer of ['conv_pw_1_relu', 'conv_pw_7_relu', m.logitsLayer]) {
      const req: FrameRequestT = { type: 'frame', frameId: 1, width: 224, height: 224, rgba, layer, unit: 5 };
      const before = tf.memory().numTensors;
      const plain = await computeFrame(m, req, { tap: true });
      expect(tf.memory().numTensors, 'the typed-array path makes no tensor').toBe(before);
      const viaTensors = await computeFrame(m, { ...req, gradcam: {} }, { tap: true });
      expect(viaTensors.reply.gradcam, 'the second frame took the tensor path').toBeDefined();
      const a = plain.reply;
      const b = viaTensors.reply;
      expect(a.top5, layer).toEqual(b.top5);
      expect(a.top5[0]!.name).toMatch(/malamute|husky|eskimo dog|dogsled/i);
      expect({ ...a.tiles, data: null, channelMax: null }).toEqual({ ...b.tiles, data: null, channelMax: null });
      expect(Buffer.from(a.tiles.data).equals(Buffer.from(b.tiles.data)), layer).toBe(true);
      expect(Array.from(a.tiles.channelMax)).toEqual(Array.from(b.tiles.channelMax));
      expect(a.unit.max).toBe(b.unit.max);
      expect(Array.from(a.unit.data)).toEqual(Array.from(b.unit.data));
      expect(Array.from(plain.tap!)).toEqual(Array.from(viaTensors.tap!));
      expect(a.tiles.scale).toBeGreaterThan(0);
    }
  });
});
