// Models built the way users build them — tfjs-layers in Node, sequential and functional — and
// written as bare model folders (model.json + one weight shard, perhaps labels.txt), as
// model.save() would write them: `file://` saving needs tfjs-node, which cannot install here, so
// a small save handler writes the same files. One is trained briefly on real MNIST digits.
import { mkdirSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';

/** Write a LayersModel as a bare folder: model.json + group1-shard1of1.bin (+ labels.txt). */
export async function saveBareFolder(model: tf.LayersModel, dir: string, labels?: string[]): Promise<string> {
  mkdirSync(dir, { recursive: true });
  await model.save(
    tf.io.withSaveHandler(async (a) => {
      const shard = 'group1-shard1of1.bin';
      const json = {
        format: 'layers-model',
        generatedBy: `TensorFlow.js tfjs-layers v${tf.version.tfjs}`,
        convertedBy: null,
        modelTopology: a.modelTopology,
        weightsManifest: [{ paths: [shard], weights: a.weightSpecs }],
      };
      writeFileSync(join(dir, 'model.json'), JSON.stringify(json));
      const data = a.weightData instanceof ArrayBuffer ? a.weightData : tf.io.concatenateArrayBuffers(a.weightData as ArrayBuffer[]);
      writeFileSync(join(dir, shard), Buffer.from(data));
      return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
    }),
  );
  if (labels) writeFileSync(join(dir, 'labels.txt'), labels.join('\n') + '\n');
  return dir;
}

export const DIGITS = ['zero', 'one', 'two', 'three', 'four', 'five', 'six', 'seven', 'eight', 'nine'];

interface MnistDigit {
  length: number;
  range(start: number, end: number): number[][];
}

/** Real MNIST digits from the `mnist` package: `perDigit` of each digit from index `from`, [N,28,28,1] in 0…1. */
export function mnistDigits(perDigit: number, from: number): { x: tf.Tensor4D; y: tf.Tensor2D; labels: number[] } {
  const digits = createRequire(import.meta.url)('mnist') as MnistDigit[];
  const xs: number[] = [];
  const labels: number[] = [];
  for (let d = 0; d < 10; d++) {
    for (const s of digits[d]!.range(from, from + perDigit - 1)) {
      xs.push(...s);
      labels.push(d);
    }
  }
  return { x: tf.tensor4d(xs, [labels.length, 28, 28, 1]), y: tf.oneHot(tf.tensor1d(labels, 'int32'), 10).toFloat() as tf.Tensor2D, labels };
}

/**
 * A small sequential CNN on 28×28×1 digits, softmax fused into its last Dense layer, trained on
 * 1,500 real digits. Its two convolutions keep their (seeded) random filters and only the head is
 * trained: a filter gradient takes minutes on the cpu backend and wasm has none, while random
 * ReLU features + max-pooling already give ~90 % (about 15 s on wasm here). Returns the model and
 * its accuracy on 500 held-out digits.
 */
export async function trainMnist(): Promise<{ model: tf.LayersModel; accuracy: number }> {
  const he = (seed: number) => ({ kernelInitializer: tf.initializers.heNormal({ seed }), trainable: false });
  const model = tf.sequential({
    layers: [
      tf.layers.conv2d({ inputShape: [28, 28, 1], filters: 16, kernelSize: 5, activation: 'relu', name: 'conv1', ...he(1) }),
      tf.layers.maxPooling2d({ poolSize: 2, name: 'pool1' }),
      tf.layers.conv2d({ filters: 16, kernelSize: 3, activation: 'relu', name: 'conv2', ...he(2) }),
      tf.layers.maxPooling2d({ poolSize: 2, name: 'pool2' }),
      tf.layers.flatten({ name: 'flatten' }),
      tf.layers.dropout({ rate: 0.1, name: 'dropout', seed: 3 }),
      tf.layers.dense({ units: 10, activation: 'softmax', name: 'digits', kernelInitializer: tf.initializers.glorotUniform({ seed: 4 }) }),
    ],
  });
  model.compile({ optimizer: tf.train.adam(0.01), loss: 'categoricalCrossentropy' });
  const train = mnistDigits(150, 0);
  await model.fit(train.x, train.y, { epochs: 6, batchSize: 64, shuffle: false, verbose: 0 });
  tf.dispose([train.x, train.y]);
  const test = mnistDigits(50, 150);
  const pred = tf.tidy(() => (model.predict(test.x) as tf.Tensor2D).argMax(1).dataSync());
  const accuracy = test.labels.filter((l, i) => pred[i] === l).length / test.labels.length;
  tf.dispose([test.x, test.y]);
  return { model, accuracy };
}

const init = (seed: number) => ({ kernelInitializer: tf.initializers.glorotNormal({ seed }) });

/**
 * Functional, 3 channels, non-square 96×128: Rescaling, a residual block (conv+BN+ReLU, Add),
 * a separable block with ZeroPadding2D and a ReLU capped at 4, swish / hard_sigmoid / gelu
 * activations, a squeeze-and-excitation Multiply, Concatenate, SpatialDropout-style Dropout,
 * global average pooling and a Dense head with a separate Softmax activation layer.
 */
export function residualSeparableModel(): tf.LayersModel {
  const input = tf.input({ shape: [96, 128, 3] });
  let x = tf.layers.rescaling({ scale: 1 / 127.5, offset: -1 }).apply(input) as tf.SymbolicTensor;
  x = tf.layers.conv2d({ filters: 8, kernelSize: 3, strides: 2, padding: 'same', useBias: false, ...init(1) }).apply(x) as tf.SymbolicTensor;
  x = tf.layers.batchNormalization({ name: 'stem_bn' }).apply(x) as tf.SymbolicTensor;
  x = tf.layers.reLU({ name: 'stem_relu' }).apply(x) as tf.SymbolicTensor;
  // Residual block.
  let r = tf.layers.conv2d({ filters: 8, kernelSize: 3, padding: 'same', activation: 'relu', name: 'res_conv1', ...init(2) }).apply(x) as tf.SymbolicTensor;
  r = tf.layers.conv2d({ filters: 8, kernelSize: 3, padding: 'same', name: 'res_conv2', ...init(3) }).apply(r) as tf.SymbolicTensor;
  x = tf.layers.add({ name: 'res_add' }).apply([x, r]) as tf.SymbolicTensor;
  x = tf.layers.activation({ activation: 'swish', name: 'res_swish' }).apply(x) as tf.SymbolicTensor;
  // Separable block.
  x = tf.layers.zeroPadding2d({ padding: [[1, 0], [0, 1]], name: 'sep_pad' }).apply(x) as tf.SymbolicTensor;
  x = tf.layers.separableConv2d({ filters: 16, kernelSize: 3, strides: 2, padding: 'valid', name: 'sep_conv', depthwiseInitializer: tf.initializers.glorotNormal({ seed: 4 }), pointwiseInitializer: tf.initializers.glorotNormal({ seed: 5 }) }).apply(x) as tf.SymbolicTensor;
  x = tf.layers.reLU({ maxValue: 4, name: 'sep_relu4' }).apply(x) as tf.SymbolicTensor;
  // Squeeze-and-excitation gate.
  let se = tf.layers.globalAveragePooling2d({ name: 'se_pool' }).apply(x) as tf.SymbolicTensor;
  se = tf.layers.dense({ units: 16, activation: 'hardSigmoid', name: 'se_gate', ...init(6) }).apply(se) as tf.SymbolicTensor;
  se = tf.layers.reshape({ targetShape: [1, 1, 16], name: 'se_reshape' }).apply(se) as tf.SymbolicTensor;
  x = tf.layers.multiply({ name: 'se_mul' }).apply([x, se]) as tf.SymbolicTensor;
  // Two branches joined.
  const a = tf.layers.conv2d({ filters: 8, kernelSize: 1, activation: 'gelu', name: 'branch_gelu', ...init(7) }).apply(x) as tf.SymbolicTensor;
  const b = tf.layers.conv2d({ filters: 8, kernelSize: 3, padding: 'same', activation: 'elu', name: 'branch_elu', ...init(8) }).apply(x) as tf.SymbolicTensor;
  x = tf.layers.concatenate({ name: 'join' }).apply([a, b]) as tf.SymbolicTensor;
  x = tf.layers.maxPooling2d({ poolSize: 2, name: 'pool' }).apply(x) as tf.SymbolicTensor;
  x = tf.layers.dropout({ rate: 0.3, name: 'drop' }).apply(x) as tf.SymbolicTensor;
  x = tf.layers.globalAveragePooling2d({ name: 'gap' }).apply(x) as tf.SymbolicTensor;
  x = tf.layers.dense({ units: 5, name: 'logits', ...init(9) }).apply(x) as tf.SymbolicTensor;
  const out = tf.layers.softmax({ name: 'probs' }).apply(x) as tf.SymbolicTensor;
  return tf.model({ inputs: input, outputs: out, name: 'resnetish' });
}

/**
 * Sequential, 3 channels, 112×112 (16 px steps down to 7×7): conv/BN/LeakyReLU, a depthwise
 * convolution with relu6, average and global max pooling, a Flatten/Dense head WITHOUT softmax
 * (logits out, as many exported detectors' classifiers are).
 */
export function plainLogitsModel(): tf.LayersModel {
  return tf.sequential({
    name: 'plain_logits',
    layers: [
      tf.layers.conv2d({ inputShape: [112, 112, 3], filters: 8, kernelSize: 3, strides: 2, padding: 'same', name: 'c1', ...init(11) }),
      tf.layers.batchNormalization({ name: 'c1_bn' }),
      tf.layers.leakyReLU({ alpha: 0.1, name: 'c1_leaky' }),
      tf.layers.depthwiseConv2d({ kernelSize: 3, padding: 'same', activation: 'relu6', name: 'dw', depthwiseInitializer: tf.initializers.glorotNormal({ seed: 12 }) }),
      tf.layers.averagePooling2d({ poolSize: 2, name: 'avg' }),
      tf.layers.conv2d({ filters: 12, kernelSize: 3, padding: 'same', activation: 'tanh', name: 'c2_tanh', ...init(13) }),
      tf.layers.maxPooling2d({ poolSize: 2, name: 'max' }),
      tf.layers.conv2d({ filters: 16, kernelSize: 3, padding: 'same', activation: 'relu', name: 'c3', ...init(14) }),
      tf.layers.flatten({ name: 'flat' }),
      tf.layers.dense({ units: 4, name: 'scores', ...init(15) }),
    ],
  });
}
