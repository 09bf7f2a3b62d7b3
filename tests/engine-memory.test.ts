// A live session runs for hours: 1,000 forward passes with taps and 1,000 input gradients must
// leave the engine's tensor count where it started.
import * as tf from '@tensorflow/tfjs-core';
import { describe, expect, it } from 'vitest';
import { inputGradient, loadImageForModel, loadModel, selectBackend } from '../main/engine/index.js';
import { photo } from './support/fixtures.js';

describe('memory', () => {
  it('1,000 forwards and 1,000 gradients leave tf.memory().numTensors unchanged', async () => {
    await selectBackend('wasm');
    const model = await loadModel('mobilenet-v1-0.25');
    const px = await loadImageForModel(photo('kite'), model.inputSize);
    const layer = model.layers[10]!.name;
    const start = tf.memory().numTensors;
    for (let i = 0; i < 1000; i++) {
      const logits = tf.tidy(() => {
        const r = model.forward(model.preprocess(px), { taps: [layer] });
        return r.logits!;
      });
      const top = await model.topK(logits, 5);
      expect(top[0]).toHaveLength(5);
      logits.dispose();
      const x = model.preprocess(px);
      const g = inputGradient(model, x, i % 2 ? { kind: 'class', index: i % 1000 } : { kind: 'channel', layer, channel: i % 8, at: 'mean' });
      await g.grad.data();
      tf.dispose([x, g.grad, g.value]);
    }
    expect(tf.memory().numTensors).toBe(start);
    px.dispose();
    model.dispose();
  });
});
