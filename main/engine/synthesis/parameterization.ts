// How the optimised variables become an image (centred pixels, 0 = grey, [N,H,W,3]).
//  - pixels: the variables ARE the image (the paper).
//  - pyramid: a Laplacian-pyramid-like sum of upsampled images at 1/16 … 1/1 scale, in a
//    decorrelated colour space (Lucid's ImageNet colour correlation). A step on the variables moves
//    coarse structure and natural colours first; the gradient reaches them through the
//    parameterisation's adjoint (tf.grads through upsampling and the colour matrix).
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

export function pyramidParam(n: number, h: number, w: number, seed: number, levels = 5, initStd = 0.01): Parameterization {
  const shapes: [number, number][] = [];
  for (let l = levels - 1; l >= 0; l--) shapes.push([Math.max(1, Math.ceil(h / 2 ** l)), Math.max(1, Math.ceil(w / 2 ** l))]);
  // tf.variable keeps a reference to its initial tensor's data; build both inside tidy so the
  // temporary handle goes and only the variable holds the data.
  const params = shapes.map(([ph, pw], i) => tf.tidy(() => tf.variable(tf.randomNormal([n, ph, pw, 3], 0, initStd, 'float32', seed * 31 + i), true)));
  // Columns are the decorrelated components: rgb = decor · Mᵀ.
  const mT = tf.tidy(() => tf.transpose(tf.tensor2d(COLOR_SQRT.map((r) => r.map((v) => v / COLOR_NORM)))));
  // Level i (0 = coarsest) weighs falloff^(levels-1-i): like a 1/f spectrum, so that Adam's
  // equal-sized steps on every variable still move coarse structure more than fine detail.
  const falloff = 0.5;
  const weights = shapes.map((_, i) => falloff ** i);
  const toImage = (ps: tf.Tensor[]): tf.Tensor4D => {
    const parts = ps.map((p, i) => {
      const t = tf.mul(p, weights[i]!) as tf.Tensor4D;
      return t.shape[1] === h && t.shape[2] === w ? t : tf.image.resizeBilinear(t, [h, w], false, true);
    });
    const decor = tf.addN(parts);
    const rgb = tf.reshape(tf.matMul(tf.reshape(decor, [-1, 3]), mT), [n, h, w, 3]);
    return tf.mul(rgb, 127.5) as tf.Tensor4D;
  };
  return {
    params,
    image: () => tf.tidy(() => toImage(params)),
    paramGrads: (g) => tf.tidy(() => tf.grads((...ps: tf.Tensor[]) => toImage(ps))(params, g) as tf.Tensor4D[]),
    setImage: () => {
      throw new Error('the pyramid parameterisation has no pixel-space regularisers');
    },
    dispose: () => {
      params.forEach((p) => p.dispose());
      mT.dispose();
    },
  };
}
