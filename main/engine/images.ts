// Image decoding (sharp: JPEG, PNG, WebP…, any size up to a pixel limit) and the centre-crop +
// resize to a model's input, for files and for raw RGBA camera frames.
import { centreCrop, cropResizeBytes } from '../../contract/resample.js';
import { readFile, stat } from 'node:fs/promises';
import { crc32 } from 'node:zlib';
import { imageSize } from 'image-size';
import sharp from 'sharp';
import * as tf from '@tensorflow/tfjs-core';
import { isTruncatedJpeg, MAX_IMAGE_PIXELS } from '../../contract/images.js';
import { oneLine } from './errors.js';

/** The largest image decoded (100 MP, why: contract/images.ts); larger ones are refused from their header. */
export const MAX_INPUT_PIXELS = MAX_IMAGE_PIXELS;

export interface RgbImage {
  width: number;
  height: number;
  /** Packed RGB, 3 bytes per pixel. */
  data: Uint8Array;
  /** The image's own size (upright) when `data` was reduced while decoding (see DecodeOptions). */
  original?: { width: number; height: number };
}

export interface DecodeOptions {
  /**
   * The model input the image is for: an image whose centre crop is more than REDUCE_ABOVE times
   * that size is reduced while it is decoded (libjpeg's shrink-on-load, libvips' streaming resize),
   * so a 100-megapixel photo never becomes a full raster or a full float tensor.
   */
  reduceFor?: [number, number];
}

/** Decoded crops up to this many times the model input per side are kept whole (bilinear from there). */
const REDUCE_ABOVE = 4;

/** EXIF orientations 5–8 turn the image a quarter: width and height swap once it is upright. */
function uprightSize(meta: sharp.Metadata): { width: number; height: number } {
  const w = meta.width ?? 0;
  const h = meta.height ?? 0;
  return (meta.orientation ?? 1) >= 5 ? { width: h, height: w } : { width: w, height: h };
}

const NOT_AN_IMAGE = 'not an image, or a format DeepVis cannot read (JPEG, PNG, WebP, GIF, AVIF, TIFF)';

/** What a codec error means for the user (libvips' messages name its internals, not the problem). */
function describeDecodeError(e: unknown): string {
  const msg = oneLine(e);
  if (/unsupported image format/i.test(msg)) return NOT_AN_IMAGE;
  if (/premature end|truncated|unexpected end|end of (file|stream)|not enough data/i.test(msg)) return 'the file is truncated (the image data ends early)';
  if (/checksum|crc/i.test(msg)) return 'damaged PNG (a chunk checksum is wrong)';
  if (/pngload|spng/i.test(msg)) return 'damaged PNG data (truncated, or a chunk checksum is wrong)';
  if (/corrupt|invalid|bogus|huffman|marker/i.test(msg)) return `damaged image data (${msg.replace(/^Input (file|buffer) (has|contains) /i, '')})`;
  return msg;
}

/**
 * Why a file that failed to decode is bad, read from its own bytes. libvips keeps its error text
 * per thread: with several decodes in flight a failure can carry "Unknown error" or another
 * file's message, so the structure is asked first and libvips' text only when it has nothing to say.
 */
async function structuralProblem(input: string | Buffer): Promise<string | null> {
  // Only on the error path: reading the whole file again is fine.
  const bytes = typeof input === 'string' ? await readFile(input) : input;
  if (isTruncatedJpeg(bytes)) return 'the file is truncated (the image data ends early)';
  const isPng = bytes.subarray(0, 8).equals(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]));
  if (isPng) {
    if (!bytes.subarray(-16).includes(Buffer.from('IEND'))) return 'the file is truncated (the image data ends early)';
    const bad = pngBadChunk(bytes);
    // Same words as libvips' own messages (describeDecodeError): the header, or the image data.
    if (bad === null) return 'damaged PNG data';
    return bad === 'IDAT' ? 'damaged PNG data (a chunk checksum is wrong)' : 'damaged PNG (a chunk checksum is wrong)';
  }
  try {
    imageSize(bytes);
  } catch {
    return NOT_AN_IMAGE;
  }
  return null;
}

/** The first chunk whose CRC-32 (over type + data) does not match, or null. */
function pngBadChunk(png: Buffer): string | null {
  for (let at = 8; at + 12 <= png.length; ) {
    const len = png.readUInt32BE(at);
    const type = png.toString('latin1', at + 4, at + 8);
    if (at + 12 + len > png.length) return type;
    if (crc32(png.subarray(at + 4, at + 8 + len)) !== png.readUInt32BE(at + 8 + len)) return type;
    at += 12 + len;
  }
  return null;
}

export async function decodeFailure(e: unknown, input: string | Buffer, label: string): Promise<Error> {
  const fromLibvips = describeDecodeError(e);
  const why = (await structuralProblem(input).catch(() => null)) ?? (/^unknown error$/i.test(fromLibvips) || !fromLibvips ? 'damaged or unreadable image data' : fromLibvips);
  return new Error(`${label}: cannot read image: ${why}`);
}

/** "megapixels" with one decimal below 10 MP, as a user reads it. */
function mp(pixels: number): string {
  const m = pixels / 1e6;
  return `${m < 10 ? m.toFixed(1) : Math.round(m)} MP`;
}

/** Refuse an image whose header declares more than MAX_INPUT_PIXELS, without decoding it. */
function checkImageSize(width: number, height: number, label: string): void {
  if (width * height > MAX_INPUT_PIXELS) {
    throw new Error(`${label}: ${width}×${height} pixels (${mp(width * height)}) is above the ${mp(MAX_INPUT_PIXELS)} limit; scale it down first`);
  }
}

/**
 * Decode an image file (or buffer) to RGB at its own size. Throws one line naming the input and
 * what is wrong: empty, not an image, truncated, damaged, or too large (read from the header first).
 */
export async function decodeImage(input: string | Buffer, label = typeof input === 'string' ? input : 'image', opts: DecodeOptions = {}): Promise<RgbImage> {
  let bytes: number;
  try {
    bytes = typeof input === 'string' ? (await stat(input)).size : input.byteLength;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new Error(`${label}: ${code === 'ENOENT' ? 'no such file' : `cannot open (${oneLine(e)})`}`);
  }
  if (bytes === 0) throw new Error(`${label}: empty file (0 bytes), not an image`);
  let meta: sharp.Metadata;
  try {
    // Header only (no pixels); the limit is ours, checked below with a message that says so.
    meta = await sharp(input, { limitInputPixels: false }).metadata();
  } catch (e) {
    throw await decodeFailure(e, input, label);
  }
  if (meta.width && meta.height) checkImageSize(meta.width, meta.height, label);
  const upright = uprightSize(meta);
  let reduceTo: { width: number; height: number } | null = null;
  if (opts.reduceFor && upright.width && upright.height) {
    const [h, w] = opts.reduceFor;
    const scale = Math.min(upright.height / h, upright.width / w); // original pixels per input pixel
    if (scale > REDUCE_ABOVE) {
      const f = REDUCE_ABOVE / scale;
      reduceTo = { width: Math.max(1, Math.round(upright.width * f)), height: Math.max(1, Math.round(upright.height * f)) };
    }
  }
  try {
    let pipeline = sharp(input, { limitInputPixels: MAX_INPUT_PIXELS, failOn: 'error', sequentialRead: true })
      .rotate() // honour EXIF orientation, as a photo viewer would
      // Transparent pixels are shown over white, as a browser shows the image on a page (and as
      // cropResize composites RGBA frames): the hidden RGB under alpha 0 is never classified.
      .flatten({ background: { r: 255, g: 255, b: 255 } });
    if (reduceTo) pipeline = pipeline.resize({ ...reduceTo, fit: 'fill' });
    const { data, info } = await pipeline.toColourspace('srgb').raw().toBuffer({ resolveWithObject: true });
    const rgb = { width: info.width, height: info.height, data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength) };
    return reduceTo ? { ...rgb, original: upright } : rgb;
  } catch (e) {
    throw await decodeFailure(e, input, label);
  }
}

/**
 * Where the model input comes from in the original image: a centre crop of the target's aspect
 * ratio — scale = min(H/h, W/w), crop (round(h·scale) × round(w·scale)) at
 * (floor((H − ch)/2), floor((W − cw)/2)) — resized to h × w with half-pixel centres, so model
 * pixel i covers crop pixels [i·ch/h, (i+1)·ch/h).
 */
export interface CropGeometry {
  imageWidth: number;
  imageHeight: number;
  top: number;
  left: number;
  cropHeight: number;
  cropWidth: number;
  /** Original pixels per model-input pixel, per axis. */
  scaleY: number;
  scaleX: number;
}

export function cropGeometry(imageWidth: number, imageHeight: number, size: [number, number]): CropGeometry {
  const [h, w] = size;
  const c = centreCrop(imageWidth, imageHeight, w, h);
  return { imageWidth, imageHeight, top: c.top, left: c.left, cropHeight: c.height, cropWidth: c.width, scaleY: c.height / h, scaleX: c.width / w };
}

/**
 * Centre-crop packed RGB (3 bytes/pixel) or RGBA (4, alpha composited over white) bytes to the target aspect and
 * resize to [h, w]: [1,h,w,3] float pixels 0..255 — the one resize the window uses too
 * (contract/resample.ts), done on the bytes.
 */
export function cropResize(img: { width: number; height: number; data: Uint8Array }, size: [number, number], channels: 3 | 4 = 3): tf.Tensor4D {
  const [h, w] = size;
  const rgb = cropResizeBytes(img, channels, w, h, 3);
  return tf.tidy(() => tf.expandDims(tf.cast(tf.tensor3d(rgb, [h, w, 3], 'int32'), 'float32'), 0) as tf.Tensor4D);
}

/** Decode, centre-crop to the target aspect and resize (bilinear) to [h, w]: 0..255 pixels [1,h,w,3]. */
export async function loadImageForModel(input: string | Buffer, size: [number, number], label?: string): Promise<tf.Tensor4D> {
  return cropResize(await decodeImage(input, label, { reduceFor: size }), size);
}

/** Raw RGBA bytes (a camera frame or canvas) → [1,h,w,3] float pixels at the model's input size. */
export function rgbaToModelPixels(rgba: Uint8Array, width: number, height: number, size: [number, number]): tf.Tensor4D {
  if (rgba.length !== width * height * 4) throw new Error(`frame is ${rgba.length} bytes, expected ${width}×${height}×4`);
  return cropResize({ width, height, data: rgba }, size, 4);
}

/** Encode [h,w,3] 0..255 RGB bytes as PNG. */
export async function encodePng(rgb: Uint8Array, width: number, height: number): Promise<Buffer> {
  return sharp(Buffer.from(rgb.buffer, rgb.byteOffset, rgb.byteLength), { raw: { width, height, channels: 3 } }).png().toBuffer();
}
