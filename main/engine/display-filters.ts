// The Deep Visualization Toolbox's display filters for back-projected maps ([N,H,W,C] signed
// signals, usually C = 3 at the input), all tensor ops, batch-capable, per image:
//   raw      — signed values shown with zero = mid grey; each channel scaled symmetrically by its
//              own largest |value| (or all channels by one shared scale, as DVT's norm01c does);
//   gray     — the channel mean, zero = grey, symmetric scaling;
//   norm     — per-pixel L2 norm over channels, min–max to black…white;
//   normblur — the norm, Gaussian-blurred (σ = 4 px, reflected borders like OpenCV), then min–max.
// With a percentile below 100 the scale (max |value|, or the top of min–max) is that percentile
// instead of the largest value, and what lies beyond clips: one extreme pixel no longer leaves the
// rest of the map a flat grey.
// filterMap gives [N,H,W,3] in [0,1]; displayBytes gives 0..255 int32, and rgbBytes the packed
// bytes per image for PNG encoding or the wire.
import * as tf from '@tensorflow/tfjs-core';

export const DISPLAY_FILTERS = ['raw', 'gray', 'norm', 'normblur'] as const;
export type DisplayFilter = (typeof DISPLAY_FILTERS)[number];

export interface FilterOptions {
  /** raw: 'channel' (default) scales each channel by its own max |value|; 'shared' uses one scale. */
  rawScale?: 'channel' | 'shared';
  /** normblur: Gaussian σ in pixels (DVT: 4). */
  sigma?: number;
  /** Full contrast at this percentile of |value| (raw, gray) or of the norm (norm, normblur); 100 or absent: the largest. */
  percentile?: number;
}

const EPS = 1e-10;

/**
 * The p-th percentile of [N,H,W,C] per image (`perChannel`: per image and channel), shaped like
 * max(t, axes, keepDims). The k largest values by topk, k the count above the percentile.
 */
function upperPercentile(t: tf.Tensor4D, p: number, perChannel: boolean): tf.Tensor {
  const [n, h, w, c] = t.shape;
  const rows = perChannel ? tf.reshape(tf.transpose(t, [0, 3, 1, 2]), [n * c, h * w]) : tf.reshape(t, [n, h * w * c]);
  const len = rows.shape[1]!;
  const k = Math.min(len, Math.max(1, Math.ceil(len * (1 - p / 100))));
  const q = tf.slice(tf.topk(rows as tf.Tensor2D, k, true).values, [0, k - 1], [-1, 1]);
  return tf.reshape(q, perChannel ? [n, 1, 1, c] : [n, 1, 1, 1]);
}

/** The scale of `t` over `axes` (kept): its largest value, or its p-th percentile when p < 100. */
function top(t: tf.Tensor4D, axes: number[], p: number | undefined): tf.Tensor {
  return p !== undefined && p < 100 ? upperPercentile(t, p, axes.length === 2) : tf.max(t, axes, true);
}

/** Map signed values to [0,1] with zero at 0.5: v / (2·s) + 0.5, s = max|v| (or its percentile) over `axes`. */
function symmetric(t: tf.Tensor4D, axes: number[], p?: number): tf.Tensor {
  const s = top(tf.abs(t), axes, p);
  const out = tf.add(tf.div(t, tf.add(tf.mul(s, 2), EPS)), 0.5);
  return clipped(out, p);
}

/** Values beyond a percentile scale clip to [0,1]; at the largest value nothing lies beyond. */
function clipped(t: tf.Tensor, p: number | undefined): tf.Tensor {
  return p !== undefined && p < 100 ? tf.clipByValue(t, 0, 1) : t;
}

/** Min–max over each image ([N,H,W,C] → [0,1], the top at the percentile when p < 100); a flat image becomes 0. */
function minMax(t: tf.Tensor4D, p?: number): tf.Tensor {
  const lo = tf.min(t, [1, 2, 3], true);
  const range = tf.sub(top(t, [1, 2, 3], p), lo);
  return clipped(tf.div(tf.sub(t, lo), tf.add(range, EPS)), p);
}

/** Per-pixel L2 norm over channels: [N,H,W,C] → [N,H,W,1], non-negative. */
export function pixelNorm(map: tf.Tensor4D): tf.Tensor4D {
  return tf.tidy(() => tf.sqrt(tf.sum(tf.square(map), 3, true)) as tf.Tensor4D);
}

/** A normalised 1-D Gaussian of radius r. */
function gaussian1d(sigma: number, r: number): Float32Array {
  const k = new Float32Array(2 * r + 1);
  let sum = 0;
  for (let i = -r; i <= r; i++) sum += k[i + r] = Math.exp(-(i * i) / (2 * sigma * sigma));
  for (let i = 0; i < k.length; i++) k[i]! /= sum;
  return k;
}

/**
 * Separable Gaussian blur of [N,H,W,C], borders reflected without repeating the edge (OpenCV's
 * default BORDER_REFLECT_101). Kernel radius ⌈4σ⌉ (OpenCV's size for float images), shortened on
 * maps smaller than that.
 */
export function gaussianBlur(t: tf.Tensor4D, sigma: number): tf.Tensor4D {
  if (!(sigma > 0)) return tf.clone(t);
  return tf.tidy(() => {
    const [, h, w, c] = t.shape;
    const pass = (x: tf.Tensor4D, axis: 1 | 2, size: number): tf.Tensor4D => {
      const r = Math.min(Math.ceil(4 * sigma), size - 1);
      if (r < 1) return x;
      const k = gaussian1d(sigma, r);
      const [kh, kw] = axis === 1 ? [2 * r + 1, 1] : [1, 2 * r + 1];
      const kernel = tf.tile(tf.reshape(tf.tensor1d(k), [kh, kw, 1, 1]), [1, 1, c, 1]) as tf.Tensor4D;
      const pads: [number, number][] = [[0, 0], axis === 1 ? [r, r] : [0, 0], axis === 2 ? [r, r] : [0, 0], [0, 0]];
      return tf.depthwiseConv2d(tf.mirrorPad(x, pads, 'reflect'), kernel, 1, 'valid');
    };
    return pass(pass(t, 1, h), 2, w);
  });
}

/** Apply a display filter: [N,H,W,C] signed map → [N,H,W,3] in [0,1]. */
export function filterMap(map: tf.Tensor4D, filter: DisplayFilter, opts: FilterOptions = {}): tf.Tensor4D {
  return tf.tidy(() => {
    const c = map.shape[3];
    const grey = (t: tf.Tensor) => tf.tile(t, [1, 1, 1, 3]) as tf.Tensor4D;
    switch (filter) {
      case 'raw': {
        const scaled = symmetric(map, opts.rawScale === 'shared' ? [1, 2, 3] : [1, 2], opts.percentile);
        return (c === 3 ? scaled : c === 1 ? grey(scaled) : grey(tf.mean(scaled, 3, true))) as tf.Tensor4D;
      }
      case 'gray':
        return grey(symmetric(tf.mean(map, 3, true) as tf.Tensor4D, [1, 2, 3], opts.percentile));
      case 'norm':
        return grey(minMax(pixelNorm(map), opts.percentile));
      case 'normblur':
        return grey(minMax(gaussianBlur(pixelNorm(map), opts.sigma ?? 4), opts.percentile));
      default:
        throw new Error(`unknown display filter "${String(filter)}" (raw, gray, norm or normblur)`);
    }
  });
}

/** [N,H,W,3] values in [0,1] (or 0..255 with scale 1) → 0..255 int32. */
export function toByteRange(t: tf.Tensor4D, scale = 255): tf.Tensor4D {
  return tf.tidy(() => tf.cast(tf.round(tf.clipByValue(tf.mul(t, scale), 0, 255)), 'int32') as tf.Tensor4D);
}

/** filterMap, then to 8-bit: [N,H,W,3] int32 in 0..255. */
export function displayBytes(map: tf.Tensor4D, filter: DisplayFilter, opts: FilterOptions = {}): tf.Tensor4D {
  return tf.tidy(() => toByteRange(filterMap(map, filter, opts)));
}

/** Packed RGB bytes per image from an [N,H,W,3] 0..255 tensor (does not dispose it). */
export async function rgbBytes(t: tf.Tensor4D): Promise<Uint8Array[]> {
  const [n, h, w, c] = t.shape;
  if (c !== 3) throw new Error(`expected 3 channels, got ${c}`);
  const data = await t.data();
  const per = h * w * 3;
  return Array.from({ length: n }, (_, i) => Uint8Array.from(data.subarray(i * per, (i + 1) * per) as ArrayLike<number>));
}
