// Numeric comparisons shared by the gradient tests.

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
