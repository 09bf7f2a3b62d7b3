// Session memory for the camera: the top-k frames of this session for every unit of one layer,
// each kept as a small crop of the unit's receptive field (padded where the field crosses the
// frame's border, with the pixel value the network sees as zero), so the app can show them beside
// the folder index. Memory is bounded by a byte budget (a setting): crops are shrunk to fit, and k
// is lowered only if even the smallest crops do not fit.
import * as tf from '@tensorflow/tfjs-core';
import { cropGeometry, type CropGeometry } from '../images.js';
import type { Model } from '../model.js';
import { receptiveFields, regionOf, type LayerField, type Region } from '../receptive-field.js';
import { cropField } from './patches.js';
import { mapCandidates } from './scoring.js';

export interface SessionTopKOptions {
  /** Displayed layer (name or display name). */
  layer: string;
  /** Frames kept per unit (default 9). */
  k?: number;
  /** Budget for the stored crops, in bytes (default 32 MiB). */
  maxBytes?: number;
  /** Longest side of a stored crop in pixels (default 64); smaller when the budget requires it. */
  maxCropSize?: number;
  /** Smallest crop side the budget may shrink crops to before k is lowered (default 16). */
  minCropSize?: number;
}

export interface SessionCrop {
  width: number;
  height: number;
  /** Packed RGB, 3 bytes per pixel. */
  data: Uint8Array;
}

export interface SessionHit {
  rank: number;
  activation: number;
  mean: number;
  /** The caller's frame id. */
  frame: number;
  /** When the frame was offered (ms since the epoch). */
  time: number;
  /** Arg-max position in the layer's map. */
  y: number;
  x: number;
  /** The receptive field in model-input pixels. */
  region: Region;
  crop: SessionCrop;
}

interface Entry {
  activation: number;
  mean: number;
  frame: number;
  time: number;
  pos: number;
  crop: Uint8Array;
}

/** Frame pixels at the model's input size: a [1,h,w,3] tensor (0..255) or its data. */
export type FramePixels = tf.Tensor4D | { data: ArrayLike<number>; width: number; height: number };

/** The layer's output for one frame: a [1,h,w,c] tensor or its data (as the live worker posts it). */
export type FrameTap = tf.Tensor4D | { data: Float32Array; shape: [1, number, number, number] };

export class SessionTopK {
  readonly field: LayerField;
  readonly units: number;
  /** Frames kept per unit (after the budget). */
  readonly k: number;
  readonly cropWidth: number;
  readonly cropHeight: number;
  readonly maxBytes: number;
  private readonly rows: Entry[][];
  private readonly thrAct: Float32Array;
  private readonly thrMean: Float32Array;
  private readonly padPixel: [number, number, number];
  private readonly frameGeometry: CropGeometry;
  private spare: Uint8Array[] = [];
  private allocated = 0;

  constructor(
    readonly model: Model,
    opts: SessionTopKOptions,
  ) {
    const info = model.layer(opts.layer);
    this.field = receptiveFields(model).layer(info.name);
    this.units = info.units;
    this.maxBytes = opts.maxBytes ?? 32 * 1024 * 1024;
    const wantK = opts.k ?? 9;
    if (!Number.isInteger(wantK) || wantK < 1) throw new Error(`k must be a positive integer, got ${wantK}`);
    // The crop's aspect follows the receptive field (square for square kernels).
    const [H, W] = model.inputSize;
    const fh = this.field.global ? H : this.field.y.size;
    const fw = this.field.global ? W : this.field.x.size;
    const longest = Math.max(fh, fw);
    const maxSide = opts.maxCropSize ?? 64;
    const minSide = Math.min(opts.minCropSize ?? 16, maxSide);
    const dims = (side: number): [number, number] => {
      const s = Math.min(side, longest) / longest;
      return [Math.max(1, Math.round(fh * s)), Math.max(1, Math.round(fw * s))];
    };
    const cost = (d: [number, number], k: number) => this.units * k * d[0] * d[1] * 3;
    let side = maxSide;
    let d = dims(side);
    while (cost(d, wantK) > this.maxBytes && side > minSide) {
      side = Math.max(minSide, Math.floor(side * 0.8));
      d = dims(side);
    }
    this.k = Math.max(1, Math.min(wantK, Math.floor(this.maxBytes / cost(d, 1))));
    [this.cropHeight, this.cropWidth] = d;
    this.rows = Array.from({ length: this.units }, () => []);
    this.thrAct = new Float32Array(this.units).fill(-Infinity);
    this.thrMean = new Float32Array(this.units).fill(-Infinity);
    // Padding shows what the network sees outside the frame: input 0, in pixels.
    this.padPixel = model.zeroPixel();
    this.frameGeometry = cropGeometry(W, H, [H, W]);
  }

  /** Bytes held by crops now (never more than maxBytes). */
  get bytes(): number {
    return this.allocated * this.cropWidth * this.cropHeight * 3;
  }

  /** Number of frames offered that entered at least one unit's top-k. */
  frames = 0;

  /**
   * Offer one frame: `tap` is the layer's output for it ([1,h,w,c], e.g. from the live forward
   * pass — a tensor is not disposed) and `pixels` the frame at the model's input size, or a
   * function that makes it, called only when some unit takes the frame. Returns how many units took
   * it. With plain arrays in there is no tfjs work at all: one pass over the map (the host's main
   * thread does this for every live frame).
   */
  async offer(frame: number, tap: FrameTap, pixels: FramePixels | (() => FramePixels), time = Date.now()): Promise<number> {
    const [, h, w, c] = tap.shape;
    if (c !== this.units || h !== this.field.mapSize[0] || w !== this.field.mapSize[1]) {
      throw new Error(`SessionTopK for ${this.field.layer}: tap shape ${tap.shape.join('×')} does not match the layer`);
    }
    const map = tap instanceof tf.Tensor ? ((await tap.data()) as Float32Array) : tap.data;
    const cand = mapCandidates(map, h, w, c, { act: this.thrAct, mean: this.thrMean });
    if (cand.units.length === 0) return 0;
    const [H, W] = this.model.inputSize;
    let px: ArrayLike<number>;
    // A function makes the pixels only now: most frames, once the memory has filled, beat no unit.
    if (typeof pixels === 'function') pixels = pixels();
    if (pixels instanceof tf.Tensor) {
      if (pixels.shape[1] !== H || pixels.shape[2] !== W) throw new Error(`frame is ${pixels.shape[2]}×${pixels.shape[1]}, expected ${W}×${H}`);
      px = await pixels.data();
    } else {
      if (pixels.width !== W || pixels.height !== H || pixels.data.length !== W * H * 3) {
        throw new Error(`frame data is ${pixels.width}×${pixels.height} (${pixels.data.length} values), expected ${W}×${H}×3`);
      }
      px = pixels.data;
    }
    let taken = 0;
    for (let j = 0; j < cand.units.length; j++) {
      const u = cand.units[j]!;
      const pos = cand.pos[j]!;
      if (pos < 0) continue;
      if (this.insert(u, cand.max[u]!, cand.mean[u]!, frame, time, pos, px)) taken++;
    }
    if (taken) this.frames++;
    return taken;
  }

  private insert(u: number, activation: number, mean: number, frame: number, time: number, pos: number, px: ArrayLike<number>): boolean {
    const row = this.rows[u]!;
    const beats = (e: Entry) => activation > e.activation || (activation === e.activation && mean > e.mean);
    if (Number.isNaN(activation) || (row.length >= this.k && !beats(row[row.length - 1]!))) return false;
    let buf: Uint8Array;
    if (row.length >= this.k) buf = row.pop()!.crop;
    else if (this.spare.length) buf = this.spare.pop()!;
    else {
      buf = new Uint8Array(this.cropWidth * this.cropHeight * 3);
      this.allocated++;
    }
    const w = this.field.mapSize[1];
    const [H, W] = this.model.inputSize;
    const box = regionOf(this.field, Math.floor(pos / w), pos % w).unclipped;
    // Frames are already at the model's input size: the identity geometry, 2×2 samples per pixel.
    cropField({ width: W, height: H, data: px }, this.frameGeometry, box, this.cropWidth, this.cropHeight, this.padPixel, { samples: 2, into: buf });
    let i = row.length;
    while (i > 0 && beats(row[i - 1]!)) i--;
    row.splice(i, 0, { activation, mean, frame, time, pos, crop: buf });
    if (row.length >= this.k) {
      const last = row[row.length - 1]!;
      this.thrAct[u] = last.activation;
      this.thrMean[u] = last.mean;
    }
    return true;
  }

  /** The unit's top frames of this session, best first. */
  top(unit: number, k = this.k): SessionHit[] {
    if (!Number.isInteger(unit) || unit < 0 || unit >= this.units) throw new Error(`unit ${unit} is out of range (0…${this.units - 1})`);
    const w = this.field.mapSize[1];
    return this.rows[unit]!.slice(0, k).map((e, rank) => {
      const y = Math.floor(e.pos / w);
      const x = e.pos % w;
      return {
        rank,
        activation: e.activation,
        mean: e.mean,
        frame: e.frame,
        time: e.time,
        y,
        x,
        region: regionOf(this.field, y, x),
        crop: { width: this.cropWidth, height: this.cropHeight, data: e.crop },
      };
    });
  }

  /** Forget every frame (buffers are kept for reuse). */
  clear(): void {
    for (const row of this.rows) {
      for (const e of row) this.spare.push(e.crop);
      row.length = 0;
    }
    this.thrAct.fill(-Infinity);
    this.thrMean.fill(-Infinity);
    this.frames = 0;
  }
}
