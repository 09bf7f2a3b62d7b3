// Our input-gradient formulations for convolution, depthwise convolution and pooling, checked on
// awkward shapes (odd sizes, strides 2, "same" with asymmetric padding, channel multiplier 2,
// overlapping pools) against tfjs' own gradient kernels on the cpu backend, and against the same
// formulation run on wasm. User models bring shapes the bundled ones do not.
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { selectBackend } from '../main/engine/backend.js';
import { convForward, convInputGrad, maxPoolInputGrad, type ConvSpec, type PoolSpec } from '../main/engine/ops.js';
import { rel } from './support/numeric.js';


type Shape4 = [number, number, number, number];
type ConvCase = { name: string; x: Shape4; k: Shape4; strides: [number, number]; pad: 'same' | 'valid'; depthwise: boolean };
const CONV_CASES: ConvCase[] = [
  { name: '3×3/1 same', x: [2, 9, 11, 4], k: [3, 3, 4, 5], strides: [1, 1], pad: 'same', depthwise: false },
  { name: '3×3/2 same, even input (pad 0/1)', x: [1, 10, 12, 3], k: [3, 3, 3, 6], strides: [2, 2], pad: 'same', depthwise: false },
  { name: '3×3/2 same, odd input', x: [1, 11, 9, 3], k: [3, 3, 3, 2], strides: [2, 2], pad: 'same', depthwise: false },
  { name: '5×3/2×1 valid with unused tail', x: [1, 12, 10, 2], k: [5, 3, 2, 3], strides: [2, 1], pad: 'valid', depthwise: false },
  { name: '1×1 pointwise', x: [2, 7, 7, 8], k: [1, 1, 8, 4], strides: [1, 1], pad: 'same', depthwise: false },
  { name: 'depthwise 3×3/1 same', x: [2, 9, 8, 6], k: [3, 3, 6, 1], strides: [1, 1], pad: 'same', depthwise: true },
  { name: 'depthwise 3×3/2 same, even input', x: [1, 14, 14, 5], k: [3, 3, 5, 1], strides: [2, 2], pad: 'same', depthwise: true },
  { name: 'depthwise multiplier 2, 3×3/2 valid', x: [1, 11, 13, 3], k: [3, 3, 3, 2], strides: [2, 2], pad: 'valid', depthwise: true },
];

const POOL_CASES: { name: string; x: Shape4; spec: PoolSpec }[] = [
  { name: 'max 2×2/2 same, even', x: [2, 8, 10, 3], spec: { kind: 'max', size: [2, 2], strides: [2, 2], padding: 'same' } },
  { name: 'max 2×2/2 same, odd (padded)', x: [1, 9, 7, 4], spec: { kind: 'max', size: [2, 2], strides: [2, 2], padding: 'same' } },
  { name: 'max 2×2/2 valid, odd (cropped)', x: [1, 9, 7, 4], spec: { kind: 'max', size: [2, 2], strides: [2, 2], padding: 'valid' } },
  { name: 'max 3×3/2 valid (overlapping)', x: [1, 11, 9, 3], spec: { kind: 'max', size: [3, 3], strides: [2, 2], padding: 'valid' } },
  { name: 'max 3×3/2 same (overlapping)', x: [1, 10, 10, 2], spec: { kind: 'max', size: [3, 3], strides: [2, 2], padding: 'same' } },
];

function convSpec(c: ConvCase, filter: tf.Tensor4D): ConvSpec {
  const flipped = tf.reverse(filter, [0, 1]) as tf.Tensor4D;
  return {
    depthwise: c.depthwise,
    filter,
    filterBack: c.depthwise ? flipped : (tf.transpose(flipped, [0, 1, 3, 2]) as tf.Tensor4D),
    bias: null,
    strides: c.strides,
    padding: c.pad,
    activation: { kind: 'linear' },
  };
}

/** Our input gradient for a random upstream signal, on the current backend. */
function ourConvGrad(c: ConvCase, seed: number): Float32Array {
  return tf.tidy(() => {
    const x = tf.randomNormal(c.x, 0, 1, 'float32', seed) as tf.Tensor4D;
    const spec = convSpec(c, tf.randomNormal(c.k, 0, 1, 'float32', seed + 1) as tf.Tensor4D);
    const y = convForward(x, spec);
    const dy = tf.randomNormal(y.shape, 0, 1, 'float32', seed + 2) as tf.Tensor4D;
    return convInputGrad(dy, spec, x.shape).dataSync() as Float32Array;
  });
}

describe('input-gradient formulations', () => {
  beforeAll(async () => {
    await selectBackend('cpu');
  });

  it.each(CONV_CASES)('conv $name: matches tfjs autodiff on cpu and our own run on wasm', async (c) => {
    await selectBackend('cpu');
    const ref = tf.tidy(() => {
      const x = tf.randomNormal(c.x, 0, 1, 'float32', 5) as tf.Tensor4D;
      const f = tf.randomNormal(c.k, 0, 1, 'float32', 6) as tf.Tensor4D;
      const y = c.depthwise ? tf.depthwiseConv2d(x, f, c.strides, c.pad) : tf.conv2d(x, f, c.strides, c.pad);
      const dy = tf.randomNormal(y.shape, 0, 1, 'float32', 7);
      const g = tf.grad((xi: tf.Tensor) => tf.sum(tf.mul(c.depthwise ? tf.depthwiseConv2d(xi as tf.Tensor4D, f, c.strides, c.pad) : tf.conv2d(xi as tf.Tensor4D, f, c.strides, c.pad), dy)));
      return g(x).dataSync() as Float32Array;
    });
    const oursCpu = ourConvGrad(c, 5);
    expect(rel(oursCpu, ref)).toBeLessThan(1e-5);
    await selectBackend('wasm');
    const oursWasm = ourConvGrad(c, 5);
    expect(rel(oursWasm, ref)).toBeLessThan(1e-4);
  });

  it.each(POOL_CASES)('$name: matches tfjs autodiff on cpu and our own run on wasm', async ({ x: shape, spec }) => {
    const run = (ours: boolean) =>
      tf.tidy(() => {
        const x = tf.randomNormal(shape, 0, 1, 'float32', 3) as tf.Tensor4D;
        const y = tf.maxPool(x, spec.size, spec.strides, spec.padding);
        const dy = tf.randomNormal(y.shape, 0, 1, 'float32', 4) as tf.Tensor4D;
        if (ours) return maxPoolInputGrad(x, y, dy, spec).dataSync() as Float32Array;
        return tf.grad((xi: tf.Tensor) => tf.sum(tf.mul(tf.maxPool(xi as tf.Tensor4D, spec.size, spec.strides, spec.padding), dy)))(x).dataSync() as Float32Array;
      });
    await selectBackend('cpu');
    const ref = run(false);
    expect(rel(run(true), ref)).toBeLessThan(1e-6);
    await selectBackend('wasm');
    expect(rel(run(true), ref)).toBeLessThan(1e-6);
  });
});
