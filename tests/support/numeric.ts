// Numeric comparisons shared by the gradient tests.
import * as tf from '@tensorflow/tfjs-core';

/** Relative L2 error ‖a − b‖ / ‖b‖ (b the reference). */
export function rel(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < a.length; i++) {
    num += (a[i]! - b[i]!) ** 2;
    den += b[i]! ** 2;
  }
  return Math.sqrt(num / Math.max(den, 1e-30));
}

/**
 * The objective's central difference along its own gradient's direction at x0, beside the
 * gradient's norm: the two agree when the gradient is right (up to kinks within ±eps).
 */
export function directionalCheck(
  gradientAt: (x: tf.Tensor4D) => { value: tf.Tensor; grad: tf.Tensor },
  x0: tf.Tensor4D,
  grad: tf.Tensor,
  eps: number,
): { fd: number; gn: number } {
  const fd = tf.tidy(() => {
    const d = tf.div(grad, tf.norm(grad));
    const f = (s: number) => {
      const r = gradientAt(tf.add(x0, tf.mul(d, s)) as tf.Tensor4D);
      const v = r.value.dataSync()[0]!;
      tf.dispose([r.value, r.grad]);
      return v;
    };
    return (f(eps) - f(-eps)) / (2 * eps);
  });
  const gn = tf.tidy(() => tf.norm(grad).dataSync()[0]!);
  return { fd, gn };
}

/** Pearson correlation of two equally long series (images as bytes, grey levels…). */
export function pearson(a: ArrayLike<number>, b: ArrayLike<number>): number {
  const n = a.length;
  let sa = 0, sb = 0, saa = 0, sbb = 0, sab = 0;
  for (let i = 0; i < n; i++) {
    const x = a[i]!, y = b[i]!;
    sa += x; sb += y; saa += x * x; sbb += y * y; sab += x * y;
  }
  const cov = sab / n - (sa / n) * (sb / n);
  return cov / Math.sqrt((saa / n - (sa / n) ** 2) * (sbb / n - (sb / n) ** 2));
}

/**
 * directionalCheck on plain arrays (e.g. a pyramid's levels): `valueAlong(d, s)` is the objective
 * with the variables moved by s·d, d the gradient's unit direction; returns the central difference
 * beside the gradient's norm.
 */
export function directionalCheckArrays(grad: Float32Array[], valueAlong: (d: Float32Array[], s: number) => number, eps: number): { fd: number; gn: number } {
  const gn = Math.sqrt(grad.reduce((s, g) => s + g.reduce((t, v) => t + v * v, 0), 0));
  const d = grad.map((g) => g.map((v) => v / gn));
  return { fd: (valueAlong(d, eps) - valueAlong(d, -eps)) / (2 * eps), gn };
}
