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
import { listImageFiles, type Listing, type WalkProgress } from './walk.js';

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

/** Index the given files (already listed), one at a time. */
export async function indexFiles(indexer: TopKIndexer, listing: Listing, opts: IndexRunOptions = {}): Promise<IndexRunResult> {
  const t0 = performance.now();
  const yieldToLive = opts.yieldToLive ?? macrotask;
  const saveEveryMs = opts.saveEveryMs ?? 20_000;
  const saveEveryImages = opts.saveEveryImages ?? Infinity;

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

  const todo = listing.files.filter((f) => !indexer.isKnown(f));
  const p: IndexProgress = {
    total: todo.length,
    done: 0,
    added: 0,
    failed: 0,
    skipped: listing.files.length - todo.length,
    current: null,
    elapsedMs: 0,
    imagesPerSecond: 0,
    etaMs: null,
  };
  let saves = 0;
  let lastSave = performance.now();
  let sinceSave = 0;
  const save = async () => {
    if (!opts.saveTo) return;
    await indexer.save(opts.saveTo);
    saves++;
    lastSave = performance.now();
    sinceSave = 0;
    opts.onSaved?.({ ...p });
  };
  const failedNow: UnreadableFile[] = [];
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
      if (!prepared.ok) failedNow.push(prepared.file);
      if (await indexer.addPrepared(prepared)) p.added++;
      else p.failed++;
      p.done++;
      sinceSave++;
      p.elapsedMs = performance.now() - t0;
      p.imagesPerSecond = p.done / (p.elapsedMs / 1000);
      p.etaMs = p.imagesPerSecond > 0 ? ((p.total - p.done) / p.imagesPerSecond) * 1000 : null;
      opts.onProgress?.({ ...p });
      if (indexer.dirty && (performance.now() - lastSave >= saveEveryMs || sinceSave >= saveEveryImages)) await save();
    }
  } finally {
    // A decode still in flight after a stop: free its pixels.
    if (next) {
      const left = await next.catch(() => null);
      if (left?.ok) left.pixels.dispose();
    }
  }
  p.current = null;
  if (indexer.dirty || (opts.saveTo && saves === 0 && forgotten > 0)) await save();
  p.elapsedMs = performance.now() - t0;
  const newly = new Set(failedNow.map((f) => f.path));
  const earlier = listing.files
    .filter((f) => !newly.has(f.path))
    .map((f) => indexer.unreadableEntry(f.path))
    .filter((u): u is UnreadableFile => !!u);
  return { ...p, aborted, unreadable: [...failedNow, ...earlier], forgotten, saves, problems: listing.problems };
}

export interface IndexJob {
  /** Resolves when indexing ends (finished or stopped); the index is saved by then. */
  readonly done: Promise<IndexRunResult>;
  /** The latest progress. */
  readonly progress: IndexProgress | null;
  /** Ask to stop after the current image; resolves with the result once saved. */
  stop(): Promise<IndexRunResult>;
}

/**
 * Index folders in the background (for the app): list, then index one image at a time, awaiting
 * `yieldToLive()` before each. Errors (e.g. the index cannot be written) reject `done`.
 */
export function startIndexing(indexer: TopKIndexer, roots: string[], opts: Omit<IndexRunOptions, 'signal'> = {}): IndexJob {
  const ctrl = new AbortController();
  let progress: IndexProgress | null = null;
  const done = (async () => {
    // A stop during the walk ends it at the next folder; indexFiles then stops before the first image.
    const listing = await listImageFiles(roots, { signal: ctrl.signal, onProgress: opts.onListing });
    return indexFiles(indexer, listing, {
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
