// Values read out of a tidy scope. tf.tidy searches what its function returns for tensors and
// walks a typed array index by index (a four-seed 224 px preview spent ~100 ms there, and
// mobilenet-v1-0.75's first synthesis step ~2 s in its graph export's filter reads), so the engine's hot paths must never
// hand a tidy scope a typed array: these tests watch the engine's scope ends for one.
import * as tf from '@tensorflow/tfjs-core';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadModel, selectBackend, type Model } from '../main/engine/index.js';
import { exportGraph } from '../main/engine/onnx/export.js';
import { previewBytes } from '../main/engine/synthesis/batch.js';
import { tidyData, tidyFloats } from '../main/engine/tensor-data.js';
import { plainLogitsModel, saveBareFolder } from './support/user-models.js';

/** What every tidy scope ended with while `fn` ran that holds a typed array, at any depth. */
function typedArraysThroughTidy(fn: () => void): string[] {
  const engine = tf.engine() as unknown as { endScope(result?: unknown): void };
  const end = engine.endScope;
  const found: string[] = [];
  const visit = (v: unknown, path: string, depth: number): void => {
    if (ArrayBuffer.isView(v)) found.push(`${path}: ${v.constructor.name}(${(v as Float32Array).length})`);
    else if (v && typeof v === 'object' && !(v instanceof tf.Tensor) && depth < 4) for (const [k, x] of Object.entries(v)) visit(x, `${path}.${k}`, depth + 1);
  };
  engine.endScope = function (result?: unknown) {
    visit(result, 'result', 0);
    return end.call(this, result);
  };
  try {
    fn();
  } finally {
    engine.endScope = end;
  }
  return found;
}

describe('tidyData', () => {
  beforeAll(async () => {
    await selectBackend('wasm');
  });

  it('gives the values of the tensor the scope made and leaves no tensor behind', () => {
    const x = tf.tensor2d([1, -2, 3, -4], [2, 2]);
    const before = tf.memory().numTensors;
    const v = tidyFloats(() => tf.mul(tf.abs(x), 2));
    expect(Array.from(v)).toEqual([2, 4, 6, 8]);
    expect(tf.memory().numTensors).toBe(before);
    const i = tidyData(() => tf.cast(x, 'int32'));
    expect(i).toBeInstanceOf(Int32Array);
    expect(() => tidyFloats(() => tf.cast(x, 'int32'))).toThrow(/expected float32 values, got Int32Array/);
    expect(tf.memory().numTensors).toBe(before);
    x.dispose();
  });

  it('a four-seed preview hands no typed array to a tidy scope, and its bytes are the stretched image', () => {
    const img = tf.tidy(() => tf.mul(tf.sub(tf.randomUniform([4, 224, 224, 3], 0, 1, 'float32', 7), 0.5), 20) as tf.Tensor4D);
    let bytes: Uint8Array[] = [];
    expect(typedArraysThroughTidy(() => void (bytes = previewBytes(img)))).toEqual([]);
    expect(bytes).toHaveLength(4);
    // Faint images are stretched about grey so that their largest deviation reaches the range.
    for (const b of bytes) {
      expect(b.length).toBe(224 * 224 * 3);
      expect(b.reduce((a, v) => Math.max(a, v), 0)).toBeGreaterThanOrEqual(254);
      expect(b.reduce((a, v) => Math.min(a, v), 255)).toBeLessThanOrEqual(1);
    }
    img.dispose();
  });
});

describe('ONNX export', () => {
  let model: Model;
  let dense: Model;
  let root: string;
  beforeAll(async () => {
    await selectBackend('wasm');
    model = await loadModel('mobilenet-v1-0.25');
    // A user model with a Dense head: the bundled models end in 1×1 convolutions.
    root = mkdtempSync(join(tmpdir(), 'deepvis-tensor-data-'));
    await saveBareFolder(plainLogitsModel(), join(root, 'plain logits'));
    dense = await loadModel('plain-logits', root);
  });
  afterAll(() => {
    model.dispose();
    dense?.dispose();
    rmSync(root, { recursive: true, force: true });
  });

  const exportWithBackward = (m: Model, size: number) => {
    const logits = m.compiled.logitsNode;
    return exportGraph(m.compiled.net, { inputShape: [size, size, 3], taps: [logits], backward: { from: logits, to: 0, rule: 'gradient', linearStart: true, seed: 'ones' } });
  };

  it('reads the filters and adjoint filters without passing their values through a tidy scope', () => {
    const found = typedArraysThroughTidy(() => {
      expect(exportWithBackward(model, 64).bytes.length).toBeGreaterThan(1_000_000);
    });
    expect(found).toEqual([]);
  });

  it('reads a Dense kernel for the backward graph without passing it through a tidy scope', () => {
    expect(dense.compiled.net.nodes.some((n) => n.op.kind === 'dense')).toBe(true);
    const found = typedArraysThroughTidy(() => {
      expect(exportWithBackward(dense, 112).bytes.length).toBeGreaterThan(1000);
    });
    expect(found).toEqual([]);
  });
});
