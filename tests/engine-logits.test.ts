// The compiled network (folded batch-norm, fused kernels) must compute what tfjs-layers computes
// from the same model files, and classify the fixture photos as the models' SOURCE.md records.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { beforeAll, describe, expect, it } from 'vitest';
import { loadImageForModel, loadModel, selectBackend, type Model } from '../main/engine/index.js';
import { MODEL_IDS, PHOTOS, photo } from './support/fixtures.js';

async function loadLayersModel(m: Model): Promise<tfl.LayersModel> {
  const json = JSON.parse(readFileSync(join(m.dir, 'model.json'), 'utf8'));
  const specs = json.weightsManifest.flatMap((g: { weights: unknown[] }) => g.weights);
  const data = Buffer.concat(json.weightsManifest.flatMap((g: { paths: string[] }) => g.paths.map((p) => readFileSync(join(m.dir, p)))));
  const handler: tf.io.IOHandler = {
    load: async () => ({
      modelTopology: json.modelTopology,
      weightSpecs: specs,
      weightData: data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength),
    }),
  };
  const full = await tfl.loadLayersModel(handler);
  // The logits: the layer the descriptor names (conv_preds for MobileNet, the pooled output for Darknet).
  return tfl.model({ inputs: full.inputs, outputs: full.getLayer(m.logitsLayer).output as tfl.SymbolicTensor });
}

// Expected top-1 per photo and model, from ../shared/models/<id>/SOURCE.md (classes that are real ImageNet classes).
const TOP1: Record<string, Record<string, string>> = {
  'mobilenet-v1-0.75': { dog: 'malamute', kite: 'parachute', giraffe: 'zebra' },
  'mobilenet-v1-0.25': { dog: 'dogsled', horses: 'bighorn', eagle: 'ruddy turnstone' },
  'darknet-tiny': { dog: 'dogsled', giraffe: 'zebra', eagle: 'bald eagle' },
};

describe.each(MODEL_IDS)('%s on wasm', (id) => {
  let model: Model;
  let reference: tfl.LayersModel;
  let pixels: tf.Tensor4D;

  beforeAll(async () => {
    await selectBackend('wasm');
    model = await loadModel(id);
    reference = await loadLayersModel(model);
    const imgs = await Promise.all(PHOTOS.map((p) => loadImageForModel(photo(p), model.inputSize)));
    pixels = tf.concat(imgs) as tf.Tensor4D;
    tf.dispose(imgs);
  });

  it('logits match tfjs-layers within 1e-4 on every fixture photo (batch of 7)', () => {
    const diff = tf.tidy(() => {
      const x = model.preprocess(pixels);
      const ours = model.forward(x).logits!;
      const theirs = tf.reshape(reference.predict(x) as tf.Tensor, ours.shape);
      return tf.max(tf.abs(tf.sub(ours, theirs))).dataSync()[0]!;
    });
    expect(diff).toBeLessThanOrEqual(1e-4);
  });

  it('puts the recorded top-1 class of each photo in its top-5, with the right names', async () => {
    const top = await model.classify(pixels, 5);
    for (const [name, want] of Object.entries(TOP1[id]!)) {
      const row = top[PHOTOS.indexOf(name as (typeof PHOTOS)[number])]!;
      expect(row.map((r) => r.name.split(',')[0])).toContain(want);
    }
  });

  it('reports a shape and unit count for every displayed layer', () => {
    expect(model.layers.length).toBe(model.descriptor.layers.length);
    for (const l of model.layers) {
      expect(l.shape.every((s) => s > 0)).toBe(true);
      expect(l.units).toBe(l.shape[2]);
    }
    expect(model.classes).toHaveLength(1000);
  });
});
