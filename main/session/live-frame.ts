// One live frame on the engine, as the live worker runs it: one forward pass with the layer's tap,
// the channels packed as 8-bit tiles, the unit's map, top-5 and the back-projection / Grad-CAM
// parts (backprojection-frame.ts) in one tensor, read once, checked for NaN, turned into the
// contract's frame reply. Every buffer in the reply belongs to it alone, so it can be transferred.
import * as tf from '@tensorflow/tfjs-core';
import type { FrameReplyT, FrameRequestT } from '../../contract/messages.js';
import { rgbaToModelPixels, type Model } from '../engine/index.js';
import { allFinite, nonFiniteError } from '../engine/finite.js';
import { BackFramePass } from './backprojection-frame.js';

/** Checks the host makes before a frame leaves for the worker (the same messages as the engine's). */
export function checkFrame(model: Model, req: FrameRequestT): void {
  const layer = model.layer(req.layer);
  const c = layer.shape[2];
  if (req.unit >= c) throw new Error(`unit ${req.unit} is out of range for layer ${layer.display} (${c} units)`);
  if (req.rgba.length !== req.width * req.height * 4) {
    throw new Error(`rgba is ${req.rgba.length} bytes, expected ${req.width}×${req.height}×4 = ${req.width * req.height * 4}`);
  }
}

export interface LiveFrameResult {
  reply: FrameReplyT;
  /** The layer's activations in [H,W,C] order when asked for (the host's session memory). */
  tap: Float32Array<ArrayBuffer> | null;
}

export async function computeFrame(model: Model, req: FrameRequestT, opts: { tap?: boolean } = {}): Promise<LiveFrameResult> {
  const t0 = performance.now();
  checkFrame(model, req);
  const layer = model.layer(req.layer);
  const [h, w, c] = layer.shape;
  const hw = h * w;
  const n = c * hw;
  const K = Math.min(5, model.classes.length || 5);
  const withTap = !!opts.tap;
  // One forward, one tensor out, one read: [tiles 0..255 (C·H·W) | channelMax (C) | scale | unit map (H·W) | top-K probs | top-K indices | tap (H·W·C)?]
  // Back-projection, back diffs and Grad-CAM share this forward: see backprojection-frame.ts.
  const backPass = new BackFramePass(model, req, layer.name);
  const packed = tf.tidy(() => {
    const pixels = rgbaToModelPixels(req.rgba, req.width, req.height, model.inputSize);
    const out = backPass.forward(model.preprocess(pixels));
    const act = out.taps[layer.name]!; // [1,H,W,C]
    const chw = tf.transpose(tf.reshape(act, [hw, c]), [1, 0]); // [C, H·W]
    const pos = tf.relu(chw);
    const channelMax = tf.max(pos, 1); // [C]
    const scale = tf.max(channelMax).reshape([1]);
    const k = tf.div(tf.scalar(255), tf.maximum(scale, tf.scalar(1e-30)));
    const tiles = tf.round(tf.mul(pos, k)).reshape([n]);
    const unitMap = tf.slice(chw, [req.unit, 0], [1, hw]).reshape([hw]);
    const top = tf.topk(tf.softmax(out.logits!), K);
    const tap = withTap ? [tf.reshape(act, [n])] : [];
    return tf.concat([tiles, channelMax, scale, unitMap, top.values.reshape([K]), tf.cast(top.indices, 'float32').reshape([K]), ...tap, ...backPass.parts()]);
  });
  let all: Float32Array;
  try {
    all = (await packed.data()) as Float32Array;
  } finally {
    packed.dispose();
  }
  if (!allFinite(all)) throw frameNonFinite(model, req);
  const data = new Uint8Array(n);
  data.set(all.subarray(0, n)); // exact integers 0..255: a native typed-array conversion
  const channelMax = all.slice(n, n + c);
  const scale = all[n + c]!;
  const unitData = all.slice(n + c + 1, n + c + 1 + hw);
  let unitMax = -Infinity;
  for (let i = 0; i < hw; i++) if (unitData[i]! > unitMax) unitMax = unitData[i]!;
  const at = n + c + 1 + hw;
  const top5: FrameReplyT['top5'] = [];
  for (let j = 0; j < K; j++) {
    const index = all[at + K + j]!;
    const cls = model.classes[index];
    top5.push({ index, wnid: cls?.wnid ?? null, name: cls?.name ?? `class ${index}`, prob: all[at + j]! });
  }
  const tapAt = at + 2 * K;
  const tap = withTap ? (all.slice(tapAt, tapAt + n) as Float32Array<ArrayBuffer>) : null;
  const backExtras = backPass.decode(all.subarray(tapAt + (withTap ? n : 0)));
  const reply: FrameReplyT = {
    type: 'frame',
    frameId: req.frameId,
    modelId: model.id,
    top5,
    layer: layer.name,
    tiles: { count: c, h, w, scale, channelMax, data },
    unit: { index: req.unit, h, w, max: unitMax, data: unitData },
    ...backExtras,
    engineMs: performance.now() - t0,
    ...(req.seq === undefined ? {} : { seq: req.seq }),
  };
  return { reply, tap };
}

/** Every buffer of a frame reply (and its tap): they belong to the reply alone and can move. */
export function frameBuffers(r: LiveFrameResult): ArrayBuffer[] {
  const { reply } = r;
  const views: (ArrayBufferView | undefined | null)[] = [
    reply.tiles.data,
    reply.tiles.channelMax,
    reply.unit.data,
    reply.back?.rgb,
    reply.gradcam?.heat,
    reply.backDiffs?.data,
    reply.backDiffs?.channelMax,
    r.tap,
  ];
  const out = new Set<ArrayBuffer>();
  for (const v of views) if (v && v.byteOffset === 0 && v.buffer instanceof ArrayBuffer && v.byteLength === v.buffer.byteLength) out.add(v.buffer);
  return [...out];
}

/** The named error for a frame whose results hold NaN or Infinity (found again, layer by layer). */
function frameNonFinite(model: Model, req: FrameRequestT): Error {
  const x = tf.tidy(() => model.preprocess(rgbaToModelPixels(req.rgba, req.width, req.height, model.inputSize)));
  try {
    return nonFiniteError(model, x);
  } finally {
    x.dispose();
  }
}
