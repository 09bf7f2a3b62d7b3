// The gradient suite's cases, shared by every backend's gradient tests: per bundled model an early
// layer, middle layers (after a max-pool or a strided depthwise convolution), a spatial mean and
// two class logits, with units chosen live for the input.
import * as tf from '@tensorflow/tfjs-core';
import type { Model, UnitObjective } from '../../main/engine/index.js';

export interface LabelledObjective {
  label: string;
  o: UnitObjective;
}

export const CASES: Record<string, { early: string; middle: string[] }> = {
  'darknet-tiny': { early: 'leaky_re_lu_1', middle: ['max_pooling2d_2', 'leaky_re_lu_8'] },
  'mobilenet-v1-0.75': { early: 'conv1_relu', middle: ['conv_dw_6_relu', 'conv_pw_7_relu'] },
  'mobilenet-v1-0.25': { early: 'conv1_relu', middle: ['conv_dw_4_relu', 'conv_pw_9_relu'] },
};

/**
 * A random unit direction at 45° to the gradient: ĝ + r̂ with r̂ uniform on the sphere. A fully
 * random direction in 150k dimensions is nearly orthogonal to g (g·d ~ |g|/390), and a step long
 * enough to measure that in float32 crosses ReLU kinks; this keeps the step tiny and the signal
 * large, while the random part still probes components the gradient might have wrong.
 */
export function direction(g: tf.Tensor4D, seed: number): tf.Tensor4D {
  return tf.tidy(() => {
    const r = tf.randomNormal(g.shape, 0, 1, 'float32', seed);
    const d = tf.add(tf.div(g, tf.norm(g)), tf.div(r, tf.norm(r)));
    return tf.div(d, tf.norm(d)) as tf.Tensor4D;
  });
}

export function dot(a: tf.Tensor, b: tf.Tensor): number {
  return tf.tidy(() => tf.sum(tf.mul(a, b)).dataSync()[0]!);
}

export function cosine(a: tf.Tensor, b: tf.Tensor): number {
  return tf.tidy(() => tf.sum(tf.mul(a, b)).div(tf.norm(a).mul(tf.norm(b))).dataSync()[0]!);
}

/**
 * The unit (channel and position) of a layer with the largest unsaturated activation for this
 * input, so the gradient is neither zero (dead ReLU) nor zero (ReLU6 clipped at 6).
 */
export function liveUnit(model: Model, x: tf.Tensor4D, layer: string): { channel: number; at: { y: number; x: number } } {
  const t = tf.tidy(() => model.forward(x, { taps: [layer], logits: false }).taps[layer]!);
  const [, h, w, c] = t.shape;
  const v = t.dataSync();
  t.dispose();
  let best = -1;
  for (let i = 0; i < v.length; i++) if (v[i]! > 0 && v[i]! < 5.5 && (best < 0 || v[i]! > v[best]!)) best = i;
  if (best < 0) throw new Error(`no live unit in ${layer}`);
  return { channel: best % c, at: { y: Math.floor(best / (w * c)), x: Math.floor(best / c) % w } };
}

/** The suite's objectives for one model and input (units picked from that input's activations). */
export function gradientObjectives(model: Model, x: tf.Tensor4D): LabelledObjective[] {
  const c = CASES[model.id]!;
  const out: LabelledObjective[] = [];
  out.push({ label: `early ${c.early}`, o: { kind: 'channel', layer: c.early, ...liveUnit(model, x, c.early) } });
  for (const m of c.middle) out.push({ label: `middle ${m}`, o: { kind: 'channel', layer: m, ...liveUnit(model, x, m) } });
  out.push({ label: 'middle spatial mean', o: { kind: 'channel', layer: c.middle[1]!, channel: 3, at: 'mean' } });
  out.push({ label: 'logit of the top class', o: { kind: 'class', index: tf.tidy(() => tf.argMax(model.forward(x).logits!, 1).dataSync()[0]!) } });
  out.push({ label: 'logit of bald eagle', o: { kind: 'class', index: model.classes.findIndex((k) => k.name.startsWith('bald eagle')) } });
  return out;
}

export { rel as relError } from './numeric.js';
