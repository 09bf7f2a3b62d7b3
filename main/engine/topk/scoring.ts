// Scoring images for the top-k tables: for every unit (channel) of every displayed layer, the k
// images that excite it most, where an image's activation for a unit is the unit's maximum over its
// map (the arg-max position is kept, so the patch is the receptive field there).
//
// Memory is bounded and independent of the number of images: per layer a [units × k] table of
// activation (f32), mean over the map (f32, the tie-breaker: ReLU6 units often saturate at
// exactly 6 on many images), image id (i32) and position (i32, y·w + x), rows sorted descending.
// Per image: one forward pass with every displayed layer tapped, global max- and average-pools
// per tap (native NHWC reductions — no transposes), one download of all per-unit maxima and
// means; then, for the units that beat their current k-th best, the position of the maximum is
// found from the 4×4-block maxima and a native gather (no full-map downloads, no transposes),
// and a small JS merge updates the tables.
import * as tf from '@tensorflow/tfjs-core';

// ───────────────────────────── one layer's table ─────────────────────────────

export interface TopKEntry {
  activation: number;
  /** The unit's mean over the map: breaks ties between equal maxima (ReLU6 units saturate at 6). */
  mean: number;
  image: number;
  /** Position in the layer's map, y·w + x. */
  pos: number;
}

/**
 * [units × k] top-k table; each row sorted descending by (activation, mean) — the maximum over the
 * map, ties broken by the mean over the map —; empty slots have image −1.
 */
export class TopKTable {
  readonly act: Float32Array;
  readonly mean: Float32Array;
  readonly image: Int32Array;
  readonly pos: Int32Array;

  constructor(
    readonly units: number,
    readonly k: number,
    data?: { act: Float32Array; mean: Float32Array; image: Int32Array; pos: Int32Array },
  ) {
    const n = units * k;
    if (data && [data.act, data.mean, data.image, data.pos].some((a) => a.length !== n)) {
      throw new Error(`top-k table of ${units}×${k} has arrays of ${data.act.length}/${data.mean.length}/${data.image.length}/${data.pos.length} entries`);
    }
    this.act = data?.act ?? new Float32Array(n).fill(-Infinity);
    this.mean = data?.mean ?? new Float32Array(n).fill(-Infinity);
    this.image = data?.image ?? new Int32Array(n).fill(-1);
    this.pos = data?.pos ?? new Int32Array(n).fill(-1);
  }

  /** Fill `act` and `mean` with every unit's k-th best (−∞ while its row has room): what a newcomer must beat. */
  thresholds(act: Float32Array, mean: Float32Array): void {
    for (let u = 0; u < this.units; u++) {
      const last = u * this.k + this.k - 1;
      const empty = this.image[last]! < 0;
      act[u] = empty ? -Infinity : this.act[last]!;
      mean[u] = empty ? -Infinity : this.mean[last]!;
    }
  }

  /**
   * Insert (activation, mean, image, pos) into unit u's row if it beats the k-th best (by
   * activation, then mean; a full tie keeps the earlier image). Returns whether it did.
   */
  offer(u: number, activation: number, mean: number, image: number, pos: number): boolean {
    const base = u * this.k;
    const beats = (i: number) => this.image[i]! < 0 || activation > this.act[i]! || (activation === this.act[i]! && mean > this.mean[i]!);
    if (Number.isNaN(activation) || !beats(base + this.k - 1)) return false;
    let j = this.k - 1;
    while (j > 0 && beats(base + j - 1)) {
      this.act[base + j] = this.act[base + j - 1]!;
      this.mean[base + j] = this.mean[base + j - 1]!;
      this.image[base + j] = this.image[base + j - 1]!;
      this.pos[base + j] = this.pos[base + j - 1]!;
      j--;
    }
    this.act[base + j] = activation;
    this.mean[base + j] = mean;
    this.image[base + j] = image;
    this.pos[base + j] = pos;
    return true;
  }

  row(u: number): TopKEntry[] {
    const out: TopKEntry[] = [];
    for (let j = 0; j < this.k; j++) {
      const i = u * this.k + j;
      if (this.image[i]! < 0) break;
      out.push({ activation: this.act[i]!, mean: this.mean[i]!, image: this.image[i]!, pos: this.pos[i]! });
    }
    return out;
  }

  /** Drop every entry whose image satisfies `dead`, keeping each row sorted and packed. */
  remove(dead: (image: number) => boolean): number {
    let removed = 0;
    for (let u = 0; u < this.units; u++) {
      const base = u * this.k;
      let w = 0;
      for (let j = 0; j < this.k; j++) {
        const img = this.image[base + j]!;
        if (img < 0) continue;
        if (dead(img)) {
          removed++;
          continue;
        }
        this.act[base + w] = this.act[base + j]!;
        this.mean[base + w] = this.mean[base + j]!;
        this.image[base + w] = img;
        this.pos[base + w] = this.pos[base + j]!;
        w++;
      }
      for (; w < this.k; w++) {
        this.act[base + w] = -Infinity;
        this.mean[base + w] = -Infinity;
        this.image[base + w] = -1;
        this.pos[base + w] = -1;
      }
    }
    return removed;
  }
}

// ───────────────────────────── per-image maxima ─────────────────────────────

export interface LayerCandidates {
  /** Every unit's maximum over the map. */
  max: Float32Array;
  /** Every unit's mean over the map (the tie-breaker). */
  mean: Float32Array;
  /** Units that beat their k-th best (ascending). */
  units: Int32Array;
  /** Arg-max position (y·w + x) of each of `units`, same order (see unitCandidates for which maximum). */
  pos: Int32Array;
}

/** Thresholds of one layer: what (max, mean) a unit must beat, per unit. */
export interface LayerThresholds {
  act: Float32Array;
  mean: Float32Array;
}

/** Raise each unit's threshold in `t` to `floor` where the floor is higher (by max, then mean), in place. */
export function raiseThresholds(t: LayerThresholds, floor: LayerThresholds): void {
  for (let u = 0; u < t.act.length; u++) {
    const a = floor.act[u]!;
    if (a > t.act[u]! || (a === t.act[u] && floor.mean[u]! > t.mean[u]!)) {
      t.act[u] = a;
      t.mean[u] = floor.mean[u]!;
    }
  }
}

/** The units whose (max, mean) beat their thresholds (a tie on the max is broken by the mean), ascending. */
function beating(max: Float32Array, mean: Float32Array, t: LayerThresholds): Int32Array {
  const units: number[] = [];
  for (let u = 0; u < max.length; u++) if (max[u]! > t.act[u]! || (max[u] === t.act[u] && mean[u]! > t.mean[u]!)) units.push(u);
  return Int32Array.from(units);
}

/** Side of the blocks a [h, w] map is first reduced over: 4 or 2 when it divides the map and the
 *  map is large enough to be worth it, else 0 (the map is pooled globally and, when needed, downloaded). */
function blockSize(h: number, w: number): number {
  if (h % 4 === 0 && w % 4 === 0 && h * w >= 256) return 4;
  if (h % 2 === 0 && w % 2 === 0 && h * w >= 64) return 2;
  return 0;
}

/**
 * For each unit j of `units`, the first p (row-major) with d[p·c + units[j]] === want[j]: strided
 * scans for a few units, one sequential pass (stopping when all are found) for many. −1: none.
 */
function firstMatches(d: ArrayLike<number>, n: number, c: number, units: Int32Array, want: Float32Array): Int32Array {
  const out = new Int32Array(units.length).fill(-1);
  if (units.length * 4 < c) {
    units.forEach((u, j) => {
      const m = want[j]!;
      for (let p = 0, q = u; p < n; p++, q += c) {
        if (d[q] === m) {
          out[j] = p;
          break;
        }
      }
    });
    return out;
  }
  const target = new Float32Array(c).fill(NaN);
  const slot = new Int32Array(c).fill(-1);
  units.forEach((u, j) => {
    target[u] = want[j]!;
    slot[u] = j;
  });
  let left = units.length;
  for (let p = 0, q = 0; p < n && left > 0; p++) {
    for (let u = 0; u < c; u++, q++) {
      if (d[q] === target[u]) {
        out[slot[u]!] = p;
        target[u] = NaN;
        left--;
      }
    }
  }
  return out;
}

/**
 * unitCandidates for one map already in memory ([h, w, c] row-major, e.g. the live worker's tap as
 * it arrives on the host), on plain arrays: no tensors, no backend work on the calling thread. The
 * same maxima, units and positions (the first maximum in the same block order); the mean is summed
 * in double precision over the whole map rather than as a mean of block means, so it may differ
 * from unitCandidates' in the last float bit.
 */
export function mapCandidates(d: ArrayLike<number>, h: number, w: number, c: number, thresholds: LayerThresholds): LayerCandidates {
  if (d.length !== h * w * c) throw new Error(`map of ${d.length} values is not ${h}×${w}×${c}`);
  const n = h * w;
  const max = new Float32Array(c).fill(-Infinity);
  const sum = new Float64Array(c);
  for (let p = 0, q = 0; p < n; p++) {
    for (let u = 0; u < c; u++, q++) {
      const v = d[q]!;
      if (v > max[u]!) max[u] = v;
      sum[u] = sum[u]! + v;
    }
  }
  const mean = n === 1 ? max : Float32Array.from(sum, (v) => v / n);
  const units = beating(max, mean, thresholds);
  const pos = new Int32Array(units.length);
  if (n === 1) return { max, mean, units, pos };
  const b = blockSize(h, w);
  if (!b) return { max, mean, units, pos: firstMatches(d, n, c, units, Float32Array.from(units, (u) => max[u]!)) };
  units.forEach((u, j) => (pos[j] = firstInBlocks(d, w, c, b, u, max[u]!)));
  return { max, mean, units, pos };
}

/** The first position of unit u holding `m`, in unitCandidates' order for b×b blocks: block by block (row-major), row-major inside each. */
function firstInBlocks(d: ArrayLike<number>, w: number, c: number, b: number, u: number, m: number): number {
  const h = d.length / (w * c);
  for (let y0 = 0; y0 < h; y0 += b) {
    for (let x0 = 0; x0 < w; x0 += b) {
      for (let k = 0; k < b * b; k++) {
        const p = (y0 + Math.floor(k / b)) * w + x0 + (k % b);
        if (d[p * c + u] === m) return p;
      }
    }
  }
  return -1;
}

/**
 * Per-unit spatial maxima and means of several taps ([1,h,w,c] each), and the arg-max position of
 * the units that beat their thresholds, without tf.max/tf.mean/tf.argMax over space (each
 * transposes the whole map first: ~10× slower on wasm) and without downloading large maps:
 *  1. Large maps are max- and average-pooled natively over 4×4 (or 2×2) blocks (1/16 or 1/4 of
 *     the map); small maps globally (XNNPACK's pools are slow with huge windows). One download.
 *  2. JS: per unit the maximum and mean, and for large maps the first block holding the maximum.
 *  3. For the units that beat their thresholds: a native gather of their block's values (large
 *     maps), or the whole map (small maps), scanned for the first position holding the maximum.
 * The position is thus the first maximum in block order (blocks row-major, then row-major inside
 * the block): with ties inside a map (ReLU6 at 6) it may differ from tf.argMax's, but it always
 * holds the maximum. The taps are not disposed.
 */
export async function unitCandidates(taps: tf.Tensor4D[], thresholds: LayerThresholds[]): Promise<LayerCandidates[]> {
  const stats = tf.tidy(() => {
    const parts: tf.Tensor[] = [];
    for (const t of taps) {
      const [n, h, w, c] = t.shape;
      if (n !== 1) throw new Error(`unitCandidates expects one image per tap, got a batch of ${n}`);
      if (h * w === 1) parts.push(tf.reshape(t, [c]));
      else if (blockSize(h, w)) {
        const b = blockSize(h, w);
        parts.push(tf.reshape(tf.maxPool(t, b, b, 'valid'), [-1]), tf.reshape(tf.avgPool(t, b, b, 'valid'), [-1]));
      }
      else parts.push(tf.reshape(tf.maxPool(t, [h, w], [h, w], 'valid'), [c]), tf.reshape(tf.avgPool(t, [h, w], [h, w], 'valid'), [c]));
    }
    return tf.concat(parts);
  });
  const all = (await stats.data()) as Float32Array;
  stats.dispose();

  const out: LayerCandidates[] = [];
  const blockOf: (Int32Array | null)[] = [];
  let off = 0;
  for (let l = 0; l < taps.length; l++) {
    const [, h, w, c] = taps[l]!.shape;
    let max: Float32Array;
    let mean: Float32Array;
    let firstBlock: Int32Array | null = null;
    if (h * w === 1) {
      max = all.slice(off, off + c);
      mean = max;
      off += c;
    } else if (blockSize(h, w)) {
      // One pass over the block maxima and means: max, first block holding it, mean of means.
      const b = blockSize(h, w);
      const nb = (h / b) * (w / b);
      const bm = all.subarray(off, off + nb * c);
      const ba = all.subarray(off + nb * c, off + 2 * nb * c);
      off += 2 * nb * c;
      max = bm.slice(0, c);
      firstBlock = new Int32Array(c);
      const sum = new Float64Array(c);
      for (let p = 0, q = 0; p < nb; p++) {
        for (let u = 0; u < c; u++, q++) {
          const v = bm[q]!;
          if (v > max[u]!) {
            max[u] = v;
            firstBlock[u] = p;
          }
          sum[u] = sum[u]! + ba[q]!;
        }
      }
      mean = Float32Array.from(sum, (v) => v / nb);
    } else {
      max = all.slice(off, off + c);
      mean = all.slice(off + c, off + 2 * c);
      off += 2 * c;
    }
    blockOf.push(firstBlock);
    const units = beating(max, mean, thresholds[l]!);
    out.push({ max, mean, units, pos: new Int32Array(units.length) });
  }

  // Positions: gather the winning blocks of large maps; download small maps whole.
  const gathers: { l: number; idx: Int32Array }[] = [];
  const wholes: number[] = [];
  out.forEach((o, l) => {
    const [, h, w, c] = taps[l]!.shape;
    if (o.units.length === 0 || h * w === 1) return;
    const fb = blockOf[l];
    if (!fb) {
      wholes.push(l);
      return;
    }
    const b = blockSize(h, w);
    const bw = w / b;
    const idx = new Int32Array(o.units.length * b * b);
    o.units.forEach((u, j) => {
      const bp = fb[u]!;
      const y0 = Math.floor(bp / bw) * b;
      const x0 = (bp % bw) * b;
      for (let dy = 0, k = j * b * b; dy < b; dy++) for (let dx = 0; dx < b; dx++, k++) idx[k] = ((y0 + dy) * w + x0 + dx) * c + u;
    });
    gathers.push({ l, idx });
  });
  const gathered = gathers.length
    ? tf.tidy(() => tf.concat(gathers.map(({ l, idx }) => tf.gather(tf.reshape(taps[l]!, [-1]), tf.tensor1d(idx, 'int32')))))
    : null;
  const [vals, ...wholeData] = await Promise.all([
    gathered ? (gathered.data() as Promise<Float32Array>) : Promise.resolve(new Float32Array(0)),
    ...wholes.map((l) => taps[l]!.data() as Promise<Float32Array>),
  ]);
  gathered?.dispose();
  let at = 0;
  for (const { l } of gathers) {
    const o = out[l]!;
    const [, h, w] = taps[l]!.shape;
    const b = blockSize(h, w);
    const bw = w / b;
    const fb = blockOf[l]!;
    o.units.forEach((u, j) => {
      const m = o.max[u]!;
      const bp = fb[u]!;
      let pos = -1;
      for (let k = 0; k < b * b; k++) {
        if (vals![at + k] === m) {
          pos = (Math.floor(bp / bw) * b + Math.floor(k / b)) * w + (bp % bw) * b + (k % b);
          break;
        }
      }
      o.pos[j] = pos;
      at += b * b;
    });
  }
  wholes.forEach((l, i) => {
    const o = out[l]!;
    const [, h, w, c] = taps[l]!.shape;
    o.pos = firstMatches(wholeData[i]!, h * w, c, o.units, Float32Array.from(o.units, (u) => o.max[u]!));
  });
  return out;
}
