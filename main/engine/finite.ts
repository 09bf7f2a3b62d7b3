// NaN and ±Infinity out of a model (damaged or overflowing weights, an input the model was not
// made for) must become one named error, never a reply full of NaN: JSON turns NaN into null and
// the renderer's reply validation then rejects the whole frame. When a result is not finite, the
// forward pass is run again with every displayed layer tapped to name the first that went wrong.
import * as tf from '@tensorflow/tfjs-core';
import { tidyData } from './tensor-data.js';

/** What the check runs of a model (model.ts checks its own results here, so no Model type). */
export interface CheckedModel {
  readonly id: string;
  readonly layers: readonly { name: string; display: string }[];
  forward(x: tf.Tensor4D, opts: { taps: string[] }): { taps: Record<string, tf.Tensor>; logits: tf.Tensor | null };
}

export class NonFiniteError extends Error {
  constructor(
    message: string,
    /** The first displayed layer (display name) or "logits" whose output was not finite, when known. */
    readonly layer: string | null,
  ) {
    super(message);
    this.name = 'NonFiniteError';
  }
}

export function allFinite(values: ArrayLike<number>): boolean {
  for (let i = 0; i < values.length; i++) if (!Number.isFinite(values[i]!)) return false;
  return true;
}

/** The display name of the first displayed layer (then "logits") whose output on `x` holds NaN or ±Infinity. */
export function firstNonFiniteLayer(model: CheckedModel, x: tf.Tensor4D): string | null {
  // One flag per layer, read once: the scope frees every intermediate.
  const names = model.layers.map((l) => l.name);
  const v = tidyData(() => {
    const out = model.forward(x, { taps: names });
    const ok = (t: tf.Tensor) => tf.cast(tf.all(tf.isFinite(t)), 'int32').reshape([1]);
    return tf.concat([...names.map((n) => ok(out.taps[n]!)), ok(out.logits!)]);
  });
  const at = v.indexOf(0);
  if (at < 0) return null;
  return at < names.length ? model.layers[at]!.display : 'logits';
}

/**
 * The error for a non-finite result of `model` on the (preprocessed) input `x`; `during` says
 * when, e.g. " at step 3 of the synthesis".
 */
export function nonFiniteError(model: CheckedModel, x: tf.Tensor4D, what = 'output', during = ''): NonFiniteError {
  const layer = firstNonFiniteLayer(model, x);
  const where = layer === null ? `in its ${what}` : layer === 'logits' ? 'in its logits' : `in layer ${layer}`;
  return new NonFiniteError(`model ${model.id} produced NaN or Infinity ${where}${during} — its weights are damaged or overflow on this input; reinstall or fix the model`, layer);
}
