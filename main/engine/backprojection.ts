// Back-projection of a unit onto the input, as in the Deep Visualization Toolbox: the selected
// channel of a displayed layer is seeded with its own activation map (every other channel zero),
// a class with a one-hot on the logits, and the signal runs back to the input through our own
// backward pass (GraphNet.backward: no tape, no filter gradients) under one of three rules for the
// rectifiers (see BackwardRule in ops.ts for what "rectify" means for ReLU6 and LeakyReLU):
//   backprop — the plain gradient;
//   deconv   — Zeiler & Fergus: the backward signal is rectified, the forward activation ignored;
//   guided   — Springenberg et al.: both gates (forward activation and backward signal).
// Max-pools route the signal through the forward pass's switches (argmax) in every mode.
import * as tf from '@tensorflow/tfjs-core';
import type { Model } from './model.js';
import { channelSeed, nativeBackward, nativeEngine } from './onnx/native-net.js';
import type { BackwardRule } from './ops.js';

import { BACK_MODES, type BackModeT } from '../../contract/backprojection.js';

export { BACK_MODES };
export type BackMode = BackModeT;

/** What to back-project: a channel of a displayed layer (name or display name), or a class logit. */
export type BackTarget = { kind: 'class'; index: number } | { kind: 'channel'; layer: string; channel: number };

export interface BackprojectOptions {
  /**
   * Stop at this displayed layer (name or display name) and return the signal arriving at its
   * output — DVT's "back diffs" at a layer — instead of the input-space map.
   */
  to?: string;
}

export function backwardRule(mode: BackMode): BackwardRule {
  switch (mode) {
    case 'backprop':
      return 'gradient';
    case 'deconv':
      return 'deconv';
    case 'guided':
      return 'guided';
    default:
      throw new Error(`unknown back-projection mode "${String(mode)}" (backprop, deconv or guided)`);
  }
}

export function describeTarget(model: Model, t: BackTarget): string {
  if (t.kind === 'class') return `class ${t.index} (${model.classes[t.index]?.name ?? '?'})`;
  const l = model.layer(t.layer);
  return `${l.display}:${t.channel}`;
}

/** The node a target reads, checked against the model (unknown layer, unit out of range). */
export function targetNode(model: Model, t: BackTarget): number {
  if (t.kind === 'class') {
    const n = model.classes.length;
    if (!Number.isInteger(t.index) || t.index < 0 || (n > 0 && t.index >= n)) {
      throw new Error(`class ${t.index} is out of range for ${model.id} (0…${n - 1})`);
    }
    return model.compiled.logitsNode;
  }
  const l = model.layer(t.layer);
  if (!Number.isInteger(t.channel) || t.channel < 0 || t.channel >= l.units) {
    throw new Error(`unit ${t.channel} is out of range for layer ${l.display} of ${model.id} (0…${l.units - 1})`);
  }
  return model.compiled.net.nodeIndex(l.name);
}

/**
 * The backward seed at the target node's output `y` (any rank, channels last): for a channel, y
 * with every other channel zeroed (DVT); for a class, a one-hot (the same for every batch item).
 */
export function targetSeed(y: tf.Tensor, t: BackTarget): tf.Tensor {
  return tf.tidy(() => {
    const c = y.shape[y.rank - 1]!;
    const unit = t.kind === 'class' ? t.index : t.channel;
    if (unit >= c) throw new Error(`unit ${unit} is out of range (0…${c - 1})`);
    const mask = tf.oneHot(tf.tensor1d([unit], 'int32'), c).reshape([c]);
    if (t.kind === 'channel') return tf.mul(y, mask);
    return tf.mul(tf.onesLike(y), mask);
  });
}

/**
 * Back-project a target for a batch of preprocessed inputs [N,H,W,3]. Returns the map in the
 * network's input space, [N,H,W,3] (or, with `to`, the signal at that layer's output). Each batch
 * item is seeded with its own activations. The caller disposes the result.
 */
export function backproject(model: Model, x: tf.Tensor4D, target: BackTarget, mode: BackMode, opts: BackprojectOptions = {}): tf.Tensor4D {
  const rule = backwardRule(mode);
  const from = targetNode(model, target);
  const net = model.compiled.net;
  let to = 0;
  if (opts.to !== undefined) {
    to = net.nodeIndex(model.layer(opts.to).name);
    if (to > from) throw new Error(`layer ${model.layer(opts.to).display} comes after the target ${describeTarget(model, target)}`);
  }
  if (nativeEngine(model)) return nativeBackproject(model, x, target, rule, from, to);
  return tf.tidy(() => {
    const values = net.run(x, { until: from });
    const seed = targetSeed(values[from]!, target);
    const g = net.backward(values, from, seed, { rule, to });
    return (g.rank === 4 ? g : tf.reshape(g, [g.shape[0]!, 1, 1, -1])) as tf.Tensor4D;
  });
}

/** backproject() on ONNX Runtime: a channel seeds itself ("self"), a class a one-hot ("ones"). */
function nativeBackproject(model: Model, x: tf.Tensor4D, target: BackTarget, rule: BackwardRule, from: number, to: number): tf.Tensor4D {
  const n = x.shape[0];
  const mask = channelSeed(model, x, from, target.kind === 'class' ? target.index : target.channel, () => 1);
  const r = nativeBackward(model, x, { from, to, rule, linearStart: false, seed: target.kind === 'class' ? 'ones' : 'self' }, mask);
  if (r.grad.rank === 4) return r.grad as tf.Tensor4D;
  const g = tf.reshape(r.grad, [n, 1, 1, -1]) as tf.Tensor4D;
  r.grad.dispose();
  return g;
}
