// The back-projection part of a live frame: for a frame request with `back`, `gradcam`
// or grid 'backDiffs', the frame's one forward pass (net.run, up to the deepest node needed) feeds
//   - the back-projection of the source unit onto the input (backprop / deconv / guided), display-
//     filtered (raw / gray / norm / normblur) to RGB bytes at the input size;
//   - the back-propagated diffs arriving at the frame's layer (DVT's `a` grid), as 8-bit tiles;
//   - Grad-CAM heat for a class (default: the frame's top-1, read by the caller's main pass).
// Everything is packed into the frame's one tensor and read once; nothing outlives the tidy.
// On ONNX Runtime (an onnx* backend) the views come from the exported backward graphs instead: each
// is one ORT run (forward and backward together; the graphs exist per objective kind and rule), the
// display filters and the cam stay in tfjs.
import * as tf from '@tensorflow/tfjs-core';
import type { FrameBackDiffsReplyT, FrameBackReplyT, FrameGradCamReplyT } from '../../contract/backprojection.js';
import type { FrameRequestT } from '../../contract/messages.js';
import { backproject, backwardRule, describeTarget, targetNode, targetSeed, type BackTarget } from '../engine/backprojection.js';
import { displayBytes } from '../engine/display-filters.js';
import { defaultGradCamLayer, gradCam, gradCamFromValues } from '../engine/gradcam.js';
import type { Model } from '../engine/index.js';
import { nativeEngine } from '../engine/onnx/native-net.js';

export interface BackFrameExtras {
  back?: FrameBackReplyT;
  gradcam?: FrameGradCamReplyT;
  backDiffs?: FrameBackDiffsReplyT;
}

/** Where a frame's views come from: the tfjs forward's node values, or ONNX Runtime. Inside the frame's tidy. */
interface FrameViews {
  /** The back-projection at the input, or (toLayer) the diffs arriving at the frame's layer. */
  back(toLayer: boolean): tf.Tensor;
  logits: tf.Tensor;
  /** Grad-CAM heat [1,H,W] in 0..1 at the input size. */
  heat(target: BackTarget, layer: string): tf.Tensor;
}

export function wantsBackExtras(req: FrameRequestT): boolean {
  return !!(req.back || req.gradcam || req.grid === 'backDiffs');
}

/** The back source as an engine target: a class on the logits layer, else a channel. */
export function backSource(model: Model, layer: string, unit: number): BackTarget {
  const l = model.layer(layer);
  if (l.name === model.logitsLayer) return { kind: 'class', index: unit };
  return { kind: 'channel', layer: l.name, channel: unit };
}

/**
 * The frame's back-projection views, computed in the frame job's own forward pass. runFrame calls
 * forward() in place of model.forward (one net.run, deep enough for every view), appends parts() to
 * its packed tensor inside the same tidy, and after its one read hands the tail to decode().
 * Without back fields it is exactly model.forward and adds nothing.
 */
export class BackFramePass {
  private readonly net: Model['compiled']['net'];
  private readonly wanted: boolean;
  private readonly back: FrameRequestT['back'] | null;
  private readonly source: BackTarget | null;
  private readonly srcNode: number;
  private readonly layerNode: number;
  private readonly shape: [number, number, number];
  private readonly diffsWanted: boolean;
  private readonly diffsLive: boolean;
  private values: tf.Tensor[] | null = null;
  /** On ONNX Runtime: the network input and logits of this frame (each view is its own ORT run). */
  private native: { x: tf.Tensor4D; logits: tf.Tensor2D } | null = null;
  private camTarget: BackTarget | null = null;
  private camLayer: string | null = null;
  private sizes = { back: 0, diffs: 0, heat: 0 };

  constructor(
    private readonly model: Model,
    private readonly req: FrameRequestT,
    private readonly layerName: string,
  ) {
    this.net = model.compiled.net;
    this.wanted = wantsBackExtras(req);
    this.back = req.back ?? null;
    // Checked before any tensor work: an unknown source layer or a unit out of range throws here.
    this.source = this.back ? backSource(model, this.back.layer, this.back.unit) : null;
    this.srcNode = this.source ? targetNode(model, this.source) : -1;
    const layer = model.layer(layerName);
    this.layerNode = this.net.nodeIndex(layer.name);
    this.shape = layer.shape;
    this.diffsWanted = req.grid === 'backDiffs';
    // Diffs exist only below (or at) the source; above it the signal never arrives: zero tiles.
    this.diffsLive = this.diffsWanted && !!this.source && this.layerNode <= this.srcNode;
    if (req.gradcam?.class !== undefined) targetNode(model, { kind: 'class', index: req.gradcam.class });
  }

  /** model.forward(x, {taps: [layer]}) — with the node values kept for parts(). Call inside tidy. */
  forward(x: tf.Tensor4D): { logits: tf.Tensor2D; taps: Record<string, tf.Tensor4D> } {
    const m = this.model;
    if (!this.wanted) return m.forward(x, { taps: [this.layerName] }) as { logits: tf.Tensor2D; taps: Record<string, tf.Tensor4D> };
    if (nativeEngine(m)) {
      const out = m.forward(x, { taps: [this.layerName] }) as { logits: tf.Tensor2D; taps: Record<string, tf.Tensor4D> };
      this.native = { x, logits: out.logits };
      return out;
    }
    const until = Math.max(m.compiled.logitsNode, this.layerNode, this.srcNode);
    const values = this.net.run(x, { until });
    this.values = values;
    const v = values[this.layerNode]!;
    const l = values[m.compiled.logitsNode]!;
    return {
      logits: tf.reshape(l, [l.shape[0]!, -1]) as tf.Tensor2D,
      taps: { [this.layerName]: (v.rank === 4 ? v : tf.reshape(v, [v.shape[0]!, 1, 1, -1])) as tf.Tensor4D },
    };
  }

  /** The back views as flat float tensors to pack after the frame's own parts. Call inside the same tidy. */
  parts(): tf.Tensor[] {
    if (!this.wanted || (!this.values && !this.native)) return [];
    const m = this.model;
    const [H, W] = m.inputSize;
    const [lh, lw, lc] = this.shape;
    const hw = lh * lw;
    const n = lc * hw;
    const views = this.native ? this.nativeViews(this.native.x, this.native.logits) : this.tfjsViews(this.values!);
    const parts: tf.Tensor[] = [];
    if (this.source && this.back) {
      parts.push(tf.reshape(tf.cast(displayBytes(views.back(false) as tf.Tensor4D, this.back.filter, { percentile: this.back.percentile }), 'float32'), [-1]));
      this.sizes.back = H * W * 3;
      if (this.diffsLive) {
        const d = views.back(true);
        const chw = tf.transpose(tf.reshape(tf.abs(d), [hw, lc]), [1, 0]); // [C, H·W]
        const channelMax = tf.max(chw, 1);
        const scale = tf.reshape(tf.max(channelMax), [1]);
        const k = tf.div(tf.scalar(255), tf.maximum(scale, tf.scalar(1e-30)));
        parts.push(tf.reshape(tf.round(tf.mul(chw, k)), [n]), channelMax, scale);
        this.sizes.diffs = n + lc + 1;
      }
    }
    if (this.req.gradcam) {
      // Default class: this frame's top-1 (a synchronous read of one number; the logits are computed).
      const index = this.req.gradcam.class ?? tf.argMax(tf.reshape(views.logits, [-1])).dataSync()[0]!;
      this.camTarget = { kind: 'class', index };
      this.camLayer = defaultGradCamLayer(m, this.camTarget);
      parts.push(tf.reshape(tf.round(tf.mul(views.heat(this.camTarget, this.camLayer), 255)), [-1]));
      this.sizes.heat = H * W;
    }
    return parts;
  }

  /** The views from the node values of the frame's one tfjs forward pass (GraphNet.backward). */
  private tfjsViews(values: tf.Tensor[]): FrameViews {
    const m = this.model;
    const seed = this.source ? targetSeed(values[this.srcNode]!, this.source) : null;
    const rule = this.back ? backwardRule(this.back.mode) : 'gradient';
    return {
      back: (toLayer) => this.net.backward(values, this.srcNode, seed!, { rule, to: toLayer ? this.layerNode : 0 }),
      logits: values[m.compiled.logitsNode]!,
      heat: (target, layer) => gradCamFromValues(m, values, target, layer, m.inputSize).heat,
    };
  }

  /** The views on ONNX Runtime: each one ORT run of an exported backward graph (per objective kind and rule). */
  private nativeViews(x: tf.Tensor4D, logits: tf.Tensor2D): FrameViews {
    const m = this.model;
    return {
      back: (toLayer) => backproject(m, x, this.source!, this.back!.mode, toLayer ? { to: this.layerName } : {}),
      logits,
      heat: (target, layer) => gradCam(m, x, target, { layer }).heat,
    };
  }

  /** The reply fields from the packed values that parts() contributed (the tail of the frame's read). */
  decode(tail: Float32Array): BackFrameExtras {
    this.values = null;
    this.native = null;
    if (!this.wanted) return {};
    const m = this.model;
    const [H, W] = m.inputSize;
    const [lh, lw, lc] = this.shape;
    const n = lc * lh * lw;
    const out: BackFrameExtras = {};
    let at = 0;
    if (this.source && this.back && this.sizes.back) {
      const rgb = new Uint8Array(this.sizes.back);
      rgb.set(tail.subarray(0, this.sizes.back)); // exact integers 0..255
      at += this.sizes.back;
      out.back = { width: W, height: H, rgb, mode: this.back.mode, filter: this.back.filter, percentile: this.back.percentile ?? 100, source: describeTarget(m, this.source) };
    }
    if (this.diffsWanted) {
      if (this.diffsLive && this.sizes.diffs) {
        const data = new Uint8Array(n);
        data.set(tail.subarray(at, at + n));
        out.backDiffs = { count: lc, h: lh, w: lw, scale: tail[at + n + lc]!, channelMax: tail.slice(at + n, at + n + lc), data };
        at += this.sizes.diffs;
      } else {
        out.backDiffs = { count: lc, h: lh, w: lw, scale: 0, channelMax: new Float32Array(lc), data: new Uint8Array(n) };
      }
    }
    if (this.camTarget && this.camLayer && this.sizes.heat) {
      const heat = new Uint8Array(this.sizes.heat);
      heat.set(tail.subarray(at, at + this.sizes.heat));
      at += this.sizes.heat;
      const index = (this.camTarget as { index: number }).index;
      out.gradcam = { width: W, height: H, heat, classIndex: index, className: m.classes[index]?.name ?? `class ${index}`, layer: this.camLayer };
    }
    if (at !== tail.length) throw new Error(`back-projection: packed ${tail.length} values, read ${at}`);
    return out;
  }
}
