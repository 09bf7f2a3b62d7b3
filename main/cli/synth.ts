// deepvis synth: synthesise a unit's preferred image(s) by regularised gradient ascent, one PNG per
// seed plus one JSON sidecar with every setting, the objective curves and the timing. The seeds run
// on the job-worker pool, one job per seed (synth-seeds.ts).
import { join } from 'node:path';
import { UNIT_HELP, unitOption } from './unit-option.js';
import { Command, InvalidArgumentError, Option } from 'commander';
import * as tf from '@tensorflow/tfjs-core';
import { DEFAULT_MODEL_ID, encodePng, loadImageForModel } from '../engine/index.js';
import { PRESETS, PRESET_NAMES, presetSettings, resolveTarget, SYNTH_LIMITS, type PresetName, type SynthSettings } from '../engine/synthesis/index.js';
import type { SynthFrame } from '../../contract/synthesis.js';
import { JobScheduler, jobBackend, poolSize } from '../session/scheduler.js';
import { CliError, EXIT_BAD_INPUT, findModel, globals, hostConfig, modelsDirOf, noSoftmaxNote, oneLine, openModel, out, outJson, positiveInt, startBackend, warn } from './common.js';
import { runSeedJobs, type SeedResult } from './synth-seeds.js';
import { ensureOutputFolder, OutputFiles } from './output-file.js';
import { ProgressLine } from './progress.js';
import { checkJobFits, measureFootprint } from '../engine/memory-budget.js';

function sizeArg(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < SYNTH_LIMITS.minSize || n > SYNTH_LIMITS.maxSize) throw new InvalidArgumentError(`expected a size in pixels between ${SYNTH_LIMITS.minSize} and ${SYNTH_LIMITS.maxSize}.`);
  return n;
}

/** A seed is a whole number (the generator is seeded with it and it names the file). */
function seedArg(v: string): number {
  const n = Number(v);
  if (!/^\s*-?\d+\s*$/.test(v) || !Number.isSafeInteger(n) || n < 0) throw new InvalidArgumentError('expected a whole number ≥ 0.');
  return n;
}

function seedsArg(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1 || n > SYNTH_LIMITS.maxSeeds) throw new InvalidArgumentError(`expected 1…${SYNTH_LIMITS.maxSeeds} seeds.`);
  return n;
}

function secondsArg(v: string): number {
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0 || n > SYNTH_LIMITS.maxTimeBudgetS) throw new InvalidArgumentError(`expected seconds in (0, ${SYNTH_LIMITS.maxTimeBudgetS}].`);
  return n;
}

/** The start image as the bytes a job carries: the crop-and-resize is done here, once, at the synthesis size. */
async function frameAt(file: string, size: [number, number]): Promise<SynthFrame> {
  const px = await loadImageForModel(file, size);
  try {
    const rgb = await px.data();
    const rgba = new Uint8Array(size[0] * size[1] * 4);
    for (let i = 0, j = 0; i < rgb.length; i += 3, j += 4) {
      rgba[j] = rgb[i]!;
      rgba[j + 1] = rgb[i + 1]!;
      rgba[j + 2] = rgb[i + 2]!;
      rgba[j + 3] = 255;
    }
    return { width: size[1], height: size[0], rgba };
  } finally {
    tf.dispose(px);
  }
}

/** One value when every seed agrees, else each distinct one (e.g. "stop-rule, time-budget"). */
function shared<T>(xs: T[]): T | string {
  const distinct = [...new Set(xs)];
  return distinct.length === 1 ? distinct[0]! : distinct.join(', ');
}

function slug(s: string): string {
  return s.replace(/[^a-z0-9._-]+/gi, '-').replace(/^-+|-+$/g, '').slice(0, 60);
}

export function synthCommand(): Command {
  return new Command('synth')
    .description("synthesise a unit's preferred image by regularised gradient ascent (Yosinski et al. 2015)")
    .addOption(new Option('-m, --model <id>', 'model id').default(DEFAULT_MODEL_ID))
    .option('-l, --layer <layer>', 'layer name or display name, or "logits" for a class (or give --unit layer:unit)')
    .requiredOption('-u, --unit <unit>', UNIT_HELP)
    .addOption(new Option('-p, --preset <name>', 'settings preset').choices(PRESET_NAMES).default('paper-3'))
    .option('-s, --seeds <n>', `number of seeds (images, at most ${SYNTH_LIMITS.maxSeeds}), each optimised on its own, spread over the job workers`, seedsArg, 1)
    .option('--frame <image>', 'preset "frame": the image to start from and stay close to')
    .option('--time-budget <s>', 'fast presets: stop each seed after this many seconds at the latest', secondsArg)
    .option('--seed-base <n>', 'first seed value (seeds are base, base+1, …)', seedArg, 1)
    .option('--size <px>', 'image size (square)', sizeArg)
    .option('-i, --iterations <n>', "number of steps (default: the preset's)", positiveInt)
    .option('-w, --workers <n>', 'job workers, each a thread with its own engine (default: $DEEPVIS_WORKERS, else one per core)', positiveInt)
    .requiredOption('-o, --out <dir>', 'output folder')
    .option('--json', 'print a JSON summary on stdout')
    .action(async (opts, cmd: Command) => {
      const g = globals(cmd);
      const dir = modelsDirOf(g);
      const entry = await findModel(opts.model, dir, true);
      const backend = await startBackend(g);
      const model = await openModel(entry, dir);
      if (!model.softmaxHead) warn(noSoftmaxNote(model));
      let target;
      try {
        const ref = unitOption(model, opts.layer, opts.unit);
        target = resolveTarget(model, ref.layer, ref.unit);
      } catch (e) {
        if (e instanceof CliError) throw e;
        throw new CliError(oneLine(e), EXIT_BAD_INPUT);
      }
      const def = PRESETS[opts.preset as PresetName];
      const settings: SynthSettings = presetSettings(opts.preset);
      if (opts.iterations) settings.iterations = opts.iterations;
      if (opts.timeBudget !== undefined) {
        if (!(def.thetas as readonly string[]).includes('timeBudgetS')) throw new CliError(`--time-budget does not apply to preset ${opts.preset} (it keeps the paper's count; use a fast preset)`, EXIT_BAD_INPUT);
        settings.timeBudgetS = opts.timeBudget;
      }
      if (def.kind === 'frame' && !opts.frame) throw new CliError(`preset ${opts.preset} starts from an image: pass --frame <image>`, EXIT_BAD_INPUT);
      if (def.kind !== 'frame' && opts.frame) throw new CliError(`--frame applies to preset frame only (preset ${opts.preset} starts from noise)`, EXIT_BAD_INPUT);
      const seeds = Array.from({ length: opts.seeds }, (_, i) => opts.seedBase + i);
      const size: [number, number] = opts.size ? [opts.size, opts.size] : model.inputSize;
      // The same estimate as the window's synthesis and atlas batches: a batch too large for the
      // backend would trap wasm or exhaust memory part-way, so it is refused before any work.
      const fit = checkJobFits({ model, backend: backend.backend, images: seeds.length, size, footprint: await measureFootprint(model) });
      if (!fit.ok) throw new CliError(`${fit.message} (--seeds ${opts.seeds}${opts.size ? `, --size ${opts.size}` : ''})`, EXIT_BAD_INPUT);
      let frame: SynthFrame | undefined;
      if (opts.frame) {
        try {
          frame = await frameAt(opts.frame, size);
        } catch (e) {
          throw new CliError(oneLine(e), EXIT_BAD_INPUT);
        }
      }
      const outDir = await ensureOutputFolder(opts.out);
      const base = slug(`${model.id}_${target.label}_${opts.preset}_${size[0]}px`);
      const files = new OutputFiles();
      // Refuse links or folders in the way before the optimisation, not after it.
      await files.checkAll([...seeds.map((s) => join(outDir, `${base}_seed${s}.png`)), join(outDir, `${base}.json`)]);

      const c = hostConfig();
      const pool = new JobScheduler({ backend: jobBackend(backend.choice), modelsDir: dir, workers: Math.min(seeds.length, poolSize(opts.workers ?? c.workers, { liveWorker: false })), ortThreads: c.ortThreads });
      const abort = new AbortController();
      const onSigint = () => {
        process.stderr.write('\ndeepvis: cancelling the synthesis (nothing is written)…\n');
        abort.abort();
      };
      process.once('SIGINT', onSigint);
      // One bar over every seed's steps; a seed its stop rule ends early counts as all its steps.
      const bar = new ProgressLine(`synth ${model.id} ${target.label} ${opts.preset}`, seeds.length * settings.iterations);
      const steps = new Map<number, number>();
      const probs = new Map<number, number>();
      let finished = 0;
      const t0 = performance.now();
      let results: SeedResult[] | null;
      try {
        results = await runSeedJobs({
          pool,
          modelId: model.id,
          layer: target.layer,
          unit: target.unit,
          preset: opts.preset,
          overrides: opts.timeBudget !== undefined ? { timeBudgetS: opts.timeBudget } : undefined,
          seeds,
          size: opts.size,
          iterations: opts.iterations,
          frame,
          signal: abort.signal,
          onProgress: (seed, iteration, done, prob) => {
            // A seed's last step is counted when its result has arrived.
            steps.set(seed, done ? settings.iterations : Math.min(iteration, settings.iterations - 1));
            if (done) finished++;
            if (prob !== null) probs.set(seed, prob);
            const total = [...steps.values()].reduce((a, b) => a + b, 0);
            const p = probs.size ? `  p=${Math.max(...probs.values()).toFixed(3)}` : '';
            bar.update(total, `seeds done ${finished}/${seeds.length}${p}`);
          },
        });
      } finally {
        process.off('SIGINT', onSigint);
        await pool.dispose();
      }
      if (!results) {
        process.exitCode = 130;
        return;
      }
      bar.done();
      const seconds = (performance.now() - t0) / 1000;
      const reached = results.map((r) => r.secondsToTarget).filter((v): v is number => v !== null);
      const result = {
        images: results.map((r) => ({ ...r.images[0]!, iterations: r.iterations, stopReason: r.stopReason })),
        iterations: Math.max(...results.map((r) => r.iterations)),
        seconds,
        stopReason: shared(results.map((r) => r.stopReason)),
        secondsToTarget: reached.length ? Math.min(...reached) : null,
      };

      // A failure part-way (a full disk) removes the images already written: no partial result.
      const { summary, images } = await files.run(async () => {
        const images = [];
        for (const im of result.images) {
          const path = join(outDir, `${base}_seed${im.seed}.png`);
          await files.write(path, await encodePng(im.rgb, im.width, im.height));
          images.push({
            path,
            seed: im.seed,
            objective_start: im.objectiveStart,
            objective_best: im.objectiveBest,
            best_iteration: im.bestIteration,
            target_prob: im.targetProb,
            top5: im.top5,
            iterations_run: im.iterations,
            stop_reason: im.stopReason,
          });
        }
        const summary = {
          model: model.id,
          layer: target.layer,
          unit: target.unit,
          preset: opts.preset,
          images: images.map(({ path, objective_start, objective_best, target_prob, top5 }) => ({ path, objective_start, objective_best, target_prob, top5 })),
          seconds: result.seconds,
        };
        const sidecar = {
          ...summary,
          label: target.label,
          model_checksum: model.checksum,
          backend: backend.backend,
          size,
          seeds,
          settings,
          iterations_run: result.iterations,
          stop_reason: result.stopReason,
          seconds_to_target: result.secondsToTarget,
          images: images.map((im, i) => ({ ...im, curve: result.images[i]!.curve })),
        };
        await files.write(join(outDir, `${base}.json`), JSON.stringify(sidecar, null, 2) + '\n');
        return { summary, images };
      });
      if (opts.json) await outJson({ ...summary, workers: pool.workers.length });
      else {
        const lines = images.map(
          (im) =>
            `${im.path}  objective ${im.objective_start.toFixed(2)} → ${im.objective_best.toFixed(2)}` +
            (im.top5 ? `  top-1 ${im.top5[0]!.name.split(',')[0]} ${(im.top5[0]!.prob * 100).toFixed(1)}%` : ''),
        );
        const why = result.stopReason === 'iterations' ? '' : ` (stopped: ${result.stopReason})`;
        await out(lines.join('\n') + `\n${result.iterations} steps, ${result.seconds.toFixed(1)} s${why}\n`);
      }
    });
}
