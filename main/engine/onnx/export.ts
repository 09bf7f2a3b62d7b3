// ONNX export of the compiled network (the same GraphNet the tfjs path runs, batch norm already
// folded): a forward graph with the requested taps, and optionally a backward graph built from
// the engine's own backward rules (ops.ts: gradient / deconv / guided at every rectifier, max-pool
// switches), because ONNX Runtime has no autodiff for inference sessions.
//
// Inside the graph every 4-D value is NCHW (ORT's native layout: NHWC convolutions would be
// transposed around each node); the input and every output are NHWC, as the engine expects.
// The batch axis is dynamic; the spatial size is fixed per export (padding, ConvTranspose's
// output padding and the seeds depend on it), so sessions are cached per input size.
import * as tf from '@tensorflow/tfjs-core';
import type { GraphNet, NetNode } from '../network.js';
import type { ElementwiseFn } from '../elementwise.js';
import type { Activation, BackwardRule, ConvSpec, PoolSpec } from '../ops.js';
import { pad1d } from '../padding.js';
import { attr, GraphBuilder } from './graph-builder.js';
import { tidyFloats } from '../tensor-data.js';

/**
 * How the backward pass is seeded at node `from`'s output y:
 *  - given: a full seed shaped like y (NHWC) — a unit at one position, per-item masks;
 *  - ones:  a per-item channel weight [N, C] broadcast over space — a class logit, a channel's mean,
 *           Grad-CAM's target;
 *  - self:  y times a per-item channel mask [N, C] — back-projection seeded with the unit's own map.
 */
export type SeedKind = 'given' | 'ones' | 'self';

export interface BackwardSpec {
  from: number;
  to: number;
  rule: BackwardRule;
  /** Treat node `from`'s own rectifier as linear (see BackwardOptions.linearStart). */
  linearStart: boolean;
  seed: SeedKind;
}

export interface ExportSpec {
  /** [H, W, C] of the input; the batch stays dynamic. */
  inputShape: [number, number, number];
  /** Nodes whose forward outputs are returned, as outputs "tap0", "tap1", … (NHWC). */
  taps: number[];
  /**
   * Adds input "seed", outputs "grad" (at node `to`, NHWC) and, unless seed is "self", "value"
   * ([N] = Σ y·seed, y before its rectifier when linearStart).
   */
  backward?: BackwardSpec;
}

export interface ExportedGraph {
  bytes: Uint8Array;
  /** NHWC shape without the batch axis, per node (those computed). */
  shapes: number[][];
}

/** Each node's output shape without the batch axis, measured with one tfjs pass at batch 1. */
export function nodeShapes(net: GraphNet, inputShape: [number, number, number], until: number): number[][] {
  return tf.tidy(() => net.run(tf.zeros([1, ...inputShape]) as tf.Tensor4D, { until }).map((v) => v.shape.slice(1)));
}

const TO_NCHW = [0, 3, 1, 2];
const TO_NHWC = [0, 2, 3, 1];

/** A tfjs filter in ONNX's [out, in/group, kh, kw] layout (depthwise [kh,kw,C,m] → [C·m, 1, kh, kw]). */
function onnxFilter(spec: ConvSpec): { data: Float32Array; dims: number[]; group: number } {
  const [kh, kw, c, m] = spec.filter.shape;
  if (spec.depthwise) {
    // [C, m, kh, kw]: channel c·m+j is filter[.., c, j]
    return { data: tidyFloats(() => tf.transpose(spec.filter, [2, 3, 0, 1])), dims: [c * m, 1, kh, kw], group: c };
  }
  return { data: tidyFloats(() => tf.transpose(spec.filter, [3, 2, 0, 1])), dims: [m, c, kh, kw], group: 1 };
}

/**
 * The filter of a stride-1 convolution's adjoint, in ONNX layout: spatially flipped, input and
 * output channels swapped ([in, out, kh, kw]); for depthwise, flipped only ([C, 1, kh, kw], group
 * C). Built from ConvSpec.filterBack, the tfjs path's own flipped filter. Null for a depthwise
 * channel multiplier above 1 (ConvTranspose serves it).
 */
function onnxBackFilter(spec: ConvSpec): { data: Float32Array; dims: number[]; group: number } | null {
  const [kh, kw, a, m] = spec.filterBack.shape;
  if (spec.depthwise && m !== 1) return null;
  if (spec.depthwise) {
    return { data: tidyFloats(() => tf.transpose(spec.filterBack, [2, 3, 0, 1])), dims: [a, 1, kh, kw], group: a };
  }
  // filterBack is [kh, kw, outC, inC]: the adjoint reads outC channels and writes inC.
  return { data: tidyFloats(() => tf.transpose(spec.filterBack, [3, 2, 0, 1])), dims: [m, a, kh, kw], group: 1 };
}

function tiledPool(spec: PoolSpec): boolean {
  return spec.size[0] === spec.strides[0] && spec.size[1] === spec.strides[1];
}

function concatAxis(axis: number, rank: number): number {
  const a = axis < 0 ? axis + rank : axis;
  if (rank !== 4) return a;
  return [0, 2, 3, 1][a]!;
}

class Exporter {
  private readonly b = new GraphBuilder();
  /** ONNX value name of each node's output (NCHW when 4-D). */
  private readonly v: string[] = [];
  /** The value before a node's own rectifier (conv, dense, activation nodes). */
  private readonly pre: string[] = [];
  /** The max-pool switches (flat NCHW indices), for pools the backward pass crosses. */
  private readonly poolIndex = new Map<number, string>();
  /** Conv weights in ONNX layout, reused by the ConvTranspose of the backward pass. */
  private readonly convW = new Map<number, { w: string; group: number }>();

  constructor(
    private readonly net: GraphNet,
    private readonly shapes: number[][],
  ) {}

  private rank(i: number): number {
    return this.shapes[i]!.length + 1;
  }

  /** [pt, pl, pb, pr] and the output padding that makes ConvTranspose the exact adjoint. */
  private padsOf(inShape: number[], size: [number, number], strides: [number, number], mode: 'same' | 'valid') {
    const ph = pad1d(inShape[0]!, size[0], strides[0], mode);
    const pw = pad1d(inShape[1]!, size[1], strides[1], mode);
    const outPad = [
      inShape[0]! - ((ph.out - 1) * strides[0] + size[0] - ph.before - ph.after),
      inShape[1]! - ((pw.out - 1) * strides[1] + size[1] - pw.before - pw.after),
    ];
    return { pads: [ph.before, pw.before, ph.after, pw.after], outPad };
  }

  private activation(x: string, a: Activation): string {
    const b = this.b;
    switch (a.kind) {
      case 'linear':
        return x;
      case 'relu':
        return b.op('Relu', [x]);
      case 'relu6':
        return b.op('Clip', [x, b.scalar(0), b.scalar(6)]);
      case 'leaky':
        return b.op('LeakyRelu', [x], [attr.float('alpha', a.alpha)]);
    }
  }

  /** The backward signal through a rectifier given its forward output y (ops.ts activationBackward). */
  private activationBack(dy: string, y: string, a: Activation, rule: BackwardRule): string {
    if (a.kind === 'linear') return dy;
    const b = this.b;
    const rectified = (s: string) => (a.kind === 'leaky' ? b.op('LeakyRelu', [s], [attr.float('alpha', a.alpha)]) : b.op('Relu', [s]));
    // Gates as a multiply by a 0/1 mask: ORT's Where with broadcast scalars took ~20 % of an input
    // gradient on the CPU provider, its Mul by a same-shaped tensor or a scalar is vectorised.
    const gate = (s: string) => {
      const pos = b.op('Greater', [y, b.scalar(0)]);
      const mask = (t: string) => b.op('Cast', [t], [attr.int('to', 1)]);
      if (a.kind === 'relu') return b.op('Mul', [s, mask(pos)]);
      if (a.kind === 'relu6') return b.op('Mul', [s, mask(b.op('And', [pos, b.op('Less', [y, b.scalar(6)])]))]);
      return b.op('Mul', [s, b.op('Add', [b.op('Mul', [mask(pos), b.scalar(1 - a.alpha)]), b.scalar(a.alpha)])]);
    };
    if (rule === 'gradient') return gate(dy);
    if (rule === 'deconv') return rectified(dy);
    return gate(rectified(dy));
  }

  /** Bring a node's value (or signal) to NHWC for reshapes and outputs. */
  private nhwc(x: string, i: number): string {
    return this.rank(i) === 4 ? this.b.op('Transpose', [x], [attr.ints('perm', TO_NHWC)]) : x;
  }

  private nchw(x: string, i: number): string {
    return this.rank(i) === 4 ? this.b.op('Transpose', [x], [attr.ints('perm', TO_NCHW)]) : x;
  }

  /** Per-channel vector shaped to broadcast against node i's value ([C,1,1] for NCHW, [C] for 2-D). */
  private channelConst(t: tf.Tensor1D, i: number): string {
    const c = t.shape[0];
    return this.b.floats(t.dataSync() as Float32Array, this.rank(i) === 4 ? [c, 1, 1] : [c]);
  }

  /** The forward value of an element-wise function other than softmax (one of EXPORTED_FNS). */
  private elementwise(fn: ElementwiseFn, a: string): string {
    const b = this.b;
    switch (fn) {
      case 'sigmoid':
        return b.op('Sigmoid', [a]);
      case 'tanh':
        return b.op('Tanh', [a]);
      case 'swish':
        return b.op('Mul', [a, b.op('Sigmoid', [a])]);
      case 'hard_swish':
        // x · min(relu(x + 3), 6) · 1/6, in the order the tfjs form computes it.
        return b.op('Mul', [b.op('Mul', [a, b.op('Min', [b.op('Relu', [b.op('Add', [a, b.scalar(3)])]), b.scalar(6)])]), b.scalar(1 / 6)]);
      case 'elu':
        return b.op('Elu', [a], [attr.float('alpha', 1)]);
      default:
        throw new Error(`the ONNX exporter does not write ${fn} yet`);
    }
  }

  /** f'(x) of swish, hard_swish and elu, from the forward input x and output y. */
  private elementwiseSlope(fn: ElementwiseFn, x: string, y: string): string {
    const b = this.b;
    switch (fn) {
      case 'swish': {
        // σ(x) + y·(1 − σ(x))
        const s = b.op('Sigmoid', [x]);
        return b.op('Add', [s, b.op('Mul', [y, b.op('Sub', [b.scalar(1), s])])]);
      }
      case 'hard_swish': {
        const mid = b.op('Div', [b.op('Add', [b.op('Mul', [x, b.scalar(2)]), b.scalar(3)]), b.scalar(6)]);
        return b.op('Where', [b.op('Less', [x, b.scalar(-3)]), b.scalar(0), b.op('Where', [b.op('Greater', [x, b.scalar(3)]), b.scalar(1), mid])]);
      }
      case 'elu':
        return b.op('Where', [b.op('Greater', [x, b.scalar(0)]), b.scalar(1), b.op('Add', [y, b.scalar(1)])]);
      default:
        throw new Error(`the ONNX exporter does not write the backward pass of ${fn} yet`);
    }
  }

  forward(input: string, until: number, needSwitches: (i: number) => boolean): void {
    const b = this.b;
    for (let i = 0; i <= until; i++) {
      const node = this.net.nodes[i]!;
      const ins = node.inputs.map((j) => this.v[j]!);
      const a = ins[0]!;
      const op = node.op;
      const inShape = node.inputs.length ? this.shapes[node.inputs[0]!]! : [];
      let y: string;
      switch (op.kind) {
        case 'input':
          y = b.op('Transpose', [input], [attr.ints('perm', TO_NCHW)]);
          break;
        case 'conv': {
          const s = op.spec;
          const f = onnxFilter(s);
          const w = b.floats(f.data, f.dims);
          this.convW.set(i, { w, group: f.group });
          const { pads } = this.padsOf(inShape, [f.dims[2]!, f.dims[3]!], s.strides, s.padding);
          const convIns = [a, w];
          if (s.bias) convIns.push(b.floats(s.bias.dataSync() as Float32Array, [s.bias.shape[0]]));
          const pre = b.op('Conv', convIns, [
            attr.ints('kernel_shape', [f.dims[2]!, f.dims[3]!]),
            attr.ints('strides', s.strides),
            attr.ints('pads', pads),
            attr.int('group', f.group),
          ]);
          this.pre[i] = pre;
          y = this.activation(pre, s.activation);
          break;
        }
        case 'act':
          this.pre[i] = a;
          y = this.activation(a, op.act);
          break;
        case 'nonlinear':
          y = op.fn === 'softmax' ? b.op('Softmax', [a], [attr.int('axis', this.rank(i) === 4 ? 1 : -1)]) : this.elementwise(op.fn, a);
          break;
        case 'pool':
          y = this.pool(i, a, op.spec, inShape, needSwitches(i));
          break;
        case 'globalPool': {
          const r = b.op(op.op === 'mean' ? 'ReduceMean' : 'ReduceMax', [a], [attr.ints('axes', [2, 3]), attr.int('keepdims', op.keepDims ? 1 : 0)]);
          y = r;
          break;
        }
        case 'affine':
          y = b.op('Add', [b.op('Mul', [a, this.channelConst(op.scale, i)]), this.channelConst(op.shift, i)]);
          break;
        case 'reshape':
        case 'flatten': {
          const target = op.kind === 'reshape' ? op.target : [-1];
          const r = b.op('Reshape', [this.nhwc(a, node.inputs[0]!), b.int64([0, ...target])]);
          y = this.nchw(r, i);
          break;
        }
        case 'dense': {
          let r = b.op('MatMul', [a, b.floats(op.kernel.dataSync() as Float32Array, op.kernel.shape)]);
          if (op.bias) r = b.op('Add', [r, b.floats(op.bias.dataSync() as Float32Array, [op.bias.shape[0]])]);
          this.pre[i] = r;
          y = this.activation(r, op.act);
          break;
        }
        case 'add':
          y = ins.length === 1 ? a : b.op('Sum', ins);
          break;
        case 'concat':
          y = b.op('Concat', ins, [attr.int('axis', concatAxis(op.axis, this.rank(i)))]);
          break;
        case 'zeroPad': {
          const [[t, bo], [l, r]] = op.pads;
          y = b.op('Pad', [a, b.int64([0, 0, t, l, 0, 0, bo, r])], [attr.str('mode', 'constant')]);
          break;
        }
        default:
          throw new Error(`node ${i} (${op.kind}) has no ONNX export yet`);
      }
      this.v[i] = y;
    }
  }

  private pool(i: number, a: string, spec: PoolSpec, inShape: number[], switches: boolean): string {
    const b = this.b;
    const { pads } = this.padsOf(inShape, spec.size, spec.strides, spec.padding);
    const attrs = [attr.ints('kernel_shape', spec.size), attr.ints('strides', spec.strides), attr.ints('pads', pads)];
    if (spec.kind === 'avg') return b.op('AveragePool', [a], [...attrs, attr.int('count_include_pad', 0)]);
    if (!switches || tiledPool(spec)) return b.op('MaxPool', [a], attrs);
    const [y, idx] = b.opN('MaxPool', [a], 2, attrs);
    this.poolIndex.set(i, idx!);
    return y!;
  }

  /**
   * The seed at node `from` in NCHW, from the "seed" input; and the objective value when defined
   * (over the pre-activation when the backward pass starts linear, as synthesis wants).
   */
  seed(from: number, kind: SeedKind, seedIn: string, linearStart: boolean): { seed: string; value: string | null } {
    const b = this.b;
    const y = this.v[from]!;
    const read = linearStart ? (this.pre[from] ?? y) : y;
    const four = this.rank(from) === 4;
    let seed: string;
    if (kind === 'given') seed = this.nchw(seedIn, from);
    else {
      const m = four ? b.op('Unsqueeze', [seedIn, b.int64([2, 3])]) : seedIn;
      seed = kind === 'self' ? b.op('Mul', [y, m]) : b.op('Expand', [m, b.op('Shape', [y])]);
    }
    if (kind === 'self') return { seed, value: null };
    const axes = four ? [1, 2, 3] : [1];
    const value = b.op('ReduceSum', [b.op('Mul', [read, seed]), b.int64(axes)], [attr.int('keepdims', 0)]);
    return { seed, value };
  }

  backward(spec: BackwardSpec, seed: string): string {
    const grads: (string | undefined)[] = [];
    grads[spec.from] = seed;
    for (let i = spec.from; i > spec.to; i--) {
      const dy = grads[i];
      if (!dy) continue;
      const node = this.net.nodes[i]!;
      const dxs = this.backOp(i, node.op, dy, spec.rule, i === spec.from && spec.linearStart);
      node.inputs.forEach((j, k) => {
        if (j < spec.to) return;
        const g = dxs[k]!;
        grads[j] = grads[j] ? this.b.op('Add', [grads[j]!, g]) : g;
      });
    }
    const out = grads[spec.to];
    if (!out) throw new Error(`node ${spec.to} does not lead to node ${spec.from}`);
    return out;
  }

  private backOp(i: number, op: NetNode, dy: string, rule: BackwardRule, linear: boolean): string[] {
    const b = this.b;
    const node = this.net.nodes[i]!;
    const x = this.v[node.inputs[0]!]!;
    const y = this.v[i]!;
    const inShape = node.inputs.length ? this.shapes[node.inputs[0]!]! : [];
    switch (op.kind) {
      case 'input':
        return [];
      case 'conv': {
        const g = linear ? dy : this.activationBack(dy, y, op.spec.activation, rule);
        const { w, group } = this.convW.get(i)!;
        const [kh, kw] = op.spec.filter.shape;
        const { pads, outPad } = this.padsOf(inShape, [kh, kw], op.spec.strides, op.spec.padding);
        const [sh, sw] = op.spec.strides;
        const [ho, wo] = this.shapes[i]! as [number, number];
        // The adjoint is a stride-1 convolution with the flipped, transposed filter (ops.ts
        // convInputGrad) over dy with stride − 1 zeros between its entries; ORT's Conv kernels are
        // far faster than its ConvTranspose (grouped ConvTranspose was a third of a MobileNet's
        // input gradient). Pads: the input's size back from the dilated signal's ho·sh.
        const backPads = [kh - 1 - pads[0]!, kw - 1 - pads[1]!, inShape[0]! - ho * sh + pads[0]!, inShape[1]! - wo * sw + pads[1]!];
        // Except for a convolution that reads few channels (the first layer's RGB): its adjoint writes
        // so few that ORT's blocked Conv pads them to a whole block and, strided, walks the dilated
        // signal at full size: a quarter of a MobileNet's input gradient. ConvTranspose (a GEMM over
        // the undilated signal) made the whole gradient 22 % faster, darknet-tiny's 14 %.
        const fewIn = !op.spec.depthwise && inShape[inShape.length - 1]! < 8;
        const back = !fewIn && backPads.every((p) => p >= 0) ? onnxBackFilter(op.spec) : null;
        if (back) {
          return [
            b.op('Conv', [sh === 1 && sw === 1 ? g : this.dilate(g, sh, sw, ho, wo), b.floats(back.data, back.dims)], [
              attr.ints('kernel_shape', [kh, kw]),
              attr.ints('pads', backPads),
              attr.int('group', back.group),
            ]),
          ];
        }
        return [
          b.op('ConvTranspose', [g, w], [
            attr.ints('kernel_shape', [kh, kw]),
            attr.ints('strides', op.spec.strides),
            attr.ints('pads', pads),
            attr.ints('output_padding', outPad),
            attr.int('group', group),
          ]),
        ];
      }
      case 'act':
        return [linear ? dy : this.activationBack(dy, y, op.act, rule)];
      case 'nonlinear': {
        if (op.fn === 'softmax') {
          const axis = this.rank(i) === 4 ? 1 : this.rank(i) - 1;
          const s = b.op('ReduceSum', [b.op('Mul', [dy, y]), b.int64([axis])], [attr.int('keepdims', 1)]);
          return [b.op('Mul', [y, b.op('Sub', [dy, s])])];
        }
        if (op.fn === 'sigmoid') return [b.op('Mul', [dy, b.op('Mul', [y, b.op('Sub', [b.scalar(1), y])])])];
        if (op.fn === 'tanh') return [b.op('Mul', [dy, b.op('Sub', [b.scalar(1), b.op('Mul', [y, y])])])];
        return [b.op('Mul', [dy, this.elementwiseSlope(op.fn, x, y)])];
      }
      case 'pool':
        if (op.spec.kind === 'avg') return [this.avgPoolBack(x, dy, op.spec, inShape)];
        return [tiledPool(op.spec) ? this.maxPoolBackTiled(i, x, dy, op.spec, inShape) : this.maxPoolBack(i, x, dy)];
      case 'globalPool': {
        const d4 = op.keepDims ? dy : b.op('Unsqueeze', [dy, b.int64([2, 3])]);
        if (op.op === 'mean') {
          const hw = inShape[0]! * inShape[1]!;
          return [b.op('Expand', [b.op('Div', [d4, b.scalar(hw)]), b.op('Shape', [x])])];
        }
        const y4 = op.keepDims ? y : b.op('Unsqueeze', [y, b.int64([2, 3])]);
        const mask = b.op('Cast', [b.op('Equal', [x, y4])], [attr.int('to', 1)]);
        const count = b.op('ReduceSum', [mask, b.int64([2, 3])], [attr.int('keepdims', 1)]);
        return [b.op('Div', [b.op('Mul', [mask, d4]), count])];
      }
      case 'affine':
        return [b.op('Mul', [dy, this.channelConst(op.scale, i)])];
      case 'reshape':
      case 'flatten': {
        const r = b.op('Reshape', [this.nhwc(dy, i), b.int64([0, ...inShape])]);
        return [this.nchw(r, node.inputs[0]!)];
      }
      case 'dense': {
        const g = linear ? dy : this.activationBack(dy, y, op.act, rule);
        const kt = tidyFloats(() => tf.transpose(op.kernel));
        return [b.op('MatMul', [g, b.floats(kt, [op.kernel.shape[1], op.kernel.shape[0]])])];
      }
      case 'add':
        return node.inputs.map(() => dy);
      case 'concat': {
        const axis = concatAxis(op.axis, this.rank(i));
        const sizes = node.inputs.map((j) => {
          const s = this.shapes[j]!;
          const nhwcAxis = op.axis < 0 ? op.axis + this.rank(i) : op.axis;
          return s[nhwcAxis - 1]!;
        });
        return b.opN('Split', [dy, b.int64(sizes)], sizes.length, [attr.int('axis', axis)]);
      }
      case 'zeroPad': {
        const [[t], [l]] = op.pads;
        const [h, w] = inShape as [number, number];
        return [b.op('Slice', [dy, b.int64([t, l]), b.int64([t + h, l + w]), b.int64([2, 3])])];
      }
      default:
        throw new Error(`node ${i} (${op.kind}) has no ONNX backward yet`);
    }
  }

  /**
   * Non-overlapping windows (size = stride, every bundled pool): as ops.ts, dy goes to the entries
   * equal to their window's maximum, split evenly on exact ties — a mask against the upsampled
   * output, no indices (WebGPU's MaxPool has no Indices output).
   */
  private maxPoolBackTiled(i: number, x: string, dy: string, spec: PoolSpec, inShape: number[]): string {
    const b = this.b;
    const [h, w, c] = inShape as [number, number, number];
    const [kh, kw] = spec.size;
    const [ho, wo] = this.shapes[i]! as [number, number];
    const ph = pad1d(h, kh, kh, spec.padding);
    const pw = pad1d(w, kw, kw, spec.padding);
    // Pad with a very negative value (or crop the unused tail) to exactly ho·kh × wo·kw.
    const around = [0, 0, ph.before, pw.before, 0, 0, ho * kh - h - ph.before, wo * kw - w - pw.before];
    const trivial = around.every((p) => p === 0);
    const xp = trivial ? x : b.op('Pad', [x, b.int64(around), b.scalar(-3.0e38)], [attr.str('mode', 'constant')]);
    // Nearest upsampling by whole blocks. Resize runs a 4-D kernel; the equivalent 6-D Expand
    // between two Reshapes took ~45 % of darknet-tiny's whole input-gradient run on the CPU provider.
    const scales = b.floats(new Float32Array([1, 1, kh, kw]), [4]);
    const up = (t: string) =>
      b.op('Resize', [t, '', scales], [attr.str('mode', 'nearest'), attr.str('coordinate_transformation_mode', 'asymmetric'), attr.str('nearest_mode', 'floor')]);
    const mask = b.op('Cast', [b.op('Equal', [xp, up(this.v[i]!)])], [attr.int('to', 1)]);
    const count = b.op('Mul', [b.op('AveragePool', [mask], [attr.ints('kernel_shape', [kh, kw]), attr.ints('strides', [kh, kw])]), b.scalar(kh * kw)]);
    const dxp = b.op('Mul', [mask, up(b.op('Div', [dy, count]))]);
    return trivial ? dxp : b.op('Pad', [dxp, b.int64(around.map((p) => -p))], [attr.str('mode', 'constant')]);
  }

  /** [N, C, h, w] → [N, C, h·sh, w·sw] with the entries at multiples of the strides, zeros between. */
  private dilate(t: string, sh: number, sw: number, h: number, w: number): string {
    const b = this.b;
    const keep = new Float32Array(h * sh * w * sw);
    for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) keep[y * sh * w * sw + x * sw] = 1;
    const scales = b.floats(new Float32Array([1, 1, sh, sw]), [4]);
    const up = b.op('Resize', [t, '', scales], [attr.str('mode', 'nearest'), attr.str('coordinate_transformation_mode', 'asymmetric'), attr.str('nearest_mode', 'floor')]);
    return b.op('Mul', [up, b.floats(keep, [1, 1, h * sh, w * sw])]);
  }

  /** Overlapping windows: the signal goes to each window's first maximum, a scatter-add through the forward pass's switches. */
  private maxPoolBack(i: number, x: string, dy: string): string {
    const b = this.b;
    const idx = this.poolIndex.get(i);
    if (!idx) throw new Error(`max-pool node ${i} was exported without its switches`);
    const flat = b.int64([-1]);
    const zeros = b.op('Mul', [b.op('Reshape', [x, flat]), b.scalar(0)]);
    const scattered = b.op('ScatterElements', [zeros, b.op('Reshape', [idx, flat]), b.op('Reshape', [dy, flat])], [attr.int('axis', 0), attr.str('reduction', 'add')]);
    return b.op('Reshape', [scattered, b.op('Shape', [x])]);
  }

  /** Average-pool adjoint: dy over each window's count of real (unpadded) inputs, spread back. */
  private avgPoolBack(x: string, dy: string, spec: PoolSpec, inShape: number[]): string {
    const b = this.b;
    const c = inShape[2]!;
    const [kh, kw] = spec.size;
    const { pads, outPad } = this.padsOf(inShape, spec.size, spec.strides, spec.padding);
    const geo = [attr.ints('kernel_shape', spec.size), attr.ints('strides', spec.strides), attr.ints('pads', pads)];
    const ones = b.op('Add', [b.op('Mul', [x, b.scalar(0)]), b.scalar(1)]);
    const frac = b.op('AveragePool', [ones], [...geo, attr.int('count_include_pad', 1)]);
    const count = b.op('Mul', [frac, b.scalar(kh * kw)]);
    const kernel = b.floats(new Float32Array(c * kh * kw).fill(1), [c, 1, kh, kw]);
    return b.op('ConvTranspose', [b.op('Div', [dy, count]), kernel], [...geo, attr.ints('output_padding', outPad), attr.int('group', c)]);
  }

  finish(spec: ExportSpec): Uint8Array {
    const b = this.b;
    const bw = spec.backward;
    const until = Math.max(0, ...spec.taps, bw?.from ?? 0);
    const x = b.input('x', ['N', ...spec.inputShape]);
    this.forward(x, until, (i) => !!bw && i <= bw.from && i > bw.to);
    spec.taps.forEach((t, k) => b.output(`tap${k}`, this.nhwc(this.v[t]!, t), ['N', ...this.shapes[t]!]));
    if (bw) {
      const c = this.shapes[bw.from]![this.shapes[bw.from]!.length - 1]!;
      const seedIn = b.input('seed', bw.seed === 'given' ? ['N', ...this.shapes[bw.from]!] : ['N', c]);
      const { seed, value } = this.seed(bw.from, bw.seed, seedIn, bw.linearStart);
      const g = this.backward(bw, seed);
      b.output('grad', this.nhwc(g, bw.to), ['N', ...this.shapes[bw.to]!]);
      if (value) b.output('value', value, ['N']);
    }
    return b.encode('deepvis');
  }
}

/** Export a forward (and optionally backward) ONNX graph of the compiled network. */
/** The element-wise functions the exporter writes, forward and backward. */
const EXPORTED_FNS = new Set(['softmax', 'sigmoid', 'tanh', 'swish', 'hard_swish', 'elu']);

/**
 * Why this network cannot be exported yet (the first node the exporter does not write), or null.
 * Such a model runs on tfjs even when an onnx backend is selected.
 */
export function onnxUnsupported(net: GraphNet): string | null {
  for (let i = 0; i < net.nodes.length; i++) {
    const op = net.nodes[i]!.op;
    if (op.kind === 'mul') return `node ${i}: element-wise multiply`;
    if (op.kind === 'mirrorPad') return `node ${i}: mirror padding`;
    if (op.kind === 'nonlinear' && !EXPORTED_FNS.has(op.fn)) return `node ${i}: ${op.fn}`;
  }
  return null;
}

export function exportGraph(net: GraphNet, spec: ExportSpec): ExportedGraph {
  const unsupported = onnxUnsupported(net);
  if (unsupported) throw new Error(`the ONNX exporter does not write ${unsupported} yet`);
  const until = Math.max(0, ...spec.taps, spec.backward?.from ?? 0);
  const shapes = nodeShapes(net, spec.inputShape, until);
  if (spec.backward && spec.backward.to > spec.backward.from) throw new Error(`backward from node ${spec.backward.from} cannot reach node ${spec.backward.to}`);
  return { bytes: new Exporter(net, shapes).finish(spec), shapes };
}
