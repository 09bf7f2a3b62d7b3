// The index file: one JSON file per model (<dir>/<modelId>.topk.json), written atomically (temp
// file, fsync, rename) under a writer's lock, holding the model id + checksum, k, each layer's
// receptive field (so readers need neither the model nor a backend), the tables as base64
// little-endian typed arrays, the scanned files (path, size, mtime, pixel size) and the unreadable
// ones. Its size does not grow with the images scanned except for the file list (~150 bytes per
// image).
import { readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { z } from 'zod';
import { writeFileAtomic } from '../atomic-file.js';
import { acquireLock } from '../lock-file.js';
import { cropGeometry } from '../images.js';
import { boxToOriginal, regionOf, type Box, type LayerField } from '../receptive-field.js';
import { TopKTable } from './scoring.js';

export const TOPK_FORMAT = 'deepvis-topk';
export const TOPK_VERSION = 1;
export const DEFAULT_TOPK = 9;

/** Where indexes live in a cache folder (the hosts name it: DEEPVIS_CACHE_DIR, XDG_CACHE_HOME). */
export function defaultIndexDir(cacheDir = join(homedir(), '.cache', 'deepvis')): string {
  return join(cacheDir, 'index');
}

export function indexPath(dir: string, modelId: string): string {
  return join(dir, `${modelId}.topk.json`);
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
