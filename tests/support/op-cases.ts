// Awkward operation shapes (odd sizes, strides 2, "same" with asymmetric padding, channel
// multiplier 2, overlapping pools) shared by the op tests of every engine: user models bring
// shapes the bundled ones do not.
import * as tf from '@tensorflow/tfjs-core';
import type { ConvSpec, PoolSpec } from '../../main/engine/ops.js';

export type Shape4 = [number, number, number, number];
export type ConvCase = { name: string; x: Shape4; k: Shape4; strides: [number, number]; pad: 'same' | 'valid'; depthwise: boolean };
export const CONV_CASES: ConvCase[] = [
  { name: '3×3/1 same', x: [2, 9, 11, 4], k: [3, 3, 4, 5], strides: [1, 1], pad: 'same', depthwise: false },
  { name: '3×3/2 same, even input (pad 0/1)', x: [1, 10, 12, 3], k: [3, 3, 3, 6], strides: [2, 2], pad: 'same', depthwise: false },
  { name: '3×3/2 same, odd input', x: [1, 11, 9, 3], k: [3, 3, 3, 2], strides: [2, 2], pad: 'same', depthwise: false },
  { name: '5×3/2×1 valid with unused tail', x: [1, 12, 10, 2], k: [5, 3, 2, 3], strides: [2, 1], pad: 'valid', depthwise: false },
  { name: '1×1 pointwise', x: [2, 7, 7, 8], k: [1, 1, 8, 4], strides: [1, 1], pad: 'same', depthwise: false },
  { name: 'depthwise 3×3/1 same', x: [2, 9, 8, 6], k: [3, 3, 6, 1], strides: [1, 1], pad: 'same', depthwise: true },
  { name: 'depthwise 3×3/2 same, even input', x: [1, 14, 14, 5], k: [3, 3, 5, 1], strides: [2, 2], pad: 'same', depthwise: true },
  { name: 'depthwise multiplier 2, 3×3/2 valid', x: [1, 11, 13, 3], k: [3, 3, 3, 2], strides: [2, 2], pad: 'valid', depthwise: true },
];

export const POOL_CASES: { name: string; x: Shape4; spec: PoolSpec }[] = [
  { name: 'max 2×2/2 same, even', x: [2, 8, 10, 3], spec: { kind: 'max', size: [2, 2], strides: [2, 2], padding: 'same' } },
  { name: 'max 2×2/2 same, odd (padded)', x: [1, 9, 7, 4], spec: { kind: 'max', size: [2, 2], strides: [2, 2], padding: 'same' } },
  { name: 'max 2×2/2 valid, odd (cropped)', x: [1, 9, 7, 4], spec: { kind: 'max', size: [2, 2], strides: [2, 2], padding: 'valid' } },
  { name: 'max 3×3/2 valid (overlapping)', x: [1, 11, 9, 3], spec: { kind: 'max', size: [3, 3], strides: [2, 2], padding: 'valid' } },
  { name: 'max 3×3/2 same (overlapping)', x: [1, 10, 10, 2], spec: { kind: 'max', size: [3, 3], strides: [2, 2], padding: 'same' } },
];

/** A case's ConvSpec around `filter`, its flipped filter built as compile.ts builds it. */
export function convSpec(c: ConvCase, filter: tf.Tensor4D): ConvSpec {
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
