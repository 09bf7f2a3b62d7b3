// A TF.js graph model's GraphDef restated as the layer list the compiler reads (KerasGraph), so a
// graph model compiles through the same compiler into the same GraphNet as a layers model: one
// definition of each op, every gradient rule and export shared. Each TensorFlow op becomes the
// Keras layer that computes the same function (a fused conv with BiasAdd+Relu a Conv2D with bias
// and relu, FusedBatchNorm a BatchNormalization, a const Mul/Sub a Rescaling…), named by its node.
// Without weight values (listing a folder) only the structure is read: what depends on a
// constant's value is filled in when the model is loaded.
import * as tf from '@tensorflow/tfjs-core';
import type { KerasGraph, KerasLayer } from '../keras-topology.js';
import { pad1d } from '../padding.js';
import { attrs, type TfGraph, type TfNode } from './graphdef.js';

/** The TensorFlow ops a graph model may use (README › your own model lists them for users). */
export const SUPPORTED_OPS = [
  'Placeholder', 'Const', 'Identity', 'Conv2D', 'DepthwiseConv2dNative', '_FusedConv2D', 'FusedDepthwiseConv2dNative',
  'MatMul', '_FusedMatMul', 'BiasAdd', 'FusedBatchNorm', 'FusedBatchNormV2', 'FusedBatchNormV3', 'Relu', 'Relu6', 'LeakyRelu',
  'Elu', 'Sigmoid', 'Tanh', 'Softmax', 'Add', 'AddV2', 'AddN', 'Sub', 'Mul', 'RealDiv', 'MaxPool', 'AvgPool', 'Mean', 'Max',
  'ConcatV2', 'Pad', 'PadV2', 'MirrorPad', 'Reshape', 'Squeeze', 'ExpandDims',
] as const;

/** The fused activations of _FusedConv2D / _FusedMatMul that are a Keras activation name as they are. */
const NAMED_ACTIVATIONS = new Set(['relu', 'relu6', 'elu', 'sigmoid', 'tanh']);

export interface ConstSource {
  /** A constant's shape (from the weights manifest), or undefined when there is no such weight. */
  shape(name: string): number[] | undefined;
  /** A constant's value, or null when only the structure is being read. */
  value(name: string): tf.Tensor | null;
}

export interface Translated {
  graph: KerasGraph;
  /** Weights by "<layer>/<param>", as the compiler looks them up (new tensors: the caller disposes them). */
  weights: Record<string, tf.Tensor>;
}

type Shape = (number | null)[];

function refuse(n: TfNode, what: string): never {
  throw new Error(`node "${n.name}" (${n.op}): ${what} — not supported yet`);
}

function unsupportedOp(n: TfNode): never {
  throw new Error(`node "${n.name}" uses the op ${n.op}, which DeepVis cannot compile (supported: ${SUPPORTED_OPS.join(', ')}) — not supported yet`);
}

const PASS_OPS = new Set(['Identity', 'StopGradient', 'Snapshot', 'PreventGradient']);

/** Throws one line naming the node and its op. */
export function graphToLayers(g: TfGraph, consts: ConstSource): Translated {
  return new Translator(g, consts).run();
}

class Translator {
  private readonly layers: KerasLayer[] = [];
  private readonly byName = new Map<string, KerasLayer>();
  private readonly shapes = new Map<string, Shape>();
  /** TF node → the layer whose output is its value. */
  private readonly ref = new Map<string, string>();
  /** TF node → the weight holding its value, for constants (and Identity of a constant). */
  private readonly constOf = new Map<string, string>();
  private readonly consumers = new Map<string, number>();
  private readonly dropped = new Set<string>();
  private readonly weights: Record<string, tf.Tensor> = {};
  private readonly nodes: Map<string, TfNode>;

  constructor(
    private readonly g: TfGraph,
    private readonly consts: ConstSource,
  ) {
    this.nodes = new Map(g.nodes.map((n) => [n.name, n]));
    for (const n of g.nodes) for (const i of n.inputs) this.consumers.set(i, (this.consumers.get(i) ?? 0) + 1);
  }

  run(): Translated {
    try {
      for (const n of this.g.nodes) this.node(n);
    } catch (e) {
      tf.dispose(Object.values(this.weights));
      throw e;
    }
    const out = this.ref.get(this.g.output);
    if (!out) throw new Error(`the output node "${this.g.output}" is a constant, not computed from the input`);
    const inputShape = attrs.shape(this.g.input, 'shape');
    if (!inputShape || inputShape.length !== 4) {
      throw new Error(`input "${this.g.input.name}": the Placeholder's shape is ${inputShape ? `[${inputShape.map((d) => d ?? -1).join(', ')}]` : 'unknown'}; DeepVis needs [batch, height, width, channels] — convert the model with a fixed input shape`);
    }
    return {
      graph: { layers: this.layers.filter((l) => !this.dropped.has(l.name)), inputShape: inputShape.slice(1), outputs: [out] },
      weights: this.weights,
    };
  }

  // ---- helpers ----

  private emit(className: string, name: string, config: Record<string, unknown>, inputs: string[], shape: Shape): KerasLayer {
    const l: KerasLayer = { className, name, config: { name, ...config }, inputs };
    this.layers.push(l);
    this.byName.set(name, l);
    this.shapes.set(name, shape);
    return l;
  }

  private isConst(tfName: string): boolean {
    return this.constOf.has(tfName);
  }

  /** The layer computing input k of n (a tensor from the image, not a constant). */
  private tensorIn(n: TfNode, k: number): string {
    const name = n.inputs[k];
    if (name === undefined) refuse(n, `input ${k} is missing`);
    const l = this.ref.get(name);
    if (!l) refuse(n, `input ${k} ("${name}") is a constant where DeepVis expects a tensor computed from the image`);
    return l;
  }

  /** The weight name of constant input k of n. */
  private constIn(n: TfNode, k: number): string {
    const name = n.inputs[k];
    const w = name === undefined ? undefined : this.constOf.get(name);
    if (!w) refuse(n, `input ${k} ("${name ?? '?'}") must be a constant (weights)`);
    return w;
  }

  private constShape(n: TfNode, w: string): number[] {
    const s = this.consts.shape(w);
    if (!s) refuse(n, `its constant "${w}" is not in the weights manifest`);
    return s;
  }

  /** A constant's values as numbers (null while only the structure is read). */
  private numbers(w: string): number[] | null {
    const t = this.consts.value(w);
    return t ? Array.from(t.dataSync() as ArrayLike<number>) : null;
  }

  private setWeight(layer: string, param: string, t: tf.Tensor | null): void {
    if (t) this.weights[`${layer}/${param}`] = t;
  }

  private shapeOf(layer: string): Shape {
    return this.shapes.get(layer) ?? [];
  }

  private nhwc(n: TfNode): void {
    const f = attrs.str(n, 'data_format', 'NHWC');
    if (f !== 'NHWC') refuse(n, `data_format ${f} (DeepVis runs NHWC)`);
  }

  private pair4(n: TfNode, key: string): [number, number] {
    const v = attrs.ints(n, key) ?? [1, 1, 1, 1];
    if (v.length !== 4 || v[0] !== 1 || v[3] !== 1) refuse(n, `${key} [${v.join(', ')}] over batch or channels`);
    return [v[1]!, v[2]!];
  }

  private padding(n: TfNode): 'same' | 'valid' {
    const p = attrs.str(n, 'padding', 'VALID');
    if (p === 'SAME' || p === 'VALID') return p === 'SAME' ? 'same' : 'valid';
    refuse(n, `padding ${p}`);
  }

  private consumersOf(tfName: string): number {
    return this.consumers.get(tfName) ?? 0;
  }

  /** The TF node producing input k of n. */
  private producer(n: TfNode | undefined, k: number): TfNode | undefined {
    const name = n?.inputs[k];
    return name === undefined ? undefined : this.nodes.get(name);
  }

  /** Whether constant w holds `v` everywhere (assumed while values are unknown). */
  private constIs(w: string, v: number): boolean {
    const xs = this.numbers(w);
    if (!xs) return this.consts.shape(w) !== undefined && this.consts.shape(w)!.reduce((a, b) => a * b, 1) === 1;
    return xs.length > 0 && xs.every((x) => Math.abs(x - v) <= 1e-6 * Math.max(1, Math.abs(v)));
  }

  private spatialOut(inShape: Shape, k: [number, number], s: [number, number], pad: 'same' | 'valid', channels: number | null): Shape {
    const h = inShape[0] == null ? null : pad1d(inShape[0], k[0], s[0], pad).out;
    const w = inShape[1] == null ? null : pad1d(inShape[1], k[1], s[1], pad).out;
    return [h, w, channels];
  }

  // ---- ops ----

  private node(n: TfNode): void {
    switch (n.op) {
      case 'Const':
        this.constOf.set(n.name, n.name);
        return;
      case 'NoOp':
        return;
      case 'Placeholder':
      case 'PlaceholderWithDefault': {
        const shape = attrs.shape(n, 'shape') ?? [null, null, null, null];
        this.emit('InputLayer', n.name, { batch_input_shape: shape }, [], shape.slice(1));
        this.ref.set(n.name, n.name);
        return;
      }
      case 'Identity':
      case 'StopGradient':
      case 'Snapshot':
      case 'PreventGradient': {
        const src = n.inputs[0]!;
        if (this.isConst(src)) this.constOf.set(n.name, this.constOf.get(src)!);
        else {
          const x = this.tensorIn(n, 0);
          this.emit('Identity', n.name, {}, [x], this.shapeOf(x));
          this.ref.set(n.name, n.name);
        }
        return;
      }
      case 'Conv2D':
      case 'DepthwiseConv2dNative':
      case '_FusedConv2D':
      case 'FusedDepthwiseConv2dNative':
        return this.conv(n);
      case 'MatMul':
      case '_FusedMatMul':
        return this.matMul(n);
      case 'BiasAdd':
        return this.biasAdd(n);
      case 'FusedBatchNorm':
      case 'FusedBatchNormV2':
      case 'FusedBatchNormV3':
        return this.batchNorm(n);
      case 'Relu':
        return this.unary(n, 'ReLU', {});
      case 'Relu6':
        return this.unary(n, 'ReLU', { max_value: 6 });
      case 'LeakyRelu':
        return this.unary(n, 'LeakyReLU', { alpha: attrs.float(n, 'alpha', 0.2) });
      case 'Elu':
        return this.unary(n, 'ELU', { alpha: 1 });
      case 'Sigmoid':
        return this.unary(n, 'Activation', { activation: 'sigmoid' });
      case 'Tanh':
        return this.unary(n, 'Activation', { activation: 'tanh' });
      case 'Softmax':
        return this.unary(n, 'Softmax', { axis: -1 });
      case 'Add':
      case 'AddV2':
      case 'AddN':
      case 'Sub':
      case 'Mul':
      case 'RealDiv':
        return this.binary(n);
      case 'MaxPool':
      case 'AvgPool':
        return this.pool(n);
      case 'Mean':
      case 'Max':
        return this.reduce(n);
      case 'ConcatV2':
        return this.concat(n);
      case 'Pad':
      case 'PadV2':
      case 'MirrorPad':
        return this.pad(n);
      case 'Reshape':
      case 'Squeeze':
      case 'ExpandDims':
        return this.reshape(n);
      default:
        if (PASS_OPS.has(n.op)) return;
        unsupportedOp(n);
    }
  }

  private unary(n: TfNode, className: string, config: Record<string, unknown>): void {
    const x = this.tensorIn(n, 0);
    this.emit(className, n.name, config, [x], this.shapeOf(x));
    this.ref.set(n.name, n.name);
  }

  /** The activation of a fused conv/matmul: a Keras activation name, or a layer of its own after it. */
  private fusedActivation(n: TfNode, alphaInput: number): { activation: string; after: { className: string; config: Record<string, unknown> } | null } {
    const fused = attrs.strs(n, 'fused_ops').map((s) => s.toLowerCase());
    const act = fused[1];
    if (!act) return { activation: 'linear', after: null };
    if (NAMED_ACTIVATIONS.has(act)) return { activation: act, after: null };
    if (act === 'leakyrelu') return { activation: 'linear', after: { className: 'LeakyReLU', config: { alpha: attrs.float(n, 'leakyrelu_alpha', 0.2) } } };
    if (act === 'prelu') {
      const alpha = this.numbers(this.constIn(n, alphaInput));
      if (alpha && !alpha.every((a) => a === alpha[0])) refuse(n, 'a PReLU with a slope per channel');
      return { activation: 'linear', after: { className: 'LeakyReLU', config: { alpha: alpha ? alpha[0] : 0.2 } } };
    }
    refuse(n, `the fused activation ${act}`);
  }

  private fusedBias(n: TfNode): string | null {
    const fused = attrs.strs(n, 'fused_ops').map((s) => s.toLowerCase());
    if (!fused.length) return null;
    if (fused[0] !== 'biasadd') refuse(n, `fused_ops [${fused.join(', ')}] (DeepVis reads BiasAdd followed by an activation)`);
    return this.constIn(n, 2);
  }

  private conv(n: TfNode): void {
    this.nhwc(n);
    const depthwise = n.op.includes('Depthwise');
    const dil = attrs.ints(n, 'dilations');
    if (dil && dil.some((d) => d !== 1)) refuse(n, `dilations [${dil.join(', ')}] (dilated convolutions)`);
    let x = this.tensorIn(n, 0);
    const filter = this.constIn(n, 1);
    const fshape = this.constShape(n, filter);
    if (fshape.length !== 4) refuse(n, `a filter of shape [${fshape.join(', ')}]`);
    const strides = this.pair4(n, 'strides');
    let padding: 'same' | 'valid';
    if (attrs.str(n, 'padding') === 'EXPLICIT') {
      const e = attrs.ints(n, 'explicit_paddings') ?? [];
      if (e.length !== 8 || e[0] || e[1] || e[6] || e[7]) refuse(n, `explicit_paddings [${e.join(', ')}]`);
      const s = this.shapeOf(x);
      const padName = `${n.name}:pad`;
      this.emit('ZeroPadding2D', padName, { padding: [[e[2]!, e[3]!], [e[4]!, e[5]!]] }, [x], [s[0] == null ? null : s[0] + e[2]! + e[3]!, s[1] == null ? null : s[1] + e[4]! + e[5]!, s[2] ?? null]);
      x = padName;
      padding = 'valid';
    } else padding = this.padding(n);
    const fusedOp = n.op === '_FusedConv2D' || n.op === 'FusedDepthwiseConv2dNative';
    const bias = fusedOp ? this.fusedBias(n) : null;
    const { activation, after } = fusedOp ? this.fusedActivation(n, 3) : { activation: 'linear', after: null };
    const convName = after ? `${n.name}:conv` : n.name;
    const outC = depthwise ? fshape[2]! * fshape[3]! : fshape[3]!;
    const shape = this.spatialOut(this.shapeOf(x), [fshape[0]!, fshape[1]!], strides, padding, outC);
    this.setWeight(convName, depthwise ? 'depthwise_kernel' : 'kernel', this.consts.value(filter));
    if (bias) this.setWeight(convName, 'bias', this.consts.value(bias));
    this.emit(depthwise ? 'DepthwiseConv2D' : 'Conv2D', convName, {
      kernel_size: [fshape[0], fshape[1]],
      strides,
      padding,
      activation,
      use_bias: !!bias,
      data_format: 'channels_last',
      dilation_rate: [1, 1],
    }, [x], shape);
    if (after) this.emit(after.className, n.name, after.config, [convName], shape);
    this.ref.set(n.name, n.name);
  }

  private matMul(n: TfNode): void {
    if (attrs.bool(n, 'transpose_a')) refuse(n, 'transpose_a');
    const x = this.tensorIn(n, 0);
    const k = this.constIn(n, 1);
    const kshape = this.constShape(n, k);
    if (kshape.length !== 2) refuse(n, `a weight of shape [${kshape.join(', ')}]`);
    const transposeB = attrs.bool(n, 'transpose_b');
    const units = transposeB ? kshape[0]! : kshape[1]!;
    const fused = n.op === '_FusedMatMul';
    const bias = fused ? this.fusedBias(n) : null;
    const { activation, after } = fused ? this.fusedActivation(n, 3) : { activation: 'linear', after: null };
    const name = after ? `${n.name}:dense` : n.name;
    const kv = this.consts.value(k);
    this.setWeight(name, 'kernel', kv && transposeB ? tf.transpose(kv) : kv);
    if (bias) this.setWeight(name, 'bias', this.consts.value(bias));
    this.emit('Dense', name, { units, activation, use_bias: !!bias }, [x], [units]);
    if (after) this.emit(after.className, n.name, after.config, [name], [units]);
    this.ref.set(n.name, n.name);
  }

  /** Give a layer a new name (its sole consumer's): the merged op's output is that node's. */
  private rename(l: KerasLayer, name: string): void {
    for (const key of Object.keys(this.weights)) {
      if (key.startsWith(`${l.name}/`)) {
        this.weights[`${name}/${key.slice(l.name.length + 1)}`] = this.weights[key]!;
        delete this.weights[key];
      }
    }
    this.byName.delete(l.name);
    this.shapes.set(name, this.shapes.get(l.name)!);
    l.name = name;
    l.config = { ...l.config, name };
    this.byName.set(name, l);
  }

  private biasAdd(n: TfNode): void {
    this.nhwc(n);
    const x = this.tensorIn(n, 0);
    const b = this.constIn(n, 1);
    const prev = this.byName.get(x);
    const linearNoBias =
      prev && ['Conv2D', 'DepthwiseConv2D', 'Dense'].includes(prev.className) && prev.config.activation === 'linear' && prev.config.use_bias === false;
    if (prev && linearNoBias && this.consumersOf(n.inputs[0]!) === 1 && this.ref.get(n.inputs[0]!) === x) {
      // Conv2D + BiasAdd, as an unfused converter output has them: one layer with a bias.
      this.rename(prev, n.name);
      prev.config.use_bias = true;
      this.setWeight(n.name, 'bias', this.consts.value(b));
      this.ref.set(n.inputs[0]!, n.name);
      this.ref.set(n.name, n.name);
      return;
    }
    this.rescaling(n, x, b, 'add');
  }

  private batchNorm(n: TfNode): void {
    this.nhwc(n);
    if (attrs.bool(n, 'is_training')) refuse(n, 'is_training true (batch statistics); convert the model for inference');
    const x = this.tensorIn(n, 0);
    const [gamma, beta, mean, variance] = [1, 2, 3, 4].map((k) => this.constIn(n, k)) as [string, string, string, string];
    this.setWeight(n.name, 'gamma', this.consts.value(gamma));
    this.setWeight(n.name, 'beta', this.consts.value(beta));
    this.setWeight(n.name, 'moving_mean', this.consts.value(mean));
    this.setWeight(n.name, 'moving_variance', this.consts.value(variance));
    this.emit('BatchNormalization', n.name, { epsilon: attrs.float(n, 'epsilon', 1e-4), axis: -1, center: true, scale: true }, [x], this.shapeOf(x));
    this.ref.set(n.name, n.name);
  }

  /** x·scale + offset with a constant c broadcast along channels: a Keras Rescaling layer. */
  private rescaling(n: TfNode, x: string, c: string, how: 'add' | 'sub' | 'rsub' | 'mul' | 'div'): void {
    const cshape = this.constShape(n, c);
    if (cshape.slice(0, -1).some((d) => d !== 1)) refuse(n, `a constant of shape [${cshape.join(', ')}] (DeepVis broadcasts constants along channels only)`);
    const v = this.numbers(c);
    let scale: number[] = [1];
    let offset: number[] = [0];
    if (v) {
      if (how === 'add') offset = v;
      else if (how === 'sub') offset = v.map((a) => -a);
      else if (how === 'rsub') {
        scale = [-1];
        offset = v;
      } else if (how === 'mul') scale = v;
      else scale = v.map((a) => 1 / a);
      // One length for both (the affine op reads them as per-channel vectors).
      if (scale.length === 1 && offset.length > 1) scale = offset.map(() => scale[0]!);
      if (offset.length === 1 && scale.length > 1) offset = scale.map(() => offset[0]!);
    }
    this.emit('Rescaling', n.name, { scale, offset }, [x], this.shapeOf(x));
    this.ref.set(n.name, n.name);
  }

  private binary(n: TfNode): void {
    const ins = n.inputs;
    const isC = ins.map((i) => this.isConst(i));
    if (isC.every(Boolean)) refuse(n, 'a computation on constants alone');
    if (n.op === 'AddN' || (ins.length === 2 && !isC[0] && !isC[1])) {
      if (n.op === 'Sub' || n.op === 'RealDiv') refuse(n, `${n.op} of two tensors`);
      const xs = ins.map((_, k) => this.tensorIn(n, k));
      if (n.op === 'Mul') {
        if (this.swish(n, xs) || this.gatedHardSwish(n)) return;
        this.emit('Multiply', n.name, {}, xs, this.shapeOf(xs[0]!));
        this.ref.set(n.name, n.name);
        return;
      }
      this.emit('Add', n.name, {}, xs, this.shapeOf(xs[0]!));
      this.ref.set(n.name, n.name);
      return;
    }
    const k = isC[0] ? 1 : 0;
    const x = this.tensorIn(n, k);
    const c = this.constIn(n, 1 - k);
    if (n.op === 'RealDiv' && k === 1) refuse(n, 'a constant divided by a tensor');
    const how = n.op === 'Sub' ? (k === 0 ? 'sub' : 'rsub') : n.op === 'Mul' ? 'mul' : n.op === 'RealDiv' ? 'div' : 'add';
    if ((how === 'mul' || how === 'div') && this.hardSwish(n, c, how)) return;
    this.rescaling(n, x, c, how);
  }

  /** x·sigmoid(x) (Mul of a tensor and its Sigmoid): Keras' swish. */
  private swish(n: TfNode, xs: string[]): boolean {
    for (const k of [0, 1]) {
      const sig = this.producer(n, k);
      const other = n.inputs[1 - k]!;
      if (sig?.op === 'Sigmoid' && sig.inputs[0] === other && this.consumersOf(sig.name) === 1) {
        this.dropped.add(xs[k]!);
        this.emit('Activation', n.name, { activation: 'swish' }, [xs[1 - k]!], this.shapeOf(xs[1 - k]!));
        this.ref.set(n.name, n.name);
        return true;
      }
    }
    return false;
  }

  /**
   * x·relu6(x + 3)/6 as TensorFlow writes Keras' hard_swish: n multiplies (or divides) `x` — here
   * the product of a tensor and relu6 of it plus 3, or relu6(t + 3) itself with the tensor
   * multiplied after — by 1/6 (by 6). Collapsed into one hard_swish layer when every inner node
   * feeds only the next; otherwise the ops compile one by one (the same function).
   */
  private hardSwish(n: TfNode, c: string, how: 'mul' | 'div'): boolean {
    if (!this.constIs(c, how === 'mul' ? 1 / 6 : 6)) return false;
    const prod = this.nodes.get(n.inputs[this.isConst(n.inputs[0]!) ? 1 : 0]!);
    if (prod?.op !== 'Mul' || this.consumersOf(prod.name) !== 1) return false;
    for (const k of [0, 1]) {
      const relu6 = this.producer(prod, k);
      const t = prod.inputs[1 - k]!;
      if (relu6?.op !== 'Relu6' || this.consumersOf(relu6.name) !== 1) continue;
      const add = this.producer(relu6, 0);
      if (!add || !['Add', 'AddV2'].includes(add.op) || this.consumersOf(add.name) !== 1) continue;
      const ci = add.inputs.findIndex((i) => this.isConst(i));
      if (ci < 0 || add.inputs[1 - ci] !== t || !this.constIs(this.constOf.get(add.inputs[ci]!)!, 3)) continue;
      const src = this.ref.get(t);
      if (!src) continue;
      for (const inner of [add.name, relu6.name, prod.name]) this.dropped.add(this.ref.get(inner)!);
      this.emit('Activation', n.name, { activation: 'hard_swish' }, [src], this.shapeOf(src));
      this.ref.set(n.name, n.name);
      return true;
    }
    return false;
  }

  /** relu6(t + 3) scaled by 1/6 (Keras' hard_sigmoid of MobileNetV3): the inner nodes, or null. */
  private hardSigmoidOf(q: TfNode | undefined, t: string): string[] | null {
    if (!q || !['Mul', 'RealDiv'].includes(q.op) || this.consumersOf(q.name) !== 1) return null;
    const ci = q.inputs.findIndex((i) => this.isConst(i));
    if (ci < 0 || (q.op === 'RealDiv' && ci !== 1)) return null;
    if (!this.constIs(this.constOf.get(q.inputs[ci]!)!, q.op === 'Mul' ? 1 / 6 : 6)) return null;
    const relu6 = this.producer(q, 1 - ci);
    if (relu6?.op !== 'Relu6' || this.consumersOf(relu6.name) !== 1) return null;
    const add = this.producer(relu6, 0);
    if (!add || !['Add', 'AddV2'].includes(add.op) || this.consumersOf(add.name) !== 1) return null;
    const ai = add.inputs.findIndex((i) => this.isConst(i));
    if (ai < 0 || add.inputs[1 - ai] !== t || !this.constIs(this.constOf.get(add.inputs[ai]!)!, 3)) return null;
    return [add.name, relu6.name, q.name];
  }

  /** t·(relu6(t + 3)/6): hard_swish written as a gate (MobileNetV3's Multiply of x and hard_sigmoid(x)). */
  private gatedHardSwish(n: TfNode): boolean {
    for (const k of [0, 1]) {
      const t = n.inputs[1 - k]!;
      const inner = this.hardSigmoidOf(this.producer(n, k), t);
      const src = this.ref.get(t);
      if (!inner || !src) continue;
      for (const i of inner) this.dropped.add(this.ref.get(i)!);
      this.emit('Activation', n.name, { activation: 'hard_swish' }, [src], this.shapeOf(src));
      this.ref.set(n.name, n.name);
      return true;
    }
    return false;
  }

  private pool(n: TfNode): void {
    this.nhwc(n);
    const x = this.tensorIn(n, 0);
    const size = this.pair4(n, 'ksize');
    const strides = this.pair4(n, 'strides');
    const padding = this.padding(n);
    const s = this.shapeOf(x);
    this.emit(n.op === 'MaxPool' ? 'MaxPooling2D' : 'AveragePooling2D', n.name, { pool_size: size, strides, padding }, [x], this.spatialOut(s, size, strides, padding, s[2] ?? null));
    this.ref.set(n.name, n.name);
  }

  private reduce(n: TfNode): void {
    const x = this.tensorIn(n, 0);
    const axes = this.numbers(this.constIn(n, 1));
    const rank = this.shapeOf(x).length + 1;
    if (axes) {
      const norm = [...new Set(axes.map((a) => (a < 0 ? a + rank : a)))].sort();
      if (rank !== 4 || norm.join(',') !== '1,2') refuse(n, `a ${n.op} over axes [${axes.join(', ')}] (DeepVis reads a ${n.op} over height and width: global pooling)`);
    }
    const keepdims = attrs.bool(n, 'keep_dims');
    const c = this.shapeOf(x)[2] ?? null;
    this.emit(n.op === 'Mean' ? 'GlobalAveragePooling2D' : 'GlobalMaxPooling2D', n.name, { keepdims }, [x], keepdims ? [1, 1, c] : [c]);
    this.ref.set(n.name, n.name);
  }

  private concat(n: TfNode): void {
    const xs = n.inputs.slice(0, -1).map((_, k) => this.tensorIn(n, k));
    const axisV = this.numbers(this.constIn(n, n.inputs.length - 1));
    const axis = axisV ? axisV[0]! : -1;
    const s0 = this.shapeOf(xs[0]!);
    const a = axis < 0 ? axis + s0.length + 1 : axis;
    const shape = s0.map((d, i) => (i === a - 1 ? xs.reduce<number | null>((sum, x) => (sum == null || this.shapeOf(x)[i] == null ? null : sum + this.shapeOf(x)[i]!), 0) : d));
    this.emit('Concatenate', n.name, { axis }, xs, shape);
    this.ref.set(n.name, n.name);
  }

  private pad(n: TfNode): void {
    const x = this.tensorIn(n, 0);
    const p = this.numbers(this.constIn(n, 1));
    if (n.op === 'PadV2' && n.inputs[2] && !this.constIs(this.constIn(n, 2), 0)) refuse(n, 'padding with a value other than 0');
    const s = this.shapeOf(x);
    let pads: [[number, number], [number, number]] = [[0, 0], [0, 0]];
    let shape: Shape = s.map(() => null);
    if (p) {
      if (p.length !== 8 || p[0] || p[1] || p[6] || p[7]) refuse(n, `paddings [${p.join(', ')}] (DeepVis pads height and width)`);
      pads = [[p[2]!, p[3]!], [p[4]!, p[5]!]];
      shape = [s[0] == null ? null : s[0] + p[2]! + p[3]!, s[1] == null ? null : s[1] + p[4]! + p[5]!, s[2] ?? null];
    }
    if (n.op === 'MirrorPad') {
      const mode = attrs.str(n, 'mode', 'REFLECT').toLowerCase();
      if (mode !== 'reflect' && mode !== 'symmetric') refuse(n, `mode ${mode}`);
      this.emit('MirrorPadding2D', n.name, { padding: pads, mode }, [x], shape);
    } else this.emit('ZeroPadding2D', n.name, { padding: pads }, [x], shape);
    this.ref.set(n.name, n.name);
  }

  private reshape(n: TfNode): void {
    const x = this.tensorIn(n, 0);
    const s = this.shapeOf(x);
    let target: Shape;
    if (n.op === 'Squeeze') {
      const rank = s.length + 1;
      const dims = (attrs.ints(n, 'squeeze_dims') ?? []).map((a) => (a < 0 ? a + rank : a));
      if (dims.length === 0 || dims.includes(0)) refuse(n, 'a Squeeze without its axes or of the batch axis');
      target = s.filter((_, i) => !dims.includes(i + 1));
    } else if (n.op === 'ExpandDims') {
      const v = this.numbers(this.constIn(n, 1));
      target = [...s.map(() => null), null];
      if (v) {
        const a = v[0]! < 0 ? v[0]! + s.length + 2 : v[0]!;
        if (a === 0) refuse(n, 'an ExpandDims of the batch axis');
        target = [...s.slice(0, a - 1), 1, ...s.slice(a - 1)];
      }
    } else {
      const w = this.constIn(n, 1);
      const len = this.constShape(n, w)[0] ?? 0;
      const v = this.numbers(w);
      target = Array.from({ length: Math.max(len - 1, 0) }, () => null);
      if (v) {
        if (v[0] !== -1 && v[0] !== 1) refuse(n, `a Reshape to [${v.join(', ')}] (the batch axis must stay first)`);
        target = v.slice(1).map((d) => (d < 0 ? null : d));
      }
    }
    // Resolve one unknown dimension from the input's size when every other is known.
    const size = s.every((d) => d != null) ? s.reduce<number>((a, b) => a * b!, 1) : null;
    const unknown = target.filter((d) => d == null).length;
    if (unknown === 1 && size != null) {
      const known = target.reduce<number>((a, b) => (b == null ? a : a * b), 1);
      target = target.map((d) => (d == null ? size / known : d));
    }
    this.emit('Reshape', n.name, { target_shape: target.map((d) => d ?? -1) }, [x], target);
    this.ref.set(n.name, n.name);
  }
}
