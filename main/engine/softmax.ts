// Softmax on plain arrays, for logits already read out of the engine (a live frame's top-5, a
// synthesis step's target probability), where a tensor op would cost a copy in and out.

/**
 * The softmax of one row of logits, logits[start, end): the probability of class k of that row.
 * Computed in double precision; `float32` rounds each probability to float32, which is then the
 * value tfjs's softmax gives for it (the live view's numbers must be the ones tfjs showed).
 */
export function rowSoftmax(logits: ArrayLike<number>, start = 0, end = logits.length, opts: { float32?: boolean } = {}): (k: number) => number {
  let max = -Infinity;
  for (let j = start; j < end; j++) if (logits[j]! > max) max = logits[j]!;
  let sum = 0;
  for (let j = start; j < end; j++) sum += Math.exp(logits[j]! - max);
  const round = opts.float32 ? Math.fround : (v: number) => v;
  return (k) => round(Math.exp(logits[start + k]! - max) / sum);
}

/** Softmax probability of class `index[i]` in row i of `logits` ([n, classes]). */
export function targetProbs(logits: ArrayLike<number>, index: readonly number[]): number[] {
  const c = logits.length / index.length;
  return index.map((k, i) => rowSoftmax(logits, i * c, (i + 1) * c)(k));
}
