// Top-k image patches in the engine host: the loaded model's folder index (a TopKIndexer
// read from and saved to <indexDir>/<model>.topk.json), a background indexing job whose images are
// scored on the job pool in batches (engine/topk/batches.ts), this session's memory of camera
// frames (SessionTopK of the layer the frames ask for, fed from the live forward pass's tap), and
// the patches a unit pane shows: the receptive field cropped from each image, padded where it
// crosses the border, with the deconv back-projection of the unit over the same region below it
// (engine/topk/patches.ts).
//
// The live view keeps priority: a patch's backward pass, the one step that runs in this thread,
// starts only when no frame is computing or waiting (live-priority.ts); frames never wait for more
// than one such step.
import { readFile, stat } from 'node:fs/promises';
import { statSync } from 'node:fs';
import { homedir } from 'node:os';
import { basename, isAbsolute, join, resolve } from 'node:path';
import { seqOf, type FrameRequestT, type Reply, type Request } from '../../contract/messages.js';
import type { FolderPatchT, IndexEventT, IndexInfoT, SessionPatchT } from '../../contract/topk.js';
import { BACK_PERCENTILE_DEFAULT } from '../../contract/backprojection.js';
import { cropResizeBytes } from '../../contract/resample.js';
import { oneLine } from '../engine/errors.js';
import type { Model } from '../engine/model.js';
import { DEFAULT_TOPK, defaultIndexDir, indexPath, lockIndex, TopKIndex, type TopKHit } from '../engine/topk/index-file.js';
import { TopKIndexer } from '../engine/topk/indexer.js';
import { indexFilesInBatches } from '../engine/topk/batches.js';
import { startIndexing, type IndexJob, type IndexListing, type IndexProgress, type IndexRunResult } from '../engine/topk/indexing.js';
import { defaultPatchBack, folderPatch, type Patch } from '../engine/topk/patches.js';
import { SessionTopK } from '../engine/topk/session-memory.js';
import { describeWalk } from '../engine/topk/walk.js';
import type { SessionClient } from './client.js';
import { LivePriority, type LiveSignals } from './live-priority.js';
import { poolIndexScorer, type JobScheduler } from './scheduler.js';

export interface TopKHostOptions {
  /** Where model indexes live (the hosts pass host-config's indexDir, as `deepvis index` uses). */
  indexDir?: string;
  /** k of a new index (an existing index keeps its own). Default 9. */
  k?: number;
  /** Session memory of camera frames. */
  session?: {
    /** Off: no frame is remembered. Default on. */
    enabled?: boolean;
    /** Frames kept per unit (default 9). */
    k?: number;
    /** Byte budget of the stored crops (default 16 MiB). */
    maxBytes?: number;
    /** Longest side of a stored crop (default 64). */
    maxCropSize?: number;
  };
  /** Longest side of a folder patch in pixels (default 64). */
  patchSize?: number;
  /** After the engine goes idle, how long no frame must arrive before background work runs (default 12 ms). */
  liveGapMs?: number;
  /** Minimum time between progress events (default 200 ms). */
  progressEveryMs?: number;
  log?: (line: string) => void;
}

/** What the host needs from the engine session: its model, and the live view's signals. */
export interface TopKEngine extends LiveSignals {
  readonly model: Model | null;
  /** The job pool the folder index is scored on. */
  readonly pool: JobScheduler;
  on(event: 'frameStart' | 'modelChange', listener: (...args: never[]) => void): unknown;
}

interface RunningJob {
  job: IndexJob;
  model: Model;
  indexer: TopKIndexer;
  path: string;
  client: SessionClient;
  release: () => Promise<void>;
  finished: Promise<void>;
  /** Why the host stopped it, set when it is stopped (the run may end before the cause is visible). */
  stoppedFor?: string;
  lastEmit: number;
}

const MAX_OPEN_BYTES = 64 * 1024 * 1024;
const PATCH_CACHE = 256;

function fail(req: Request, message: string): Reply {
  return { type: 'error', message, request: req.type, ...seqOf(req) };
}

/** Same bytes? (Identical consecutive frames — a frozen frame, a static image — are remembered once.) */
function sameBytes(a: Uint8Array | null, b: Uint8Array): boolean {
  if (!a || a.length !== b.length) return false;
  if (a === b) return true;
  // Cheap rejection first: camera frames differ almost everywhere.
  const step = Math.max(1, Math.floor(a.length / 997));
  for (let i = 0; i < a.length; i += step) if (a[i] !== b[i]) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Expand ~ and require an absolute path of an existing folder. */
export function checkFolder(raw: string): string {
  const t = raw.trim();
  const p = t === '~' ? homedir() : t.startsWith('~/') ? join(homedir(), t.slice(2)) : t;
  if (!isAbsolute(p)) throw new Error(`"${raw}" is not an absolute path — give the full path of a folder on the engine host (e.g. /home/you/Pictures or ~/Pictures)`);
  let s;
  try {
    s = statSync(p);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new Error(`"${raw}" ${code === 'ENOENT' ? 'does not exist' : `cannot be read (${code ?? oneLine(e)})`} on the engine host`);
  }
  if (!s.isDirectory()) throw new Error(`"${raw}" is not a folder`);
  return resolve(p);
}

export class TopKHost {
  readonly indexDir: string;
  private readonly log: (line: string) => void;
  private readonly patchSize: number;
  private readonly liveGapMs: number;
  private readonly progressEveryMs: number;
  private readonly live: LivePriority;
  /** The loaded model's index, read lazily; `mtime` of the file it was read from (0: none). */
  private index: { model: Model; indexer: TopKIndexer; mtimeMs: number } | null = null;
  private running: RunningJob | null = null;
  private memory: SessionTopK | null = null;
  private memoryModel: Model | null = null;
  private lastRgba: Uint8Array | null = null;
  private offering = false;
  /** The session-memory offer in flight (it holds the frame's tap and pixels until it ends). */
  private pendingOffer: Promise<void> = Promise.resolve();
  private readonly patches = new Map<string, Patch>();
  /** Bumped on each topk request per client: an older request still computing gives up. */
  private readonly generation = new Map<string, number>();
  private disposed = false;

  constructor(
    private readonly engine: TopKEngine,
    private readonly opts: TopKHostOptions = {},
  ) {
    this.indexDir = resolve(opts.indexDir ?? defaultIndexDir());
    this.live = new LivePriority(engine);
    this.log = opts.log ?? (() => {});
    this.patchSize = opts.patchSize ?? 64;
    this.liveGapMs = opts.liveGapMs ?? 12;
    this.progressEveryMs = opts.progressEveryMs ?? 200;
    engine.on('modelChange', () => this.modelChanged());
  }

  /** The index file of a model. */
  pathFor(model: Model): string {
    return indexPath(this.indexDir, model.id);
  }

  get indexing(): boolean {
    return this.running !== null;
  }

  /** The session memory (for tests and stats). */
  get sessionMemory(): SessionTopK | null {
    return this.memory;
  }

  // ------------------------------------------------------------------ live priority

  /** Resolve when the live view leaves room (live-priority.ts): before each background step. */
  yieldToLive(gap = this.liveGapMs, maxDeferMs = Infinity): Promise<void> {
    return this.live.yieldToLive(gap, maxDeferMs);
  }

  // ------------------------------------------------------------------ the folder index

  /** The loaded model's index (read from disk when first needed or changed on disk). */
  private async currentIndex(model: Model): Promise<TopKIndexer> {
    const path = this.pathFor(model);
    if (this.running && this.running.model === model) return this.running.indexer;
    let mtimeMs = 0;
    try {
      mtimeMs = statSync(path).mtimeMs;
    } catch {
      /* no index yet */
    }
    if (this.index && this.index.model === model && this.index.mtimeMs === mtimeMs) return this.index.indexer;
    // An existing index keeps its k (it may have been built by `deepvis index --k N`).
    let k = this.opts.k ?? DEFAULT_TOPK;
    if (mtimeMs) k = (await TopKIndex.read(path)).k;
    const { indexer, rebuilt } = await TopKIndexer.load(model, path, k);
    if (rebuilt) this.log(rebuilt);
    this.index = { model, indexer, mtimeMs };
    this.patches.clear();
    return indexer;
  }

  private info(model: Model, indexer: TopKIndexer | null): IndexInfoT {
    return { path: this.pathFor(model), images: indexer?.imageCount ?? 0, k: indexer?.k ?? this.opts.k ?? DEFAULT_TOPK, indexing: this.running?.model === model };
  }

  async indexStart(req: Extract<Request, { type: 'indexStart' }>, client: SessionClient): Promise<Reply> {
    const model = this.engine.model;
    if (!model) return fail(req, 'no model is loaded');
    if (this.running) return fail(req, `already indexing for ${this.running.model.id} — stop it first`);
    let dirs: string[];
    try {
      dirs = [...new Set(req.dirs.map(checkFolder))];
    } catch (e) {
      return fail(req, oneLine(e));
    }
    const path = this.pathFor(model);
    let indexer: TopKIndexer;
    let release: () => Promise<void>;
    try {
      release = await lockIndex(path);
    } catch (e) {
      return fail(req, `cannot open the index ${path}: ${oneLine(e)}`);
    }
    try {
      // After the lock: another process may have saved the index since we last read it.
      indexer = await this.currentIndex(model);
    } catch (e) {
      await release();
      return fail(req, `cannot open the index ${path}: ${oneLine(e)}`);
    }
    if (this.running || this.engine.model !== model) {
      await release();
      return fail(req, this.running ? 'already indexing — stop it first' : 'the model changed meanwhile');
    }
    const run: RunningJob = {
      model,
      indexer,
      path,
      client,
      release,
      lastEmit: 0,
      finished: Promise.resolve(),
      job: null as unknown as IndexJob,
    };
    const emit = (e: Omit<IndexEventT, 'type' | 'modelId'>) => {
      try {
        run.client.emit({ type: 'index', modelId: model.id, ...e });
      } catch {
        /* a client that went away */
      }
    };
    // The images are scored on the job pool, in batches merged here in order: the live view never
    // waits for indexing. Its own client id: a synthesis the window starts replaces the window's
    // synthesis, not its indexing.
    const pool = this.engine.pool;
    const scoreBatch = poolIndexScorer(pool, `${client.id}:index`, model.id, model.chosenPreprocess);
    const onPool: IndexListing = (ix, listing, o) => indexFilesInBatches(ix, listing, { ...o, scoreBatch, concurrency: pool.workers.length });
    run.job = startIndexing(indexer, dirs, {
      saveTo: path,
      onListing: (w) => emit({ phase: 'progress', done: 0, total: 0, file: w.current, message: describeWalk(w) }),
      onProgress: (p: IndexProgress) => {
        const now = performance.now();
        if (p.done < p.total && now - run.lastEmit < this.progressEveryMs) return;
        run.lastEmit = now;
        emit({
          phase: 'progress',
          done: p.done,
          total: p.total,
          skipped: p.skipped,
          ...(p.current ? { file: p.current } : {}),
          imagesPerSecond: p.imagesPerSecond,
          etaMs: p.etaMs,
          elapsedMs: p.elapsedMs,
        });
      },
    }, onPool);
    this.running = run;
    this.patches.clear();
    // Before the end event: the lock is released and the saved index adopted, so a client that
    // reacts to the event (topk, another indexStart) sees the finished state.
    const settle = async () => {
      await release().catch(() => {});
      if (this.running === run) this.running = null;
      let mtimeMs = 0;
      try {
        mtimeMs = statSync(path).mtimeMs;
      } catch {
        /* never saved */
      }
      // The saved file is what we hold in memory: adopt it without re-reading.
      if (this.engine.model === model) this.index = { model, indexer, mtimeMs };
      this.patches.clear();
    };
    run.finished = run.job.done.then(
      async (r: IndexRunResult) => {
        await settle();
        const unreadable = r.unreadable.slice(0, 100).map((u) => ({ path: u.path, error: u.error }));
        const why = run.stoppedFor ?? 'stopped';
        emit({
          phase: r.aborted ? 'stopped' : 'done',
          done: r.done,
          total: r.total,
          skipped: r.skipped,
          images: indexer.imageCount,
          elapsedMs: r.elapsedMs,
          imagesPerSecond: r.imagesPerSecond,
          unreadable,
          unreadableCount: r.unreadable.length,
          ...(r.aborted ? { message: why } : r.problems.length ? { message: r.problems.join('; ') } : {}),
        });
        this.log(`index ${model.id}: ${r.aborted ? 'stopped' : 'done'} — ${r.added} added, ${r.skipped} already indexed, ${r.unreadable.length} unreadable`);
      },
      async (e: unknown) => {
        await settle();
        const p = run.job.progress;
        emit({ phase: 'error', done: p?.done ?? 0, total: p?.total ?? 0, message: oneLine(e) });
        this.log(`index ${model.id}: ${oneLine(e)}`);
      },
    );
    this.log(`index ${model.id}: indexing ${dirs.join(', ')} into ${path}`);
    return { type: 'indexStart', modelId: model.id, dirs, index: this.info(model, indexer), ...seqOf(req) };
  }

  async indexStop(req: Extract<Request, { type: 'indexStop' }>): Promise<Reply> {
    const run = this.running;
    if (!run) return { type: 'indexStop', stopped: false, ...seqOf(req) };
    await run.job.stop().catch(() => {});
    await run.finished;
    return { type: 'indexStop', stopped: true, ...seqOf(req) };
  }

  async openIndexedImage(req: Extract<Request, { type: 'openIndexedImage' }>): Promise<Reply> {
    const model = this.engine.model;
    if (!model) return fail(req, 'no model is loaded');
    const refuse = () => fail(req, `not an image of the ${model.id} index: ${req.path}`);
    if (!isAbsolute(req.path)) return refuse();
    let indexer: TopKIndexer;
    try {
      indexer = await this.currentIndex(model);
    } catch (e) {
      return fail(req, oneLine(e));
    }
    const abs = resolve(req.path);
    const rec = indexer.files.find((f) => f !== null && f.path === abs);
    if (!rec) return refuse();
    try {
      const s = await stat(abs);
      if (!s.isFile()) return refuse();
      if (s.size !== rec.size || Math.round(s.mtimeMs) !== rec.mtimeMs) return fail(req, `${abs} changed since it was indexed — index the folder again`);
      if (s.size > MAX_OPEN_BYTES) return fail(req, `${abs} is too large to open (${s.size} bytes)`);
      const buf = await readFile(abs);
      return { type: 'openIndexedImage', path: abs, name: basename(abs), bytes: new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength) as Uint8Array<ArrayBuffer>, ...seqOf(req) };
    } catch (e) {
      return fail(req, `cannot read ${abs}: ${oneLine(e)}`);
    }
  }

  // ------------------------------------------------------------------ patches

  async topk(req: Extract<Request, { type: 'topk' }>, client: SessionClient): Promise<Reply> {
    const model = this.engine.model;
    if (!model) return fail(req, 'no model is loaded');
    const gen = (this.generation.get(client.id) ?? 0) + 1;
    this.generation.set(client.id, gen);
    const stale = () => this.generation.get(client.id) !== gen || this.engine.model !== model || this.disposed;
    let layerName: string;
    try {
      const l = model.layer(req.layer);
      layerName = l.name;
      if (req.unit >= l.units) return fail(req, `unit ${req.unit} is out of range for layer ${l.display} (${l.units} units)`);
    } catch (e) {
      return fail(req, oneLine(e));
    }
    let indexer: TopKIndexer | null = null;
    let problem: string | null = null;
    try {
      indexer = await this.currentIndex(model);
    } catch (e) {
      problem = oneLine(e);
    }
    const k = req.k ?? indexer?.k ?? DEFAULT_TOPK;
    const hits: TopKHit[] = indexer ? indexer.top(layerName, req.unit, Math.min(k, indexer.k)) : [];
    const folder: FolderPatchT[] = [];
    const back = req.back ?? defaultPatchBack(model);
    for (const hit of hits) {
      const key = `${model.id}|${layerName}|${req.unit}|${hit.image}|${hit.y},${hit.x}|${this.patchSize}|${back}`;
      let patch = this.patches.get(key);
      if (!patch) {
        // Frames first: every patch costs a decode and a backward pass.
        await this.yieldToLive(0, 150);
        if (stale()) return fail(req, 'superseded by a newer topk request');
        // Drawn at the back-projection pane's default scale, not by the single largest value.
        patch = await folderPatch(model, layerName, req.unit, hit, { size: this.patchSize, back, percentile: BACK_PERCENTILE_DEFAULT, stillCurrent: () => this.engine.model === model });
        if (this.patches.size >= PATCH_CACHE) this.patches.delete(this.patches.keys().next().value!);
        this.patches.set(key, patch);
      }
      folder.push({
        source: 'folder',
        rank: hit.rank,
        image: hit.image,
        imageWidth: hit.imageWidth,
        imageHeight: hit.imageHeight,
        box: hit.box,
        activation: hit.activation,
        width: patch.width,
        height: patch.height,
        crop: patch.crop as Uint8Array<ArrayBuffer>,
        deconv: patch.deconv as Uint8Array<ArrayBuffer> | null,
        ...(patch.problem ? { problem: patch.problem } : {}),
      });
    }
    const mem = this.memory && this.memoryModel === model && this.memory.field.layer === layerName ? this.memory : null;
    const session: SessionPatchT[] = mem
      ? mem.top(req.unit, Math.min(k, mem.k)).map((h) => ({
          source: 'session',
          rank: h.rank,
          activation: h.activation,
          frameId: h.frame,
          time: h.time,
          width: h.crop.width,
          height: h.crop.height,
          crop: Uint8Array.from(h.crop.data) as Uint8Array<ArrayBuffer>,
        }))
      : [];
    if (problem) this.log(`topk: ${problem}`);
    return {
      type: 'topk',
      modelId: model.id,
      layer: layerName,
      unit: req.unit,
      folder,
      session,
      index: this.info(model, indexer),
      sessionFrames: this.memoryModel === model ? (this.memory?.frames ?? 0) : 0,
      sessionLayer: this.memoryModel === model ? (this.memory?.field.layer ?? null) : null,
      ...seqOf(req),
    };
  }

  // ------------------------------------------------------------------ session memory

  /**
   * The selected layer's tap of a frame (as the live worker posted it, [h, w, c]) and the frame
   * itself: remembers the frame's best units of that layer, after the frame's reply (one offer at a
   * time; frames arriving while one is in flight are not remembered). Identical consecutive frames
   * are offered once. Plain arrays only: this runs on the host's main thread for every live frame.
   */
  captureFrame(req: FrameRequestT, layerName: string, tap: Float32Array): void {
    const model = this.engine.model;
    if (!model || this.disposed || this.opts.session?.enabled === false || this.offering) return;
    if (sameBytes(this.lastRgba, req.rgba)) return;
    let mem = this.memory;
    if (!mem || this.memoryModel !== model || mem.field.layer !== layerName) {
      const s = this.opts.session ?? {};
      mem = new SessionTopK(model, { layer: layerName, k: s.k ?? 9, maxBytes: s.maxBytes ?? 16 * 1024 * 1024, maxCropSize: s.maxCropSize ?? 64 });
      this.memory = mem;
      this.memoryModel = model;
    }
    this.lastRgba = req.rgba;
    this.offering = true;
    const target = mem;
    const [h, w, c] = model.layer(layerName).shape;
    const [H, W] = model.inputSize;
    // After the frame's reply has gone out.
    this.pendingOffer = new Promise<void>((resolve) =>
      setImmediate(() => {
        // The frame as RGB at the model's input size, by the crop and resize the engine's input
        // gets (contract/resample.ts), made only when a unit takes the frame.
        const rgb = () => ({ data: cropResizeBytes({ width: req.width, height: req.height, data: req.rgba }, 4, W, H, 3), width: W, height: H });
        void target
          .offer(req.frameId, { data: tap, shape: [1, h, w, c] }, rgb)
          .catch((e: unknown) => this.log(`session memory: ${oneLine(e)}`))
          .finally(() => {
            this.offering = false;
            resolve();
          });
      }),
    );
  }

  /** Resolves when the last frame's session-memory offer has finished. */
  settled(): Promise<void> {
    return this.pendingOffer;
  }

  // ------------------------------------------------------------------ life cycle

  private modelChanged(): void {
    // The running job stops after the batches being scored; its index is saved.
    if (this.running) {
      this.running.stoppedFor ??= 'the model was switched';
      void this.running.job.stop().catch(() => {});
    }
    this.index = null;
    this.memory = null;
    this.memoryModel = null;
    this.lastRgba = null;
    this.patches.clear();
  }

  /** Stop indexing (saving what was indexed) and forget everything. */
  async dispose(): Promise<void> {
    this.disposed = true;
    const run = this.running;
    if (run) {
      run.stoppedFor ??= 'the engine is shutting down';
      await run.job.stop().catch(() => {});
      await run.finished;
    }
    this.modelChanged();
  }
}
