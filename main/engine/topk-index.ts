// Top-k image patches per unit: for every unit (channel) of every displayed layer, the k images
// that excite it most, where an image's activation for a unit is the unit's maximum over its map
// (the arg-max position is kept, so the patch is the receptive field there).
//
// Memory is bounded and independent of the number of images: per layer a [units × k] table of
// activation (f32), mean over the map (f32, the tie-breaker: ReLU6 units often saturate at
// exactly 6 on many images), image id (i32) and position (i32, y·w + x), rows sorted descending.
// Per image: one forward pass with every displayed layer tapped, global max- and average-pools
// per tap (native NHWC reductions — no transposes), one download of all per-unit maxima and
// means; then, for the units that beat their current k-th best, the position of the maximum is
// found from the 4×4-block maxima and a native gather (no full-map downloads, no transposes),
// and a small JS merge updates the tables.
//
// On disk: one JSON file per model (<dir>/<modelId>.topk.json), written atomically (temp file,
// fsync, rename), holding the model id + checksum, k, each layer's receptive field (so readers need
// neither the model nor a backend), the tables as base64 little-endian typed arrays, the scanned
// files (path, size, mtime, pixel size) and the unreadable ones. Its size does not grow with the
// images scanned except for the file list (~150 bytes per image).
import { existsSync } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { z } from 'zod';
import { removeStaleTemps, writeFileAtomic } from './atomic-file.js';
import { acquireLock } from './lock-file.js';
import { oneLine } from './errors.js';
import { cropGeometry, cropResize, decodeImage, type RgbImage } from './images.js';
import type { Model } from './model.js';
import { boxToOriginal, receptiveFields, regionOf, type Box, type LayerField } from './receptive-field.js';

export const TOPK_FORMAT = 'deepvis-topk';
export const TOPK_VERSION = 1;
export const DEFAULT_TOPK = 9;

/** Where indexes live by default: $DEEPVIS_CACHE_DIR/index, else $XDG_CACHE_HOME/deepvis/index, else ~/.cache/deepvis/index. */
export function defaultIndexDir(): string {
  if (process.env.DEEPVIS_CACHE_DIR) return resolve(process.env.DEEPVIS_CACHE_DIR, 'index');
  if (process.env.XDG_CACHE_HOME) return resolve(process.env.XDG_CACHE_HOME, 'deepvis', 'index');
  return join(homedir(), '.cache', 'deepvis', 'index');
}

export function indexPath(dir: string, modelId: string): string {
  return join(dir, `${modelId}.topk.json`);
}

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
    const ta = thresholds[l]!.act;
    const tm = thresholds[l]!.mean;
    const units: number[] = [];
    for (let u = 0; u < c; u++) if (max[u]! > ta[u]! || (max[u] === ta[u] && mean[u]! > tm[u]!)) units.push(u);
    out.push({ max, mean, units: Int32Array.from(units), pos: new Int32Array(units.length) });
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

// ───────────────────────────── the index ─────────────────────────────

export interface ScannedFile {
  /** Absolute path. */
  path: string;
  size: number;
  mtimeMs: number;
  /** The image's own pixel size (after EXIF rotation), to map boxes back to it. */
  width: number;
  height: number;
}

export interface UnreadableFile {
  path: string;
  size: number;
  mtimeMs: number;
  error: string;
}

export interface IndexedLayer {
  name: string;
  display: string;
  /** [h, w, units] at the model's input size. */
  shape: [number, number, number];
  field: LayerField;
  table: TopKTable;
}

export interface TopKHit {
  rank: number;
  image: string;
  imageWidth: number;
  imageHeight: number;
  activation: number;
  /** The unit's mean over the map for this image (the tie-breaker). */
  mean: number;
  /** Arg-max position in the layer's map. */
  y: number;
  x: number;
  /** Receptive field in the original image's pixels, clipped to the image. */
  box: Box;
  /** Receptive field in model-input pixels, unclipped (for patches padded where they cross the border). */
  inputBox: Box;
  /** The same, clipped to the model input. */
  inputBoxClipped: Box;
}

const B64 = z.string().regex(/^[A-Za-z0-9+/]*={0,2}$/);
const FieldSchema = z.object({
  layer: z.string(),
  mapSize: z.tuple([z.number().int(), z.number().int()]),
  inputSize: z.tuple([z.number().int(), z.number().int()]),
  global: z.boolean(),
  y: z.object({ offset: z.number(), size: z.number(), stride: z.number(), parts: z.array(z.object({ offset: z.number(), size: z.number(), stride: z.number() })).min(1) }),
  x: z.object({ offset: z.number(), size: z.number(), stride: z.number(), parts: z.array(z.object({ offset: z.number(), size: z.number(), stride: z.number() })).min(1) }),
});
const FileSchema = z.object({ path: z.string(), size: z.number(), mtimeMs: z.number(), width: z.number().int(), height: z.number().int() });
const IndexSchema = z.object({
  format: z.literal(TOPK_FORMAT),
  version: z.literal(TOPK_VERSION),
  model: z.object({ id: z.string(), checksum: z.string(), inputSize: z.tuple([z.number().int(), z.number().int()]) }),
  k: z.number().int().positive(),
  created: z.string(),
  updated: z.string(),
  endianness: z.literal('LE'),
  layers: z.array(
    z.object({
      name: z.string(),
      display: z.string(),
      shape: z.tuple([z.number().int(), z.number().int(), z.number().int()]),
      field: FieldSchema,
      act: B64,
      mean: B64,
      image: B64,
      pos: B64,
    }),
  ),
  files: z.array(FileSchema.nullable()),
  unreadable: z.array(z.object({ path: z.string(), size: z.number(), mtimeMs: z.number(), error: z.string() })),
});
type IndexJson = z.infer<typeof IndexSchema>;

function toB64(a: Float32Array | Int32Array): string {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).toString('base64');
}

function fromB64<T extends Float32Array | Int32Array>(s: string, n: number, Make: { new (b: ArrayBuffer): T }, what: string): T {
  const buf = Buffer.from(s, 'base64');
  if (buf.byteLength !== n * 4) throw new Error(`${what}: ${buf.byteLength} bytes, expected ${n * 4}`);
  const ab = buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength) as ArrayBuffer;
  return new Make(ab);
}

/**
 * Take the writer's lock of an index (lock-file.ts: atomic, owner token, stale takeover). Returns
 * the release function, which removes the lock only while it is ours; throws LockHeld when a live
 * process holds it. Read the index only after this returns: another writer may have just saved it.
 */
export async function lockIndex(path: string): Promise<() => Promise<void>> {
  const lock = await acquireLock(path);
  return async () => {
    await lock.release();
  };
}

/** A top-k index read from disk: queries need neither the model nor a backend. */
export class TopKIndex {
  constructor(
    readonly modelId: string,
    readonly checksum: string,
    readonly inputSize: [number, number],
    readonly k: number,
    readonly layers: IndexedLayer[],
    /** Image id → file (null: forgotten because it changed or disappeared). */
    readonly files: (ScannedFile | null)[] = [],
    readonly unreadable: UnreadableFile[] = [],
    readonly created = new Date().toISOString(),
  ) {}

  /** Number of images whose activations are in the tables. */
  get imageCount(): number {
    return this.files.reduce((n, f) => n + (f ? 1 : 0), 0);
  }

  layer(nameOrDisplay: string): IndexedLayer {
    const l = this.layers.find((x) => x.name === nameOrDisplay) ?? this.layers.find((x) => x.display === nameOrDisplay);
    if (!l) throw new Error(`the ${this.modelId} index has no layer "${nameOrDisplay}" (layers: ${this.layers.map((x) => x.display).join(', ')})`);
    return l;
  }

  /** The unit's top-k images, best first, with its receptive field in original and model-input pixels. */
  top(layer: string, unit: number, k = this.k): TopKHit[] {
    const l = this.layer(layer);
    const units = l.shape[2];
    if (!Number.isInteger(unit) || unit < 0 || unit >= units) throw new Error(`unit ${unit} is out of range (0…${units - 1}) for layer ${l.display}`);
    const w = l.shape[1];
    return l.table
      .row(unit)
      .slice(0, k)
      .map((e, rank) => {
        const f = this.files[e.image];
        if (!f) throw new Error(`index is inconsistent: entry refers to forgotten image ${e.image}`);
        const y = Math.floor(e.pos / w);
        const x = e.pos % w;
        const region = regionOf(l.field, y, x);
        const g = cropGeometry(f.width, f.height, this.inputSize);
        return {
          rank,
          image: f.path,
          imageWidth: f.width,
          imageHeight: f.height,
          activation: e.activation,
          mean: e.mean,
          y,
          x,
          box: boxToOriginal(region.unclipped, g),
          inputBox: region.unclipped,
          inputBoxClipped: region.clipped,
        };
      });
  }

  toJSON(): IndexJson {
    return {
      format: TOPK_FORMAT,
      version: TOPK_VERSION,
      model: { id: this.modelId, checksum: this.checksum, inputSize: this.inputSize },
      k: this.k,
      created: this.created,
      updated: new Date().toISOString(),
      endianness: 'LE',
      layers: this.layers.map((l) => ({
        name: l.name,
        display: l.display,
        shape: l.shape,
        field: l.field,
        act: toB64(l.table.act),
        mean: toB64(l.table.mean),
        image: toB64(l.table.image),
        pos: toB64(l.table.pos),
      })),
      files: this.files,
      unreadable: this.unreadable,
    };
  }

  /** Save atomically (temp + fsync + rename); stale temp files of dead writers are removed. */
  async save(path: string): Promise<void> {
    await writeFileAtomic(path, JSON.stringify(this.toJSON()));
  }

  static parse(text: string, where = 'index'): TopKIndex {
    let raw: unknown;
    try {
      raw = JSON.parse(text);
    } catch (e) {
      throw new Error(`${where}: not JSON (${(e as Error).message})`);
    }
    const r = IndexSchema.safeParse(raw);
    if (!r.success) {
      const issue = r.error.issues[0]!;
      throw new Error(`${where}: not a DeepVis top-k index (${issue.path.join('.') || '(root)'}: ${issue.message})`);
    }
    const j = r.data;
    const layers = j.layers.map((l) => {
      const n = l.shape[2] * j.k;
      return {
        name: l.name,
        display: l.display,
        shape: l.shape,
        field: l.field as LayerField,
        table: new TopKTable(l.shape[2], j.k, {
          act: fromB64(l.act, n, Float32Array, `${where}: ${l.name}.act`),
          mean: fromB64(l.mean, n, Float32Array, `${where}: ${l.name}.mean`),
          image: fromB64(l.image, n, Int32Array, `${where}: ${l.name}.image`),
          pos: fromB64(l.pos, n, Int32Array, `${where}: ${l.name}.pos`),
        }),
      };
    });
    for (const l of layers) {
      for (const img of l.table.image) {
        if (img >= 0 && !j.files[img]) throw new Error(`${where}: layer ${l.name} refers to image ${img}, which is not in the file list`);
      }
    }
    return new TopKIndex(j.model.id, j.model.checksum, j.model.inputSize, j.k, layers, j.files, j.unreadable, j.created);
  }

  static async read(path: string): Promise<TopKIndex> {
    return TopKIndex.parse(await readFile(path, 'utf8'), path);
  }
}

export interface FileStat {
  path: string;
  size: number;
  mtimeMs: number;
}

export type PreparedImage = { ok: true; file: ScannedFile; pixels: tf.Tensor4D } | { ok: false; file: UnreadableFile };

/** stat + decode + centre-crop/resize to the model input (exactly as loadImageForModel does). */
export async function prepareImage(path: string, size: [number, number], known?: FileStat): Promise<PreparedImage> {
  const abs = resolve(path);
  let st: FileStat;
  try {
    st = known ?? (await statFile(abs));
  } catch (e) {
    return { ok: false, file: { path: abs, size: 0, mtimeMs: 0, error: oneLine(e) } };
  }
  try {
    const img = await decodeImage(abs, abs, { reduceFor: size });
    const pixels = cropResize(img, size);
    // Boxes are kept in the original image's pixels, whatever size it was decoded at.
    const { width, height } = img.original ?? img;
    return { ok: true, pixels, file: { path: abs, size: st.size, mtimeMs: st.mtimeMs, width, height } };
  } catch (e) {
    return { ok: false, file: { path: abs, size: st.size, mtimeMs: st.mtimeMs, error: oneLine(e).replace(`${abs}: `, '') } };
  }
}

export async function statFile(path: string): Promise<FileStat> {
  const s = await stat(path);
  if (!s.isFile()) throw new Error(`${path}: not a file`);
  return { path: resolve(path), size: s.size, mtimeMs: Math.round(s.mtimeMs) };
}


export interface OpenResult {
  indexer: TopKIndexer;
  /** Why an existing index file was not used (a new, empty index was started instead), or null. */
  rebuilt: string | null;
}

/** The index being built for a loaded model. */
export class TopKIndexer extends TopKIndex {
  private readonly byPath = new Map<string, number>();
  private readonly unreadableByPath = new Map<string, UnreadableFile>();
  private readonly thresholdBuf: LayerThresholds[];
  /** Images added since the last save. */
  dirty = 0;

  private constructor(
    readonly model: Model,
    base: TopKIndex,
  ) {
    super(base.modelId, base.checksum, base.inputSize, base.k, base.layers, base.files, base.unreadable, base.created);
    this.files.forEach((f, i) => f && this.byPath.set(f.path, i));
    for (const u of this.unreadable) this.unreadableByPath.set(u.path, u);
    this.thresholdBuf = this.layers.map((l) => ({ act: new Float32Array(l.shape[2]), mean: new Float32Array(l.shape[2]) }));
  }

  /** A new, empty index for every displayed layer of the model. */
  static create(model: Model, k = DEFAULT_TOPK): TopKIndexer {
    if (!Number.isInteger(k) || k < 1 || k > 1000) throw new Error(`k must be an integer from 1 to 1000, got ${k}`);
    const rfs = receptiveFields(model);
    const layers = model.layers.map((l) => ({
      name: l.name,
      display: l.display,
      shape: [...l.shape] as [number, number, number],
      field: rfs.layer(l.name),
      table: new TopKTable(l.units, k),
    }));
    return new TopKIndexer(model, new TopKIndex(model.id, model.checksum, [...model.inputSize], k, layers));
  }

  /** Why a saved index cannot be extended for this model and k, or null when it can. */
  static incompatibility(idx: TopKIndex, model: Model, k: number): string | null {
    if (idx.modelId !== model.id) return `it is for model ${idx.modelId}`;
    if (idx.checksum !== model.checksum) return 'it was built from other weights of this model';
    if (idx.k !== k) return `it keeps the top ${idx.k}, not ${k}`;
    if (idx.inputSize[0] !== model.inputSize[0] || idx.inputSize[1] !== model.inputSize[1]) return 'the model input size changed';
    const want = model.layers.map((l) => `${l.name}:${l.shape.join('x')}`).join(',');
    const have = idx.layers.map((l) => `${l.name}:${l.shape.join('x')}`).join(',');
    if (want !== have) return "the model's displayed layers changed";
    return null;
  }

  /**
   * Open the model's index at `path` to extend it: loads it when it exists and fits (same model
   * checksum, k and layers); otherwise starts an empty one and says why. A file that cannot be
   * parsed is an error (never silently overwritten).
   */
  static async load(model: Model, path: string, k = DEFAULT_TOPK): Promise<OpenResult> {
    await removeStaleTemps(path);
    if (!existsSync(path)) return { indexer: TopKIndexer.create(model, k), rebuilt: null };
    const idx = await TopKIndex.read(path);
    const why = TopKIndexer.incompatibility(idx, model, k);
    if (why) return { indexer: TopKIndexer.create(model, k), rebuilt: `${path}: ${why}; starting a new index` };
    // Receptive fields are recomputed from the graph (the saved copy is for readers without a model).
    const rfs = receptiveFields(model);
    for (const l of idx.layers) l.field = rfs.layer(l.name);
    return { indexer: new TopKIndexer(model, idx), rebuilt: null };
  }

  /** Nothing to free: the tables are plain arrays (kept so callers can treat indexers as resources). */
  dispose(): void {}

  /** Whether this exact file (path + size + mtime) is already in the index (scanned or unreadable). */
  isKnown(f: FileStat): boolean {
    const p = resolve(f.path);
    const id = this.byPath.get(p);
    if (id !== undefined) {
      const s = this.files[id]!;
      return s.size === f.size && s.mtimeMs === f.mtimeMs;
    }
    const u = this.unreadableByPath.get(p);
    return !!u && u.size === f.size && u.mtimeMs === f.mtimeMs;
  }

  /** Previously recorded unreadable file for this path, if any. */
  unreadableEntry(path: string): UnreadableFile | undefined {
    return this.unreadableByPath.get(resolve(path));
  }

  /**
   * Forget files (changed or deleted): their entries leave every table. Their former rivals that
   * were pushed out cannot come back without rescanning, so the tables after forgetting are the
   * top-k of the remaining images only as far as those images were kept.
   */
  forget(paths: Iterable<string>): number {
    const dead = new Set<number>();
    for (const p of paths) {
      const abs = resolve(p);
      const id = this.byPath.get(abs);
      if (id !== undefined) {
        dead.add(id);
        this.files[id] = null;
        this.byPath.delete(abs);
      }
      if (this.unreadableByPath.delete(abs)) {
        const i = this.unreadable.findIndex((u) => u.path === abs);
        if (i >= 0) this.unreadable.splice(i, 1);
      }
    }
    if (dead.size === 0) return 0;
    let removed = 0;
    for (const l of this.layers) removed += l.table.remove((img) => dead.has(img));
    this.dirty++;
    return removed;
  }

  /** All scanned files (path → record), for resume decisions. */
  knownPaths(): string[] {
    return [...this.byPath.keys(), ...this.unreadableByPath.keys()];
  }

  private registerFile(file: ScannedFile): number {
    const old = this.byPath.get(file.path);
    if (old !== undefined) this.forget([file.path]);
    if (this.unreadableByPath.has(file.path)) this.forget([file.path]);
    const id = this.files.length;
    this.files.push(file);
    this.byPath.set(file.path, id);
    return id;
  }

  /** Record a file that could not be read (replacing an older record of the same path). */
  addUnreadable(file: UnreadableFile): void {
    const abs = resolve(file.path);
    if (this.byPath.has(abs) || this.unreadableByPath.has(abs)) this.forget([abs]);
    const rec = { ...file, path: abs };
    this.unreadable.push(rec);
    this.unreadableByPath.set(abs, rec);
    this.dirty++;
  }

  /**
   * Add one image given as model-input pixels ([1,h,w,3], 0..255; not disposed). Returns the number
   * of (unit, slot) entries it took.
   */
  async addPixels(pixels: tf.Tensor4D, file: ScannedFile): Promise<number> {
    const names = this.layers.map((l) => l.name);
    const taps = tf.tidy(() => {
      const r = this.model.forward(this.model.preprocess(pixels), { taps: names, logits: false });
      return names.map((n) => r.taps[n]!);
    });
    let cands: LayerCandidates[];
    try {
      this.layers.forEach((l, i) => l.table.thresholds(this.thresholdBuf[i]!.act, this.thresholdBuf[i]!.mean));
      cands = await unitCandidates(taps, this.thresholdBuf);
    } finally {
      tf.dispose(taps);
    }
    const id = this.registerFile({ ...file, path: resolve(file.path) });
    let taken = 0;
    this.layers.forEach((l, i) => {
      const c = cands[i]!;
      for (let j = 0; j < c.units.length; j++) {
        const u = c.units[j]!;
        if (c.pos[j]! < 0) continue; // cannot happen: the pool's max is one of the map's values
        if (l.table.offer(u, c.max[u]!, c.mean[u]!, id, c.pos[j]!)) taken++;
      }
    });
    this.dirty++;
    return taken;
  }

  /** Read an image file and add it; an unreadable file is recorded as such. */
  async addImage(path: string, known?: FileStat): Promise<boolean> {
    const p = await prepareImage(path, this.inputSize, known);
    return this.addPrepared(p);
  }

  /** Add an image prepared by prepareImage (disposes its pixels). */
  async addPrepared(p: PreparedImage): Promise<boolean> {
    if (!p.ok) {
      this.addUnreadable(p.file);
      return false;
    }
    try {
      await this.addPixels(p.pixels, p.file);
      return true;
    } finally {
      p.pixels.dispose();
    }
  }

  override async save(path: string): Promise<void> {
    await super.save(path);
    this.dirty = 0;
  }
}
