// The atlas: every unit of a layer synthesised once and cached, for the app's pattern mode and for
// offline demos. Layout (one folder to copy to another machine):
//   <root>/<modelId>-<checksum12>/<layer>/<settingsKey12>/
//       index.json                 what was asked and what is done (written atomically)
//       unit-0007-seed-1.png …     one PNG per unit and seed, full size
//       sprite.png                 the first seed of every finished unit, tiled, for the grid
// Units are synthesised several at a time (one batch item per unit and seed: one forward and one
// backward pass per step for the whole batch). Finished units are never redone, so an interrupted
// build resumes where it stopped.
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { writeFileAtomic } from '../atomic-file.js';
import { encodePng } from '../images.js';
import type { Model } from '../model.js';
import type { UnitObjective } from '../objectives.js';
import { synthesize, type SynthProgress, type SynthResult } from './run.js';
import { presetSettings, SynthSettingsSchema, type PresetName, type SynthSettings } from './settings.js';
import { isLogitsLayer } from './target.js';

export const ATLAS_TILE = 64;

/** Where atlases live in a cache home (the hosts name it: DEEPVIS_ATLAS_DIR, XDG_CACHE_HOME). */
export function defaultAtlasRoot(cacheHome = join(homedir(), '.cache')): string {
  return join(cacheHome, 'deepvis', 'atlas');
}

export interface AtlasSpec {
  preset: PresetName;
  overrides?: Partial<SynthSettings>;
  iterations?: number;
  seeds: number;
  size?: number;
}

export interface AtlasUnitEntry {
  files: string[];
  objectiveStart: number[];
  objectiveBest: number[];
}

export interface AtlasIndex {
  version: 1;
  model: string;
  modelChecksum: string;
  layer: string;
  display: string;
  unitCount: number;
  preset: PresetName;
  settings: SynthSettings;
  size: [number, number];
  seeds: number[];
  done: Record<string, AtlasUnitEntry>;
  sprite: { file: string; cols: number; tile: number; units: number[] } | null;
  seconds: number;
}

export interface AtlasProgress {
  done: number;
  total: number;
  unitsThisBatch: number[];
  iteration: number;
  iterations: number;
}

function settingsKey(settings: SynthSettings, size: [number, number], seeds: number[]): string {
  return createHash('sha256').update(JSON.stringify({ settings, size, seeds })).digest('hex').slice(0, 12);
}

export function atlasFolder(root: string, model: Model, layer: string, settings: SynthSettings, size: [number, number], seeds: number[]): string {
  return join(root, `${model.id}-${model.checksum.slice(0, 12)}`, layer, settingsKey(settings, size, seeds));
}

function readIndex(dir: string): AtlasIndex | null {
  const p = join(dir, 'index.json');
  if (!existsSync(p)) return null;
  try {
    return JSON.parse(readFileSync(p, 'utf8')) as AtlasIndex;
  } catch {
    return null; // unreadable index: the units are redone (their PNGs are simply overwritten)
  }
}

/** A finished unit's first image at the sprite's tile size (the grid's tile while a build runs). */
export async function atlasTilePng(dir: string, entry: AtlasUnitEntry): Promise<Buffer> {
  return sharp(join(dir, entry.files[0]!)).resize(ATLAS_TILE, ATLAS_TILE, { kernel: 'lanczos3' }).png().toBuffer();
}

async function writeSprite(dir: string, index: AtlasIndex): Promise<void> {
  const units = Object.keys(index.done)
    .map(Number)
    .sort((a, b) => a - b);
  if (!units.length) return;
  const cols = Math.ceil(Math.sqrt(units.length));
  const rows = Math.ceil(units.length / cols);
  const tiles = await Promise.all(units.map((u) => atlasTilePng(dir, index.done[String(u)]!)));
  const sprite = await sharp({ create: { width: cols * ATLAS_TILE, height: rows * ATLAS_TILE, channels: 3, background: '#808080' } })
    .composite(tiles.map((input, i) => ({ input, left: (i % cols) * ATLAS_TILE, top: Math.floor(i / cols) * ATLAS_TILE })))
    .png()
    .toBuffer();
  await writeFileAtomic(join(dir, 'sprite.png'), sprite);
  index.sprite = { file: 'sprite.png', cols, tile: ATLAS_TILE, units };
}

export interface BuildAtlasOptions {
  model: Model;
  layer: string;
  /** Inclusive unit range; default: every unit of the layer. */
  units?: [number, number];
  spec: AtlasSpec;
  root?: string;
  /** Batch items per step (units × seeds); default 8. */
  batch?: number;
  signal?: AbortSignal;
  onProgress?: (p: AtlasProgress) => void;
  /**
   * Who runs a batch (default: synthesize here). The CLI hands batches to its job workers; a batch
   * is the same whoever runs it (its items, seeds and settings), so the images are too.
   */
  runBatch?: (batch: AtlasBatch, signal: AbortSignal | undefined, onProgress: (p: SynthProgress) => void) => Promise<SynthResult>;
  /** Batches in flight at once (default 1; the number of workers when runBatch uses a pool). */
  concurrency?: number;
  /** Units whose images (and the index naming them) are on disk now, after each batch. */
  onUnits?: (units: number[], dir: string, index: AtlasIndex) => void;
}

export interface AtlasPlan {
  layer: string;
  display: string;
  dir: string;
  settings: SynthSettings;
  size: [number, number];
  seeds: number[];
  range: [number, number];
  index: AtlasIndex;
  /** Units of the range still to synthesise (the others are on disk). */
  todo: number[];
}

/**
 * What a build would do: its folder (from model, layer and settings), the index found there and
 * the units of the range that are not done yet. A unit counts as done only while its images are
 * on disk. Throws naming the layer for a range outside it.
 */
export function planAtlas(model: Model, layer: string, spec: AtlasSpec, units: [number, number] | undefined, root = defaultAtlasRoot()): AtlasPlan {
  const info = model.layer(layer);
  const settings = SynthSettingsSchema.parse({ ...presetSettings(spec.preset), ...(spec.overrides ?? {}), ...(spec.iterations ? { iterations: spec.iterations } : {}) });
  const size: [number, number] = spec.size ? [spec.size, spec.size] : model.inputSize;
  const seeds = Array.from({ length: Math.max(1, spec.seeds) }, (_, i) => i + 1);
  const [lo, hi] = units ?? [0, info.units - 1];
  if (lo < 0 || hi >= info.units || lo > hi) throw new Error(`unit range ${lo}-${hi} is outside ${info.display} (0…${info.units - 1})`);
  const dir = atlasFolder(root, model, info.name, settings, size, seeds);
  const index: AtlasIndex = readIndex(dir) ?? {
    version: 1,
    model: model.id,
    modelChecksum: model.checksum,
    layer: info.name,
    display: info.display,
    unitCount: info.units,
    preset: spec.preset,
    settings,
    size,
    seeds,
    done: {},
    sprite: null,
    seconds: 0,
  };
  for (const [u, entry] of Object.entries(index.done)) if (!entry.files.every((f) => existsSync(join(dir, f)))) delete index.done[u];
  const todo: number[] = [];
  for (let u = lo; u <= hi; u++) if (!index.done[String(u)]) todo.push(u);
  return { layer: info.name, display: info.display, dir, settings, size, seeds, range: [lo, hi], index, todo };
}

/** One atlas batch: an objective and a seed per item, all on one layer. */
export interface AtlasBatch {
  objectives: UnitObjective[];
  seeds: number[];
  settings: SynthSettings;
  size: [number, number];
}

export async function buildAtlas(opts: BuildAtlasOptions): Promise<{ dir: string; index: AtlasIndex; built: number; skipped: number }> {
  const { model, spec } = opts;
  const plan = planAtlas(model, opts.layer, spec, opts.units, opts.root);
  const classes = isLogitsLayer(model, plan.layer);
  const { dir, settings, size, seeds, index, todo } = plan;
  const [lo, hi] = plan.range;
  const info = { name: plan.layer };
  mkdirSync(dir, { recursive: true });
  const skipped = hi - lo + 1 - todo.length;
  const perBatch = Math.max(1, Math.floor((opts.batch ?? 8) / seeds.length));
  let built = 0;
  const batches: number[][] = [];
  for (let i = 0; i < todo.length; i += perBatch) batches.push(todo.slice(i, i + perBatch));
  const run = opts.runBatch ?? ((b: AtlasBatch, signal: AbortSignal | undefined, onProgress: (p: SynthProgress) => void) => synthesize({ model, objective: b.objectives, ...b, signal, onProgress }));
  // A finished batch is saved (PNGs, index.json, each fsynced) one after another while its lane
  // already runs the next batch: a worker does not wait on the host's encoding and disk.
  let saving: Promise<void> = Promise.resolve();
  let stop = false;
  const save = async (units: number[], r: SynthResult) => {
    for (let k = 0; k < units.length; k++) {
      const u = units[k]!;
      const entry: AtlasUnitEntry = { files: [], objectiveStart: [], objectiveBest: [] };
      for (let j = 0; j < seeds.length; j++) {
        const im = r.images[k * seeds.length + j]!;
        const file = `unit-${String(u).padStart(4, '0')}-seed-${seeds[j]}.png`;
        await writeFileAtomic(join(dir, file), await encodePng(im.rgb, im.width, im.height));
        entry.files.push(file);
        entry.objectiveStart.push(im.objectiveStart);
        entry.objectiveBest.push(im.objectiveBest);
      }
      index.done[String(u)] = entry;
    }
    built += units.length;
    index.seconds += r.seconds;
    // Persist after every batch: an interruption loses at most the batches in flight.
    await writeFileAtomic(join(dir, 'index.json'), JSON.stringify(index, null, 1) + '\n');
    opts.onUnits?.(units, dir, index);
  };
  const runOne = async (units: number[]) => {
    const objectives: UnitObjective[] = [];
    const itemSeeds: number[] = [];
    for (const u of units) {
      for (const sd of seeds) {
        objectives.push(classes ? { kind: 'class', index: u } : { kind: 'channel', layer: info.name, channel: u });
        itemSeeds.push(sd * 100_003 + u); // distinct noise per unit and seed, stable across runs
      }
    }
    const r = await run({ objectives, seeds: itemSeeds, settings, size }, opts.signal, (p) =>
      opts.onProgress?.({ done: skipped + built, total: hi - lo + 1, unitsThisBatch: units, iteration: p.iteration, iterations: p.iterations }),
    );
    if (r.cancelled) {
      stop = true;
      return;
    }
    // After a failed save the chain stays rejected: no later batch is saved, and the build stops.
    saving = saving.then(() => save(units, r));
    saving.catch(() => (stop = true));
  };
  let nextBatch = 0;
  const lane = async () => {
    try {
      while (!stop && !opts.signal?.aborted && nextBatch < batches.length) await runOne(batches[nextBatch++]!);
    } catch (e) {
      stop = true;
      throw e;
    }
  };
  const lanes = Array.from({ length: Math.max(1, Math.min(opts.concurrency ?? 1, batches.length)) }, lane);
  // Every lane and save ends before the error (if any) is thrown: no batch keeps writing behind it.
  const ends = await Promise.allSettled(lanes);
  const failed = ends.find((e): e is PromiseRejectedResult => e.status === 'rejected');
  await saving.catch(() => {});
  if (failed) throw failed.reason;
  await saving;
  await writeSprite(dir, index);
  await writeFileAtomic(join(dir, 'index.json'), JSON.stringify(index, null, 1) + '\n');
  opts.onProgress?.({ done: skipped + built, total: hi - lo + 1, unitsThisBatch: [], iteration: 0, iterations: 0 });
  return { dir, index, built, skipped };
}

/**
 * The most recently written atlas of this model's layer (any settings), with its folder, or null.
 * Several roots are searched in order and the first that has one wins: the user's own cache comes
 * before the read-only atlases a packaged app carries, so a rebuilt layer replaces the bundled one.
 * Matches the model by id and checksum, so a changed model never shows stale images.
 */
export function findAtlas(roots: string | readonly string[], model: Model, layer: string): { dir: string; index: AtlasIndex } | null {
  for (const root of typeof roots === 'string' ? [roots] : roots) {
    const found = findAtlasIn(root, model, layer);
    if (found) return found;
  }
  return null;
}

function findAtlasIn(root: string, model: Model, layer: string): { dir: string; index: AtlasIndex } | null {
  const layerDir = join(root, `${model.id}-${model.checksum.slice(0, 12)}`, layer);
  if (!existsSync(layerDir)) return null;
  let best: { dir: string; index: AtlasIndex; mtime: number } | null = null;
  for (const key of readdirSync(layerDir)) {
    const dir = join(layerDir, key);
    const p = join(dir, 'index.json');
    if (!existsSync(p)) continue;
    const index = readIndex(dir);
    if (!index?.sprite || index.modelChecksum !== model.checksum) continue;
    const mtime = statSync(p).mtimeMs;
    if (!best || mtime > best.mtime) best = { dir, index, mtime };
  }
  return best ? { dir: best.dir, index: best.index } : null;
}
