// Indexing with the images scored elsewhere (job worker threads): the files of a run are cut into
// small batches, each scored into a fresh index of its own (scoreFiles, where the model is), and
// the batches merged here in listing order as they come back — so the index is the one a single
// run over the same files builds, and progress, periodic saves and a stop work as in indexFiles.
// Each batch carries the index's thresholds when it is sent (its floors): an image below them
// would lose at the merge too (thresholds only rise, and every batch merged before the batch was
// sent comes before it in the listing), and keeping, positioning and merging every unit's first
// k images of every batch cost 40 % more per image than one index (mobilenet-v1-0.75).
import type { Model } from '../model.js';
import { TopKIndexer, type IndexShard } from './indexer.js';
import type { LayerThresholds } from './scoring.js';
import { indexFiles, IndexRun, type IndexRunOptions, type IndexRunResult } from './indexing.js';
import type { FileStat, Listing } from './walk.js';

/** Score a batch of files into a shard, keeping only what beats `floors`; null: cancelled by the signal. */
export type BatchScorer = (files: FileStat[], k: number, signal: AbortSignal, floors: LayerThresholds[]) => Promise<IndexShard | null>;

export interface BatchRunOptions extends Omit<IndexRunOptions, 'yieldToLive'> {
  scoreBatch: BatchScorer;
  /** Batches in flight at once (the workers that score them). */
  concurrency: number;
  /** Images per batch (default 8: a stop waits for at most one batch per worker). */
  batchSize?: number;
}

/** Index the listed files, scored in batches by `scoreBatch`, merged in order. */
export async function indexFilesInBatches(indexer: TopKIndexer, listing: Listing, opts: BatchRunOptions): Promise<IndexRunResult> {
  const run = new IndexRun(indexer, listing, opts);
  const size = Math.max(1, opts.batchSize ?? 8);
  const batches: FileStat[][] = [];
  for (let i = 0; i < run.todo.length; i += size) batches.push(run.todo.slice(i, i + size));
  // A stop cancels the batches in flight; those already scored are still merged and saved.
  const stop = new AbortController();
  const onAbort = () => stop.abort();
  opts.signal?.addEventListener('abort', onAbort, { once: true });
  if (listing.aborted || opts.signal?.aborted) stop.abort();
  const inFlight: { files: FileStat[]; shard: Promise<IndexShard | null> }[] = [];
  let next = 0;
  let cancelled = false;
  const launch = () => {
    while (!stop.signal.aborted && inFlight.length < Math.max(1, opts.concurrency) && next < batches.length) {
      const files = batches[next++]!;
      const shard = opts.scoreBatch(files, indexer.k, stop.signal, indexer.thresholds());
      shard.catch(() => {}); // awaited in order below; an early failure must not go unhandled meanwhile
      inFlight.push({ files, shard });
    }
  };
  try {
    launch();
    while (inFlight.length) {
      const batch = inFlight[0]!;
      run.p.current = batch.files.at(-1)!.path;
      let shard: IndexShard | null;
      try {
        shard = await batch.shard;
      } catch (e) {
        stop.abort();
        await Promise.allSettled(inFlight.map((b) => b.shard));
        throw e;
      }
      inFlight.shift();
      if (!shard) {
        // Cancelled by our stop, or by the pool (a model switch, shutting down): the run ends here.
        cancelled = true;
        stop.abort();
        continue;
      }
      const { added, failed } = indexer.mergeShard(shard);
      // After the merge: the next batch's floors include this one.
      launch();
      run.failedNow.push(...shard.unreadable);
      await run.advance(added, failed);
    }
  } finally {
    opts.signal?.removeEventListener('abort', onAbort);
  }
  return run.finish(!!listing.aborted || cancelled || next < batches.length);
}

/** Where the model is (a job worker): score files into a fresh index of their own, above `floors` when given. */
export async function scoreFiles(model: Model, files: FileStat[], k: number, signal: AbortSignal, floors?: LayerThresholds[]): Promise<IndexShard | null> {
  const shardIndex = TopKIndexer.create(model, k, floors);
  const r = await indexFiles(shardIndex, { files, problems: [], completeDirs: [] }, { pruneMissing: false, signal });
  return r.aborted ? null : shardIndex.toShard();
}
