// A tensor computed in a tidy scope, read out as plain values. tf.tidy walks whatever its function
// returns in search of tensors, and it walks a typed array index by index: a tidy that returned
// the values of a four-seed 224 px preview spent ~100 ms there, and the ONNX exporter's filter
// reads made mobilenet-v1-0.75's first synthesis step take ~2 s. So the values are read after the
// scope has closed, from the one tensor it kept, and that tensor is disposed at once.
import * as tf from '@tensorflow/tfjs-core';

export function tidyData(fn: () => tf.Tensor<tf.Rank>): Float32Array | Int32Array | Uint8Array {
  const t = tf.tidy(fn);
  try {
    return t.dataSync();
  } finally {
    t.dispose();
  }
}

/** tidyData of a float32 tensor. */
export function tidyFloats(fn: () => tf.Tensor<tf.Rank>): Float32Array {
  const d = tidyData(fn);
  if (!(d instanceof Float32Array)) throw new Error(`expected float32 values, got ${d.constructor.name}`);
  return d;
}
