// Indexing folders into a TopKIndexer: skip the images already in the index (same path + size +
// mtime), decode the next image while the current one runs through the network, save
// periodically and at the end, and stop cleanly on request.
//
// For the app: startIndexing() runs in the background one image at a time and awaits the caller's
// yieldToLive() before each image, so the live view (camera frames) always goes first; the longest
// the live view can wait is one image's forward pass (~30–60 ms on wasm).
import { sep } from 'node:path';
import type { UnreadableFile } from './index-file.js';
import { prepareImage, type PreparedImage, type TopKIndexer } from './indexer.js';
import { listImageFiles, type FileStat, type Listing, type WalkProgress } from './walk.js';

export interface IndexProgress {
  /** Files to read in this run (found minus already indexed). */
  total: number;
  /** Files handled so far in this run (added or unreadable). */
  done: number;
  added: number;
  failed: number;
  /** Files found that were already in the index, unchanged. */
  skipped: number;
  /** The file being read, or null. */
  current: string | null;
  elapsedMs: number;
  imagesPerSecond: number;
  /** Estimated time to finish, or null before the first image. */
  etaMs: number | null;
}

export interface IndexRunOptions {
  /** Index file to save to (periodically and at the end). No saving without it. */
  saveTo?: string;
  /** Save at least this often while images are being added (default 20 000 ms). */
  saveEveryMs?: number;
  /** …and after this many images (default: only by time). */
  saveEveryImages?: number;
  /** Awaited before every image: the live view's turn. Default: one macrotask (setImmediate). */
  yieldToLive?: () => Promise<void> | void;
  /** Stop after the current image (the index is then saved). */
  signal?: AbortSignal;
  onProgress?: (p: IndexProgress) => void;
  /** Progress of the folder walk before indexing starts (startIndexing). */
  onListing?: (p: WalkProgress) => void;
  onSaved?: (p: IndexProgress) => void;
  /** Forget indexed files that are gone from (or changed in) the listed folders (default true). */
  pruneMissing?: boolean;
}

export interface IndexRunResult extends IndexProgress {
  aborted: boolean;
  /** Unreadable files among those found: read and failed in this run, or recorded so by an earlier run. */
  unreadable: UnreadableFile[];
  /** Files forgotten because they changed or disappeared. */
  forgotten: number;
  saves: number;
  /** Problems listing the folders. */
  problems: string[];
}

const macrotask = () => new Promise<void>((r) => setImmediate(r));

function under(path: string, dirs: string[]): boolean {
  return dirs.some((d) => path === d || path.startsWith(d.endsWith(sep) ? d : d + sep));
}

/**
 * One run's bookkeeping, whoever scores the images (this thread one at a time, or workers in
 * batches): forget what changed or disappeared, the files left to read, progress, periodic saves,
 * and the result.
 */
export class IndexRun {
  private readonly t0 = performance.now();
  private readonly saveEveryMs: number;
  private readonly saveEveryImages: number;
  readonly forgotten: number;
  /** Files to read, in listing order. */
  readonly todo: FileStat[];
  readonly p: IndexProgress;
  private saves = 0;
  private lastSave = performance.now();
  private sinceSave = 0;
  /** Files read and found unreadable in this run. */
  readonly failedNow: UnreadableFile[] = [];

  constructor(
    private readonly indexer: TopKIndexer,
    private readonly listing: Listing,
    private readonly opts: IndexRunOptions,
  ) {
    this.saveEveryMs = opts.saveEveryMs ?? 20_000;
    this.saveEveryImages = opts.saveEveryImages ?? Infinity;
    // Forget what changed or disappeared, so the tables never point at stale pixels.
    let forgotten = 0;
    if (opts.pruneMissing !== false) {
      const found = new Map(listing.files.map((f) => [f.path, f]));
      const stale = indexer.knownPaths().filter((p) => {
        const f = found.get(p);
        if (f) return !indexer.isKnown(f);
        return under(p, listing.completeDirs);
      });
      forgotten = stale.length;
      if (stale.length) indexer.forget(stale);
    }
    this.forgotten = forgotten;
    this.todo = listing.files.filter((f) => !indexer.isKnown(f));
    this.p = {
      total: this.todo.length,
      done: 0,
      added: 0,
      failed: 0,
      skipped: listing.files.length - this.todo.length,
      current: null,
      elapsedMs: 0,
      imagesPerSecond: 0,
      etaMs: null,
    };
  }

  private async save(): Promise<void> {
    if (!this.opts.saveTo) return;
    await this.indexer.save(this.opts.saveTo);
    this.saves++;
    this.lastSave = performance.now();
    this.sinceSave = 0;
    this.opts.onSaved?.({ ...this.p });
  }

  /** `added` images scored and `failed` unreadable ones recorded: progress, and a save when due. */
  async advance(added: number, failed: number): Promise<void> {
    const p = this.p;
    p.added += added;
    p.failed += failed;
    p.done += added + failed;
    this.sinceSave += added + failed;
    p.elapsedMs = performance.now() - this.t0;
    p.imagesPerSecond = p.done / (p.elapsedMs / 1000);
    p.etaMs = p.imagesPerSecond > 0 ? ((p.total - p.done) / p.imagesPerSecond) * 1000 : null;
    this.opts.onProgress?.({ ...p });
    if (this.indexer.dirty && (performance.now() - this.lastSave >= this.saveEveryMs || this.sinceSave >= this.saveEveryImages)) await this.save();
  }

  /** The last save and the result. */
  async finish(aborted: boolean): Promise<IndexRunResult> {
    const p = this.p;
    p.current = null;
    if (this.indexer.dirty || (this.opts.saveTo && this.saves === 0 && this.forgotten > 0)) await this.save();
    p.elapsedMs = performance.now() - this.t0;
    const newly = new Set(this.failedNow.map((f) => f.path));
    const earlier = this.listing.files
      .filter((f) => !newly.has(f.path))
      .map((f) => this.indexer.unreadableEntry(f.path))
      .filter((u): u is UnreadableFile => !!u);
    return { ...p, aborted, unreadable: [...this.failedNow, ...earlier], forgotten: this.forgotten, saves: this.saves, problems: this.listing.problems };
  }
}

/** Index the given files (already listed), one at a time. */
export async function indexFiles(indexer: TopKIndexer, listing: Listing, opts: IndexRunOptions = {}): Promise<IndexRunResult> {
  const yieldToLive = opts.yieldToLive ?? macrotask;
  const run = new IndexRun(indexer, listing, opts);
  const { todo, p } = run;
  let aborted = !!listing.aborted || !!opts.signal?.aborted;
  let next: Promise<PreparedImage> | null = todo.length && !aborted ? prepareImage(todo[0]!.path, indexer.inputSize, todo[0]) : null;
  try {
    for (let i = 0; i < todo.length && !aborted; i++) {
      if (opts.signal?.aborted) {
        aborted = true;
        break;
      }
      p.current = todo[i]!.path;
      const prepared = await next!;
      // Decode the next image (sharp works off the main thread) while this one runs.
      next = i + 1 < todo.length ? prepareImage(todo[i + 1]!.path, indexer.inputSize, todo[i + 1]) : null;
      await yieldToLive();
      if (opts.signal?.aborted) {
        if (prepared.ok) prepared.pixels.dispose();
        aborted = true;
        break;
      }
      if (!prepared.ok) run.failedNow.push(prepared.file);
      const added = await indexer.addPrepared(prepared);
      await run.advance(added ? 1 : 0, added ? 0 : 1);
    }
  } finally {
    // A decode still in flight after a stop: free its pixels.
    if (next) {
      const left = await next.catch(() => null);
      if (left?.ok) left.pixels.dispose();
    }
  }
  return run.finish(aborted);
}

export interface IndexJob {
  /** Resolves when indexing ends (finished or stopped); the index is saved by then. */
  readonly done: Promise<IndexRunResult>;
  /** The latest progress. */
  readonly progress: IndexProgress | null;
  /** Ask to stop after the current image; resolves with the result once saved. */
  stop(): Promise<IndexRunResult>;
}

/** How a listing is indexed: indexFiles, or indexFilesInBatches with its scorer (batches.ts). */
export type IndexListing = (indexer: TopKIndexer, listing: Listing, opts: IndexRunOptions) => Promise<IndexRunResult>;

/**
 * Index folders in the background (for the app): list, then index them with `index` — by default
 * one image at a time in this thread, awaiting `yieldToLive()` before each. Errors (e.g. the index
 * cannot be written) reject `done`.
 */
export function startIndexing(indexer: TopKIndexer, roots: string[], opts: Omit<IndexRunOptions, 'signal'> = {}, index: IndexListing = indexFiles): IndexJob {
  const ctrl = new AbortController();
  let progress: IndexProgress | null = null;
  const done = (async () => {
    // A stop during the walk ends it at the next folder; indexFiles then stops before the first image.
    const listing = await listImageFiles(roots, { signal: ctrl.signal, onProgress: opts.onListing });
    return index(indexer, listing, {
      ...opts,
      signal: ctrl.signal,
      onProgress: (p) => {
        progress = p;
        opts.onProgress?.(p);
      },
    });
  })();
  return {
    done,
    get progress() {
      return progress;
    },
    stop() {
      ctrl.abort();
      return done;
    },
  };
}
