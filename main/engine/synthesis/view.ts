// What the network sees of a batch of synthesised images, on plain arrays: each image rolled by its
// own jitter (with wrap-around), clipped to 0…255 about grey and preprocessed, in one pass; and the
// roll's inverse for the gradient that comes back, with the finite check folded in.
import * as tf from '@tensorflow/tfjs-core';
import type { Model } from '../model.js';
import { GREY } from './batch.js';

/** x_c = Σ_k a[c][k]·p_k + o[c]: the network input from RGB pixels 0…255 (channel order included). */
export interface InputAffine {
  a: number[][];
  o: number[];
}

/**
 * Model.preprocess as the affine map it is, measured from preprocess itself so that there stays
 * one definition of it: the input for black, and for 255 in each channel alone (255 rather than 1
 * keeps float32 from rounding the scale away against the offset).
 */
export function inputAffine(model: Model): InputAffine {
  const v = tf.tidy(() => model.preprocess(tf.tensor4d([0, 0, 0, 255, 0, 0, 0, 255, 0, 0, 0, 255], [1, 1, 4, 3])).dataSync());
  const o = [v[0]!, v[1]!, v[2]!];
  const a = [0, 1, 2].map((c) => [0, 1, 2].map((k) => (v[(1 + k) * 3 + c]! - o[c]!) / 255));
  return { a, o };
}

/** Image b's rows and columns as its roll by (dy, dx) reads them: view[y][x] = image[ry(y)][rx(x)]. */
function source(shift: readonly [number, number], h: number, w: number): { sy: number; sx: number } {
  return { sy: ((shift[0] % h) + h) % h, sx: ((shift[1] % w) + w) % w };
}

/**
 * The network input for centred images `img` ([n, h, w, 3]): image b rolled by shifts[b] (as
 * `roll` in run.ts: view[y][x] = img[(y − dy) mod h][(x − dx) mod w]), clipped, preprocessed.
 */
export function viewInput(img: Float32Array, n: number, h: number, w: number, shifts: readonly (readonly [number, number])[], f: InputAffine, out: Float32Array = new Float32Array(img.length)): Float32Array {
  const [[a00, a01, a02], [a10, a11, a12], [a20, a21, a22]] = f.a as [number[], number[], number[]];
  const [o0, o1, o2] = f.o as [number, number, number];
  // One scale per channel (every bundled model): three products a pixel instead of nine.
  const diagonal = a01 === 0 && a02 === 0 && a10 === 0 && a12 === 0 && a20 === 0 && a21 === 0;
  for (let b = 0; b < n; b++) {
    const { sy, sx } = source(shifts[b]!, h, w);
    for (let y = 0; y < h; y++) {
      const src = (b * h + y) * w * 3;
      const dst = (b * h + ((y + sy) % h)) * w * 3;
      for (let x = 0; x < w; x++) {
        const i = src + x * 3;
        const v0 = img[i]!;
        const v1 = img[i + 1]!;
        const v2 = img[i + 2]!;
        const p0 = v0 < -GREY ? 0 : v0 > GREY ? 255 : v0 + GREY;
        const p1 = v1 < -GREY ? 0 : v1 > GREY ? 255 : v1 + GREY;
        const p2 = v2 < -GREY ? 0 : v2 > GREY ? 255 : v2 + GREY;
        const j = dst + (x + sx < w ? x + sx : x + sx - w) * 3;
        if (diagonal) {
          out[j] = a00! * p0 + o0;
          out[j + 1] = a11! * p1 + o1;
          out[j + 2] = a22! * p2 + o2;
        } else {
          out[j] = a00! * p0 + a01! * p1 + a02! * p2 + o0;
          out[j + 1] = a10! * p0 + a11! * p1 + a12! * p2 + o1;
          out[j + 2] = a20! * p0 + a21! * p1 + a22! * p2 + o2;
        }
      }
    }
  }
  return out;
}

/**
 * The gradient at each rolled view → at its image (the roll is a permutation: its adjoint is its
 * inverse), into `out`. Returns whether every value is finite.
 */
export function unrollGradient(g: Float32Array, n: number, h: number, w: number, shifts: readonly (readonly [number, number])[], out: Float32Array): boolean {
  let sum = 0;
  for (let b = 0; b < n; b++) {
    const { sy, sx } = source(shifts[b]!, h, w);
    for (let y = 0; y < h; y++) {
      const dst = (b * h + ((y - sy + h) % h)) * w * 3;
      const src = (b * h + y) * w * 3;
      for (let x = 0; x < w; x++) {
        const xs = x < sx ? x - sx + w : x - sx;
        const i = dst + xs * 3;
        const j = src + x * 3;
        const g0 = g[j]!;
        const g1 = g[j + 1]!;
        const g2 = g[j + 2]!;
        out[i] = g0;
        out[i + 1] = g1;
        out[i + 2] = g2;
        sum += g0 + g1 + g2;
      }
    }
  }
  // A NaN or an infinity anywhere makes the sum so; finite values cannot overflow a double here.
  return Number.isFinite(sum);
}
