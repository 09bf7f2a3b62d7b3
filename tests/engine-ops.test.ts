// Our input-gradient formulations for convolution, depthwise convolution and pooling, checked on
// awkward shapes (odd sizes, strides 2, "same" with asymmetric padding, channel multiplier 2,
// overlapping pools) against tfjs' own gradient kernels on the cpu backend, and against the same
// formulation run on wasm. User models bring shapes the bundled ones do not.
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { selectBackend } from '../main/engine/backend.js';
import { convForward, convInputGrad, maxPoolInputGrad, type ConvSpec, type PoolSpec } from '../main/engine/ops.js';
import { rel } from './support/numeric.js';
import { CONV_CASES, POOL_CASES, convSpec, type ConvCase, type Shape4 } from './support/op-cases.js';



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
