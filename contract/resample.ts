// The one crop-and-resize from a decoded image to a model's input, used by the window (for image
// files, before sending) and by the engine (files in the CLI, the index, anything sent at another
// size), so the same file gives the same input pixels — and the same probabilities — everywhere.
// Centre crop to the target's aspect, then an area-average resize (each output pixel the exact
// area-weighted mean of the source pixels it covers; bilinear with half-pixel centres when
// enlarging), rounded to bytes. Area averaging matters: a plain bilinear from a 1600 px photo to
// 224 samples 4 of every ~50 source pixels and aliases, and a browser's canvas scaler filters
// differently again — the two disagreed by ten points of probability on one photo.

export interface CropBox {
  left: number;
  top: number;
  width: number;
  height: number;
}

/** The centred crop of (srcW × srcH) with the aspect of (dstW × dstH). */
export function centreCrop(srcW: number, srcH: number, dstW: number, dstH: number): CropBox {
  const scale = Math.min(srcW / dstW, srcH / dstH);
  const width = Math.max(1, Math.round(dstW * scale));
  const height = Math.max(1, Math.round(dstH * scale));
  return { left: Math.floor((srcW - width) / 2), top: Math.floor((srcH - height) / 2), width, height };
}

/** Per output index: the source indices and weights (summing to 1) along one axis. */
function axisWeights(src: number, dst: number): { index: Int32Array; weight: Float32Array; start: Int32Array } {
  const idx: number[] = [];
  const wts: number[] = [];
  const start = new Int32Array(dst + 1);
  const scale = src / dst;
  for (let o = 0; o < dst; o++) {
    start[o] = idx.length;
    if (scale > 1) {
      const a = o * scale;
      const b = a + scale;
      for (let s = Math.floor(a); s < Math.min(src, Math.ceil(b)); s++) {
        const w = Math.min(b, s + 1) - Math.max(a, s);
        if (w > 1e-9) {
          idx.push(s);
          wts.push(w / scale);
        }
      }
    } else {
      const x = Math.min(src - 1, Math.max(0, (o + 0.5) * scale - 0.5));
      const x0 = Math.floor(x);
      const x1 = Math.min(src - 1, x0 + 1);
      const f = x - x0;
      idx.push(x0);
      wts.push(1 - f);
      if (x1 !== x0) {
        idx.push(x1);
        wts.push(f);
      }
    }
  }
  start[dst] = idx.length;
  return { index: Int32Array.from(idx), weight: Float32Array.from(wts), start };
}

/**
 * RGBA composited over white, as RGB — or null when every pixel is opaque. A transparent PNG's
 * hidden RGB under alpha 0 is arbitrary (often black, sometimes a stale picture): the model must
 * see the image as a browser shows it, on white.
 */
export function flattenAlpha(data: Uint8Array | Uint8ClampedArray): Uint8Array | null {
  let i = 3;
  for (; i < data.length; i += 4) if (data[i] !== 255) break;
  if (i >= data.length) return null;
  const out = new Uint8Array((data.length / 4) * 3);
  for (let p = 0, o = 0; p < data.length; p += 4) {
    const a = data[p + 3]!;
    const white = 255 * (255 - a);
    out[o++] = Math.round((data[p]! * a + white) / 255);
    out[o++] = Math.round((data[p + 1]! * a + white) / 255);
    out[o++] = Math.round((data[p + 2]! * a + white) / 255);
  }
  return out;
}

/**
 * Centre-crop `src` (packed, `channels` bytes per pixel; a 4th channel is alpha, composited over
 * white) and resize it to dstW × dstH. Returns packed bytes with `outChannels` per pixel (4: alpha 255).
 */
export function cropResizeBytes(
  src: { width: number; height: number; data: Uint8Array | Uint8ClampedArray },
  channels: 3 | 4,
  dstW: number,
  dstH: number,
  outChannels: 3 | 4 = 3,
): Uint8Array<ArrayBuffer> {
  if (src.data.length !== src.width * src.height * channels) {
    throw new Error(`image is ${src.data.length} bytes, expected ${src.width}×${src.height}×${channels}`);
  }
  if (channels === 4) {
    const flat = flattenAlpha(src.data);
    if (flat) return cropResizeBytes({ width: src.width, height: src.height, data: flat }, 3, dstW, dstH, outChannels);
  }
  const c = centreCrop(src.width, src.height, dstW, dstH);
  if (c.width === dstW && c.height === dstH && c.left === 0 && c.top === 0) return repack(src.data, channels, outChannels, dstW * dstH);
  const xs = axisWeights(c.width, dstW);
  const ys = axisWeights(c.height, dstH);
  // Horizontal pass over the rows the crop uses: [c.height][dstW][3] floats.
  const tmp = new Float32Array(c.height * dstW * 3);
  for (let y = 0; y < c.height; y++) {
    const row = (c.top + y) * src.width;
    for (let o = 0; o < dstW; o++) {
      let r = 0;
      let g = 0;
      let b = 0;
      for (let k = xs.start[o]!; k < xs.start[o + 1]!; k++) {
        const p = (row + c.left + xs.index[k]!) * channels;
        const w = xs.weight[k]!;
        r += src.data[p]! * w;
        g += src.data[p + 1]! * w;
        b += src.data[p + 2]! * w;
      }
      const t = (y * dstW + o) * 3;
      tmp[t] = r;
      tmp[t + 1] = g;
      tmp[t + 2] = b;
    }
  }
  const out = new Uint8Array(dstW * dstH * outChannels);
  for (let o = 0; o < dstH; o++) {
    for (let x = 0; x < dstW; x++) {
      let r = 0;
      let g = 0;
      let b = 0;
      for (let k = ys.start[o]!; k < ys.start[o + 1]!; k++) {
        const t = (ys.index[k]! * dstW + x) * 3;
        const w = ys.weight[k]!;
        r += tmp[t]! * w;
        g += tmp[t + 1]! * w;
        b += tmp[t + 2]! * w;
      }
      const q = (o * dstW + x) * outChannels;
      out[q] = Math.min(255, Math.max(0, Math.round(r)));
      out[q + 1] = Math.min(255, Math.max(0, Math.round(g)));
      out[q + 2] = Math.min(255, Math.max(0, Math.round(b)));
      if (outChannels === 4) out[q + 3] = 255;
    }
  }
  return out;
}

function repack(data: Uint8Array | Uint8ClampedArray, from: 3 | 4, to: 3 | 4, n: number): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(n * to);
  if (from === 3 && to === 3) {
    out.set(data);
    return out;
  }
  for (let i = 0; i < n; i++) {
    out[i * to] = data[i * from]!;
    out[i * to + 1] = data[i * from + 1]!;
    out[i * to + 2] = data[i * from + 2]!;
    if (to === 4) out[i * to + 3] = 255;
  }
  return out;
}
