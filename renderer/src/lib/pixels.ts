// Every pixel conversion the window makes, in one place: the engine sends packed RGB (back-projection,
// synthesized images, patches) and 8-bit heat (Grad-CAM); canvases take RGBA. Drawing helpers size
// the canvas to the image so CSS does the scaling (nearest neighbour where the pane asks for it).

/** An image as the engine sends it: packed RGB, row-major. */
export interface RgbImage {
  width: number;
  height: number;
  rgb: Uint8Array;
}

/** Packed RGB → RGBA (opaque) into `out` (width·height·4). */
export function rgbToRgba(rgb: Uint8Array, out: Uint8ClampedArray): void {
  for (let i = 0, j = 0; i < rgb.length; i += 3, j += 4) {
    out[j] = rgb[i]!;
    out[j + 1] = rgb[i + 1]!;
    out[j + 2] = rgb[i + 2]!;
    out[j + 3] = 255;
  }
}

/** Packed RGB as a new ImageData. */
export function rgbToImageData(rgb: Uint8Array, width: number, height: number): ImageData {
  const out = new ImageData(width, height);
  rgbToRgba(rgb.subarray(0, width * height * 3), out.data);
  return out;
}

/** RGBA bytes as ImageData without a copy (the frame the engine was sent). */
export function rgbaToImageData(rgba: Uint8Array, width: number, height: number): ImageData {
  return new ImageData(new Uint8ClampedArray(rgba.buffer as ArrayBuffer, rgba.byteOffset, rgba.byteLength), width, height);
}

/** The jet colormap as a 256-entry RGB table (the engine's jet: 1.5 − |4t − centre|, clipped). */
export const JET: Uint8Array = (() => {
  const lut = new Uint8Array(256 * 3);
  for (let v = 0; v < 256; v++) {
    const t = v / 255;
    [3, 2, 1].forEach((c, k) => (lut[v * 3 + k] = Math.round(255 * Math.min(1, Math.max(0, 1.5 - Math.abs(4 * t - c))))));
  }
  return lut;
})();

/** Grad-CAM heat (0..255) → jet RGBA with alpha = opacity (0…1), for a canvas laid over the input. */
export function heatToRgba(heat: Uint8Array, opacity: number, out: Uint8ClampedArray): void {
  const a = Math.round(255 * Math.min(1, Math.max(0, opacity)));
  for (let i = 0, j = 0; i < heat.length; i++, j += 4) {
    const v = heat[i]! * 3;
    out[j] = JET[v]!;
    out[j + 1] = JET[v + 1]!;
    out[j + 2] = JET[v + 2]!;
    out[j + 3] = a;
  }
}

/** Draw packed RGB into a canvas, which takes the image's size. */
export function drawRgb(canvas: HTMLCanvasElement, im: RgbImage): void {
  if (canvas.width !== im.width || canvas.height !== im.height) {
    canvas.width = im.width;
    canvas.height = im.height;
  }
  canvas.getContext('2d')?.putImageData(rgbToImageData(im.rgb, im.width, im.height), 0, 0);
}

/** Svelte action: a canvas that shows packed RGB at its own size and follows updates. */
export function rgbCanvas(canvas: HTMLCanvasElement, im: RgbImage | null | undefined) {
  const draw = (next: RgbImage | null | undefined) => {
    if (next) drawRgb(canvas, next);
  };
  draw(im);
  return { update: draw };
}

/** A packed RGB image as a PNG-ready canvas (exports). */
export function rgbCanvasElement(im: RgbImage): HTMLCanvasElement {
  const c = document.createElement('canvas');
  drawRgb(c, im);
  return c;
}
