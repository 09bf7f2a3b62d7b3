// One live frame on the engine, as the live worker runs it: one forward pass with the layer's tap
// (with the back-projection / Grad-CAM parts of backprojection-frame.ts in the same read), checked
// for NaN, then the channels packed as 8-bit tiles, the unit's map and top-5 by typed-array passes
// (frame-arrays.ts), turned into the contract's frame reply. On ONNX Runtime without those views
// no tfjs tensor is made at all. Every buffer in the reply belongs to it alone, so it can be
// transferred.
import * as tf from '@tensorflow/tfjs-core';
import type { FrameReplyT, FrameRequestT } from '../../contract/messages.js';
import { rgbaToModelPixels, type Model } from '../engine/index.js';
import { allFinite, nonFiniteError } from '../engine/finite.js';
import { nativeEngine, nativeForwardData } from '../engine/onnx/native-net.js';
import { BackFramePass, wantsBackExtras } from './backprojection-frame.js';
import { channelTiles, frameInput, topClasses, unitMap } from './frame-arrays.js';

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
  const { act, logits, tail } = wantsBackExtras(req) || !nativeEngine(model) ? await tensorForward(model, req, n) : nativeFrameForward(model, req);
  if (!allFinite(act) || !allFinite(logits) || !allFinite(tail.values)) throw frameNonFinite(model, req);
  const tiles = channelTiles(act, hw, c);
  const unit = unitMap(act, hw, c, req.unit);
  const top5: FrameReplyT['top5'] = topClasses(logits, K).map(({ index, prob }) => {
    const cls = model.classes[index];
    return { index, wnid: cls?.wnid ?? null, name: cls?.name ?? `class ${index}`, prob };
  });
  const reply: FrameReplyT = {
    type: 'frame',
    frameId: req.frameId,
    modelId: model.id,
    top5,
    layer: layer.name,
    tiles: { count: c, h, w, ...tiles },
    unit: { index: req.unit, h, w, max: unit.max, data: unit.data },
    ...(tail.back?.decode(tail.values) ?? {}),
    engineMs: performance.now() - t0,
    ...(req.seq === undefined ? {} : { seq: req.seq }),
  };
  // ORT's output buffer is this frame's alone: it can be the tap itself (frameBuffers moves it).
  const own = act.byteOffset === 0 && act.byteLength === act.buffer.byteLength && act.buffer instanceof ArrayBuffer;
  return { reply, tap: opts.tap ? (own ? (act as Float32Array<ArrayBuffer>) : act.slice()) : null };
}

interface FrameForward {
  /** The layer's activations, H·W·C channels last. */
  act: Float32Array;
  /** The logits of the frame's one image. */
  logits: Float32Array;
  /** The back-projection / Grad-CAM parts and who decodes them. */
  tail: { values: Float32Array; back?: BackFramePass };
}

/** The last frame's network input, refilled by the next (ORT reads it only during its run). */
let inputBuffer: Float32Array | undefined;

/**
 * On ONNX Runtime without back-projection views: the input made from the frame's bytes and the
 * outputs read from ORT's buffers, no tensor in between (see frame-arrays.ts).
 */
function nativeFrameForward(model: Model, req: FrameRequestT): FrameForward {
  const [ih, iw] = model.inputSize;
  const net = model.compiled.net;
  const x = (inputBuffer = frameInput(model, req.rgba, req.width, req.height, inputBuffer));
  const [act, logits] = nativeForwardData(model, [ih, iw, 3], x, [net.nodeIndex(req.layer), model.compiled.logitsNode]);
  return { act: act!.data, logits: logits!.data, tail: { values: new Float32Array(0) } };
}

/**
 * On tfjs, or with back-projection views (backprojection-frame.ts, which shares this forward): the
 * activations, logits and the views' parts in one tensor, read once.
 */
async function tensorForward(model: Model, req: FrameRequestT, n: number): Promise<FrameForward> {
  const layer = model.layer(req.layer);
  const backPass = new BackFramePass(model, req, layer.name);
  let classes = 0;
  const packed = tf.tidy(() => {
    const pixels = rgbaToModelPixels(req.rgba, req.width, req.height, model.inputSize);
    const out = backPass.forward(model.preprocess(pixels));
    classes = out.logits.size;
    return tf.concat([tf.reshape(out.taps[layer.name]!, [n]), tf.reshape(out.logits, [classes]), ...backPass.parts()]);
  });
  let all: Float32Array;
  try {
    all = (await packed.data()) as Float32Array;
  } finally {
    packed.dispose();
  }
  return { act: all.subarray(0, n), logits: all.subarray(n, n + classes), tail: { values: all.subarray(n + classes), back: backPass } };
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
