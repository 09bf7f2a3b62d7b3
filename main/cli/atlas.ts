// deepvis atlas: synthesise every unit of a layer into a resumable, portable cache (see
// main/engine/synthesis/atlas.ts for the layout). Ctrl-C stops after saving what is finished;
// running the same command again continues.
import { Command, InvalidArgumentError, Option } from 'commander';
import { DEFAULT_MODEL_ID } from '../engine/index.js';
import { buildAtlas } from '../engine/synthesis/atlas.js';
import { PRESETS, PRESET_NAMES } from '../engine/synthesis/index.js';
import { checkJobFits, measureFootprint } from '../engine/memory-budget.js';
import { JobScheduler, jobBackend, poolBatchRunner, poolSize } from '../session/scheduler.js';
import { CliError, EXIT_BAD_INPUT, findModel, globals, hostConfig, modelsDirOf, oneLine, openModel, out, outJson, positiveInt, startBackend } from './common.js';
import { ProgressLine } from './progress.js';

function unitRange(v: string): [number, number] {
  const m = v.trim().match(/^(\d+)(?:-(\d+))?$/);
  if (!m) throw new InvalidArgumentError('expected a unit or a range like 0-63.');
  const a = Number(m[1]);
  const b = m[2] === undefined ? a : Number(m[2]);
  if (b < a) throw new InvalidArgumentError('the range must go upwards, like 0-63.');
  return [a, b];
}

export function atlasCommand(): Command {
  return new Command('atlas')
    .description("synthesise every unit of a layer into a cached atlas (resumable; the app's pattern mode shows it)")
    .addOption(new Option('-m, --model <id>', 'model id').default(DEFAULT_MODEL_ID))
    .requiredOption('-l, --layer <layer>', 'layer name or display name (or "logits")')
    .option('--units <a-b>', 'only these units (inclusive range)', unitRange)
    .addOption(new Option('-p, --preset <name>', 'settings preset').choices(PRESET_NAMES.filter((p) => PRESETS[p].kind !== 'frame')).default('paper-3'))
    .option('-s, --seeds <n>', 'images per unit', positiveInt, 1)
    .option('-i, --iterations <n>', "steps per unit (default: the preset's)", positiveInt)
    .option('--size <px>', 'image size (square)', positiveInt)
    .option('--batch <n>', 'units × seeds optimised together per step', positiveInt, 8)
    .option('-w, --workers <n>', 'job workers, each a thread with its own engine (default: $DEEPVIS_WORKERS, else one per core)', positiveInt)
    .option('-o, --out <dir>', 'atlas root folder (default: $DEEPVIS_ATLAS_DIR or ~/.cache/deepvis/atlas)')
    .option('--json', 'print a JSON summary on stdout')
    .action(async (opts, cmd: Command) => {
      const g = globals(cmd);
      const dir = modelsDirOf(g);
      const entry = await findModel(opts.model, dir, true);
      const backend = await startBackend(g);
      const model = await openModel(entry, dir);
      try {
        model.layer(opts.layer);
      } catch (e) {
        throw new CliError(oneLine(e), EXIT_BAD_INPUT);
      }
      // One batch holds whole units: its items are units × seeds (at least one unit).
      const items = Math.max(1, Math.floor(opts.batch / opts.seeds)) * opts.seeds;
      const size = opts.size ?? model.inputSize[0];
      const fit = checkJobFits({ model, backend: backend.backend, images: items, size: [size, size], footprint: await measureFootprint(model) }, 'batch items');
      if (!fit.ok) throw new CliError(`${fit.message} (--batch ${opts.batch}, --seeds ${opts.seeds})`, EXIT_BAD_INPUT);
      const c = hostConfig();
      const pool = new JobScheduler({ backend: jobBackend(backend.choice), modelsDir: dir, workers: poolSize(opts.workers ?? c.workers, { liveWorker: false }), ortThreads: c.ortThreads });
      const abort = new AbortController();
      const onSigint = () => {
        process.stderr.write('\ndeepvis: stopping after the current batch (run the same command again to continue)…\n');
        abort.abort();
      };
      process.once('SIGINT', onSigint);
      let bar: ProgressLine | null = null;
      try {
        const r = await buildAtlas({
          model,
          layer: opts.layer,
          units: opts.units,
          spec: { preset: opts.preset, seeds: opts.seeds, iterations: opts.iterations, size: opts.size },
          root: opts.out ?? c.atlasDir,
          batch: opts.batch,
          signal: abort.signal,
          runBatch: poolBatchRunner(pool, 'cli', model.id),
          concurrency: pool.workers.length,
          onProgress: (p) => {
            bar ??= new ProgressLine(`atlas ${model.id} ${opts.layer}`, p.total);
            bar.update(p.done, p.unitsThisBatch.length ? `units ${p.unitsThisBatch[0]}…${p.unitsThisBatch.at(-1)} step ${p.iteration + 1}/${p.iterations}` : '');
          },
        });
        (bar as ProgressLine | null)?.done();
        const summary = {
          model: model.id,
          layer: r.index.layer,
          dir: r.dir,
          preset: r.index.preset,
          units_done: Object.keys(r.index.done).length,
          unit_count: r.index.unitCount,
          built: r.built,
          skipped: r.skipped,
          sprite: r.index.sprite ? `${r.dir}/${r.index.sprite.file}` : null,
          seconds: r.index.seconds,
          workers: pool.workers.length,
          interrupted: abort.signal.aborted,
        };
        if (opts.json) await outJson(summary);
        else await out(`${summary.dir}\n${summary.units_done}/${summary.unit_count} units (${summary.built} built now, ${summary.skipped} already done)${summary.interrupted ? ' — interrupted' : ''}\n`);
        if (abort.signal.aborted) process.exitCode = 130;
      } finally {
        process.off('SIGINT', onSigint);
        await pool.dispose();
      }
    });
}
