// The ONNX exporter on the shapes the bundled models do not have — strided and "valid"
// convolutions, a channel multiplier of 2, overlapping and padded max-pools, average pools, zero
// padding, concatenation, residual adds, dense layers, softmax/sigmoid/tanh, global max pooling —
// each a small GraphNet whose ORT forward and backward (gradient, deconv and guided rules, from a
// random seed) must equal the engine's own run and backward pass on tfjs.
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { selectBackend } from '../main/engine/backend.js';
import type { Model } from '../main/engine/model.js';
import { GraphNet, type GraphNode } from '../main/engine/network.js';
import { nativeBackward, nativeForward } from '../main/engine/onnx/native-net.js';
import type { Activation, BackwardRule } from '../main/engine/ops.js';
import { relError as rel } from './support/gradient-cases.js';
import { CONV_CASES, POOL_CASES, convSpec } from './support/op-cases.js';

/** What the ONNX engine reads of a model: its compiled graph and the keys of its session cache. */
function asModel(net: GraphNet, id: string): Model {
  return { id, checksum: `test-${id}`, compiled: { net, logitsNode: net.nodes.length - 1 } } as unknown as Model;
}

const RULES: BackwardRule[] = ['gradient', 'deconv', 'guided'];

/** ORT's forward of the last node and its backward to the input, against GraphNet's own. */
function check(net: GraphNet, id: string, xShape: [number, number, number, number]): void {
  const model = asModel(net, id);
  const last = net.nodes.length - 1;
  const x = tf.randomNormal(xShape, 0, 1, 'float32', 3) as tf.Tensor4D;
  const values = net.run(x);
  const yRef = values[last]!;
  const [y] = nativeForward(model, x, [last]);
  expect(rel(y!.dataSync(), yRef.dataSync()), `${id}: forward`).toBeLessThan(1e-5);
  const seed = tf.randomNormal(yRef.shape, 0, 1, 'float32', 4);
  for (const rule of RULES) {
    const ref = net.backward(values, last, seed, { rule });
    const r = nativeBackward(model, x, { from: last, to: 0, rule, linearStart: false, seed: 'given' }, seed.dataSync() as Float32Array);
    expect(rel(r.grad.dataSync(), ref.dataSync()), `${id}: ${rule} backward`).toBeLessThan(1e-5);
    expect(r.value!.dataSync()[0], `${id}: value Σ y·seed`).toBeCloseTo(tf.sum(tf.mul(yRef.slice([0], [1]), seed.slice([0], [1]))).dataSync()[0]!, 3);
    tf.dispose([ref, r.grad, r.value!]);
  }
  tf.dispose([x, y!, seed, ...values]);
}

describe('ONNX export of single operations', () => {
  beforeAll(async () => {
    await selectBackend('onnx');
  });

  it.each(CONV_CASES)('conv $name (with a ReLU)', (c) => {
    const spec = { ...convSpec(c, tf.randomNormal(c.k, 0, 1, 'float32', 1) as tf.Tensor4D), bias: tf.randomNormal([c.depthwise ? c.k[2] * c.k[3] : c.k[3]], 0, 1, 'float32', 2) as tf.Tensor1D, activation: { kind: 'relu' } as const };
    check(new GraphNet([{ names: ['in'], inputs: [], op: { kind: 'input' } }, { names: ['conv'], inputs: [0], op: { kind: 'conv', spec } }]), `conv ${c.name}`, c.x);
  });

  it.each(POOL_CASES)('pool $name', (c) => {
    check(new GraphNet([{ names: ['in'], inputs: [], op: { kind: 'input' } }, { names: ['pool'], inputs: [0], op: { kind: 'pool', spec: c.spec } }]), `pool ${c.name}`, c.x);
  });

  it('a small network of everything else: zero padding, leaky/relu6, average pools, add, concat, affine, global max, flatten, dense, softmax, sigmoid, tanh', () => {
    const r = (shape: number[], seed: number) => tf.randomNormal(shape, 0, 0.5, 'float32', seed);
    const conv = (k: [number, number, number, number], strides: [number, number], act: Activation, seed: number) => {
      const c = { name: '', x: [1, 1, 1, 1] as [number, number, number, number], k, strides, pad: 'same' as const, depthwise: false };
      return { kind: 'conv' as const, spec: { ...convSpec(c, r(k, seed) as tf.Tensor4D), bias: r([k[3]], seed + 1) as tf.Tensor1D, activation: act } };
    };
    const nodes: GraphNode[] = [
      { names: ['in'], inputs: [], op: { kind: 'input' } },
      { names: ['pad'], inputs: [0], op: { kind: 'zeroPad', pads: [[1, 2], [0, 1]] } },
      { names: ['c1'], inputs: [1], op: conv([3, 3, 3, 4], [2, 2], { kind: 'leaky', alpha: 0.1 }, 10) },
      { names: ['c2'], inputs: [2], op: conv([1, 1, 4, 4], [1, 1], { kind: 'relu6' }, 20) },
      { names: ['add'], inputs: [2, 3], op: { kind: 'add' } },
      { names: ['avg'], inputs: [4], op: { kind: 'pool', spec: { kind: 'avg', size: [3, 3], strides: [1, 1], padding: 'valid' } } },
      { names: ['cat'], inputs: [5, 5], op: { kind: 'concat', axis: 3 } },
      { names: ['aff'], inputs: [6], op: { kind: 'affine', scale: r([8], 30) as tf.Tensor1D, shift: r([8], 31) as tf.Tensor1D } },
      { names: ['avg2'], inputs: [7], op: { kind: 'pool', spec: { kind: 'avg', size: [2, 2], strides: [2, 2], padding: 'valid' } } },
      { names: ['th'], inputs: [8], op: { kind: 'nonlinear', fn: 'tanh' } },
      { names: ['gmax'], inputs: [9], op: { kind: 'globalPool', op: 'max', keepDims: true } },
      { names: ['flat'], inputs: [10], op: { kind: 'flatten' } },
      { names: ['fc'], inputs: [11], op: { kind: 'dense', kernel: r([8, 6], 40) as tf.Tensor2D, bias: r([6], 41) as tf.Tensor1D, act: { kind: 'relu' } } },
      { names: ['sig'], inputs: [12], op: { kind: 'nonlinear', fn: 'sigmoid' } },
      { names: ['sm'], inputs: [13], op: { kind: 'nonlinear', fn: 'softmax' } },
    ];
    check(new GraphNet(nodes), 'network', [2, 11, 13, 3]);
  });

  // The engine's own average-pool backward divides edge windows by their real inputs, as the
  // forward pass does (tfjs' AvgPoolGrad kernel alone would not): the two engines agree.
  it.each([
    { name: 'avg 3×3/2 same', x: [2, 9, 8, 3] as [number, number, number, number], size: [3, 3] as [number, number], strides: [2, 2] as [number, number] },
    { name: 'avg 3×3/1 same', x: [1, 7, 6, 2] as [number, number, number, number], size: [3, 3] as [number, number], strides: [1, 1] as [number, number] },
  ])('pool $name: ORT backward equals the engine’s', ({ name, x, size, strides }) => {
    check(new GraphNet([{ names: ['in'], inputs: [], op: { kind: 'input' } }, { names: ['pool'], inputs: [0], op: { kind: 'pool', spec: { kind: 'avg', size, strides, padding: 'same' } } }]), `pool ${name}`, x);
  });

  // The exported adjoint is also checked by the adjoint identity ⟨P x, s⟩ = ⟨x, Pᵀ s⟩.
  it('average pool with "same" padding: an exact adjoint (⟨P x, s⟩ = ⟨x, Pᵀ s⟩)', () => {
    const net = new GraphNet([
      { names: ['in'], inputs: [], op: { kind: 'input' } },
      { names: ['avg'], inputs: [0], op: { kind: 'pool', spec: { kind: 'avg', size: [3, 3], strides: [2, 2], padding: 'same' } } },
    ]);
    const model = asModel(net, 'avg-same');
    const x = tf.randomNormal([2, 9, 8, 3], 0, 1, 'float32', 5) as tf.Tensor4D;
    const shape = net.run(x)[1]!.shape;
    const seed = tf.randomNormal(shape, 0, 1, 'float32', 6);
    const r = nativeBackward(model, x, { from: 1, to: 0, rule: 'gradient', linearStart: false, seed: 'given' }, seed.dataSync() as Float32Array);
    const lhs = r.value!.dataSync();
    const rhs = tf.sum(tf.mul(x, r.grad), [1, 2, 3]).dataSync();
    for (let i = 0; i < 2; i++) expect(Math.abs(lhs[i]! - rhs[i]!) / Math.abs(lhs[i]!)).toBeLessThan(1e-5);
    tf.dispose([x, seed, r.grad, r.value!]);
  });
});
