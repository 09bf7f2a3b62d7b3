// Unit objectives (a channel of a displayed layer at a position or averaged over space, or a class
// logit) and their input gradients, for whole batches.
import * as tf from '@tensorflow/tfjs-core';
import type { Model } from './model.js';
import { inputShapeOf, nativeBackward, nativeBackwardData, nativeEngine, nativeNodeShapes } from './onnx/native-net.js';
import type { BackwardRule, ExecMode } from './ops.js';

export type Position = 'center' | 'mean' | { y: number; x: number };

export type UnitObjective =
  | { kind: 'class'; index: number }
  | { kind: 'channel'; layer: string; channel: number; at?: Position };

export function describeObjective(o: UnitObjective): string {
  if (o.kind === 'class') return `logit ${o.index}`;
  const at = o.at ?? 'center';
  return `${o.layer}:${o.channel}@${typeof at === 'string' ? at : `${at.y},${at.x}`}`;
}

/** Node whose output the objective reads. */
export function objectiveNode(model: Model, o: UnitObjective): number {
  if (o.kind === 'class') return model.compiled.logitsNode;
  model.layer(o.layer);
  return model.compiled.net.nodeIndex(model.layer(o.layer).name);
}

function as4d(t: tf.Tensor): tf.Tensor4D {
  return (t.rank === 4 ? t : tf.reshape(t, [t.shape[0]!, 1, 1, -1])) as tf.Tensor4D;
}

function resolvePosition(at: Position | undefined, h: number, w: number): { y: number; x: number } | 'mean' {
  const p = at ?? 'center';
  if (p === 'mean') return 'mean';
  if (p === 'center') return { y: Math.floor(h / 2), x: Math.floor(w / 2) };
  if (p.y < 0 || p.y >= h || p.x < 0 || p.x >= w) throw new Error(`position ${p.y},${p.x} is outside the ${h}×${w} map`);
  return p;
}

function checkUnit(o: UnitObjective, channels: number): void {
  const unit = o.kind === 'class' ? o.index : o.channel;
  if (!Number.isInteger(unit) || unit < 0 || unit >= channels) {
    throw new Error(`unit ${unit} is out of range (0…${channels - 1}) for ${o.kind === 'class' ? 'the logits' : o.layer}`);
  }
}

/** The objective's value for each batch item ([N]) from its node's output (no tidy: tape-safe). */
export function objectiveValue(nodeOutput: tf.Tensor, o: UnitObjective): tf.Tensor1D {
  {
    const t = as4d(nodeOutput);
    const [n, h, w, c] = t.shape;
    const ch = o.kind === 'class' ? o.index : o.channel;
    checkUnit(o, c);
    const pos = o.kind === 'class' ? 'mean' : resolvePosition(o.at, h, w);
    if (pos === 'mean') return tf.reshape(tf.mean(tf.slice(t, [0, 0, 0, ch], [n, h, w, 1]), [1, 2, 3]), [n]);
    return tf.reshape(tf.slice(t, [0, pos.y, pos.x, ch], [n, 1, 1, 1]), [n]);
  }
}

/** d objective / d node output: the same for every batch item since the objective is linear in it. */
export function objectiveSeed(shape: number[], o: UnitObjective): tf.Tensor {
  return objectiveMask(shape, new Array<UnitObjective>(shape[0]!).fill(o));
}

/**
 * Per-item objectives that read the same node (e.g. a different channel of one layer for each
 * batch item, as the atlas does): a mask M shaped like the node's output with value_i = Σ out_i·M_i.
 * Every objective here is linear in the node's output, so M is also d value / d out.
 */
export function objectiveMask(shape: number[], objectives: readonly UnitObjective[]): tf.Tensor {
  return tf.tensor(objectiveMaskData(shape, objectives), shape);
}

/** objectiveMask's values, for the ONNX Runtime engine (which takes them as they are). */
export function objectiveMaskData(shape: number[], objectives: readonly UnitObjective[]): Float32Array {
  const s4 = shape.length === 4 ? shape : [shape[0]!, 1, 1, shape[shape.length - 1]!];
  const [n, h, w, c] = s4 as [number, number, number, number];
  if (objectives.length !== n) throw new Error(`${objectives.length} objectives for a batch of ${n}`);
  const m = new Float32Array(n * h * w * c);
  objectives.forEach((o, i) => {
    const ch = o.kind === 'class' ? o.index : o.channel;
    checkUnit(o, c);
    const pos = o.kind === 'class' ? 'mean' : resolvePosition(o.at, h, w);
    const base = i * h * w * c;
    if (pos === 'mean') for (let j = 0; j < h * w; j++) m[base + j * c + ch] = 1 / (h * w);
    else m[base + (pos.y * w + pos.x) * c + ch] = 1;
  });
  return m;
}

/**
 * The objectives as an ONNX Runtime backward seed for node output `shape` (batch first): per-item
 * channel weights ("ones", [N, C]) when every objective is spatially uniform (a class, a channel's
 * mean), else the full mask ("given").
 */
export function nativeObjectiveSeed(shape: number[], objectives: readonly UnitObjective[]): { kind: 'given' | 'ones'; data: Float32Array } {
  const uniform = objectives.every((o) => o.kind === 'class' || o.at === 'mean');
  if (!uniform) return { kind: 'given', data: objectiveMaskData(shape, objectives) };
  const c = shape[shape.length - 1]!;
  const hw = shape.length === 4 ? shape[1]! * shape[2]! : 1;
  const m = new Float32Array(objectives.length * c);
  objectives.forEach((o, i) => {
    checkUnit(o, c);
    m[i * c + (o.kind === 'class' ? o.index : o.channel)] = 1 / hw;
  });
  return { kind: 'ones', data: m };
}

export interface GradientResult {
  /** Objective per batch item, [N]. */
  value: tf.Tensor1D;
  /** Gradient with respect to the network input (preprocessed space), [N,H,W,3]. */
  grad: tf.Tensor4D;
}

/**
 * Input gradient of an objective for a batch of preprocessed inputs, with our own backward pass
 * (no tape, no filter gradients). The caller owns (disposes) the returned tensors.
 */
export function inputGradient(model: Model, x: tf.Tensor4D, o: UnitObjective, rule: BackwardRule = 'gradient'): GradientResult {
  const node = objectiveNode(model, o);
  if (nativeEngine(model)) {
    const shape = [x.shape[0], ...nativeNodeShapes(model, inputShapeOf(x))[node]!];
    const seed = nativeObjectiveSeed(shape, new Array<UnitObjective>(x.shape[0]).fill(o));
    const r = nativeBackward(model, x, { from: node, to: 0, rule, linearStart: false, seed: seed.kind }, seed.data);
    return { value: r.value!, grad: r.grad as tf.Tensor4D };
  }
  return tf.tidy(() => {
    const values = model.compiled.net.run(x, { until: node });
    const out = values[node]!;
    const value = objectiveValue(out, o);
    const grad = model.compiled.net.backward(values, node, objectiveSeed(out.shape, o), { rule }) as tf.Tensor4D;
    return { value, grad };
  });
}

export interface NativeObjectiveResult extends GradientResult {
  /** The logits ([N, classes]) from the same run, when asked for. */
  logits: tf.Tensor2D | null;
}

/**
 * Per-item objectives reading one node, their input gradient and (optionally) the logits, in one
 * ONNX Runtime run — the synthesis step. With linearStart the value and the gradient are those of
 * the node's pre-activation (BackwardOptions.linearStart). Only while an onnx backend is selected.
 */
export function nativeObjectiveGradient(
  model: Model,
  x: tf.Tensor4D,
  objectives: readonly UnitObjective[],
  node: number,
  opts: { linearStart: boolean; logits: boolean },
): NativeObjectiveResult {
  const shape = [x.shape[0], ...nativeNodeShapes(model, inputShapeOf(x))[node]!];
  const seed = nativeObjectiveSeed(shape, objectives);
  const logitsNode = model.compiled.logitsNode;
  const taps = opts.logits ? [logitsNode] : [];
  const r = nativeBackward(model, x, { from: node, to: 0, rule: 'gradient', linearStart: opts.linearStart, seed: seed.kind }, seed.data, taps);
  let logits: tf.Tensor2D | null = null;
  if (opts.logits) {
    logits = tf.reshape(r.taps[0]!, [x.shape[0], -1]) as tf.Tensor2D;
    r.taps[0]!.dispose();
  }
  return { value: r.value!, grad: r.grad as tf.Tensor4D, logits };
}

/**
 * nativeObjectiveGradient's counterpart on tfjs (no tape): the value and the gradient of each
 * objective's PRE-activation (a unit that starts dead behind its ReLU would have no gradient, and
 * a ReLU6 unit would stop improving at 6; class logits are linear anyway), and the logits when
 * asked for. The caller owns the results.
 */
export function tfObjectiveGradient(model: Model, x: tf.Tensor4D, objectives: readonly UnitObjective[], node: number, opts: { logits: boolean }): NativeObjectiveResult {
  const [value, grad, logits] = tf.tidy(() => {
    const net = model.compiled.net;
    const values = net.run(x, { until: Math.max(opts.logits ? model.compiled.logitsNode : node, node) });
    const pre = net.preActivation(values, node);
    const mask = objectiveMask(pre.shape, objectives);
    const value = tf.sum(tf.reshape(tf.mul(pre, mask), [pre.shape[0]!, -1]), 1);
    const grad = net.backward(values, node, mask, { linearStart: true });
    return opts.logits ? [value, grad, tf.reshape(values[model.compiled.logitsNode]!, [x.shape[0], -1])] : [value, grad];
  });
  return { value: value as tf.Tensor1D, grad: grad as tf.Tensor4D, logits: (logits as tf.Tensor2D | undefined) ?? null };
}

// A synthesis asks for the same objectives every step: its seed (a full mask for a unit at a
// position, 100 KB on a middle layer) is built once, not once a step. ORT only reads it.
const seeds = new WeakMap<readonly UnitObjective[], { shape: string; seed: ReturnType<typeof nativeObjectiveSeed> }>();

function seedFor(shape: number[], objectives: readonly UnitObjective[]): ReturnType<typeof nativeObjectiveSeed> {
  const key = shape.join('x');
  const hit = seeds.get(objectives);
  if (hit?.shape === key) return hit.seed;
  const seed = nativeObjectiveSeed(shape, objectives);
  seeds.set(objectives, { shape: key, seed });
  return seed;
}

/** The synthesis step's objective values, input gradient and logits, on plain arrays. */
export interface ObjectiveGradientData {
  value: Float32Array;
  /** With respect to the network input, NHWC like the input. */
  grad: Float32Array;
  /** [N, classes], when asked for. */
  logits: Float32Array | null;
}

/**
 * Pre-activation objectives (as tfObjectiveGradient) for an input given as a plain array of
 * `dims` (NHWC, batch first), on ONNX Runtime when it is selected (no tensor at all), else on tfjs.
 */
export function objectiveGradientData(
  model: Model,
  x: Float32Array,
  dims: [number, number, number, number],
  objectives: readonly UnitObjective[],
  node: number,
  opts: { logits: boolean },
): ObjectiveGradientData {
  if (nativeEngine(model)) {
    const shape = [dims[0], ...nativeNodeShapes(model, [dims[1], dims[2], dims[3]])[node]!];
    const seed = seedFor(shape, objectives);
    const taps = opts.logits ? [model.compiled.logitsNode] : [];
    const r = nativeBackwardData(model, x, dims, { from: node, to: 0, rule: 'gradient', linearStart: true, seed: seed.kind }, seed.data, taps);
    return { value: r.value!, grad: r.grad, logits: opts.logits ? r.taps[0]! : null };
  }
  const xt = tf.tensor4d(x, dims);
  const r = tfObjectiveGradient(model, xt, objectives, node, opts);
  try {
    return { value: r.value.dataSync() as Float32Array, grad: r.grad.dataSync() as Float32Array, logits: r.logits ? (r.logits.dataSync() as Float32Array) : null };
  } finally {
    tf.dispose([xt, r.value, r.grad, ...(r.logits ? [r.logits] : [])]);
  }
}

/** The objective as a differentiable function of the input, for tf.grad (taped or reference ops). */
export function objectiveFunction(model: Model, o: UnitObjective, mode: Exclude<ExecMode, 'plain'>): (x: tf.Tensor4D) => tf.Tensor1D {
  const node = objectiveNode(model, o);
  return (x) => objectiveValue(model.compiled.net.run(x, { until: node, mode })[node]!, o);
}

/** Input gradient with tfjs' own autodiff (reference ops or taped custom ops) — for checks. */
export function tapedInputGradient(model: Model, x: tf.Tensor4D, o: UnitObjective, mode: Exclude<ExecMode, 'plain'>): tf.Tensor4D {
  const f = objectiveFunction(model, o, mode);
  return tf.tidy(() => tf.grad((xi: tf.Tensor) => tf.sum(f(xi as tf.Tensor4D)))(x) as tf.Tensor4D);
}
