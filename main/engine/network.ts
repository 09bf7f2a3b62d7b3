// A compiled network: a topologically ordered list of plain ops (batch-norm already folded into
// convolution weights) that runs in one pass and hands back any named layer's output ("taps").
import * as tf from '@tensorflow/tfjs-core';
import {
  activationBackward,
  applyActivation,
  avgPoolInputGrad,
  convInputGrad,
  maxPoolInputGrad,
  runActivation,
  runConv,
  runPool,
  type Activation,
  type BackwardRule,
  type ConvSpec,
  type ExecMode,
  type PoolSpec,
} from './ops.js';
import { applyElementwise, elementwiseBackward, type ElementwiseFn } from './elementwise.js';

export type NetNode =
  | { kind: 'input' }
  | { kind: 'conv'; spec: ConvSpec }
  | { kind: 'act'; act: Activation }
  /** `max` is the clip of relu_max. */
  | { kind: 'nonlinear'; fn: ElementwiseFn; max?: number }
  | { kind: 'pool'; spec: PoolSpec }
  | { kind: 'globalPool'; op: 'mean' | 'max'; keepDims: boolean }
  | { kind: 'affine'; scale: tf.Tensor1D; shift: tf.Tensor1D }
  | { kind: 'reshape'; target: number[] }
  | { kind: 'flatten' }
  | { kind: 'dense'; kernel: tf.Tensor2D; bias: tf.Tensor1D | null; act: Activation }
  | { kind: 'add' }
  /** Element-wise product of its inputs (Keras Multiply: squeeze-and-excitation gates). */
  | { kind: 'mul' }
  /** `axis` < 0 counts from the last axis, whatever the inputs' rank. */
  | { kind: 'concat'; axis: number }
  | { kind: 'zeroPad'; pads: [[number, number], [number, number]] }
  /** Padding by reflection: "reflect" leaves the edge out of the mirror image, "symmetric" repeats it. */
  | { kind: 'mirrorPad'; pads: [[number, number], [number, number]]; mode: 'reflect' | 'symmetric' };

/** `len` entries of a 4-D tensor from `start` along one axis, the whole of every other. */
function sliceAlong(t: tf.Tensor4D, axis: 1 | 2, start: number, len: number): tf.Tensor {
  const begin = [0, 0, 0, 0];
  const size = [-1, -1, -1, -1];
  begin[axis] = start;
  size[axis] = len;
  return tf.slice(t, begin, size);
}

/**
 * The input gradient of a mirror padding along one axis: the centre, plus each border's signal
 * folded back (reversed) onto the inputs it copied.
 */
function mirrorPadBack(dy: tf.Tensor4D, axis: 1 | 2, before: number, after: number, mode: 'reflect' | 'symmetric'): tf.Tensor4D {
  if (before === 0 && after === 0) return dy;
  const n = dy.shape[axis] - before - after;
  const skip = mode === 'reflect' ? 1 : 0;
  const part = (start: number, len: number) => sliceAlong(dy, axis, start, len);
  const placed = (t: tf.Tensor, at: number) => {
    const pads: [number, number][] = [[0, 0], [0, 0], [0, 0], [0, 0]];
    pads[axis] = [at, n - at - t.shape[axis]!];
    return tf.pad(t, pads);
  };
  let g: tf.Tensor = part(before, n);
  if (before) g = tf.add(g, placed(tf.reverse(part(0, before), axis), skip));
  if (after) g = tf.add(g, placed(tf.reverse(part(before + n, after), axis), n - skip - after));
  return g as tf.Tensor4D;
}

type MirrorPadOp = Extract<NetNode, { kind: 'mirrorPad' }>;

/** Mirror padding along one axis from slices, reversals and a concatenation (each with a right tfjs gradient). */
function mirrorPadByConcat(x: tf.Tensor4D, axis: 1 | 2, before: number, after: number, mode: 'reflect' | 'symmetric'): tf.Tensor4D {
  const n = x.shape[axis];
  const skip = mode === 'reflect' ? 1 : 0;
  const part = (start: number, len: number) => tf.reverse(sliceAlong(x, axis, start, len), axis);
  const parts: tf.Tensor[] = [];
  if (before) parts.push(part(skip, before));
  parts.push(x);
  if (after) parts.push(part(n - skip - after, after));
  return (parts.length === 1 ? x : tf.concat(parts, axis)) as tf.Tensor4D;
}

/**
 * tfjs' MirrorPad gradient only crops the centre (the reflected borders' signal is lost): the
 * taped form carries our own, the reference form is built from ops whose gradients are right.
 */
function runMirrorPad(x: tf.Tensor4D, op: MirrorPadOp, mode: ExecMode): tf.Tensor4D {
  const [[t, b], [l, r]] = op.pads;
  if (mode === 'plain') return tf.mirrorPad(x, [[0, 0], [t, b], [l, r], [0, 0]], op.mode);
  if (mode === 'reference') return mirrorPadByConcat(mirrorPadByConcat(x, 1, t, b, op.mode), 2, l, r, op.mode);
  const f = tf.customGrad(((xIn: tf.Tensor) => ({
    value: tf.mirrorPad(xIn as tf.Tensor4D, [[0, 0], [t, b], [l, r], [0, 0]], op.mode),
    gradFunc: (dy: tf.Tensor | tf.Tensor[]) => [mirrorPadBack(mirrorPadBack(dy as tf.Tensor4D, 1, t, b, op.mode), 2, l, r, op.mode)],
  })) as unknown as Parameters<typeof tf.customGrad>[0]);
  return f(x) as tf.Tensor4D;
}

/** Sum a gradient over the axes along which an input of `shape` was broadcast. */
function unbroadcast(g: tf.Tensor, shape: number[]): tf.Tensor {
  const axes = shape.map((d, i) => (d === 1 && g.shape[i] !== 1 ? i : -1)).filter((i) => i >= 0);
  return axes.length ? tf.sum(g, axes, true) : g;
}

export interface GraphNode {
  /** Keras layer names whose output this node produces (a fused conv carries conv, bn and activation names). */
  names: string[];
  inputs: number[];
  op: NetNode;
}

export interface BackwardOptions {
  rule?: BackwardRule;
  /** Stop at this node and return the signal arriving at its output (default 0: the input). */
  to?: number;
  /**
   * Pass the seed through the starting node's own rectifier as if it were linear (the gradient
   * of the pre-activation). Synthesis needs this: a unit that starts at zero behind a ReLU has a
   * zero gradient and would never move.
   */
  linearStart?: boolean;
}

/** The same op with its activation made linear (for BackwardOptions.linearStart). */
function linearized(op: NetNode): NetNode {
  const linear = { kind: 'linear' } as const;
  if (op.kind === 'conv') return { ...op, spec: { ...op.spec, activation: linear } };
  if (op.kind === 'act') return { ...op, act: linear };
  if (op.kind === 'dense') return { ...op, act: linear };
  if (op.kind === 'nonlinear' && op.fn === 'relu_max') return { kind: 'act', act: linear };
  return op;
}

export interface RunOptions {
  mode?: ExecMode;
  rule?: BackwardRule;
  /** Stop after this node index (later nodes are not computed). */
  until?: number;
}

export class GraphNet {
  readonly nodes: GraphNode[];
  readonly indexByName: Map<string, number>;

  constructor(nodes: GraphNode[]) {
    this.nodes = nodes;
    this.indexByName = new Map();
    nodes.forEach((n, i) => n.names.forEach((name) => this.indexByName.set(name, i)));
  }

  nodeIndex(layerName: string): number {
    const i = this.indexByName.get(layerName);
    if (i === undefined) throw new Error(`no layer named "${layerName}" in this network`);
    return i;
  }

  /**
   * Run the graph on a preprocessed input batch. Returns every node's output up to `until`; call
   * inside tf.tidy (or dispose what you keep) — intermediate tensors are not disposed here because
   * a gradient tape may still need them.
   */
  run(x: tf.Tensor4D, opts: RunOptions = {}): tf.Tensor[] {
    const mode = opts.mode ?? 'plain';
    const rule = opts.rule ?? 'gradient';
    const last = opts.until ?? this.nodes.length - 1;
    const values: tf.Tensor[] = new Array(last + 1);
    for (let i = 0; i <= last; i++) {
      const node = this.nodes[i]!;
      const ins = node.inputs.map((j) => values[j]!);
      values[i] = this.exec(node.op, ins, x, mode, rule);
    }
    return values;
  }

  private exec(op: NetNode, ins: tf.Tensor[], x: tf.Tensor4D, mode: ExecMode, rule: BackwardRule): tf.Tensor {
    const a = ins[0]!;
    switch (op.kind) {
      case 'input':
        return x;
      case 'conv':
        return runConv(a as tf.Tensor4D, op.spec, mode, rule);
      case 'act':
        return runActivation(a, op.act, mode, rule);
      case 'nonlinear':
        return applyElementwise(op.fn, a, op.max);
      case 'pool':
        return runPool(a as tf.Tensor4D, op.spec, mode);
      case 'globalPool':
        return op.op === 'mean' ? tf.mean(a, [1, 2], op.keepDims) : tf.max(a, [1, 2], op.keepDims);
      case 'affine':
        return tf.add(tf.mul(a, op.scale), op.shift);
      case 'reshape':
        return tf.reshape(a, [a.shape[0]!, ...op.target]);
      case 'flatten':
        return tf.reshape(a, [a.shape[0]!, -1]);
      case 'dense': {
        let y: tf.Tensor = tf.matMul(a as tf.Tensor2D, op.kernel);
        if (op.bias) y = tf.add(y, op.bias);
        return mode === 'reference' ? applyActivation(y, op.act) : runActivation(y, op.act, mode, rule);
      }
      case 'add':
        if (ins.length === 1) return a;
        // addN needs equal shapes; a graph model's AddV2 may broadcast ([N,1,1,C] + [N,H,W,C]).
        return ins.every((t) => t.shape.join() === a.shape.join()) ? tf.addN(ins) : ins.slice(1).reduce((p, t) => tf.add(p, t), a);
      case 'mul':
        return ins.slice(1).reduce((p, t) => tf.mul(p, t), a);
      case 'concat':
        return tf.concat(ins, op.axis);
      case 'zeroPad':
        return tf.pad(a, [[0, 0], op.pads[0], op.pads[1], [0, 0]]);
      case 'mirrorPad':
        return runMirrorPad(a as tf.Tensor4D, op, mode);
    }
  }

  /**
   * A node's output before its own rectifier, from values of run(): recomputed for a fused conv or
   * dense node (one extra kernel), read from the input for an activation node, else the output.
   */
  preActivation(values: tf.Tensor[], index: number): tf.Tensor {
    const node = this.nodes[index]!;
    const op = linearized(node.op);
    if (op === node.op) return values[index]!;
    if (node.op.kind === 'act') return values[node.inputs[0]!]!;
    return this.exec(op, node.inputs.map((j) => values[j]!), values[0] as tf.Tensor4D, 'plain', 'gradient');
  }

  /**
   * Our own backward pass over values from run() (mode "plain"): the signal `seed` placed at node
   * `from`'s output travels back to node `to`. Only input gradients are computed, and no tape is
   * kept. Call inside tf.tidy.
   */
  backward(values: tf.Tensor[], from: number, seed: tf.Tensor, opts: BackwardOptions = {}): tf.Tensor {
    const rule = opts.rule ?? 'gradient';
    const to = opts.to ?? 0;
    const grads: (tf.Tensor | undefined)[] = new Array(from + 1);
    grads[from] = seed;
    for (let i = from; i > to; i--) {
      const dy = grads[i];
      if (!dy) continue;
      const node = this.nodes[i]!;
      const ins = node.inputs.map((j) => values[j]!);
      const op = i === from && opts.linearStart ? linearized(node.op) : node.op;
      const dxs = this.backOp(op, ins, values[i]!, dy, rule);
      node.inputs.forEach((j, k) => {
        if (j < to) return;
        const g = dxs[k]!;
        grads[j] = grads[j] ? tf.add(grads[j]!, g) : g;
      });
    }
    const out = grads[to];
    if (!out) throw new Error(`node ${to} does not lead to node ${from}`);
    return out;
  }

  private backOp(op: NetNode, ins: tf.Tensor[], y: tf.Tensor, dy: tf.Tensor, rule: BackwardRule): tf.Tensor[] {
    const x = ins[0]!;
    switch (op.kind) {
      case 'input':
        return [];
      case 'conv': {
        const g = activationBackward(dy, y, op.spec.activation, rule) as tf.Tensor4D;
        return [convInputGrad(g, op.spec, x.shape)];
      }
      case 'act':
        return [activationBackward(dy, y, op.act, rule)];
      case 'nonlinear': {
        // A clipped ReLU is a rectifier: deconv and guided treat it as ReLU6 is treated.
        if (op.fn === 'relu_max' && rule !== 'gradient') {
          const r = tf.relu(dy);
          return [rule === 'deconv' ? r : elementwiseBackward(op.fn, x, y, r, op.max)];
        }
        return [elementwiseBackward(op.fn, x, y, dy, op.max)];
      }
      case 'pool':
        return op.spec.kind === 'max'
          ? [maxPoolInputGrad(x as tf.Tensor4D, y as tf.Tensor4D, dy as tf.Tensor4D, op.spec)]
          : [avgPoolInputGrad(x as tf.Tensor4D, dy as tf.Tensor4D, op.spec)];
      case 'globalPool': {
        const [n, h, w, c] = x.shape as [number, number, number, number];
        const d4 = tf.reshape(dy, [n, 1, 1, c]);
        if (op.op === 'mean') return [tf.broadcastTo(tf.div(d4, h * w), [n, h, w, c])];
        const mask = tf.cast(tf.equal(x, tf.reshape(y, [n, 1, 1, c])), 'float32');
        return [tf.div(tf.mul(mask, d4), tf.sum(mask, [1, 2], true))];
      }
      case 'affine':
        return [tf.mul(dy, op.scale)];
      case 'reshape':
      case 'flatten':
        return [tf.reshape(dy, x.shape)];
      case 'dense': {
        const g = activationBackward(dy, y, op.act, rule) as tf.Tensor2D;
        return [tf.matMul(g, op.kernel, false, true)];
      }
      case 'add':
        return ins.map((t) => unbroadcast(dy, t.shape));
      case 'mul':
        // Each input's gradient is dy times the product of the others, summed back over any
        // axis it was broadcast along (a [N,1,1,C] gate times a [N,H,W,C] map).
        return ins.map((t, k) => {
          const others = ins.filter((_, j) => j !== k).reduce((p, u) => tf.mul(p, u));
          return unbroadcast(tf.mul(dy, others), t.shape);
        });
      case 'concat': {
        const axis = op.axis < 0 ? op.axis + dy.rank : op.axis;
        return tf.split(dy, ins.map((t) => t.shape[axis]!), axis);
      }
      case 'zeroPad': {
        const [n, h, w, c] = x.shape as [number, number, number, number];
        return [tf.slice(dy, [0, op.pads[0][0], op.pads[1][0], 0], [n, h, w, c])];
      }
      case 'mirrorPad': {
        const rows = mirrorPadBack(dy as tf.Tensor4D, 1, op.pads[0][0], op.pads[0][1], op.mode);
        return [mirrorPadBack(rows, 2, op.pads[1][0], op.pads[1][1], op.mode)];
      }
    }
  }

  dispose(): void {
    for (const n of this.nodes) {
      const op = n.op;
      if (op.kind === 'conv') {
        op.spec.filter.dispose();
        op.spec.filterBack.dispose();
        op.spec.bias?.dispose();
      } else if (op.kind === 'affine') {
        op.scale.dispose();
        op.shift.dispose();
      } else if (op.kind === 'dense') {
        op.kernel.dispose();
        op.bias?.dispose();
      }
    }
  }
}
