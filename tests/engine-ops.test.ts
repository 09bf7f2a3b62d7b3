// Our input-gradient formulations for convolution, depthwise convolution and pooling, checked on
// awkward shapes (odd sizes, strides 2, "same" with asymmetric padding, channel multiplier 2,
// overlapping pools) against tfjs' own gradient kernels on the cpu backend, and against the same
// formulation run on wasm. User models bring shapes the bundled ones do not.
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { selectBackend } from '../main/engine/backend.js';
import { GraphNet } from '../main/engine/network.js';
import { avgPoolInputGrad, convForward, convInputGrad, maxPoolInputGrad, runPool, type ConvSpec, type PoolSpec } from '../main/engine/ops.js';
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

  // Edge windows of a "same" pool hold fewer real inputs; the forward pass averages over those
  // only, so their inputs' gradient is 1/count, not 1/(window size).
  it.each([
    { name: 'avg 3×3/1 same', x: [1, 6, 7, 2] as Shape4, spec: { kind: 'avg', size: [3, 3], strides: [1, 1], padding: 'same' } as PoolSpec },
    { name: 'avg 3×3/2 same, even and odd sides', x: [2, 8, 7, 3] as Shape4, spec: { kind: 'avg', size: [3, 3], strides: [2, 2], padding: 'same' } as PoolSpec },
    { name: 'avg 2×2/2 same, odd (padded)', x: [1, 9, 7, 2] as Shape4, spec: { kind: 'avg', size: [2, 2], strides: [2, 2], padding: 'same' } as PoolSpec },
  ])('$name: the input gradient equals central finite differences (cpu and wasm), taped and reference forms too', async ({ x: shape, spec }) => {
    await selectBackend('cpu');
    const x = tf.randomNormal(shape, 0, 1, 'float32', 8) as tf.Tensor4D;
    const dy = tf.tidy(() => tf.randomNormal(tf.avgPool(x, spec.size, spec.strides, spec.padding).shape, 0, 1, 'float32', 9)) as tf.Tensor4D;
    const xs = x.dataSync();
    const f = (v: Float32Array) => tf.tidy(() => tf.sum(tf.mul(tf.avgPool(tf.tensor4d(v, shape), spec.size, spec.strides, spec.padding), dy)).dataSync()[0]!);
    const fd = new Float32Array(xs.length);
    const e = 1e-2;
    for (let i = 0; i < xs.length; i++) {
      const a = Float32Array.from(xs);
      const b = Float32Array.from(xs);
      a[i] = a[i]! + e;
      b[i] = b[i]! - e;
      fd[i] = (f(a) - f(b)) / (2 * e);
    }
    const ours = () => tf.tidy(() => avgPoolInputGrad(tf.tensor4d(xs, shape), tf.tensor4d(dy.dataSync(), dy.shape), spec).dataSync() as Float32Array);
    expect(rel(ours(), fd)).toBeLessThan(1e-3);
    for (const mode of ['taped', 'reference'] as const) {
      const g = tf.tidy(() => tf.grad((xi: tf.Tensor) => tf.sum(tf.mul(runPool(xi as tf.Tensor4D, spec, mode), dy)))(x).dataSync() as Float32Array);
      expect(rel(g, fd), mode).toBeLessThan(1e-3);
    }
    await selectBackend('wasm');
    expect(rel(ours(), fd)).toBeLessThan(1e-3);
    tf.dispose([x, dy]);
  });

  it('GraphNet.backward through a concatenation along a negative axis (after a dense head, and on maps)', async () => {
    await selectBackend('cpu');
    const k1 = tf.randomNormal([4, 3], 0, 1, 'float32', 1) as tf.Tensor2D;
    const k2 = tf.randomNormal([4, 2], 0, 1, 'float32', 2) as tf.Tensor2D;
    const net = new GraphNet([
      { names: ['in'], inputs: [], op: { kind: 'input' } },
      { names: ['flat'], inputs: [0], op: { kind: 'flatten' } },
      { names: ['a'], inputs: [1], op: { kind: 'dense', kernel: k1, bias: null, act: { kind: 'relu' } } },
      { names: ['b'], inputs: [1], op: { kind: 'dense', kernel: k2, bias: null, act: { kind: 'linear' } } },
      { names: ['cat'], inputs: [2, 3], op: { kind: 'concat', axis: -1 } },
      { names: ['maps'], inputs: [0, 0], op: { kind: 'concat', axis: -1 } },
    ]);
    const x = tf.randomNormal([2, 1, 2, 2], 0, 1, 'float32', 3) as tf.Tensor4D;
    for (const [node, width] of [[4, 5], [5, 4]] as const) {
      const seed = tf.randomNormal(node === 4 ? [2, width] : [2, 1, 2, width], 0, 1, 'float32', 4);
      const ours = tf.tidy(() => net.backward(net.run(x), node, seed).dataSync() as Float32Array);
      const ref = tf.tidy(() => tf.grad((xi: tf.Tensor) => tf.sum(tf.mul(net.run(xi as tf.Tensor4D, { mode: 'reference' })[node]!, seed)))(x).dataSync() as Float32Array);
      expect(rel(ours, ref), `node ${node}`).toBeLessThan(1e-6);
      seed.dispose();
    }
    tf.dispose([x, k1, k2]);
  });

  // tfjs' own MirrorPad gradient crops the centre only: the borders' signal must be folded back.
  it.each(['reflect', 'symmetric'] as const)('mirror padding (%s): GraphNet.backward, taped and reference gradients equal finite differences', async (mode) => {
    await selectBackend('cpu');
    const net = new GraphNet([
      { names: ['in'], inputs: [], op: { kind: 'input' } },
      { names: ['pad'], inputs: [0], op: { kind: 'mirrorPad', pads: [[2, 1], [0, 3]], mode } },
    ]);
    const shape: Shape4 = [1, 5, 4, 2];
    const x = tf.randomNormal(shape, 0, 1, 'float32', 11) as tf.Tensor4D;
    const seed = tf.randomNormal([1, 8, 7, 2], 0, 1, 'float32', 12);
    const xs = x.dataSync();
    const f = (v: Float32Array) => tf.tidy(() => tf.sum(tf.mul(net.run(tf.tensor4d(v, shape))[1]!, seed)).dataSync()[0]!);
    const fd = new Float32Array(xs.length);
    for (let i = 0; i < xs.length; i++) {
      const a = Float32Array.from(xs);
      const b = Float32Array.from(xs);
      a[i] = a[i]! + 1e-2;
      b[i] = b[i]! - 1e-2;
      fd[i] = (f(a) - f(b)) / 2e-2;
    }
    expect(tf.tidy(() => net.run(x)[1]!.shape)).toEqual([1, 8, 7, 2]);
    const ours = tf.tidy(() => net.backward(net.run(x), 1, seed).dataSync() as Float32Array);
    expect(rel(ours, fd)).toBeLessThan(1e-3);
    for (const m of ['taped', 'reference'] as const) {
      const g = tf.tidy(() => tf.grad((xi: tf.Tensor) => tf.sum(tf.mul(net.run(xi as tf.Tensor4D, { mode: m })[1]!, seed)))(x).dataSync() as Float32Array);
      expect(rel(g, fd), m).toBeLessThan(1e-3);
    }
    await selectBackend('wasm');
    const onWasm = tf.tidy(() => net.backward(net.run(x), 1, seed).dataSync() as Float32Array);
    expect(rel(onWasm, fd)).toBeLessThan(1e-3);
    tf.dispose([x, seed]);
  });
});
