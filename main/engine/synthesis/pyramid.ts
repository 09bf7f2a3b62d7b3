// The fast presets' image: a Laplacian-pyramid-like sum of bilinearly upsampled images at 1/16 …
// 1/1 scale, in a decorrelated colour space (Lucid's ImageNet colour correlation). A step on the
// levels moves coarse structure and natural colours first.
//
// Held as plain Float32Arrays, with the forward map and its adjoint written as fused loops: as
// tfjs ops on the single-threaded wasm backend, rendering, the adjoint and Adam around a 4×224 px
// batch cost about 100 ms a step, more than a small network's whole input gradient.
import * as tf from '@tensorflow/tfjs-core';
import { COLOR, COLOR_INV } from './parameterization.js';

/** Pixels per unit of decorrelated colour: unit variance ≈ natural colour variation about grey. */
const PIXELS_PER_UNIT = 127.5;

/**
 * One axis of a bilinear resize from `from` to `to` samples, as tfjs' ResizeBilinear computes it
 * with alignCorners and halfPixelCenters both off (the image the tfjs form of this pyramid made):
 * output i reads inputs lo[i] and hi[i] with weight 1 − f[i] and f[i].
 */
interface Axis {
  lo: Int32Array;
  hi: Int32Array;
  f: Float32Array;
}

function axis(from: number, to: number): Axis {
  const lo = new Int32Array(to);
  const hi = new Int32Array(to);
  const f = new Float32Array(to);
  const ratio = from / to;
  for (let i = 0; i < to; i++) {
    const src = ratio * i;
    lo[i] = Math.max(0, Math.floor(src));
    hi[i] = Math.min(from - 1, Math.ceil(src));
    f[i] = src - lo[i]!;
  }
  return { lo, hi, f };
}

interface Level {
  h: number;
  w: number;
  /** The level's weight in the sum. */
  weight: number;
  /** Upsampling to the image (null: the level is full size). */
  rows: Axis | null;
  cols: Axis | null;
}

export class Pyramid {
  /** The variables, coarsest first, each [n, h_l, w_l, 3] (NHWC, decorrelated colour). */
  readonly levels: Float32Array[];
  readonly shapes: [number, number][];
  private readonly geo: Level[];
  /** Scratch: one image's level upsampled along x ([h_l, w, 3]), per coarse level. */
  private readonly wide: Float32Array[];
  private readonly row: Float32Array;

  /**
   * `seeds[i]` alone draws image i's start (level l from N(0, initStd²) seeded seed·31 + l), so a
   * seed starts the same wherever it runs and whichever seeds share its batch.
   */
  constructor(
    readonly n: number,
    readonly h: number,
    readonly w: number,
    seeds: readonly number[],
    levels = 5,
    initStd = 0.01,
  ) {
    if (seeds.length !== n) throw new Error(`${seeds.length} seeds for a batch of ${n}`);
    this.shapes = [];
    for (let l = levels - 1; l >= 0; l--) this.shapes.push([Math.max(1, Math.ceil(h / 2 ** l)), Math.max(1, Math.ceil(w / 2 ** l))]);
    // Level i (0 = coarsest) weighs falloff^(levels-1-i): like a 1/f spectrum, so that Adam's
    // equal-sized steps on every variable still move coarse structure more than fine detail.
    const falloff = 0.5;
    this.geo = this.shapes.map(([ph, pw], i) => {
      const full = ph === h && pw === w;
      return { h: ph, w: pw, weight: falloff ** i, rows: full ? null : axis(ph, h), cols: full ? null : axis(pw, w) };
    });
    this.levels = this.shapes.map(([ph, pw], i) => {
      const data = new Float32Array(n * ph * pw * 3);
      seeds.forEach((sd, b) => {
        const t = tf.randomNormal([1, ph, pw, 3], 0, initStd, 'float32', sd * 31 + i);
        data.set(t.dataSync(), b * ph * pw * 3);
        t.dispose();
      });
      return data;
    });
    this.wide = this.geo.map((g) => new Float32Array(g.rows ? g.h * w * 3 : 0));
    this.row = new Float32Array(w * 3);
  }

  /** Image i's level l upsampled along x into this.wide[l]. */
  private widen(l: number, b: number): void {
    const g = this.geo[l]!;
    const { lo, hi, f } = g.cols!;
    const src = this.levels[l]!;
    const out = this.wide[l]!;
    const w = this.w;
    for (let r = 0; r < g.h; r++) {
      const base = (b * g.h + r) * g.w * 3;
      const o = r * w * 3;
      for (let x = 0; x < w; x++) {
        const a = base + lo[x]! * 3;
        const c = base + hi[x]! * 3;
        const fx = f[x]!;
        const ex = 1 - fx;
        const k = o + x * 3;
        out[k] = src[a]! * ex + src[c]! * fx;
        out[k + 1] = src[a + 1]! * ex + src[c + 1]! * fx;
        out[k + 2] = src[a + 2]! * ex + src[c + 2]! * fx;
      }
    }
  }

  /** The current image, centred pixels [n, h, w, 3] (0 = grey), into `out` (allocated when absent). */
  render(out: Float32Array = new Float32Array(this.n * this.h * this.w * 3)): Float32Array {
    const { n, h, w, geo, row } = this;
    const w3 = w * 3;
    const m = COLOR.map((r) => r.map((v) => v * PIXELS_PER_UNIT));
    const [m00, m01, m02] = m[0]!;
    const [m10, m11, m12] = m[1]!;
    const [m20, m21, m22] = m[2]!;
    for (let b = 0; b < n; b++) {
      for (let l = 0; l < geo.length; l++) if (geo[l]!.rows) this.widen(l, b);
      for (let y = 0; y < h; y++) {
        row.fill(0);
        for (let l = 0; l < geo.length; l++) {
          const g = geo[l]!;
          const src = this.levels[l]!;
          if (!g.rows) {
            const base = (b * h + y) * w3;
            for (let k = 0; k < w3; k++) row[k]! += g.weight * src[base + k]!;
            continue;
          }
          const fy = g.rows.f[y]!;
          const a0 = g.weight * (1 - fy);
          const a1 = g.weight * fy;
          const t = this.wide[l]!;
          const r0 = g.rows.lo[y]! * w3;
          const r1 = g.rows.hi[y]! * w3;
          for (let k = 0; k < w3; k++) row[k]! += a0 * t[r0 + k]! + a1 * t[r1 + k]!;
        }
        // rgb = M · decor (COLOR's columns are the decorrelated components).
        const o = (b * h + y) * w3;
        for (let k = 0; k < w3; k += 3) {
          const d0 = row[k]!;
          const d1 = row[k + 1]!;
          const d2 = row[k + 2]!;
          out[o + k] = m00! * d0 + m01! * d1 + m02! * d2;
          out[o + k + 1] = m10! * d0 + m11! * d1 + m12! * d2;
          out[o + k + 2] = m20! * d0 + m21! * d1 + m22! * d2;
        }
      }
    }
    return out;
  }

  /**
   * The adjoint of render: a gradient with respect to the image's centred pixels → with respect to
   * each level (the exact transpose of the linear map render computes), into `out` when given.
   */
  adjoint(g: Float32Array, out: Float32Array[] = this.levels.map((v) => new Float32Array(v.length))): Float32Array[] {
    const { n, h, w, geo, row } = this;
    const w3 = w * 3;
    const m = COLOR.map((r) => r.map((v) => v * PIXELS_PER_UNIT));
    const [m00, m01, m02] = m[0]!;
    const [m10, m11, m12] = m[1]!;
    const [m20, m21, m22] = m[2]!;
    for (const o of out) o.fill(0);
    for (let b = 0; b < n; b++) {
      for (const t of this.wide) t.fill(0);
      for (let y = 0; y < h; y++) {
        // decor gradient = Mᵀ · rgb gradient.
        const o = (b * h + y) * w3;
        for (let k = 0; k < w3; k += 3) {
          const g0 = g[o + k]!;
          const g1 = g[o + k + 1]!;
          const g2 = g[o + k + 2]!;
          row[k] = m00! * g0 + m10! * g1 + m20! * g2;
          row[k + 1] = m01! * g0 + m11! * g1 + m21! * g2;
          row[k + 2] = m02! * g0 + m12! * g1 + m22! * g2;
        }
        for (let l = 0; l < geo.length; l++) {
          const gl = geo[l]!;
          if (!gl.rows) {
            const dst = out[l]!;
            for (let k = 0; k < w3; k++) dst[o + k] = gl.weight * row[k]!;
            continue;
          }
          const fy = gl.rows.f[y]!;
          const a0 = gl.weight * (1 - fy);
          const a1 = gl.weight * fy;
          const t = this.wide[l]!;
          const r0 = gl.rows.lo[y]! * w3;
          const r1 = gl.rows.hi[y]! * w3;
          for (let k = 0; k < w3; k++) {
            const v = row[k]!;
            t[r0 + k]! += a0 * v;
            t[r1 + k]! += a1 * v;
          }
        }
      }
      // Then along x, the transpose of widen.
      for (let l = 0; l < geo.length; l++) {
        const gl = geo[l]!;
        if (!gl.cols) continue;
        const { lo, hi, f } = gl.cols;
        const t = this.wide[l]!;
        const dst = out[l]!;
        for (let r = 0; r < gl.h; r++) {
          const base = (b * gl.h + r) * gl.w * 3;
          const o = r * w3;
          for (let x = 0; x < w; x++) {
            const a = base + lo[x]! * 3;
            const c = base + hi[x]! * 3;
            const fx = f[x]!;
            const ex = 1 - fx;
            const k = o + x * 3;
            dst[a]! += ex * t[k]!;
            dst[a + 1]! += ex * t[k + 1]!;
            dst[a + 2]! += ex * t[k + 2]!;
            dst[c]! += fx * t[k]!;
            dst[c + 1]! += fx * t[k + 1]!;
            dst[c + 2]! += fx * t[k + 2]!;
          }
        }
      }
    }
    return out;
  }

  /**
   * Move the variables so that render() gives `img` (after the pixel-space regularisers): the
   * finest level is full size and takes up the whole difference, exactly.
   */
  setImage(img: Float32Array): void {
    const now = this.render();
    const l = this.geo.length - 1;
    const g = this.geo[l]!;
    if (g.rows) throw new Error('the finest pyramid level must be full size');
    const finest = this.levels[l]!;
    const s = 1 / (g.weight * PIXELS_PER_UNIT);
    const [i00, i01, i02] = COLOR_INV[0]!;
    const [i10, i11, i12] = COLOR_INV[1]!;
    const [i20, i21, i22] = COLOR_INV[2]!;
    for (let k = 0; k < img.length; k += 3) {
      const d0 = img[k]! - now[k]!;
      const d1 = img[k + 1]! - now[k + 1]!;
      const d2 = img[k + 2]! - now[k + 2]!;
      finest[k]! += s * (i00! * d0 + i01! * d1 + i02! * d2);
      finest[k + 1]! += s * (i10! * d0 + i11! * d1 + i12! * d2);
      finest[k + 2]! += s * (i20! * d0 + i21! * d1 + i22! * d2);
    }
  }
}
