// Image decoding (sharp: JPEG, PNG, WebP…, any size up to a pixel limit) and the centre-crop +
// resize to a model's input, for files and for raw RGBA camera frames.
import sharp from 'sharp';
import * as tf from '@tensorflow/tfjs-core';

/** Refuse decoding bombs: 20000×20000 and the like (about 8 GB of RGBA) are rejected up front. */
export const MAX_INPUT_PIXELS = 100_000_000;

export interface RgbImage {
  width: number;
  height: number;
  /** Packed RGB, 3 bytes per pixel. */
  data: Uint8Array;
}

/** Decode an image file (or buffer) to RGB at its own size. Throws a one-line error naming the input. */
export async function decodeImage(input: string | Buffer, label = typeof input === 'string' ? input : 'image'): Promise<RgbImage> {
  try {
    const { data, info } = await sharp(input, { limitInputPixels: MAX_INPUT_PIXELS, failOn: 'error' })
      .rotate() // honour EXIF orientation, as a photo viewer would
      .removeAlpha()
      .toColourspace('srgb')
      .raw()
      .toBuffer({ resolveWithObject: true });
    return { width: info.width, height: info.height, data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength) };
  } catch (e) {
    const msg = (e as Error).message.split('\n')[0];
    throw new Error(`${label}: cannot read image (${msg})`);
  }
}

/** Decode, centre-crop to the target aspect and resize (bilinear) to [h, w]: 0..255 pixels [1,h,w,3]. */
export async function loadImageForModel(input: string | Buffer, size: [number, number], label?: string): Promise<tf.Tensor4D> {
  const img = await decodeImage(input, label);
  return tf.tidy(() => cropResize(tf.tensor3d(img.data, [img.height, img.width, 3], 'int32'), size));
}

/** Centre-crop an [H,W,3] image to the target aspect ratio and resize it: [1,h,w,3] float pixels. */
export function cropResize(img: tf.Tensor3D, size: [number, number]): tf.Tensor4D {
  return tf.tidy(() => {
    const [H, W] = img.shape;
    const [h, w] = size;
    const scale = Math.min(H / h, W / w);
    const ch = Math.max(1, Math.round(h * scale));
    const cw = Math.max(1, Math.round(w * scale));
    const top = Math.floor((H - ch) / 2);
    const left = Math.floor((W - cw) / 2);
    const crop = tf.slice(tf.cast(img, 'float32'), [top, left, 0], [ch, cw, 3]);
    const out = ch === h && cw === w ? crop : tf.image.resizeBilinear(crop as tf.Tensor3D, [h, w], false, true);
    return tf.expandDims(out, 0) as tf.Tensor4D;
  });
}

/** Raw RGBA bytes (a camera frame or canvas) → [1,h,w,3] float pixels at the model's input size. */
export function rgbaToModelPixels(rgba: Uint8Array, width: number, height: number, size: [number, number]): tf.Tensor4D {
  if (rgba.length !== width * height * 4) throw new Error(`frame is ${rgba.length} bytes, expected ${width}×${height}×4`);
  return tf.tidy(() => {
    const t = tf.tensor3d(rgba, [height, width, 4], 'int32');
    return cropResize(tf.slice(t, [0, 0, 0], [height, width, 3]) as tf.Tensor3D, size);
  });
}

/** Encode [h,w,3] 0..255 RGB bytes as PNG. */
export async function encodePng(rgb: Uint8Array, width: number, height: number): Promise<Buffer> {
  return sharp(Buffer.from(rgb.buffer, rgb.byteOffset, rgb.byteLength), { raw: { width, height, channels: 3 } }).png().toBuffer();
}
