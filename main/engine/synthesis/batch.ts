// A batch of images under optimisation, as the run loop (run.ts) drives it: one evaluation per
// step at that step's jitter, the best image per seed, previews, and the step itself. Two kinds
// hold it: tensors (pixels, MACO: tensor-batch.ts) and plain arrays (the pyramid: pyramid-batch.ts).
import * as tf from '@tensorflow/tfjs-core';
import type { SynthSettings } from './settings.js';
import { tidyData } from '../tensor-data.js';

export const GREY = 127.5;

export interface Evaluation {
  /** Objective per seed. */
  values: number[];
  /** Softmax probability of the target class per seed (class units), else null. */
  probs: number[] | null;
}

export interface OptimisedBatch {
  /**
   * The objective at this step's jittered view of the current images and its gradient; throws a
   * NonFiniteError naming the layer when the objective or its gradient is not finite.
   */
  evaluate(step: number): Promise<Evaluation>;
  /** Keep the image just evaluated as the best of the seeds marked. */
  keepBest(improved: boolean[]): void;
  /** Preview bytes (previewBytes) of the image just evaluated, or of the start before any. */
  preview(): Uint8Array[];
  /** Move the variables along the last evaluation's gradient, then apply the pixel-space regularisers of step `step` (1-based). */
  step(step: number): void;
  /** Release what the last evaluation held (however the step ended). */
  endStep(): void;
  /** The best images, centred pixels [n,h,w,3]; the caller disposes. */
  best(): tf.Tensor4D;
  dispose(): void;
}

/** A small deterministic PRNG (mulberry32): seeded jitter makes runs reproducible. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** The jitter of one step, from a seed's generator: (dy, dx) in −jitter…jitter, dy drawn first. */
export function drawShift(rand: () => number, jitter: number): [number, number] {
  if (!jitter) return [0, 0];
  const dy = Math.round((rand() * 2 - 1) * jitter);
  const dx = Math.round((rand() * 2 - 1) * jitter);
  return [dy, dx];
}

/** The generator of a seed's jitter. */
export function jitterSource(seed: number): () => number {
  return mulberry32(seed * 7919 + 1);
}

/** Centred pixels → displayable 8-bit RGB, one array per image. */
export function toRgbBytes(img: tf.Tensor4D): Uint8Array[] {
  const [n, h, w] = img.shape;
  const data = tidyData(() => tf.cast(tf.round(tf.clipByValue(tf.add(img, GREY), 0, 255)), 'int32'));
  const out: Uint8Array[] = [];
  for (let i = 0; i < n; i++) out.push(Uint8Array.from(data.subarray(i * h * w * 3, (i + 1) * h * w * 3)));
  return out;
}

/**
 * Preview bytes as the pane shows them: centred pixels scaled about grey so the largest deviation
 * reaches the full range when it is smaller (the first steps' images are faint, not grey fields).
 */
export function previewBytes(img: tf.Tensor4D): Uint8Array[] {
  const stretched = tf.tidy(() => {
    const peak = tf.max(tf.abs(img), [1, 2, 3], true);
    const gain = tf.clipByValue(tf.div(GREY, tf.maximum(peak, 1e-6)), 1, 1e4);
    return tf.mul(img, gain) as tf.Tensor4D;
  });
  try {
    return toRgbBytes(stretched);
  } finally {
    stretched.dispose();
  }
}

/** Whether any pixel-space regulariser (or the pull toward the start image) acts at this step. */
export function regularizes(s: SynthSettings, step: number): boolean {
  return s.decay > 0 || (s.blurWidth > 0 && s.blurEvery > 0 && step % s.blurEvery === 0) || s.normPct > 0 || s.contribPct > 0 || s.closeness > 0;
}

export { targetProbs } from '../softmax.js';

/** A view's random scale and rotation about the image centre, on top of its roll. */
export interface Warp {
  scale: number;
  /** Radians. */
  angle: number;
}

/**
 * The scale and rotation of one step's view, from a seed's generator after its shift: scale in
 * 1 ± `scale`, angle in ± `rotate` degrees; null when both are off (the view is a plain roll, and
 * the generator draws nothing more, so such runs stay as they were).
 */
export function drawWarp(rand: () => number, scale: number, rotate: number): Warp | null {
  if (!scale && !rotate) return null;
  const sc = 1 + (rand() * 2 - 1) * scale;
  const angle = ((rand() * 2 - 1) * rotate * Math.PI) / 180;
  return { scale: sc, angle };
}
