// Building a model's index: open (or start) it for a loaded model, decode and score images into
// its tables, forget files that changed or disappeared, and save it.
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { removeStaleTemps } from '../atomic-file.js';
import { oneLine } from '../errors.js';
import { cropResize, decodeImage } from '../images.js';
import type { Model } from '../model.js';
import { receptiveFields } from '../receptive-field.js';
import { DEFAULT_TOPK, TopKIndex, type ScannedFile, type UnreadableFile } from './index-file.js';
import { raiseThresholds, TopKTable, unitCandidates, type LayerCandidates, type LayerThresholds } from './scoring.js';
import { statFile, type FileStat } from './walk.js';

/** A batch's top-k tables (per layer, as TopKTable holds them) and its files, in id order. */
export interface IndexShard {
  layers: { act: Float32Array; mean: Float32Array; image: Int32Array; pos: Int32Array }[];
  files: ScannedFile[];
  unreadable: UnreadableFile[];
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
    /** Per layer, what an image must also beat to be kept (see create). */
    private readonly floors: LayerThresholds[] | null = null,
  ) {
    super(base.modelId, base.checksum, base.inputSize, base.k, base.layers, base.files, base.unreadable, base.created);
    this.files.forEach((f, i) => f && this.byPath.set(f.path, i));
    for (const u of this.unreadable) this.unreadableByPath.set(u.path, u);
    this.thresholdBuf = this.layers.map((l) => ({ act: new Float32Array(l.shape[2]), mean: new Float32Array(l.shape[2]) }));
  }

  /**
   * A new, empty index for every displayed layer of the model. `floors` (a batch scored for another
   * index: that index's thresholds when the batch was sent) keep out every unit's images that
   * could not enter that index anyway, so a batch's first k images are not all kept, positioned
   * and merged for every unit.
   */
  static create(model: Model, k = DEFAULT_TOPK, floors?: readonly LayerThresholds[]): TopKIndexer {
    if (!Number.isInteger(k) || k < 1 || k > 1000) throw new Error(`k must be an integer from 1 to 1000, got ${k}`);
    if (floors && (floors.length !== model.layers.length || floors.some((f, i) => f.act.length !== model.layers[i]!.units || f.mean.length !== model.layers[i]!.units))) {
      throw new Error(`floors for ${floors.length} layers do not fit ${model.id}'s ${model.layers.length} displayed layers and their units`);
    }
    const rfs = receptiveFields(model);
    const layers = model.layers.map((l) => ({
      name: l.name,
      display: l.display,
      shape: [...l.shape] as [number, number, number],
      field: rfs.layer(l.name),
      table: new TopKTable(l.units, k),
    }));
    return new TopKIndexer(model, new TopKIndex(model.id, model.checksum, [...model.inputSize], k, layers), floors ? [...floors] : null);
  }

  /** Per layer, what an image must beat now to enter each unit's top k (copies): the floors of a batch scored elsewhere. */
  thresholds(): LayerThresholds[] {
    return this.layers.map((l) => {
      const t = { act: new Float32Array(l.table.units), mean: new Float32Array(l.table.units) };
      l.table.thresholds(t.act, t.mean);
      return t;
    });
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
      this.layers.forEach((l, i) => {
        l.table.thresholds(this.thresholdBuf[i]!.act, this.thresholdBuf[i]!.mean);
        if (this.floors) raiseThresholds(this.thresholdBuf[i]!, this.floors[i]!);
      });
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

  /** This index's tables and files as they cross to another thread (a fresh index: no file forgotten). */
  toShard(): IndexShard {
    const files = this.files.filter((f): f is ScannedFile => f !== null);
    if (files.length !== this.files.length) throw new Error('an index with forgotten files is not a shard');
    return { layers: this.layers.map(({ table: t }) => ({ act: t.act, mean: t.mean, image: t.image, pos: t.pos })), files, unreadable: [...this.unreadable] };
  }

  /**
   * Add a batch scored elsewhere (toShard of an index of the same model and k, over files this one
   * has not got). Its files take the next ids in its order, so batches merged in listing order give
   * the tables one run over all the files would: each batch's top k hold every image of the batch
   * that can be in the top k of all, and ties keep the earlier image as offer() does.
   */
  mergeShard(shard: IndexShard): { added: number; failed: number } {
    if (shard.layers.length !== this.layers.length) throw new Error(`a batch of ${shard.layers.length} layers does not fit an index of ${this.layers.length}`);
    this.layers.forEach((l, i) => {
      const n = l.table.units * this.k;
      const t = shard.layers[i]!;
      if ([t.act, t.mean, t.image, t.pos].some((a) => a.length !== n)) throw new Error(`a batch's ${l.display} table does not fit this index (k ${this.k}, ${l.table.units} units)`);
    });
    const ids = shard.files.map((f) => this.registerFile({ ...f, path: resolve(f.path) }));
    for (const u of shard.unreadable) this.addUnreadable(u);
    this.layers.forEach((l, i) => {
      const t = shard.layers[i]!;
      for (let j = 0; j < t.image.length; j++) {
        const img = t.image[j]!;
        if (img < 0) continue;
        const id = ids[img];
        if (id === undefined) throw new Error(`a batch's ${l.display} table refers to image ${img}, which is not among its ${ids.length} files`);
        l.table.offer(Math.floor(j / this.k), t.act[j]!, t.mean[j]!, id, t.pos[j]!);
      }
    });
    this.dirty += shard.files.length;
    return { added: shard.files.length, failed: shard.unreadable.length };
  }

  override async save(path: string): Promise<void> {
    await super.save(path);
    this.dirty = 0;
  }
}
