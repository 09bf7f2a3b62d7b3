// Compiles a Keras-converted LayersModel (topology + weights) into a GraphNet of plain ops:
// batch-norm folded into the preceding convolution, activation fused into the convolution where
// nobody needs the pre-activation, softmax split off so the logits are always reachable.
import * as tf from '@tensorflow/tfjs-core';
import { ELEMENTWISE_NAMES, elementwiseByName, type ElementwiseFn } from './elementwise.js';
import type { KerasGraph, KerasLayer } from './keras-topology.js';
import { GraphNet, type GraphNode, type NetNode } from './network.js';
import type { Activation, ConvSpec } from './ops.js';
import type { PaddingMode } from './padding.js';

export interface CompiledModel {
  net: GraphNet;
  /** Node index whose output holds the class logits ([N, classes] after flattening). */
  logitsNode: number;
  /** Node index of the model's own output (probabilities when the model ends in softmax). */
  outputNode: number;
  /** Layers that were fused away and can no longer be tapped (for error messages). */
  fusedAway: Map<string, string>;
  /** Whether the model's own head ends in softmax (else probabilities are a softmax we apply). */
  softmaxHead: boolean;
  /** Channels of the model's own input (1 for a grey model: it sees the luminance of RGB). */
  inputChannels: number;
}

/**
 * How RGB pixels (after scale and offset) become the model's input channels: row c holds the
 * weights of R, G, B in input channel c. Compiled as a 1×1 convolution after the input, so every
 * pixel-space path (frames, synthesis, back-projection) stays RGB while the model sees its own
 * channels, and gradients reach the RGB pixels through it.
 */
export type InputMix = [number, number, number][];

export interface CompileOptions {
  logitsHint?: string;
  inputMix?: InputMix | null;
}

type Weights = Record<string, tf.Tensor>;

/** The Keras layer types compileKeras turns into ops (README › Models lists them for users). */
export const SUPPORTED_LAYERS = [
  'InputLayer', 'Conv2D', 'DepthwiseConv2D', 'BatchNormalization', 'Activation', 'ReLU', 'LeakyReLU', 'Softmax',
  'MaxPooling2D', 'AveragePooling2D', 'GlobalAveragePooling2D', 'GlobalMaxPooling2D', 'Reshape', 'Flatten',
  'Dropout', 'SpatialDropout2D', 'GaussianNoise', 'GaussianDropout', 'Dense', 'Add', 'Concatenate', 'ZeroPadding2D',
  'SeparableConv2D', 'Multiply', 'Rescaling', 'Normalization', 'ActivityRegularization', 'ELU', 'Identity',
  // No Keras layer: what a graph model's MirrorPad op is restated as (graph-model/to-layers.ts).
  'MirrorPadding2D',
] as const;

function unsupported(l: KerasLayer): string {
  return `layer "${l.name}" is a ${l.className} layer, which DeepVis cannot compile (supported: ${SUPPORTED_LAYERS.filter((t) => t !== 'InputLayer').join(', ')}) — not supported yet`;
}

function badActivation(l: KerasLayer, name: unknown): Error {
  return new Error(`${l.name}: activation "${String(name)}" is not supported yet (supported: linear, relu, relu6, ${ELEMENTWISE_NAMES.join(', ')})`);
}

const isSoftmaxName = (a: unknown) => typeof a === 'string' && elementwiseByName(a) === 'softmax';

export interface ModelHead {
  /** The layer (or "<layer>:logits" for a softmax fused into it) whose output is the class logits. */
  logits: string;
  /** A Dense/Conv layer whose own activation is the softmax, split off when compiled. */
  fused: string | null;
  /** Whether the head ends in softmax at all. */
  softmax: boolean;
}

const PASS_THROUGH = new Set(['Reshape', 'Flatten', 'Dropout', 'SpatialDropout2D', 'GaussianNoise', 'GaussianDropout', 'ActivityRegularization', 'Identity']);

/**
 * Where the logits are: walk back from the output through reshapes and dropouts to a softmax
 * (a layer, or the activation of a Dense or convolution) and take what feeds it. A logits layer
 * named by a descriptor wins; when it names a layer with a fused softmax, its pre-softmax value is meant.
 */
export function findHead(graph: KerasGraph, logitsHint?: string): ModelHead {
  const byName = new Map(graph.layers.map((l) => [l.name, l]));
  const fusedSoftmax = (l: KerasLayer | undefined) =>
    !!l && ['Dense', 'Conv2D', 'SeparableConv2D', 'DepthwiseConv2D'].includes(l.className) && isSoftmaxName(l.config.activation);
  let softmax = false;
  for (let cur = byName.get(graph.outputs[0]!); cur; cur = byName.get(cur.inputs[0]!)) {
    const isLayer = (cur.className === 'Activation' && isSoftmaxName(cur.config.activation)) || cur.className === 'Softmax';
    if (isLayer) {
      softmax = true;
      if (!logitsHint) return { logits: cur.inputs[0]!, fused: null, softmax };
      break;
    }
    if (fusedSoftmax(cur)) {
      softmax = true;
      if (!logitsHint) return { logits: `${cur.name}:logits`, fused: cur.name, softmax };
      break;
    }
    if (!PASS_THROUGH.has(cur.className)) break;
  }
  if (logitsHint) {
    const hinted = byName.get(logitsHint);
    if (fusedSoftmax(hinted)) return { logits: `${logitsHint}:logits`, fused: logitsHint, softmax: true };
    return { logits: logitsHint, fused: null, softmax };
  }
  return { logits: graph.outputs[0]!, fused: null, softmax };
}

/**
 * Refuse a graph with a layer type the compiler lacks, before any weights are read: lets the model
 * list say what is wrong without loading anything.
 */
export function checkSupportedLayers(graph: KerasGraph): void {
  const known = new Set<string>(SUPPORTED_LAYERS);
  const bad = graph.layers.find((l) => !known.has(l.className));
  if (bad) throw new Error(unsupported(bad));
}

class WeightBook {
  private used = new Set<string>();
  constructor(private readonly weights: Weights) {}

  find(layer: string, param: string): tf.Tensor | null {
    const want = `${layer}/${param}`;
    // An exact name first: layer "conv" must not take the weights of a layer "block/conv".
    for (const key of [want, `${want}:0`]) {
      if (this.weights[key]) {
        this.used.add(key);
        return this.weights[key];
      }
    }
    for (const key of Object.keys(this.weights)) {
      const k = key.replace(/:\d+$/, '');
      if (k === want || k.endsWith(`/${want}`)) {
        this.used.add(key);
        return this.weights[key]!;
      }
    }
    return null;
  }

  get(layer: string, param: string): tf.Tensor {
    const w = this.find(layer, param);
    if (!w) throw new Error(`weights for ${layer}/${param} are missing from the model's weight files`);
    return w;
  }
}

function pair(v: unknown, what: string): [number, number] {
  if (typeof v === 'number') return [v, v];
  if (Array.isArray(v) && v.length === 2) return [Number(v[0]), Number(v[1])];
  throw new Error(`bad ${what}: ${JSON.stringify(v)}`);
}

function padding(v: unknown): PaddingMode {
  if (v === 'same' || v === 'valid') return v;
  throw new Error(`padding "${String(v)}" is not supported (same or valid)`);
}

/** Map a Keras activation name to one the fused kernels handle, or null. */
function simpleActivation(name: unknown): Activation | null {
  switch (name ?? 'linear') {
    case 'linear':
      return { kind: 'linear' };
    case 'relu':
      return { kind: 'relu' };
    case 'relu6':
      return { kind: 'relu6' };
    default:
      return null;
  }
}

/** The activation an activation-only layer applies, or null when the layer is not one. */
function activationLayer(l: KerasLayer): Activation | null {
  const c = l.config;
  if (l.className === 'Activation') return simpleActivation(c.activation);
  if (l.className === 'LeakyReLU') return { kind: 'leaky', alpha: Number(c.alpha ?? c.negative_slope ?? 0.3) };
  if (l.className === 'ReLU') {
    const max = c.max_value == null ? null : Number(c.max_value);
    const slope = Number(c.negative_slope ?? 0);
    const threshold = Number(c.threshold ?? 0);
    if (threshold !== 0) return null;
    if (max === null && slope === 0) return { kind: 'relu' };
    if (max === 6 && slope === 0) return { kind: 'relu6' };
    if (max === null && slope > 0 && slope < 1) return { kind: 'leaky', alpha: slope };
  }
  return null;
}

function foldBatchNorm(
  filter: Float32Array,
  outChannels: number,
  bias: Float32Array | null,
  bn: KerasLayer,
  book: WeightBook,
): { filter: Float32Array; bias: Float32Array } {
  const eps = Number(bn.config.epsilon ?? 1e-3);
  const axis = Number(bn.config.axis ?? -1);
  if (axis !== -1 && axis !== 3) throw new Error(`${bn.name}: batch normalisation over axis ${axis} is not supported`);
  const read = (p: string, fill: number) => {
    const t = book.find(bn.name, p);
    return t ? (t.dataSync() as Float32Array) : new Float32Array(outChannels).fill(fill);
  };
  const gamma = bn.config.scale === false ? new Float32Array(outChannels).fill(1) : read('gamma', 1);
  const beta = bn.config.center === false ? new Float32Array(outChannels).fill(0) : read('beta', 0);
  const mean = book.get(bn.name, 'moving_mean').dataSync() as Float32Array;
  const variance = book.get(bn.name, 'moving_variance').dataSync() as Float32Array;
  const scale = new Float64Array(outChannels);
  const newBias = new Float32Array(outChannels);
  for (let c = 0; c < outChannels; c++) {
    scale[c] = gamma[c]! / Math.sqrt(variance[c]! + eps);
    newBias[c] = beta[c]! + ((bias ? bias[c]! : 0) - mean[c]!) * scale[c]!;
  }
  const out = new Float32Array(filter.length);
  // The output channel is the fastest-varying index of both conv [kh,kw,in,out] and depthwise
  // [kh,kw,C,m] (flattened C*m) filters.
  for (let i = 0; i < filter.length; i++) out[i] = filter[i]! * scale[i % outChannels]!;
  return { filter: out, bias: newBias };
}

/**
 * Compile inside a tf scope: a model that fails half-way (a weight missing from the files, an
 * activation we lack) leaves none of the tensors folded so far behind; on success the network's
 * own tensors are kept.
 */
export function compileKeras(graph: KerasGraph, weights: Weights, keep: Set<string>, opts: CompileOptions = {}): CompiledModel {
  let compiled: CompiledModel | null = null;
  tf.tidy(() => {
    compiled = compileGraph(graph, weights, keep, opts);
    keepTensors(compiled.net.nodes);
  });
  return compiled!;
}

function keepTensors(v: unknown, depth = 0): void {
  if (v instanceof tf.Tensor) tf.keep(v);
  else if (v && typeof v === 'object' && depth < 6) for (const x of Object.values(v)) keepTensors(x, depth + 1);
}

function compileGraph(graph: KerasGraph, weights: Weights, keep: Set<string>, opts: CompileOptions): CompiledModel {
  const book = new WeightBook(weights);
  const byName = new Map(graph.layers.map((l) => [l.name, l]));
  const consumers = new Map<string, KerasLayer[]>();
  for (const l of graph.layers) for (const i of l.inputs) consumers.set(i, [...(consumers.get(i) ?? []), l]);
  const soleConsumer = (name: string): KerasLayer | null => {
    const c = consumers.get(name) ?? [];
    return c.length === 1 ? c[0]! : null;
  };

  const outputName = graph.outputs[0]!;
  const head = findHead(graph, opts.logitsHint);
  const logitsName = head.logits;
  const mustKeep = new Set([...keep, outputName, logitsName]);

  const nodes: GraphNode[] = [];
  const nodeOf = new Map<string, number>();
  const fusedAway = new Map<string, string>();
  const absorbed = new Set<string>();
  const push = (names: string[], inputs: string[], op: NetNode): number => {
    const idx = nodes.length;
    nodes.push({ names, inputs: inputs.map((n) => {
      const j = nodeOf.get(n);
      if (j === undefined) throw new Error(`layer input "${n}" is not defined before use`);
      return j;
    }), op });
    for (const n of names) nodeOf.set(n, idx);
    return idx;
  };

  for (const l of graph.layers) {
    if (absorbed.has(l.name)) continue;
    const c = l.config;
    switch (l.className) {
      case 'InputLayer':
        if (opts.inputMix) {
          push([`${l.name}:rgb`], [], { kind: 'input' });
          const mix = opts.inputMix;
          const w = new Float32Array(3 * mix.length);
          mix.forEach((row, ch) => row.forEach((v, rgb) => (w[rgb * mix.length + ch] = v)));
          push([l.name], [`${l.name}:rgb`], { kind: 'conv', spec: convSpec(w, [1, 1, 3, mix.length], null, [1, 1], 'valid', { kind: 'linear' }, false) });
        } else push([l.name], [], { kind: 'input' });
        break;
      case 'Conv2D':
      case 'DepthwiseConv2D':
      case 'SeparableConv2D': {
        const separable = l.className === 'SeparableConv2D';
        const depthwise = l.className === 'DepthwiseConv2D';
        const dil = pair(c.dilation_rate ?? 1, 'dilation_rate');
        if (dil[0] !== 1 || dil[1] !== 1) throw new Error(`${l.name}: dilated convolutions are not supported yet`);
        if (c.data_format && c.data_format !== 'channels_last') throw new Error(`${l.name}: only channels_last is supported`);
        let inputs = l.inputs;
        if (separable) {
          // Depthwise then pointwise: the depthwise half is a node of its own (linear, no bias).
          const dk = book.get(l.name, 'depthwise_kernel');
          const dshape = dk.shape as [number, number, number, number];
          const spec = convSpec(Float32Array.from(dk.dataSync() as Float32Array), dshape, null, pair(c.strides ?? 1, 'strides'), padding(c.padding ?? 'valid'), { kind: 'linear' }, true);
          push([`${l.name}:depthwise`], l.inputs, { kind: 'conv', spec });
          inputs = [`${l.name}:depthwise`];
        }
        const kernelT = book.get(l.name, depthwise ? 'depthwise_kernel' : separable ? 'pointwise_kernel' : 'kernel');
        const shape = kernelT.shape as [number, number, number, number];
        const outChannels = depthwise ? shape[2] * shape[3] : shape[3];
        let filter: Float32Array = Float32Array.from(kernelT.dataSync() as Float32Array);
        let bias: Float32Array | null = c.use_bias === false ? null : (book.find(l.name, 'bias')?.dataSync() as Float32Array | undefined) ?? null;
        let act = simpleActivation(c.activation);
        // An activation the fused kernel lacks (swish, gelu… or a softmax head) follows as a node.
        const after: ElementwiseFn | null = act ? null : elementwiseByName(String(c.activation));
        if (!act && !after) throw badActivation(l, c.activation);
        act ??= { kind: 'linear' };
        let tail = l.name;
        let extraAct: Activation | null = null;
        // Fold a following batch-norm (only valid when the conv itself is linear).
        const next = soleConsumer(tail);
        if (!after && act.kind === 'linear' && next?.className === 'BatchNormalization' && !mustKeep.has(tail)) {
          const folded = foldBatchNorm(filter, outChannels, bias, next, book);
          filter = folded.filter;
          bias = folded.bias;
          fusedAway.set(tail, next.name);
          absorbed.add(next.name);
          tail = next.name;
        }
        const following = soleConsumer(tail);
        const followingAct = following ? activationLayer(following) : null;
        if (!after && act.kind === 'linear' && following && followingAct && !mustKeep.has(tail)) {
          extraAct = followingAct;
          fusedAway.set(tail, following.name);
          absorbed.add(following.name);
          tail = following.name;
        }
        act = extraAct ?? act;
        const spec = separable
          ? convSpec(filter, shape, bias, [1, 1], 'valid', act, false)
          : convSpec(filter, shape, bias, pair(c.strides ?? 1, 'strides'), padding(c.padding ?? 'valid'), act, depthwise);
        // Only the last absorbed layer's name resolves to the fused output: the pre-activation
        // values of the others no longer exist (fusedAway says where they went).
        if (after) {
          const pre = l.name === head.fused ? `${l.name}:logits` : `${l.name}:pre`;
          push([pre], inputs, { kind: 'conv', spec });
          push([l.name], [pre], { kind: 'nonlinear', fn: after });
        } else push([tail], inputs, { kind: 'conv', spec });
        break;
      }
      case 'BatchNormalization': {
        const ch = book.get(l.name, 'moving_mean').shape[0]!;
        const eye = new Float32Array(ch).fill(1);
        const folded = foldBatchNorm(eye, ch, null, l, book);
        push([l.name], l.inputs, { kind: 'affine', scale: tf.tensor1d(folded.filter), shift: tf.tensor1d(folded.bias) });
        break;
      }
      case 'Activation':
      case 'ReLU':
      case 'LeakyReLU':
      case 'Softmax': {
        const act = activationLayer(l);
        if (act) push([l.name], l.inputs, { kind: 'act', act });
        else if (l.className === 'ReLU') {
          const max = c.max_value == null ? null : Number(c.max_value);
          if (Number(c.threshold ?? 0) !== 0 || Number(c.negative_slope ?? 0) !== 0 || max === null) {
            throw new Error(`${l.name}: a ReLU layer with threshold or negative_slope and max_value is not supported yet`);
          }
          push([l.name], l.inputs, { kind: 'nonlinear', fn: 'relu_max', max });
        } else {
          const fn = l.className === 'Softmax' ? 'softmax' : elementwiseByName(String(c.activation));
          if (!fn) throw badActivation(l, c.activation);
          push([l.name], l.inputs, { kind: 'nonlinear', fn });
        }
        break;
      }
      case 'ELU':
        if (Number(c.alpha ?? 1) !== 1) throw new Error(`${l.name}: an ELU layer with alpha ${String(c.alpha)} is not supported yet (alpha 1 is)`);
        push([l.name], l.inputs, { kind: 'nonlinear', fn: 'elu' });
        break;
      case 'Rescaling': {
        const scale = [c.scale ?? 1].flat().map(Number);
        const offset = [c.offset ?? 0].flat().map(Number);
        push([l.name], l.inputs, { kind: 'affine', scale: tf.tensor1d(scale), shift: tf.tensor1d(offset) });
        break;
      }
      case 'Normalization': {
        // (x − mean) / sqrt(variance), mean and variance from the adapted weights or the config.
        const read = (p: string) => book.find(l.name, p)?.dataSync() ?? (c[p] == null ? null : Float32Array.from([c[p] as number | number[]].flat().map(Number)));
        const mean = read('mean');
        const variance = read('variance');
        if (!mean || !variance) throw new Error(`${l.name}: a Normalization layer without its mean and variance weights`);
        const inv = Float32Array.from(variance, (v) => 1 / Math.sqrt(Math.max(v, 1e-7)));
        push([l.name], l.inputs, { kind: 'affine', scale: tf.tensor1d(inv), shift: tf.tensor1d(Float32Array.from(mean, (m, i) => -m * inv[i % inv.length]!)) });
        break;
      }
      case 'Multiply':
        push([l.name], l.inputs, { kind: 'mul' });
        break;
      case 'MaxPooling2D':
      case 'AveragePooling2D': {
        const size = pair(c.pool_size ?? 2, 'pool_size');
        push([l.name], l.inputs, {
          kind: 'pool',
          spec: {
            kind: l.className === 'MaxPooling2D' ? 'max' : 'avg',
            size,
            strides: pair(c.strides ?? size, 'strides'),
            padding: padding(c.padding ?? 'valid'),
          },
        });
        break;
      }
      case 'GlobalAveragePooling2D':
      case 'GlobalMaxPooling2D':
        push([l.name], l.inputs, {
          kind: 'globalPool',
          op: l.className === 'GlobalAveragePooling2D' ? 'mean' : 'max',
          keepDims: c.keepdims === true,
        });
        break;
      case 'Reshape':
        push([l.name], l.inputs, { kind: 'reshape', target: (c.target_shape as number[]).map(Number) });
        break;
      case 'Flatten':
        push([l.name], l.inputs, { kind: 'flatten' });
        break;
      case 'Dropout':
      case 'SpatialDropout2D':
      case 'GaussianNoise':
      case 'GaussianDropout':
      case 'ActivityRegularization':
      case 'Identity':
        // Inference: identity. Alias the input's node.
        nodes[nodeOf.get(l.inputs[0]!)!]!.names.push(l.name);
        nodeOf.set(l.name, nodeOf.get(l.inputs[0]!)!);
        break;
      case 'Dense': {
        const kernel = book.get(l.name, 'kernel') as tf.Tensor2D;
        const bias = c.use_bias === false ? null : (book.find(l.name, 'bias') as tf.Tensor1D | null);
        const keepKernel = tf.clone(kernel);
        const keepBias = bias ? tf.clone(bias) : null;
        const act = simpleActivation(c.activation);
        if (act) push([l.name], l.inputs, { kind: 'dense', kernel: keepKernel, bias: keepBias, act });
        else {
          const fn = elementwiseByName(String(c.activation));
          if (!fn) throw badActivation(l, c.activation);
          const pre = l.name === head.fused ? `${l.name}:logits` : `${l.name}:pre`;
          push([pre], l.inputs, { kind: 'dense', kernel: keepKernel, bias: keepBias, act: { kind: 'linear' } });
          push([l.name], [pre], { kind: 'nonlinear', fn });
        }
        break;
      }
      case 'Add':
        push([l.name], l.inputs, { kind: 'add' });
        break;
      case 'Concatenate': {
        // A negative axis counts from the end of whatever rank the inputs have (2 after a Dense).
        push([l.name], l.inputs, { kind: 'concat', axis: Number(c.axis ?? -1) });
        break;
      }
      case 'ZeroPadding2D': {
        const p = c.padding as unknown;
        let pads: [[number, number], [number, number]];
        if (typeof p === 'number') pads = [[p, p], [p, p]];
        else if (Array.isArray(p) && typeof p[0] === 'number') pads = [[p[0], p[0]], [Number(p[1]), Number(p[1])]];
        else pads = [pair((p as unknown[])[0], 'padding'), pair((p as unknown[])[1], 'padding')];
        push([l.name], l.inputs, { kind: 'zeroPad', pads });
        break;
      }
      case 'MirrorPadding2D': {
        const mode = String(c.mode ?? 'reflect').toLowerCase();
        if (mode !== 'reflect' && mode !== 'symmetric') throw new Error(`${l.name}: mirror padding mode "${mode}" is not supported yet`);
        push([l.name], l.inputs, { kind: 'mirrorPad', pads: c.padding as [[number, number], [number, number]], mode });
        break;
      }
      default:
        throw new Error(unsupported(l));
    }
  }
  const logitsNode = nodeOf.get(logitsName);
  if (logitsNode === undefined) throw new Error(`logits layer "${logitsName}" not found`);
  return { net: new GraphNet(nodes), logitsNode, outputNode: nodeOf.get(outputName)!, fusedAway, softmaxHead: head.softmax, inputChannels: graph.inputShape[graph.inputShape.length - 1] ?? 3 };
}

function convSpec(
  filter: Float32Array,
  shape: [number, number, number, number],
  bias: Float32Array | null,
  strides: [number, number],
  pad: PaddingMode,
  activation: Activation,
  depthwise: boolean,
): ConvSpec {
  const filterT = tf.tensor4d(filter, shape);
  const filterBack = tf.tidy(() => {
    const flipped = tf.reverse(filterT, [0, 1]);
    return depthwise ? flipped : tf.transpose(flipped, [0, 1, 3, 2]);
  }) as tf.Tensor4D;
  return { depthwise, filter: filterT, filterBack, bias: bias ? tf.tensor1d(bias) : null, strides, padding: pad, activation };
}
