// The paper's four regularisers (Yosinski et al. 2015, §3), applied in this order after each step,
// on a batch of centred pixel images [N,H,W,3] (0 = grey). Each returns a new tensor; call in tidy.
import * as tf from '@tensorflow/tfjs-core';
import type { SynthSettings } from './settings.js';

/** 1. L2 decay: x ← (1 − θ)·x. */
export function decay(x: tf.Tensor4D, theta: number): tf.Tensor4D {
  return theta > 0 ? tf.mul(x, 1 - theta) : x;
}

const kernels = new Map<number, Float32Array>();

/** Normalised 1-D Gaussian taps, radius ⌈4σ⌉ (scipy's gaussian_filter truncation, which DVT used). */
function gaussianTaps(sigma: number): Float32Array {
  let k = kernels.get(sigma);
  if (!k) {
    const r = Math.max(1, Math.ceil(4 * sigma));
    k = new Float32Array(2 * r + 1);
    let sum = 0;
    for (let i = -r; i <= r; i++) sum += k[i + r] = Math.exp(-(i * i) / (2 * sigma * sigma));
    for (let i = 0; i < k.length; i++) k[i]! /= sum;
    kernels.set(sigma, k);
  }
  return k;
}

/** 2. Gaussian blur of width σ, separable, with reflected borders (scipy "reflect", as DVT). */
export function gaussianBlur(x: tf.Tensor4D, sigma: number): tf.Tensor4D {
  if (sigma <= 0) return x;
  const taps = gaussianTaps(sigma);
  const r = (taps.length - 1) / 2;
  const [, h, w] = x.shape;
  if (r >= h || r >= w) return x; // too small an image for this blur; leave it
  const c = x.shape[3];
  const col = tf.tile(tf.reshape(tf.tensor1d(taps), [taps.length, 1, 1, 1]), [1, 1, c, 1]) as tf.Tensor4D;
  const row = tf.reshape(col, [1, taps.length, c, 1]) as tf.Tensor4D;
  const padded = tf.mirrorPad(x, [[0, 0], [r, r], [r, r], [0, 0]], 'symmetric');
  return tf.depthwiseConv2d(tf.depthwiseConv2d(padded, col, 1, 'valid'), row, 1, 'valid');
}

/**
 * Per image, the value below which `pct` percent of `score` ([N, P]) lies; entries under it are
 * to be zeroed. Returned as [N,1] for broadcasting.
 */
function percentileThreshold(score: tf.Tensor2D, pct: number): tf.Tensor2D {
  const p = score.shape[1];
  const k = Math.min(p - 1, Math.floor((pct / 100) * p));
  // The (k+1) smallest values, via topk of the negation; the largest of them is the threshold.
  const smallest = tf.neg(tf.topk(tf.neg(score), k + 1).values);
  return tf.slice(smallest, [0, k], [-1, 1]) as tf.Tensor2D;
}

function zeroBelow(x: tf.Tensor4D, score: tf.Tensor3D, pct: number): tf.Tensor4D {
  const [n, h, w] = score.shape;
  const flat = tf.reshape(score, [n, h * w]) as tf.Tensor2D;
  const keep = tf.cast(tf.greaterEqual(flat, percentileThreshold(flat, pct)), 'float32');
  return tf.mul(x, tf.reshape(keep, [n, h, w, 1]));
}

/** 3. Clip pixels with small norm: zero pixel j when its RGB norm is below the θ_n_pct percentile. */
export function clipSmallNorm(x: tf.Tensor4D, pct: number): tf.Tensor4D {
  if (pct <= 0) return x;
  return zeroBelow(x, tf.sqrt(tf.sum(tf.square(x), 3)) as tf.Tensor3D, pct);
}

/** 4. Clip pixels with small contribution: zero pixel j when |Σ_c x_cj·g_cj| is below the θ_c_pct percentile. */
export function clipSmallContribution(x: tf.Tensor4D, g: tf.Tensor4D, pct: number): tf.Tensor4D {
  if (pct <= 0) return x;
  return zeroBelow(x, tf.abs(tf.sum(tf.mul(x, g), 3)) as tf.Tensor3D, pct);
}

/** Pull toward the start image: x ← x − θ·(x − start) (feature accentuation; not in the paper). */
export function pullToward(x: tf.Tensor4D, start: tf.Tensor4D | null, theta: number): tf.Tensor4D {
  return theta > 0 && start ? tf.sub(x, tf.mul(tf.sub(x, start), theta)) : x;
}

/**
 * All four, in the paper's order, for step number `step` (1-based), after the pull toward the
 * start image when there is one. `g` is the step's gradient.
 */
export function regularize(x: tf.Tensor4D, g: tf.Tensor4D, s: SynthSettings, step: number, start: tf.Tensor4D | null = null): tf.Tensor4D {
  let y = pullToward(x, start, s.closeness);
  y = decay(y, s.decay);
  if (s.blurWidth > 0 && s.blurEvery > 0 && step % s.blurEvery === 0) y = gaussianBlur(y, s.blurWidth);
  y = clipSmallNorm(y, s.normPct);
  y = clipSmallContribution(y, g, s.contribPct);
  return y;
}
