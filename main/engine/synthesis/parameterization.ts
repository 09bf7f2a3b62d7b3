// How the optimised variables become an image (centred pixels, 0 = grey, [N,H,W,3]).
//  - pixels: the variables ARE the image (the paper).
//  - pyramid: pyramid.ts (plain arrays, its adjoint written out).
//  - maco: the Fourier phase of each decorrelated colour channel; the amplitude is fixed to a
//    natural image's 1/f fall-off (Fel et al. 2023), so the optimiser can move where things are but
//    not how much energy each frequency carries.
// Every parameterisation can take an image back (setImage), so the paper's pixel-space regularisers
// run on all of them through one path; MACO cannot (a phase-only image cannot be decayed or blurred
// and stay on its spectrum), so its presets declare none of them.
import * as tf from '@tensorflow/tfjs-core';

export interface Parameterization {
  readonly params: tf.Variable[];
  /** Current image, centred pixels. Caller disposes. */
  image(): tf.Tensor4D;
  /** Map a gradient with respect to the image onto the variables. Caller disposes. */
  paramGrads(gImage: tf.Tensor4D): tf.Tensor4D[];
  /** Replace the variables so that image() becomes `img` (used after pixel-space regularisers). */
  setImage(img: tf.Tensor4D): void;
  dispose(): void;
}

export function pixelParam(init: tf.Tensor4D): Parameterization {
  const v = tf.tidy(() => tf.variable(init.clone(), true));
  return {
    params: [v],
    image: () => v.clone() as tf.Tensor4D,
    paramGrads: (g) => [g.clone()],
    setImage: (img) => v.assign(img),
    dispose: () => v.dispose(),
  };
}

// sqrt of ImageNet's RGB colour covariance (Lucid's color_correlation_svd_sqrt), normalised by its
// largest column norm: decorrelated unit variance ≈ natural colour variation.
const COLOR_SQRT = [
  [0.26, 0.09, 0.02],
  [0.27, 0.0, -0.05],
  [0.27, -0.09, 0.03],
];
const COLOR_NORM = Math.max(...[0, 1, 2].map((j) => Math.hypot(COLOR_SQRT[0]![j]!, COLOR_SQRT[1]![j]!, COLOR_SQRT[2]![j]!)));

/** Decorrelated colour → RGB (rgb_j = Σ_k COLOR[j][k]·decor_k, in units of 127.5 grey levels). */
export const COLOR = COLOR_SQRT.map((r) => r.map((v) => v / COLOR_NORM));

/** Inverse of a 3×3 matrix (rows). */
function inverse3(m: number[][]): number[][] {
  const [a, b, c] = m[0]!;
  const [d, e, f] = m[1]!;
  const [g, h, i] = m[2]!;
  const A = e! * i! - f! * h!;
  const B = -(d! * i! - f! * g!);
  const C = d! * h! - e! * g!;
  const det = a! * A + b! * B + c! * C;
  return [
    [A / det, -(b! * i! - c! * h!) / det, (b! * f! - c! * e!) / det],
    [B / det, (a! * i! - c! * g!) / det, -(a! * f! - c! * d!) / det],
    [C / det, -(a! * h! - b! * g!) / det, (a! * e! - b! * d!) / det],
  ];
}

/** RGB → decorrelated colour. */
export const COLOR_INV = inverse3(COLOR);

/** Decorrelated colour [N,H,W,3] → centred pixels, and back. */
function colourMaps(): {
  toRgb: (decor: tf.Tensor4D) => tf.Tensor4D;
  toDecor: (rgb: tf.Tensor4D) => tf.Tensor4D;
  /** The adjoint of toRgb: a gradient with respect to the pixels → with respect to decorrelated colour. */
  gradToDecor: (g: tf.Tensor4D) => tf.Tensor4D;
  dispose: () => void;
} {
  // Columns are the decorrelated components: rgb = decor · Mᵀ.
  const mT = tf.tidy(() => tf.transpose(tf.tensor2d(COLOR)));
  const mInvT = tf.tidy(() => tf.transpose(tf.tensor2d(COLOR_INV)));
  const apply = (x: tf.Tensor4D, m: tf.Tensor2D) => tf.reshape(tf.matMul(tf.reshape(x, [-1, 3]), m), x.shape) as tf.Tensor4D;
  return {
    toRgb: (d) => tf.mul(apply(d, mT as tf.Tensor2D), 127.5) as tf.Tensor4D,
    toDecor: (rgb) => apply(tf.div(rgb, 127.5) as tf.Tensor4D, mInvT as tf.Tensor2D),
    gradToDecor: (g) => tf.mul(apply(g, tf.transpose(mT) as tf.Tensor2D), 127.5) as tf.Tensor4D,
    dispose: () => {
      mT.dispose();
      mInvT.dispose();
    },
  };
}

/** Centred pixels → decorrelated colour components (the space the pyramid and MACO work in). */
export function decorrelate(rgb: tf.Tensor4D): tf.Tensor4D {
  const colour = colourMaps();
  try {
    return tf.tidy(() => colour.toDecor(rgb));
  } finally {
    colour.dispose();
  }
}

/**
 * MACO (Fel et al. 2023): per decorrelated colour channel, image = Re(Σ A(f)·e^{iφ(f)} e^{2πi f·x}),
 * with φ optimised and A fixed to 1/|f| (natural images' amplitude fall-off; their power spectrum
 * slope is about −2). The spectrum is band-limited to `band` cycles per image on each axis: the DFT
 * is two real matrix products per channel (tfjs' wasm backend has no FFT), and above that band a
 * 1/f amplitude adds little an eye or a classifier reads. The half-spectrum (v ≥ 0) is enough for a
 * real image; columns v > 0 count twice. `targetStd` sets the pixels' standard deviation (grey levels).
 */
export function macoParam(n: number, h: number, w: number, seeds: readonly number[], band = Math.max(4, Math.round(Math.min(h, w) / 8)), targetStd = 48): Parameterization & { amplitude: Float32Array; rows: number[]; cols: number; tapedParamGrads: (g: tf.Tensor4D) => tf.Tensor4D[] } {
  const ku = Math.min(band, Math.floor((h - 1) / 2));
  const kv = Math.min(band, Math.floor((w - 1) / 2));
  const rows = [...Array(ku + 1).keys(), ...Array.from({ length: ku }, (_, i) => h - ku + i)];
  const cols = kv + 1;
  const R = rows.length;
  const amplitude = new Float32Array(R * cols);
  rows.forEach((u, j) => {
    const fu = u <= h / 2 ? u : u - h;
    for (let v = 0; v < cols; v++) {
      const f = Math.hypot(fu / h, v / w) * Math.max(h, w);
      amplitude[j * cols + v] = f === 0 ? 0 : (v === 0 ? 1 : 2) / f;
    }
  });
  const table = (len: number, freqs: number[], fn: (a: number) => number) => {
    const t = new Float32Array(len * freqs.length);
    for (let y = 0; y < len; y++) freqs.forEach((u, j) => (t[y * freqs.length + j] = fn((2 * Math.PI * ((u * y) % len)) / len)));
    return tf.tensor2d(t, [len, freqs.length]);
  };
  const colIdx = [...Array(cols).keys()];
  const [ch, sh, cwT, swT, amp] = tf.tidy(() => [
    table(h, rows, Math.cos),
    table(h, rows, Math.sin),
    tf.transpose(table(w, colIdx, Math.cos)),
    tf.transpose(table(w, colIdx, Math.sin)),
    // Broadcast over [R, n·3, cols].
    tf.reshape(tf.tensor2d(amplitude, [R, cols]), [R, 1, cols]),
  ]) as [tf.Tensor2D, tf.Tensor2D, tf.Tensor2D, tf.Tensor2D, tf.Tensor3D];
  // The adjoint's tables, transposed once: a transposed operand makes tfjs' wasm matMul about 10× slower.
  const [chT, shT, cw, sw] = tf.tidy(() => [tf.transpose(ch), tf.transpose(sh), tf.transpose(cwT), tf.transpose(swT)]) as tf.Tensor2D[] as [tf.Tensor2D, tf.Tensor2D, tf.Tensor2D, tf.Tensor2D];
  if (seeds.length !== n) throw new Error(`${seeds.length} seeds for a batch of ${n}`);
  // Each seed draws its own phases (its 3·cols columns), so a seed starts the same in any batch.
  const phase = tf.tidy(() => tf.variable(tf.concat(seeds.map((sd) => tf.randomUniform([R, 3 * cols], -Math.PI, Math.PI, 'float32', sd * 977 + 5)), 1), true));
  const colour = colourMaps();
  const decorImage = (ph: tf.Tensor): tf.Tensor4D => {
    const p3 = tf.reshape(ph, [R, n * 3, cols]);
    const zr = tf.reshape(tf.mul(amp, tf.cos(p3)), [R, n * 3 * cols]) as tf.Tensor2D;
    const zi = tf.reshape(tf.mul(amp, tf.sin(p3)), [R, n * 3 * cols]) as tf.Tensor2D;
    // Along y: (C + iS)(Zr + iZi); then along x, keep the real part.
    const P = tf.sub(tf.matMul(ch, zr), tf.matMul(sh, zi));
    const Q = tf.add(tf.matMul(ch, zi), tf.matMul(sh, zr));
    const perImage = (t: tf.Tensor) => tf.reshape(tf.transpose(tf.reshape(t, [h, n * 3, cols]), [1, 0, 2]), [n * 3 * h, cols]) as tf.Tensor2D;
    const x = tf.sub(tf.matMul(perImage(P), cwT), tf.matMul(perImage(Q), swT));
    return tf.transpose(tf.reshape(x, [n, 3, h, w]), [0, 2, 3, 1]) as tf.Tensor4D;
  };
  // The expected variance of a random-phase image: Σ A²/2 per channel (1/(HW) folded into the scale).
  let sumSq = 0;
  for (const a of amplitude) sumSq += (a * a) / 2;
  const scale = targetStd / 127.5 / Math.sqrt(sumSq);
  const toImage = (ph: tf.Tensor) => colour.toRgb(tf.mul(decorImage(ph), scale) as tf.Tensor4D);
  return {
    params: [phase],
    amplitude,
    rows,
    cols,
    image: () => tf.tidy(() => toImage(phase)),
    // The adjoint written out (each product's transpose, in reverse order): tf.grads would run the
    // image forward again and take its transposes and reshapes through the tape, most of a
    // MACO step on the wasm backend.
    paramGrads: (g) =>
      tf.tidy(() => {
        const gd = tf.mul(colour.gradToDecor(g), scale);
        const gx = tf.reshape(tf.transpose(gd, [0, 3, 1, 2]), [n * 3 * h, w]) as tf.Tensor2D;
        const perSpectrum = (t: tf.Tensor) => tf.reshape(tf.transpose(tf.reshape(t, [n * 3, h, cols]), [1, 0, 2]), [h, n * 3 * cols]) as tf.Tensor2D;
        const gP = perSpectrum(tf.matMul(gx, cw));
        const gQ = perSpectrum(tf.neg(tf.matMul(gx, sw)));
        const gzr = tf.add(tf.matMul(chT, gP), tf.matMul(shT, gQ));
        const gzi = tf.sub(tf.matMul(chT, gQ), tf.matMul(shT, gP));
        const p3 = tf.reshape(phase, [R, n * 3, cols]);
        const d = tf.sub(tf.mul(tf.cos(p3), tf.reshape(gzi, [R, n * 3, cols])), tf.mul(tf.sin(p3), tf.reshape(gzr, [R, n * 3, cols])));
        return [tf.reshape(tf.mul(amp, d), [R, n * 3 * cols]) as unknown as tf.Tensor4D];
      }),
    /** paramGrads by tfjs' autodiff of the image: the reference the written adjoint is checked against. */
    tapedParamGrads: (g: tf.Tensor4D) => tf.tidy(() => tf.grads((ph: tf.Tensor) => toImage(ph))([phase], g) as tf.Tensor4D[]),
    setImage: () => {
      throw new Error('MACO images keep a fixed amplitude spectrum: pixel-space regularisers do not apply to them');
    },
    dispose: () => {
      phase.dispose();
      tf.dispose([ch, sh, cwT, swT, amp, chT, shT, cw, sw]);
      colour.dispose();
    },
  };
}
