// The network's operations, each in two forms:
//  - "fast": fused forward kernels (conv + bias + activation in one call) wrapped in tf.customGrad
//    whose backward pass computes ONLY the input gradient, from forward kernels (conv2d,
//    depthwiseConv2d, stridedSlice, argMax…) that are present and correct on every backend. This
//    sidesteps the wasm backend's missing Conv2DBackpropFilter / DepthwiseConv2dNativeBackpropInput
//    and its wrong MaxPoolGrad, and never computes a filter gradient.
//  - "reference": plain unfused tfjs ops with tfjs' own gradients, used on the cpu backend to check
//    the fast path.
// The backward pass through rectifiers can be switched (gradient / deconv / guided) for
// back-projection; see BackwardRule.
import * as tf from '@tensorflow/tfjs-core';
// tfjs-core registers no gradient functions; its register_all_gradients module is ESM that Node
// cannot load directly (directory imports), so the union package's Node build registers them.
import '@tensorflow/tfjs';
import { pad1d, type PaddingMode } from './padding.js';

export type Activation =
  | { kind: 'linear' }
  | { kind: 'relu' }
  | { kind: 'relu6' }
  | { kind: 'leaky'; alpha: number };

/**
 * How the backward signal passes a rectifier (ReLU, ReLU6, LeakyReLU):
 *  - gradient: the true derivative (gated by the forward activation);
 *  - deconv: Zeiler & Fergus — the backward signal itself is rectified, ignoring the forward
 *    activation (for LeakyReLU: negative signal scaled by alpha; for ReLU6 the upper clip is ignored);
 *  - guided: both gates — the true derivative applied to the rectified backward signal.
 * With y the forward output, g the incoming signal and f the unit's nonlinearity, per element:
 *   ReLU:      gradient g·[y>0]         deconv relu(g)          guided relu(g)·[y>0]   (Springenberg)
 *   ReLU6:     gradient g·[0<y<6]       deconv relu(g)          guided relu(g)·[0<y<6]
 *   Leaky(α):  gradient g·(y>0 ? 1 : α) deconv leaky_α(g)       guided leaky_α(g)·(y>0 ? 1 : α)
 * i.e. deconv applies the unit's own nonlinearity to the signal (ZF's "pass the reconstruction
 * through a relu"). ReLU6's clip at 6 is dropped there because the signal's scale is arbitrary
 * (relu and leaky are positively homogeneous, a clip at 6 is not); its saturation still gates
 * guided, like the true derivative. For LeakyReLU "rectified" keeps a negative part (α·g, α² where
 * both gates are closed), so deconv/guided signals of leaky networks are not sign-constrained;
 * after a ReLU/ReLU6 they are ≥ 0.
 */
export type BackwardRule = 'gradient' | 'deconv' | 'guided';

/**
 * plain: fused kernels, no autodiff hooks — for forward passes and GraphNet.backward (our own
 *   backward pass, no tape: tfjs' per-kernel tape overhead was ~60% of a gradient's time);
 * taped: the same kernels wrapped in tf.customGrad, for composing with tf.grad (e.g. through
 *   differentiable image transforms);
 * reference: unfused tfjs ops with tfjs' own gradients — the independent check on the cpu backend.
 */
export type ExecMode = 'plain' | 'taped' | 'reference';

export interface ConvSpec {
  depthwise: boolean;
  /** [kh, kw, inC, outC] for conv, [kh, kw, C, multiplier] for depthwise. */
  filter: tf.Tensor4D;
  /** Spatially flipped filter for the input gradient: [kh, kw, outC, inC] for conv, [kh, kw, C, m] for depthwise. */
  filterBack: tf.Tensor4D;
  bias: tf.Tensor1D | null;
  strides: [number, number];
  padding: PaddingMode;
  activation: Activation;
}

export interface PoolSpec {
  kind: 'max' | 'avg';
  size: [number, number];
  strides: [number, number];
  padding: PaddingMode;
}

const NEG = -3.0e38;

/** tf.customGrad's parameter type (not exported by tfjs-core); our functions take one tensor. */
type CustomGrad = Parameters<typeof tf.customGrad>[0];

/**
 * Insert (s-1) zeros after every row/column: the transpose of a strided read. The result keeps the
 * trailing zeros (h·s rows rather than (h-1)·s+1) so callers can fold the trim into their padding.
 */
function dilateLoose(t: tf.Tensor4D, sh: number, sw: number): tf.Tensor4D {
  if (sh === 1 && sw === 1) return t;
  const [n, h, w, c] = t.shape;
  const r = tf.pad(tf.reshape(t, [n, h, 1, w, 1, c]), [[0, 0], [0, 0], [0, sh - 1], [0, 0], [0, sw - 1], [0, 0]]);
  return tf.reshape(r, [n, h * sh, w * sw, c]);
}

export function dilate(t: tf.Tensor4D, sh: number, sw: number): tf.Tensor4D {
  if (sh === 1 && sw === 1) return t;
  const [n, h, w, c] = t.shape;
  return tf.slice(dilateLoose(t, sh, sw), [0, 0, 0, 0], [n, (h - 1) * sh + 1, (w - 1) * sw + 1, c]);
}

/** Pad (positive) or crop (negative) the two spatial axes. */
function padOrCrop(t: tf.Tensor4D, top: number, bottom: number, left: number, right: number): tf.Tensor4D {
  let r = t;
  if (top < 0 || bottom < 0 || left < 0 || right < 0) {
    const [n, h, w, c] = r.shape;
    const t0 = Math.max(-top, 0);
    const l0 = Math.max(-left, 0);
    r = tf.slice(r, [0, t0, l0, 0], [n, h - t0 - Math.max(-bottom, 0), w - l0 - Math.max(-right, 0), c]);
  }
  const pt = Math.max(top, 0);
  const pb = Math.max(bottom, 0);
  const pl = Math.max(left, 0);
  const pr = Math.max(right, 0);
  if (pt || pb || pl || pr) r = tf.pad(r, [[0, 0], [pt, pb], [pl, pr], [0, 0]]);
  return r;
}

/**
 * Input gradient of a (depthwise) convolution as a stride-1 convolution of the dilated, padded
 * upstream gradient with the spatially flipped filter.
 */
export function convInputGrad(dy: tf.Tensor4D, spec: ConvSpec, inShape: number[]): tf.Tensor4D {
  const [, inH, inW, inC] = inShape as [number, number, number, number];
  const [kh, kw] = spec.filter.shape;
  const [sh, sw] = spec.strides;
  const ph = pad1d(inH, kh, sh, spec.padding);
  const pw = pad1d(inW, kw, sw, spec.padding);
  const g = dilateLoose(dy, sh, sw);
  const top = kh - 1 - ph.before;
  const left = kw - 1 - pw.before;
  const bottom = inH + kh - 1 - g.shape[1] - top;
  const right = inW + kw - 1 - g.shape[2] - left;
  // Symmetric padding of (k-1)/2 is exactly what "same" does at stride 1: let the kernel pad
  // instead of materialising a padded copy.
  const symmetric = top === bottom && left === right && 2 * top === kh - 1 && 2 * left === kw - 1;
  const gp = symmetric ? g : padOrCrop(g, top, bottom, left, right);
  const pad = symmetric ? 'same' : 'valid';
  if (!spec.depthwise) return tf.conv2d(gp, spec.filterBack, 1, pad);
  const m = spec.filter.shape[3];
  if (m === 1) return tf.depthwiseConv2d(gp, spec.filterBack, 1, pad);
  // Channel multiplier m > 1: output channel c*m+j came from input channel c through filter[..., c, j].
  const [n, h, w] = gp.shape;
  const parts = tf.split(tf.reshape(gp, [n, h, w, inC, m]), m, 4);
  const filters = tf.split(spec.filterBack, m, 3);
  const sums = parts.map((p, j) => tf.depthwiseConv2d(tf.reshape(p, [n, h, w, inC]) as tf.Tensor4D, filters[j] as tf.Tensor4D, 1, pad));
  return tf.addN(sums) as tf.Tensor4D;
}

/** Backward signal through an activation, given the forward OUTPUT y (enough for every rectifier here). */
export function activationBackward(dy: tf.Tensor, y: tf.Tensor, act: Activation, rule: BackwardRule): tf.Tensor {
  if (act.kind === 'linear') return dy;
  // One kernel each (leakyRelu(s) = s > 0 ? s : α·s, the unit's own nonlinearity).
  const rectified = (s: tf.Tensor) => (act.kind === 'leaky' ? tf.leakyRelu(s, act.alpha) : tf.relu(s));
  // tf.step(v, a) is 1 where v > 0 and a elsewhere: one kernel per gate.
  const gate = (s: tf.Tensor) => {
    if (act.kind === 'relu') return tf.mul(s, tf.step(y));
    if (act.kind === 'relu6') return tf.mul(s, tf.step(tf.mul(y, tf.sub(6, y))));
    return tf.mul(s, tf.step(y, act.alpha));
  };
  if (rule === 'gradient') return gate(dy);
  if (rule === 'deconv') return rectified(dy);
  return gate(rectified(dy));
}

function fusedActivationName(a: Activation): 'linear' | 'relu' | 'relu6' | 'leakyrelu' {
  return a.kind === 'leaky' ? 'leakyrelu' : a.kind;
}

export function applyActivation(x: tf.Tensor, a: Activation): tf.Tensor {
  switch (a.kind) {
    case 'linear':
      return x;
    case 'relu':
      return tf.relu(x);
    case 'relu6':
      return tf.relu6(x);
    case 'leaky':
      return tf.leakyRelu(x, a.alpha);
  }
}

/**
 * The fused kernel, called directly: tf.fused.* falls back to three unfused kernels whenever a
 * gradient tape is active, which our custom gradient makes unnecessary.
 */
export function convForward(x: tf.Tensor4D, spec: ConvSpec): tf.Tensor4D {
  const inputs: tf.NamedTensorMap = { x, filter: spec.filter };
  if (spec.bias) inputs.bias = spec.bias;
  const attrs = {
    strides: spec.strides,
    pad: spec.padding,
    dataFormat: 'NHWC',
    dilations: [1, 1],
    activation: fusedActivationName(spec.activation),
    leakyreluAlpha: spec.activation.kind === 'leaky' ? spec.activation.alpha : undefined,
  };
  const kernel = spec.depthwise ? 'FusedDepthwiseConv2D' : 'FusedConv2D';
  return tf.engine().runKernel(kernel, inputs, attrs as unknown as tf.NamedAttrMap) as tf.Tensor4D;
}

export function runConv(x: tf.Tensor4D, spec: ConvSpec, mode: ExecMode, rule: BackwardRule): tf.Tensor4D {
  if (mode === 'reference') {
    let y: tf.Tensor = spec.depthwise
      ? tf.depthwiseConv2d(x, spec.filter, spec.strides, spec.padding)
      : tf.conv2d(x, spec.filter, spec.strides, spec.padding);
    if (spec.bias) y = tf.add(y, spec.bias);
    return applyActivation(y, spec.activation) as tf.Tensor4D;
  }
  if (mode === 'plain') return convForward(x, spec);
  const inShape = x.shape;
  const f = tf.customGrad(((xIn: tf.Tensor, save: tf.GradSaveFunc) => {
    const y = convForward(xIn as tf.Tensor4D, spec);
    save([y]);
    return {
      value: y,
      gradFunc: (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[]) => {
        const g = activationBackward(dy as tf.Tensor, saved[0]!, spec.activation, rule) as tf.Tensor4D;
        return [convInputGrad(g, spec, inShape)];
      },
    };
  }) as unknown as CustomGrad);
  return f(x) as tf.Tensor4D;
}

export function runActivation(x: tf.Tensor, act: Activation, mode: ExecMode, rule: BackwardRule): tf.Tensor {
  if (mode !== 'taped' || act.kind === 'linear') return applyActivation(x, act);
  const f = tf.customGrad(((xIn: tf.Tensor, save: tf.GradSaveFunc) => {
    const y = applyActivation(xIn, act);
    save([y]);
    return {
      value: y,
      gradFunc: (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[]) => [activationBackward(dy as tf.Tensor, saved[0]!, act, rule)],
    };
  }) as unknown as CustomGrad);
  return f(x);
}

/**
 * Max-pool input gradient for non-overlapping windows (size == stride, the common case): a
 * reshape exposes each window as two axes, and dy goes to the entries equal to the window's max
 * (split evenly on exact ties, which continuous inputs almost never produce).
 */
function maxPoolInputGradTiled(x: tf.Tensor4D, y: tf.Tensor4D, dy: tf.Tensor4D, spec: PoolSpec): tf.Tensor4D {
  const [n, h, w, c] = x.shape;
  const [kh, kw] = spec.size;
  const ph = pad1d(h, kh, kh, spec.padding);
  const pw = pad1d(w, kw, kw, spec.padding);
  const [, ho, wo] = y.shape;
  // Pad (or crop the unused tail) so the input is exactly ho×kh by wo×kw.
  const xp = padOrCropValue(x, ph.before, ho * kh - h - ph.before, pw.before, wo * kw - w - pw.before, NEG);
  // Same-shape ops only: broadcasting Equal over a 6-D view is ~20× slower on wasm than
  // nearest-neighbour upsampling followed by element-wise ops.
  const full: [number, number] = [ho * kh, wo * kw];
  const mask = tf.cast(tf.equal(xp, tf.image.resizeNearestNeighbor(y, full)), 'float32');
  const count = tf.mul(tf.avgPool(mask as tf.Tensor4D, [kh, kw], [kh, kw], 'valid'), kh * kw);
  const dxp = tf.mul(mask, tf.image.resizeNearestNeighbor(tf.div(dy, count) as tf.Tensor4D, full)) as tf.Tensor4D;
  return padOrCrop(dxp, -ph.before, h + ph.before - ho * kh, -pw.before, w + pw.before - wo * kw);
}

function padOrCropValue(t: tf.Tensor4D, top: number, bottom: number, left: number, right: number, value: number): tf.Tensor4D {
  if (top === 0 && bottom === 0 && left === 0 && right === 0) return t;
  if (top >= 0 && bottom >= 0 && left >= 0 && right >= 0) return tf.pad(t, [[0, 0], [top, bottom], [left, right], [0, 0]], value);
  const cropped = padOrCrop(t, Math.min(top, 0), Math.min(bottom, 0), Math.min(left, 0), Math.min(right, 0));
  return padOrCropValue(cropped, Math.max(top, 0), Math.max(bottom, 0), Math.max(left, 0), Math.max(right, 0), value);
}

/** Max-pool input gradient: route dy to the first maximum of each window (argMax + oneHot). */
export function maxPoolInputGrad(x: tf.Tensor4D, y: tf.Tensor4D, dy: tf.Tensor4D, spec: PoolSpec): tf.Tensor4D {
  if (spec.size[0] === spec.strides[0] && spec.size[1] === spec.strides[1]) return maxPoolInputGradTiled(x, y, dy, spec);
  const [n, h, w, c] = x.shape;
  const [kh, kw] = spec.size;
  const [sh, sw] = spec.strides;
  const ph = pad1d(h, kh, sh, spec.padding);
  const pw = pad1d(w, kw, sw, spec.padding);
  const [, ho, wo] = dy.shape;
  const xp = tf.pad(x, [[0, 0], [ph.before, ph.after], [pw.before, pw.after], [0, 0]], NEG);
  const hp = xp.shape[1];
  const wp = xp.shape[2];
  const windows: tf.Tensor4D[] = [];
  for (let a = 0; a < kh; a++) {
    for (let b = 0; b < kw; b++) {
      windows.push(tf.stridedSlice(xp, [0, a, b, 0], [n, a + (ho - 1) * sh + 1, b + (wo - 1) * sw + 1, c], [1, sh, sw, 1]) as tf.Tensor4D);
    }
  }
  const k = kh * kw;
  const stacked = tf.stack(windows, 4); // [n, ho, wo, c, k]
  const winner = tf.reshape(tf.oneHot(tf.reshape(tf.argMax(stacked, 4), [-1]), k), [n, ho, wo, c, k]);
  const routed = tf.mul(winner, tf.expandDims(dy, 4));
  const parts = tf.unstack(routed, 4) as tf.Tensor4D[];
  const placed = parts.map((p, i) => {
    const a = Math.floor(i / kw);
    const b = i % kw;
    const d = dilate(p, sh, sw);
    return tf.pad(d, [[0, 0], [a, hp - a - d.shape[1]], [b, wp - b - d.shape[2]], [0, 0]]);
  });
  const sum = placed.length === 1 ? placed[0]! : (tf.addN(placed) as tf.Tensor4D);
  return tf.slice(sum, [0, ph.before, pw.before, 0], [n, h, w, c]);
}

/**
 * How many real (not padding) inputs each output of a "same" pool averages, [1, ho, wo, 1]: the
 * forward pass divides by it, while the AvgPoolGrad kernel divides every window by its full size.
 */
function avgPoolCounts(h: number, w: number, spec: PoolSpec): tf.Tensor4D {
  const axis = (size: number, k: number, s: number) => {
    const p = pad1d(size, k, s, spec.padding);
    return Array.from({ length: p.out }, (_, o) => Math.min(o * s - p.before + k, size) - Math.max(o * s - p.before, 0));
  };
  const rows = axis(h, spec.size[0], spec.strides[0]);
  const cols = axis(w, spec.size[1], spec.strides[1]);
  const counts = new Float32Array(rows.length * cols.length);
  rows.forEach((r, i) => cols.forEach((c, j) => (counts[i * cols.length + j] = r * c)));
  return tf.tensor4d(counts, [1, rows.length, cols.length, 1]);
}

export function avgPoolInputGrad(x: tf.Tensor4D, dy: tf.Tensor4D, spec: PoolSpec): tf.Tensor4D {
  if (spec.padding === 'same') {
    const full = spec.size[0] * spec.size[1];
    const [, h, w] = x.shape;
    // Rescale each window's signal from 1/full to 1/count, then spread it as the kernel does.
    dy = tf.div(tf.mul(dy, full), avgPoolCounts(h, w, spec));
  }
  return tf.engine().runKernel('AvgPoolGrad', { dy, input: x }, {
    filterSize: spec.size,
    strides: spec.strides,
    pad: spec.padding,
  } as unknown as tf.NamedAttrMap) as tf.Tensor4D;
}

/**
 * A "same" average pool built from ops whose tfjs gradients are right (zero padding, a "valid"
 * pool, a constant rescale): the reference the custom gradient is checked against, since tfjs'
 * own AvgPool gradient divides edge windows by their full size.
 */
function avgPoolSameReference(x: tf.Tensor4D, spec: PoolSpec): tf.Tensor4D {
  const [, h, w] = x.shape;
  const ph = pad1d(h, spec.size[0], spec.strides[0], 'same');
  const pw = pad1d(w, spec.size[1], spec.strides[1], 'same');
  const padded = tf.pad(x, [[0, 0], [ph.before, ph.after], [pw.before, pw.after], [0, 0]]);
  const sums = tf.mul(tf.avgPool(padded, spec.size, spec.strides, 'valid'), spec.size[0] * spec.size[1]);
  return tf.div(sums, avgPoolCounts(h, w, spec)) as tf.Tensor4D;
}

export function runPool(x: tf.Tensor4D, spec: PoolSpec, mode: ExecMode): tf.Tensor4D {
  if (spec.kind === 'avg') {
    if (spec.padding !== 'same' || mode === 'plain') return tf.avgPool(x, spec.size, spec.strides, spec.padding);
    if (mode === 'reference') return avgPoolSameReference(x, spec);
    const avg = tf.customGrad(((xIn: tf.Tensor, save: tf.GradSaveFunc) => {
      save([xIn]);
      return {
        value: tf.avgPool(xIn as tf.Tensor4D, spec.size, spec.strides, spec.padding),
        gradFunc: (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[]) => [avgPoolInputGrad(saved[0] as tf.Tensor4D, dy as tf.Tensor4D, spec)],
      };
    }) as unknown as CustomGrad);
    return avg(x) as tf.Tensor4D;
  }
  if (mode !== 'taped') return tf.maxPool(x, spec.size, spec.strides, spec.padding);
  const f = tf.customGrad(((xIn: tf.Tensor, save: tf.GradSaveFunc) => {
    const y = tf.maxPool(xIn as tf.Tensor4D, spec.size, spec.strides, spec.padding);
    save([xIn, y]);
    return {
      value: y,
      gradFunc: (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[]) => [
        maxPoolInputGrad(saved[0] as tf.Tensor4D, saved[1] as tf.Tensor4D, dy as tf.Tensor4D, spec),
      ],
    };
  }) as unknown as CustomGrad);
  return f(x) as tf.Tensor4D;
}
