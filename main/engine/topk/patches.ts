// Patches: the receptive field of a top-k hit cut out of its image (padded where the field crosses
// the border, with the pixel value the network sees as zero), and the unit's back-projection over
// the same region shown beside it. The folder index and the session memory of camera frames crop
// with the same function.
import * as tf from '@tensorflow/tfjs-core';
import { backproject, type BackMode } from '../backprojection.js';
import { displayBytes } from '../display-filters.js';
import { oneLine } from '../errors.js';
import { cropGeometry, cropResize, decodeImage, type CropGeometry, type RgbImage } from '../images.js';
import type { Model } from '../model.js';
import type { Box } from '../receptive-field.js';
import type { TopKHit } from './index-file.js';
import { tidyData } from '../tensor-data.js';

/** One hit's patch: the crop, its back-projection (null when it could not be made) and why not. */
export interface Patch {
  width: number;
  height: number;
  crop: Uint8Array;
  deconv: Uint8Array | null;
  problem?: string;
}

/**
 * How a model's top patches are back-projected when nobody says: DVT's deconv where the network
 * has max-pools, guided backprop where it has none. Without pool switches deconv never looks at
 * the input (its rectifiers act on the signal coming back, not on the forward pass), so on a
 * MobileNet every image's deconv of a class is the same picture; guided keeps the forward pass's
 * masks, so it shows what in this image drove the unit.
 */
export function defaultPatchBack(model: Pick<Model, 'compiled'>): 'deconv' | 'guided' {
  return model.compiled.net.nodes.some((n) => n.op.kind === 'pool' && n.op.spec.kind === 'max') ? 'deconv' : 'guided';
}

export interface FolderPatchOptions {
  /** Longest side of the patch in pixels. */
  size: number;
  /** Back-projection mode (default: defaultPatchBack). */
  back?: BackMode;
  /** Its display scale: full contrast at this percentile of the region's |value| (the window's back-projection scale); absent or 100: the largest. */
  percentile?: number;
  stillCurrent?: () => boolean;
}

export function patchDims(box: Box, size: number): [number, number] {
  const longest = Math.max(box.w, box.h, 1);
  return [Math.max(1, Math.round((box.w / longest) * size)), Math.max(1, Math.round((box.h / longest) * size))];
}

export interface CropFieldOptions {
  /** Samples per output pixel and axis; default: enough for the image's scale (1…4), so large photos do not alias. */
  samples?: number;
  /** Write into this buffer (width × height × 3 bytes) instead of a new one. */
  into?: Uint8Array;
}

/**
 * Resample the receptive field `box` (model-input pixels, may cross the input's border) of an image
 * into width × height RGB bytes: each output pixel averages s×s samples of the original image
 * (area-like); samples outside the part of the image the model saw take `pad`.
 */
export function cropField(
  img: { width: number; height: number; data: ArrayLike<number> },
  g: CropGeometry,
  box: Box,
  width: number,
  height: number,
  pad: [number, number, number],
  opts: CropFieldOptions = {},
): Uint8Array {
  const out = opts.into ?? new Uint8Array(width * height * 3);
  const sx = box.w / width;
  const sy = box.h / height;
  const n = opts.samples ?? Math.max(1, Math.min(4, Math.ceil(Math.max(sx * g.scaleX, sy * g.scaleY))));
  const x0 = g.left;
  const y0 = g.top;
  const x1 = Math.min(g.left + g.cropWidth, img.width);
  const y1 = Math.min(g.top + g.cropHeight, img.height);
  let o = 0;
  for (let i = 0; i < height; i++) {
    for (let j = 0; j < width; j++) {
      let r = 0;
      let gg = 0;
      let b = 0;
      for (let a = 0; a < n; a++) {
        const oy = Math.floor(g.top + (box.y + (i + (a + 0.5) / n) * sy) * g.scaleY);
        for (let c = 0; c < n; c++) {
          const ox = Math.floor(g.left + (box.x + (j + (c + 0.5) / n) * sx) * g.scaleX);
          if (oy < y0 || ox < x0 || oy >= y1 || ox >= x1) {
            r += pad[0];
            gg += pad[1];
            b += pad[2];
          } else {
            const q = (oy * img.width + ox) * 3;
            r += img.data[q]!;
            gg += img.data[q + 1]!;
            b += img.data[q + 2]!;
          }
        }
      }
      const nn = n * n;
      out[o++] = Math.round(r / nn);
      out[o++] = Math.round(gg / nn);
      out[o++] = Math.round(b / nn);
    }
  }
  return out;
}

/**
 * The same region of an input-space map ([H,W,3] floats, e.g. a deconv), resampled (zero outside)
 * and shown DVT's raw way through the display filters: zero = mid grey, one scale for the three
 * channels, full contrast at `percentile` of the region's |value| (absent or 100: its largest).
 */
export function cropSignal(map: Float32Array, H: number, W: number, box: Box, width: number, height: number, percentile?: number): Uint8Array {
  const vals = new Float32Array(width * height * 3);
  const sx = box.w / width;
  const sy = box.h / height;
  const n = Math.max(1, Math.min(4, Math.ceil(Math.max(sx, sy))));
  let o = 0;
  for (let i = 0; i < height; i++) {
    for (let j = 0; j < width; j++) {
      let r = 0;
      let g = 0;
      let b = 0;
      for (let a = 0; a < n; a++) {
        const y = Math.floor(box.y + (i + (a + 0.5) / n) * sy);
        for (let c = 0; c < n; c++) {
          const x = Math.floor(box.x + (j + (c + 0.5) / n) * sx);
          if (y < 0 || x < 0 || y >= H || x >= W) continue;
          const q = (y * W + x) * 3;
          r += map[q]!;
          g += map[q + 1]!;
          b += map[q + 2]!;
        }
      }
      const nn = n * n;
      vals[o++] = r / nn;
      vals[o++] = g / nn;
      vals[o++] = b / nn;
    }
  }
  return Uint8Array.from(tidyData(() => displayBytes(tf.tensor4d(vals, [1, height, width, 3]), 'raw', { rawScale: 'shared', percentile })));
}

/**
 * Crop and back-projection of one hit (decode, one forward to the layer, one backward pass).
 * `stillCurrent` is asked before the backward pass: a model switched meanwhile (and disposed) gets
 * the crop alone.
 */
export async function folderPatch(model: Model, layerName: string, unit: number, hit: TopKHit, opts: FolderPatchOptions): Promise<Patch> {
  const back = opts.back ?? defaultPatchBack(model);
  const [width, height] = patchDims(hit.inputBox, opts.size);
  const pad = model.zeroPixel(); // what the network sees as input zero
  let img: RgbImage;
  try {
    img = await decodeImage(hit.image);
  } catch (e) {
    const grey = new Uint8Array(width * height * 3).fill(128);
    return { width, height, crop: grey, deconv: null, problem: oneLine(e) };
  }
  if (img.width !== hit.imageWidth || img.height !== hit.imageHeight) {
    const g = cropGeometry(img.width, img.height, model.inputSize);
    return { width, height, crop: cropField(img, g, hit.inputBox, width, height, pad), deconv: null, problem: 'the image changed since it was indexed' };
  }
  const g = cropGeometry(img.width, img.height, model.inputSize);
  const crop = cropField(img, g, hit.inputBox, width, height, pad);
  if (opts.stillCurrent && !opts.stillCurrent()) return { width, height, crop, deconv: null, problem: 'the model changed' };
  const [H, W] = model.inputSize;
  // Seeded with the unit's whole activation map (as the live back-projection), then cropped to
  // the field. DVT seeded its top-9 deconvs at the arg-max position only, which relies on
  // max-pool switches: in a network without max-pools (MobileNet) that picture is the same for
  // every image.
  const map = tf.tidy(() => backproject(model, model.preprocess(cropResize(img, model.inputSize)), { kind: 'channel', layer: layerName, channel: unit }, back));
  try {
    const data = (await map.data()) as Float32Array;
    return { width, height, crop, deconv: cropSignal(data, H, W, hit.inputBox, width, height, opts.percentile) };
  } finally {
    map.dispose();
  }
}
