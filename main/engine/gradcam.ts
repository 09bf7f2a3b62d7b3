// Grad-CAM (Selvaraju et al. 2017) for a class or a channel at a chosen layer, batch-capable, with
// our own backward pass (plain gradient, stopped at the chosen layer):
//   w_c = spatial mean of ∂y/∂A_c,   cam = ReLU(Σ_c w_c A_c),
// upsampled (bilinear) to the input size and min–max normalised to [0,1] per image.
// y is the class logit, or for a channel the spatial mean of its activation map.
// Plus the display side: a jet colormap and the heat map blended over the input.
import * as tf from '@tensorflow/tfjs-core';
import { describeTarget, targetNode, type BackTarget } from './backprojection.js';
import type { Model } from './model.js';
import { receptiveFields } from './receptive-field.js';
import { channelSeed, nativeBackward, nativeEngine } from './onnx/native-net.js';

export interface GradCamOptions {
  /** Layer (name or display name) whose feature maps are weighted; default: defaultGradCamLayer(). */
  layer?: string;
}

export interface GradCamResult {
  /** [N,H,W] at the model's input size, in [0,1] (all zero when the cam is zero everywhere). */
  heat: tf.Tensor3D;
  /** [N,h,w] at the layer's resolution: ReLU(Σ_c w_c A_c) before upsampling and normalisation. */
  coarse: tf.Tensor3D;
  /** The layer used (its Keras name). */
  layer: string;
}

function isRectifiedNode(model: Model, index: number, memo = new Map<number, boolean>()): boolean {
  const hit = memo.get(index);
  if (hit !== undefined) return hit;
  const net = model.compiled.net;
  const node = net.nodes[index]!;
  const op = node.op;
  let r: boolean;
  if (op.kind === 'conv') r = op.spec.activation.kind !== 'linear';
  else if (op.kind === 'act') r = op.act.kind !== 'linear';
  else if (op.kind === 'nonlinear') r = op.fn !== 'softmax';
  // A pool or gate of rectified maps, or a sum / concatenation of them (residual and Inception
  // block outputs), is a feature map too.
  else if (op.kind === 'pool' || op.kind === 'mul') r = isRectifiedNode(model, node.inputs[0]!, memo);
  else if (op.kind === 'add' || op.kind === 'concat') r = node.inputs.every((j) => isRectifiedNode(model, j, memo));
  else r = false;
  memo.set(index, r);
  return r;
}

/**
 * Default Grad-CAM layer: among the displayed spatial layers (h·w > 1) before the target whose
 * output is a feature map (a rectified convolution or activation, a pool of one, a residual sum or
 * Inception concatenation of them), the one with the largest receptive field, the deeper on a tie
 * — the last convolutional feature maps for a class, as in the Grad-CAM paper, whatever order the
 * descriptor lists its layers in (InceptionV3's mixed10, not an early 35×35 branch pool).
 * darknet-tiny's linear 1×1 "classmap" conv is skipped: its Grad-CAM is plain CAM. For a channel,
 * the best such layer strictly before its own.
 */
export function defaultGradCamLayer(model: Model, target: BackTarget): string {
  const net = model.compiled.net;
  const from = targetNode(model, target);
  const fields = receptiveFields(model);
  const spatial = model.layers.filter((l) => l.shape[0] * l.shape[1] > 1 && l.name !== model.logitsLayer);
  const before = spatial
    .map((l) => ({ l, i: net.nodeIndex(l.name) }))
    .filter(({ i }) => (target.kind === 'class' ? i <= from : i < from))
    .sort((a, b) => a.i - b.i);
  const memo = new Map<number, boolean>();
  const rectified = before.filter(({ i }) => isRectifiedNode(model, i, memo));
  const pool = rectified.length ? rectified : before;
  const area = (name: string) => {
    const f = fields.layer(name);
    return f.global ? Infinity : f.y.size * f.x.size;
  };
  let pick: (typeof pool)[number] | undefined;
  for (const c of pool) if (!pick || area(c.l.name) >= area(pick.l.name)) pick = c;
  if (!pick) throw new Error(`no spatial layer of ${model.id} comes before ${describeTarget(model, target)} for Grad-CAM`);
  return pick.l.name;
}

/** Grad-CAM for a batch of preprocessed inputs [N,H,W,3]. The caller disposes heat and coarse. */
export function gradCam(model: Model, x: tf.Tensor4D, target: BackTarget, opts: GradCamOptions = {}): GradCamResult {
  const net = model.compiled.net;
  const from = targetNode(model, target);
  const layer = opts.layer ? model.layer(opts.layer) : model.layer(defaultGradCamLayer(model, target));
  const size: [number, number] = [x.shape[1], x.shape[2]];
  const { heat, coarse } = tf.tidy(() =>
    nativeEngine(model) ? nativeGradCam(model, x, target, layer.name) : gradCamFromValues(model, net.run(x, { until: from }), target, layer.name, size),
  );
  return { heat, coarse, layer: layer.name };
}

/** The target's node and the Grad-CAM layer's, checked: the layer comes first and has a spatial extent. */
function camNodes(model: Model, target: BackTarget, layerName: string): { from: number; at: number } {
  const from = targetNode(model, target);
  const layer = model.layer(layerName);
  const at = model.compiled.net.nodeIndex(layer.name);
  if (at > from) throw new Error(`Grad-CAM layer ${layer.display} comes after the target ${describeTarget(model, target)}`);
  if (layer.shape[0] * layer.shape[1] <= 1) throw new Error(`Grad-CAM layer ${layer.display} has no spatial extent (1×1)`);
  return { from, at };
}

/**
 * Grad-CAM from the node values of a forward pass already run (net.run, mode "plain", at least up
 * to the target's node) — so a live frame can share one forward between its views. Call inside
 * tf.tidy; `size` is the input [H,W] the heat is upsampled to.
 */
export function gradCamFromValues(
  model: Model,
  values: tf.Tensor[],
  target: BackTarget,
  layerName: string,
  size: [number, number],
): { heat: tf.Tensor3D; coarse: tf.Tensor3D } {
  const net = model.compiled.net;
  const { from, at } = camNodes(model, target, layerName);
  const y = values[from]!;
  const c = y.shape[y.rank - 1]!;
  const unit = target.kind === 'class' ? target.index : target.channel;
  const mask = tf.reshape(tf.oneHot(tf.tensor1d([unit], 'int32'), c), [c]);
  // d(logit)/d(logits) is the one-hot; d(mean of channel)/d(map) is 1/(h·w) on that channel.
  const spatial = y.rank === 4 ? y.shape[1]! * y.shape[2]! : 1;
  const seed = tf.mul(tf.onesLike(y), target.kind === 'class' ? mask : tf.div(mask, spatial));
  const g = net.backward(values, from, seed, { rule: 'gradient', to: at }) as tf.Tensor4D;
  return camFromGradient(g, values[at] as tf.Tensor4D, size);
}

/** Grad-CAM's layer gradient and activations in one ONNX Runtime run, then the cam in tfjs. Call inside tf.tidy. */
function nativeGradCam(model: Model, x: tf.Tensor4D, target: BackTarget, layerName: string): { heat: tf.Tensor3D; coarse: tf.Tensor3D } {
  const { from, at } = camNodes(model, target, layerName);
  const unit = target.kind === 'class' ? target.index : target.channel;
  // As gradCamFromValues: a one-hot for a class, 1/(h·w) on the channel for a channel's mean.
  const mask = channelSeed(model, x, from, unit, (s) => (target.kind === 'class' || s.length < 3 ? 1 : 1 / (s[0]! * s[1]!)));
  const r = nativeBackward(model, x, { from, to: at, rule: 'gradient', linearStart: false, seed: 'ones' }, mask, [at]);
  return camFromGradient(r.grad as tf.Tensor4D, r.taps[0] as tf.Tensor4D, [x.shape[1], x.shape[2]]);
}

/** cam = ReLU(Σ_c w_c A_c) with w_c the spatial mean of the layer gradient; upsampled and normalised. */
function camFromGradient(g: tf.Tensor4D, a: tf.Tensor4D, size: [number, number]): { heat: tf.Tensor3D; coarse: tf.Tensor3D } {
  const [H, W] = size;
  const w = tf.mean(g, [1, 2], true);
  const cam = tf.relu(tf.sum(tf.mul(w, a), 3, true)) as tf.Tensor4D; // [N,h,w,1]
  const up = tf.image.resizeBilinear(cam, [H, W], false, true);
  const lo = tf.min(up, [1, 2, 3], true);
  const range = tf.sub(tf.max(up, [1, 2, 3], true), lo);
  // A cam that is zero (or flat) everywhere stays zero rather than dividing by ~0.
  const safe = tf.where(tf.greater(range, 1e-12), range, tf.onesLike(range));
  const norm = tf.mul(tf.div(tf.sub(up, lo), safe), tf.cast(tf.greater(range, 1e-12), 'float32'));
  return { heat: tf.squeeze(norm, [3]) as tf.Tensor3D, coarse: tf.squeeze(cam, [3]) as tf.Tensor3D };
}

/** Jet colormap: [N,H,W] values in [0,1] → [N,H,W,3] RGB in [0,1] (blue → cyan → yellow → red). */
export function jet(heat: tf.Tensor3D): tf.Tensor4D {
  return tf.tidy(() => {
    const t = tf.expandDims(tf.clipByValue(heat, 0, 1), 3);
    // Channel k peaks at t = (3 − k)/4 … written as 1.5 − |4t − centre|, clipped to [0,1].
    const centres = tf.tensor1d([3, 2, 1]);
    return tf.clipByValue(tf.sub(1.5, tf.abs(tf.sub(tf.mul(t, 4), centres))), 0, 1) as tf.Tensor4D;
  });
}

/**
 * The heat map over the image: (1 − α)·pixels + α·jet(heat)·255, α = opacity in [0,1].
 * pixels: [N,H,W,3] 0..255 RGB (the model-size input before preprocessing). Returns 0..255 floats.
 */
export function overlayHeat(pixels: tf.Tensor4D, heat: tf.Tensor3D, opacity = 0.5): tf.Tensor4D {
  if (!(opacity >= 0 && opacity <= 1)) throw new Error(`opacity ${opacity} is outside 0…1`);
  return tf.tidy(() => tf.add(tf.mul(pixels, 1 - opacity), tf.mul(jet(heat), 255 * opacity)) as tf.Tensor4D);
}
