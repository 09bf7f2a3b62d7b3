// A small TF.js graph model made here, written as tensorflowjs_converter writes one for a
// SavedModel: model.json with format "graph-model", the GraphDef as JSON (protobuf's JSON form:
// int64s as strings, strings base64) and every constant in a weight shard named by its Const
// node. tfjs-converter's own loader (tf.loadGraphModel) reads the same files, so a test can run
// both engines on them. The network has what converted image CNNs have: input scaling by
// constants, fused convolutions (BiasAdd + Relu / Relu6 / Elu / LeakyRelu), a depthwise
// convolution, Conv2D + FusedBatchNormV3 + Relu, a residual AddV2, swish and hard-swish as
// TensorFlow writes them, Pad, an unfused Conv2D + BiasAdd, ConcatV2 on a negative axis, MaxPool,
// a "same" AvgPool, a global Mean, Reshape, a fused MatMul head with transpose_b, and Softmax.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';

type Attr = Record<string, unknown>;
interface GraphNode {
  name: string;
  op: string;
  input: string[];
  attr: Record<string, Attr>;
}

const b64 = (s: string) => Buffer.from(s, 'utf8').toString('base64');
const A = {
  type: (t = 'DT_FLOAT'): Attr => ({ type: t }),
  i: (n: number): Attr => ({ i: String(n) }),
  f: (x: number): Attr => ({ f: x }),
  b: (v: boolean): Attr => ({ b: v }),
  s: (v: string): Attr => ({ s: b64(v) }),
  ints: (xs: number[]): Attr => ({ list: { i: xs.map(String) } }),
  strs: (xs: string[]): Attr => ({ list: { s: xs.map(b64) } }),
  shape: (dims: number[]): Attr => ({ shape: { dim: dims.map((d) => ({ size: String(d) })) } }),
};

/** Deterministic pseudo-random numbers (a fixture must be the same on every run). */
function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

export class GraphDefWriter {
  readonly nodes: GraphNode[] = [];
  private readonly weights: { name: string; shape: number[]; dtype: 'float32' | 'int32'; data: Float32Array | Int32Array }[] = [];
  private readonly rand: () => number;

  constructor(seed = 1) {
    this.rand = lcg(seed);
  }

  op(op: string, name: string, input: string[], attr: Record<string, Attr> = {}): string {
    this.nodes.push({ name, op, input, attr: op.startsWith('Placeholder') ? attr : { T: A.type(), ...attr } });
    return name;
  }

  constant(name: string, shape: number[], values: number[] | Float32Array | Int32Array, dtype: 'float32' | 'int32' = 'float32'): string {
    const data = dtype === 'int32' ? Int32Array.from(values) : Float32Array.from(values);
    const dt = dtype === 'int32' ? 'DT_INT32' : 'DT_FLOAT';
    this.nodes.push({ name, op: 'Const', input: [], attr: { value: { tensor: { dtype: dt, tensorShape: { dim: shape.map((d) => ({ size: String(d) })) } } }, dtype: A.type(dt) } });
    this.weights.push({ name, shape, dtype, data });
    return name;
  }

  /** Uniform in ±scale·√(3/fanIn)-ish: activations stay of order 1 through the network. */
  random(name: string, shape: number[], fanIn: number, offset = 0, spread = 1): string {
    const n = shape.reduce((a, b) => a * b, 1);
    const s = spread * Math.sqrt(3 / fanIn);
    return this.constant(name, shape, Array.from({ length: n }, () => offset + (2 * this.rand() - 1) * s));
  }

  /** model.json + group1-shard1of1.bin (+ labels.txt) in `dir`. */
  write(dir: string, labels?: string[], output?: string): void {
    mkdirSync(dir, { recursive: true });
    const shard = 'group1-shard1of1.bin';
    const json = {
      format: 'graph-model',
      generatedBy: '2.15.0',
      convertedBy: 'TensorFlow.js Converter v4.22.0',
      ...(output ? { signature: { outputs: { [`${output}:0`]: { name: `${output}:0`, dtype: 'DT_FLOAT' } } } } : {}),
      modelTopology: { node: this.nodes, library: {}, versions: { producer: 1645 } },
      weightsManifest: [{ paths: [shard], weights: this.weights.map(({ name, shape, dtype }) => ({ name, shape, dtype })) }],
    };
    writeFileSync(join(dir, 'model.json'), JSON.stringify(json));
    writeFileSync(join(dir, shard), Buffer.concat(this.weights.map((w) => Buffer.from(w.data.buffer, w.data.byteOffset, w.data.byteLength))));
    if (labels) writeFileSync(join(dir, 'labels.txt'), labels.join('\n') + '\n');
  }
}

export const GRAPH_CLASSES = ['apple', 'bicycle', 'cloud', 'dune', 'eel'];
export const GRAPH_INPUT: [number, number] = [40, 48];

/** The layers a user sees for the fixture (node names), in model order. */
export const GRAPH_SHOWN = ['stem/Relu', 'block1/dw', 'block1/Relu', 'block1/add', 'block2/swish', 'branch_a/hswish', 'branch_b/leaky', 'concat', 'pool', 'avgpool', 'head_conv'];

/**
 * Write the fixture graph model (a 5-class CNN on 40×48 RGB, 0…255 in) to `dir`. `avgPadding`
 * "VALID" gives a variant tfjs' own autodiff is right on: its AvgPool gradient divides the edge
 * windows of a "SAME" pool by their full size. `mirrorPad` pads by reflection instead of zeros;
 * `unitInput` makes the model expect 0…1 input, as TF Hub image models do; `squeeze` reaches the
 * head through Squeeze and two ExpandDims before the Reshape.
 */
export function writeGraphModel(dir: string, opts: { seed?: number; avgPadding?: 'SAME' | 'VALID'; mirrorPad?: 'REFLECT' | 'SYMMETRIC'; unitInput?: boolean; squeeze?: boolean } = {}): void {
  const seed = opts.seed ?? 1;
  const g = new GraphDefWriter(seed);
  const [h, w] = GRAPH_INPUT;
  const x = g.op('Placeholder', 'input', [], { dtype: A.type(), shape: A.shape([-1, h, w, 3]) });
  const conv = (name: string, input: string, k: number[], stride: number, pad: string, fused: string[], extra: Record<string, Attr> = {}, op = '_FusedConv2D') => {
    const depthwise = op.includes('Depthwise');
    const f = g.random(`${name}/filter`, k, k[0]! * k[1]! * (depthwise ? 1 : k[2]!));
    const outC = depthwise ? k[2]! * k[3]! : k[3]!;
    const ins = [input, f];
    if (fused.length) ins.push(g.random(`${name}/bias`, [outC], 1, 0, 0.1));
    const attr: Record<string, Attr> = { strides: A.ints([1, stride, stride, 1]), padding: A.s(pad), data_format: A.s('NHWC'), dilations: A.ints([1, 1, 1, 1]), ...extra };
    if (fused.length) Object.assign(attr, { fused_ops: A.strs(fused), num_args: A.i(1), epsilon: A.f(0) });
    return g.op(op, name, ins, attr);
  };
  // Input scaling by constants, as a model with preprocessing inside it has: x/127.5 − 1 (or,
  // as TF Hub image models do, x·2 − 1 of a 0…1 input).
  const m = g.op('Mul', 'preprocess/mul', [x, g.constant('preprocess/scale', [], [opts.unitInput ? 2 : 1 / 127.5])]);
  const s = g.op('Sub', 'preprocess/sub', [m, g.constant('preprocess/one', [], [1])]);
  const stem = conv('stem/Relu', s, [3, 3, 3, 8], 2, 'SAME', ['BiasAdd', 'Relu']);
  const dw = conv('block1/dw', stem, [3, 3, 8, 1], 1, 'SAME', ['BiasAdd', 'Relu6'], {}, 'FusedDepthwiseConv2dNative');
  const pw = g.op('Conv2D', 'block1/pw/Conv2D', [dw, g.random('block1/pw/filter', [1, 1, 8, 8], 8)], { strides: A.ints([1, 1, 1, 1]), padding: A.s('VALID'), data_format: A.s('NHWC'), dilations: A.ints([1, 1, 1, 1]) });
  const bn = g.op('FusedBatchNormV3', 'block1/bn/FusedBatchNormV3', [
    pw,
    g.random('block1/bn/gamma', [8], 3, 1, 0.2),
    g.random('block1/bn/beta', [8], 3, 0, 0.1),
    g.random('block1/bn/mean', [8], 3, 0, 0.2),
    g.random('block1/bn/variance', [8], 3, 1, 0.3),
  ], { epsilon: A.f(0.001), data_format: A.s('NHWC'), is_training: A.b(false), U: A.type() });
  const relu = g.op('Relu', 'block1/Relu', [bn]);
  const add = g.op('AddV2', 'block1/add', [stem, relu]);
  // swish: x · sigmoid(x)
  const c2 = conv('block2/conv', add, [3, 3, 8, 12], 1, 'SAME', ['BiasAdd']);
  const sig = g.op('Sigmoid', 'block2/sigmoid', [c2]);
  const swish = g.op('Mul', 'block2/swish', [c2, sig]);
  // hard-swish: x · relu6(x + 3) · 1/6
  const ca = conv('branch_a/conv', swish, [1, 1, 12, 8], 1, 'VALID', ['BiasAdd']);
  const a3 = g.op('AddV2', 'branch_a/add3', [ca, g.constant('branch_a/three', [], [3])]);
  const r6 = g.op('Relu6', 'branch_a/relu6', [a3]);
  const mul = g.op('Mul', 'branch_a/mul', [ca, r6]);
  const hswish = g.op('Mul', 'branch_a/hswish', [mul, g.constant('branch_a/sixth', [], [1 / 6])]);
  // Explicit zero padding, an unfused Conv2D + BiasAdd and a LeakyRelu.
  const paddings = g.constant('branch_b/paddings', [4, 2], [0, 0, 1, 1, 1, 1, 0, 0], 'int32');
  const pad = opts.mirrorPad
    ? g.op('MirrorPad', 'branch_b/pad', [swish, paddings], { Tpaddings: A.type('DT_INT32'), mode: A.s(opts.mirrorPad) })
    : g.op('Pad', 'branch_b/pad', [swish, paddings], { Tpaddings: A.type('DT_INT32') });
  const cb = g.op('Conv2D', 'branch_b/conv', [pad, g.random('branch_b/filter', [3, 3, 12, 8], 108)], { strides: A.ints([1, 1, 1, 1]), padding: A.s('VALID'), data_format: A.s('NHWC'), dilations: A.ints([1, 1, 1, 1]) });
  const ba = g.op('BiasAdd', 'branch_b/BiasAdd', [cb, g.random('branch_b/bias', [8], 1, 0, 0.1)], { data_format: A.s('NHWC') });
  const leaky = g.op('LeakyRelu', 'branch_b/leaky', [ba], { alpha: A.f(0.1) });
  const cat = g.op('ConcatV2', 'concat', [hswish, leaky, g.constant('concat/axis', [], [-1], 'int32')], { N: A.i(2), Tidx: A.type('DT_INT32') });
  const pool = g.op('MaxPool', 'pool', [cat], { ksize: A.ints([1, 2, 2, 1]), strides: A.ints([1, 2, 2, 1]), padding: A.s('VALID'), data_format: A.s('NHWC') });
  const avg = g.op('AvgPool', 'avgpool', [pool], { ksize: A.ints([1, 3, 3, 1]), strides: A.ints([1, 1, 1, 1]), padding: A.s(opts.avgPadding ?? 'SAME'), data_format: A.s('NHWC') });
  const head = conv('head_conv', avg, [3, 3, 16, 16], 1, 'SAME', ['BiasAdd', 'Elu']);
  const gap = g.op('Mean', 'gap', [head, g.constant('gap/axes', [2], [1, 2], 'int32')], { keep_dims: A.b(true), Tidx: A.type('DT_INT32') });
  let beforeFlat = gap;
  if (opts.squeeze) {
    const sq = g.op('Squeeze', 'squeeze', [gap], { squeeze_dims: A.ints([1, 2]) });
    const e1 = g.op('ExpandDims', 'expand1', [sq, g.constant('expand1/axis', [], [1], 'int32')], { Tdim: A.type('DT_INT32') });
    beforeFlat = g.op('ExpandDims', 'expand2', [e1, g.constant('expand2/axis', [], [-2], 'int32')], { Tdim: A.type('DT_INT32') });
  }
  const flat = g.op('Reshape', 'flatten', [beforeFlat, g.constant('flatten/shape', [2], [-1, 16], 'int32')], { Tshape: A.type('DT_INT32') });
  // The head's weights stored [classes, features] and read transposed.
  const logits = g.op('_FusedMatMul', 'logits', [flat, g.random('logits/kernel', [5, 16], 16, 0, 2), g.random('logits/bias', [5], 1, 0, 0.1)], {
    transpose_a: A.b(false),
    transpose_b: A.b(true),
    fused_ops: A.strs(['BiasAdd']),
    num_args: A.i(1),
    epsilon: A.f(0),
  });
  const probs = g.op('Softmax', 'probs', [logits]);
  g.op('Identity', 'Identity', [probs]);
  g.write(dir, GRAPH_CLASSES, 'Identity');
}

/** tfjs-converter's own GraphModel, loaded from the folder's files (model.json and its shards). */
export async function loadTfjsGraphModel(dir: string): Promise<tf.GraphModel> {
  const json = JSON.parse(readFileSync(join(dir, 'model.json'), 'utf8'));
  const shards = json.weightsManifest.flatMap((g: { paths: string[] }) => g.paths.map((p) => readFileSync(join(dir, p))));
  const all = Buffer.concat(shards);
  const handler: tf.io.IOHandler = {
    load: async () => ({
      modelTopology: json.modelTopology,
      format: json.format,
      generatedBy: json.generatedBy,
      convertedBy: json.convertedBy,
      signature: json.signature,
      weightSpecs: json.weightsManifest.flatMap((g: { weights: tf.io.WeightsManifestEntry[] }) => g.weights),
      weightData: all.buffer.slice(all.byteOffset, all.byteOffset + all.byteLength),
    }),
  };
  return tf.loadGraphModel(handler);
}
