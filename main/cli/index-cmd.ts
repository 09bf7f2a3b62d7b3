// deepvis index --model ID DIR… [--k 9] [--index-dir D]
// Scans JPEG/PNG files under the folders (recursively) and keeps, for every unit of every
// displayed layer, the k images that excite it most (max over the unit's map) in one index file
// per model (<index-dir>/<model>.topk.json). Saved atomically every --save-every seconds and at
// the end; Ctrl-C stops after the current image and saves; a later run skips files already
// indexed (same path, size and mtime). Unreadable files are skipped and listed at the end.
import { statSync } from 'node:fs';
import { Command, InvalidArgumentError, Option } from 'commander';
import { DEFAULT_MODEL_ID } from '../engine/index.js';
import { DEFAULT_TOPK, indexPath, lockIndex } from '../engine/topk/index-file.js';
import { TopKIndexer } from '../engine/topk/indexer.js';
import { indexFilesInBatches } from '../engine/topk/batches.js';
import { indexFiles, type IndexProgress, type IndexRunResult } from '../engine/topk/indexing.js';
import { JobScheduler, jobBackend, poolIndexScorer, poolSize } from '../session/scheduler.js';
import { describeWalk, listImageFiles } from '../engine/topk/walk.js';
import {
  CliError,
  EXIT_BAD_INPUT,
  EXIT_FAILURE,
  findModel,
  globals,
  hostConfig,
  modelsDirOf,
  oneLine,
  openModel,
  outJson,
  positiveInt,
  startBackend,
  verbose,
  warn,
} from './common.js';
import { ProgressLine } from './progress.js';

/** Exit code after Ctrl-C / SIGTERM (the index is saved first). */
export const EXIT_INTERRUPTED = 130;

interface IndexOptions {
  model: string;
  k: number;
  indexDir?: string;
  saveEvery: number;
  rebuild?: boolean;
  json?: boolean;
  /** Score the images on this many job workers (in batches) instead of in this process. */
  workers?: number;
}

function positiveSeconds(value: string): number {
  const v = Number(value);
  if (!Number.isFinite(v) || v <= 0) throw new InvalidArgumentError('expected a positive number of seconds.');
  return v;
}

function kib(bytes: number): string {
  return bytes >= 1 << 20 ? `${(bytes / (1 << 20)).toFixed(1)} MB` : `${Math.ceil(bytes / 1024)} kB`;
}

export async function runIndex(dirs: string[], opts: IndexOptions, cmd: Command): Promise<number> {
  const g = globals(cmd);
  const mdir = modelsDirOf(g);
  const entry = await findModel(opts.model, mdir, true);
  const indexDir = opts.indexDir ?? hostConfig().indexDir;
  const path = indexPath(indexDir, entry.id);

  // List first: a typo in a folder name should not cost a model load.
  // A huge tree takes a while: say how far the walk is (Ctrl-C here stops at once: nothing is written yet).
  const listing = await listImageFiles(dirs, { onProgress: (w) => warn(describeWalk(w)), progressEveryMs: 2000 });
  for (const p of listing.problems) warn(p);
  if (listing.files.length === 0) {
    throw new CliError(`no JPEG or PNG files found in ${dirs.join(', ')}`, EXIT_BAD_INPUT);
  }

  let release: () => Promise<void>;
  try {
    release = await lockIndex(path);
  } catch (e) {
    throw new CliError(oneLine(e), EXIT_FAILURE);
  }
  const ctrl = new AbortController();
  let signals = 0;
  const onSignal = (sig: NodeJS.Signals) => {
    signals++;
    if (signals > 1) {
      // Second Ctrl-C: leave now (the last save is intact; the lock is stale and will be taken over).
      process.exit(EXIT_INTERRUPTED);
    }
    const what = opts.workers ? 'the batches being scored' : 'the current image';
    warn(`${sig === 'SIGINT' ? 'interrupted' : sig}: stopping after ${what} and saving the index (Ctrl-C again to quit now)`);
    ctrl.abort();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    const backend = await startBackend(g);
    const model = await openModel(entry, mdir);
    let opened: TopKIndexer | undefined;
    const c = hostConfig();
    const pool = opts.workers ? new JobScheduler({ backend: jobBackend(backend.choice), modelsDir: mdir, workers: poolSize(opts.workers), ortThreads: c.ortThreads }) : null;
    pool?.preload(model.id);
    try {
      if (opts.rebuild) opened = TopKIndexer.create(model, opts.k);
      else {
        try {
          const r = await TopKIndexer.load(model, path, opts.k);
          if (r.rebuilt) warn(r.rebuilt);
          opened = r.indexer;
        } catch (e) {
          throw new CliError(`${oneLine(e)} — remove it or pass --rebuild`, EXIT_FAILURE);
        }
      }
      const indexer = opened;
      const known = indexer.imageCount;
      verbose(g, `index ${path}: ${known} image(s) already, k=${indexer.k}, ${indexer.layers.length} layers`);

      const toScan = listing.files.filter((f) => !indexer.isKnown(f)).length;
      const bar = toScan > 0 ? new ProgressLine(`index ${model.id}`, toScan) : null;
      const short = (p: string) => (p.length > 40 ? '…' + p.slice(-39) : p);
      const runOpts = {
        saveTo: path,
        saveEveryMs: opts.saveEvery * 1000,
        signal: ctrl.signal,
        onProgress: (p: IndexProgress) => bar?.update(p.done, `${p.imagesPerSecond.toFixed(1)} img/s  ${p.current ? short(p.current) : ''}`),
        onSaved: (p: IndexProgress) => verbose(g, `saved ${indexer.imageCount} image(s) to ${path} (${p.done}/${p.total} of this run)`),
      };
      const result: IndexRunResult = pool
        ? await indexFilesInBatches(indexer, listing, { ...runOpts, scoreBatch: poolIndexScorer(pool, 'cli', model.id), concurrency: pool.workers.length })
        : await indexFiles(indexer, listing, runOpts);
      if (bar) {
        if (result.aborted) {
          bar.update(result.done, 'stopped');
          if (process.stderr.isTTY) process.stderr.write('\n');
        } else bar.done(`${result.imagesPerSecond.toFixed(1)} img/s`);
      }

      const size = (() => {
        try {
          return statSync(path).size;
        } catch {
          return 0;
        }
      })();
      const total = indexer.imageCount;
      if (result.unreadable.length) {
        warn(`${result.unreadable.length} unreadable file(s) skipped:`);
        for (const u of result.unreadable) process.stderr.write(`  ${u.path}: ${u.error}\n`);
      }
      const rate = result.done > 0 ? `, ${result.imagesPerSecond.toFixed(1)} images/s` : '';
      warn(
        `${result.aborted ? 'stopped: ' : ''}${result.added} new image(s) indexed, ${result.skipped} unchanged file(s) skipped` +
          (result.forgotten ? `, ${result.forgotten} changed or removed file(s) forgotten` : '') +
          `${rate}; ${total} image(s) in ${path} (${kib(size)})` +
          (result.aborted ? ` — run the same command again to continue` : ''),
      );
      if (opts.json) {
        await outJson({
          model: model.id,
          index: path,
          k: indexer.k,
          images: total,
          added: result.added,
          skipped: result.skipped,
          forgotten: result.forgotten,
          unreadable: result.unreadable.map((u) => ({ path: u.path, error: u.error })),
          aborted: result.aborted,
          seconds: Math.round(result.elapsedMs) / 1000,
          imagesPerSecond: Math.round(result.imagesPerSecond * 100) / 100,
          bytes: size,
        });
      }
      if (result.aborted) return EXIT_INTERRUPTED;
      if (total === 0) {
        warn('no image could be read');
        return EXIT_BAD_INPUT;
      }
      return 0;
    } finally {
      await pool?.dispose();
      opened?.dispose();
      model.dispose();
    }
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await release();
  }
}

export function indexCommand(): Command {
  return new Command('index')
    .description('index folders of images: for every unit of every layer, the images (and positions) that excite it most')
    .argument('<dirs...>', 'folders to scan recursively for JPEG/PNG files (files may be named too)')
    .addOption(new Option('-m, --model <id>', 'model id (see `deepvis models`)').default(DEFAULT_MODEL_ID))
    .addOption(new Option('-k, --k <k>', 'images kept per unit').argParser(positiveInt).default(DEFAULT_TOPK))
    .option('--index-dir <dir>', 'where index files live (default: $DEEPVIS_CACHE_DIR/index, else ~/.cache/deepvis/index)')
    .addOption(new Option('--save-every <seconds>', 'save the index at least this often').argParser(positiveSeconds).default(20))
    .option('--rebuild', 'start a new index even if one exists')
    .option('-w, --workers <n>', 'score the images on this many job workers, in batches (default: in this process)', positiveInt)
    .option('--json', 'print a JSON summary on stdout {model, index, images, added, skipped, unreadable, …}')
    .addHelpText(
      'after',
      '\nThe index is saved atomically; Ctrl-C stops after the current image and saves (exit 130),\n' +
        'and running the same command again continues where it stopped. Unreadable files are skipped\n' +
        'and listed at the end; the exit code is 0 unless no image at all could be read (2).',
    )
    .action(async (dirs: string[], opts: IndexOptions, cmd: Command) => {
      process.exitCode = await runIndex(dirs, opts, cmd);
    });
}
