// A live frame's arithmetic outside the network as plain typed-array passes: the network input
// from the frame's bytes, and the layer's activations packed as 8-bit tiles, the unit's map and
// top-K. Each reproduces in float32 what the tfjs ops it replaces compute (multiply, add, relu, max,
// banker's rounding), so the bytes are the ones tfjs gave; on ONNX Runtime these passes run over
// ORT's own buffers, where tfjs would have copied each into a tensor, run a kernel per op and
// copied the packed result out again — more CPU per frame than the network's forward pass.
import { centreCrop, cropResizeBytes } from '../../contract/resample.js';
import type { Model } from '../engine/index.js';
import { rowSoftmax } from '../engine/softmax.js';

const f32 = Math.fround;

/**
 * The network input [1,H,W,3] of a frame (model.preprocess of its centre crop at the input size), as
 * floats; written into `out` when it has the right length (a worker reuses one buffer: a fresh one
 * costs more in first-touch page faults than the pass itself).
 */
export function frameInput(model: Pick<Model, 'descriptor' | 'inputSize' | 'scale' | 'offset'>, rgba: Uint8Array, width: number, height: number, out?: Float32Array): Float32Array {
  const [h, w] = model.inputSize;
  const p = model.descriptor.preprocess;
  const [t0, t1, t2] = byteTables(model);
  const [r, g, b] = p.channelOrder === 'BGR' ? [2, 1, 0] : [0, 1, 2];
  // The renderer sends frames already at the input size, opaque: cropResizeBytes would return
  // their RGB unchanged, so they are read in place (one pass instead of three).
  const c = centreCrop(width, height, w, h);
  const inPlace = c.width === w && c.height === h && c.left === 0 && c.top === 0 && opaque(rgba);
  const px = inPlace ? rgba : cropResizeBytes({ width, height, data: rgba }, 4, w, h, 3);
  const stride = inPlace ? 4 : 3;
  const x = out && out.length === h * w * 3 ? out : new Float32Array(h * w * 3);
  for (let i = 0, q = 0; i < x.length; i += 3, q += stride) {
    x[i] = t0[px[q + r]!]!;
    x[i + 1] = t1[px[q + g]!]!;
    x[i + 2] = t2[px[q + b]!]!;
  }
  return x;
}

type ByteTables = [Float32Array, Float32Array, Float32Array];
const tables = new WeakMap<object, ByteTables>();

/**
 * Per channel, byte → float32(float32(byte · scale) + offset) — preprocess's two float32 ops — as a
 * table of the 256 values; channels in the order preprocess scales them (after a BGR reversal).
 */
function byteTables(model: Pick<Model, 'scale' | 'offset'>): ByteTables {
  let t = tables.get(model);
  if (!t) {
    const { scale: s, offset: o } = model;
    t = [0, 1, 2].map((ch) => Float32Array.from({ length: 256 }, (_, v) => f32(f32(v * f32(s[ch]!)) + f32(o[ch]!)))) as ByteTables;
    tables.set(model, t);
  }
  return t;
}

function opaque(rgba: Uint8Array): boolean {
  let all = 255;
  for (let i = 3; i < rgba.length; i += 4) all &= rgba[i]!;
  return all === 255;
}

export interface ChannelTiles {
  /** Channel-major 8-bit tiles, C·H·W: round(max(0, a)·255 / scale). */
  data: Uint8Array<ArrayBuffer>;
  /** Each channel's largest rectified value. */
  channelMax: Float32Array<ArrayBuffer>;
  /** The largest of them: the one scale all tiles share. */
  scale: number;
}

/** A layer's activations (H·W·C, channels last, all finite) as channel-major 8-bit tiles with one shared scale. */
export function channelTiles(act: Float32Array, hw: number, c: number): ChannelTiles {
  const channelMax = new Float32Array(c);
  for (let i = 0; i < hw; i++) {
    const row = i * c;
    for (let ch = 0; ch < c; ch++) {
      const v = act[row + ch]!;
      if (v > channelMax[ch]!) channelMax[ch] = v;
    }
  }
  let scale = 0;
  for (let ch = 0; ch < c; ch++) if (channelMax[ch]! > scale) scale = channelMax[ch]!;
  const k = f32(255 / f32(Math.max(scale, f32(1e-30))));
  // A clamped byte array rounds halves to even as tf.round does, and clamps what relu would zero.
  const bytes = new Uint8ClampedArray(c * hw);
  // Read in the activations' order (a large early layer is MBs; striding over it misses the cache
  // on every read), write each position's C bytes into C rows.
  for (let i = 0; i < hw; i++) {
    const row = i * c;
    for (let ch = 0, out = i; ch < c; ch++, out += hw) bytes[out] = f32(act[row + ch]! * k);
  }
  const data = new Uint8Array(bytes.buffer);
  return { data, channelMax, scale };
}

/** One channel's map (H·W) of channels-last activations, unrectified, and its largest value. */
export function unitMap(act: Float32Array, hw: number, c: number, unit: number): { data: Float32Array<ArrayBuffer>; max: number } {
  const data = new Float32Array(hw);
  let max = -Infinity;
  for (let i = 0; i < hw; i++) {
    const v = act[i * c + unit]!;
    data[i] = v;
    if (v > max) max = v;
  }
  return { data, max };
}

/** The K most probable classes of one row of logits (softmax), most probable first; ties keep the lower index. */
export function topClasses(logits: Float32Array, k: number): { index: number; prob: number }[] {
  const prob = rowSoftmax(logits, 0, logits.length, { float32: true });
  const best: number[] = [];
  for (let i = 0; i < logits.length; i++) {
    const v = logits[i]!;
    if (best.length === k) {
      if (!(v > logits[best[k - 1]!]!)) continue;
      best.pop();
    }
    let at = best.length;
    while (at > 0 && v > logits[best[at - 1]!]!) at--;
    best.splice(at, 0, i);
  }
  return best.map((index) => ({ index, prob: prob(index) }));
}
