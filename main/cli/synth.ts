// deepvis synth: synthesise a unit's preferred image(s) by regularised gradient ascent, one PNG per
// seed plus one JSON sidecar with every setting, the objective curves and the timing.
import { join } from 'node:path';
import { UNIT_HELP, unitOption } from './unit-option.js';
import { Command, InvalidArgumentError, Option } from 'commander';
import { DEFAULT_MODEL_ID, encodePng, loadImageForModel } from '../engine/index.js';
import { PRESETS, PRESET_NAMES, presetSettings, resolveTarget, synthesize, SYNTH_LIMITS, type PresetName, type SynthSettings } from '../engine/synthesis/index.js';
import { CliError, EXIT_BAD_INPUT, findModel, globals, modelsDirOf, noSoftmaxNote, oneLine, openModel, out, outJson, positiveInt, startBackend, warn } from './common.js';
import { ensureOutputFolder, OutputFiles } from './output-file.js';
import { ProgressLine } from './progress.js';
import { checkJobFits } from '../engine/memory-budget.js';

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
    .option('-s, --seeds <n>', `number of seeds (images, at most ${SYNTH_LIMITS.maxSeeds}), optimised together as one batch`, seedsArg, 1)
    .option('--frame <image>', 'preset "frame": the image to start from and stay close to')
    .option('--time-budget <s>', 'fast presets: stop after this many seconds at the latest', secondsArg)
    .option('--seed-base <n>', 'first seed value (seeds are base, base+1, …)', seedArg, 1)
    .option('--size <px>', 'image size (square)', sizeArg)
    .option('-i, --iterations <n>', "number of steps (default: the preset's)", positiveInt)
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
      const fit = await checkJobFits({ model, backend: backend.backend, images: seeds.length, size });
      if (!fit.ok) throw new CliError(`${fit.message} (--seeds ${opts.seeds}${opts.size ? `, --size ${opts.size}` : ''})`, EXIT_BAD_INPUT);
      let start;
      if (opts.frame) {
        try {
          start = await loadImageForModel(opts.frame, size);
        } catch (e) {
          throw new CliError(oneLine(e), EXIT_BAD_INPUT);
        }
      }
      const outDir = await ensureOutputFolder(opts.out);
      const base = slug(`${model.id}_${target.label}_${opts.preset}_${size[0]}px`);
      const files = new OutputFiles();
      // Refuse links or folders in the way before the optimisation, not after it.
      await files.checkAll([...seeds.map((s) => join(outDir, `${base}_seed${s}.png`)), join(outDir, `${base}.json`)]);

      const bar = new ProgressLine(`synth ${model.id} ${target.label} ${opts.preset}`, settings.iterations);
      const result = await synthesize({
        model,
        objective: target.objective,
        settings,
        seeds,
        size,
        start,
        onProgress: (p) => {
          if (!p.objective.length) return;
          const best = Math.max(...p.objective);
          const prob = p.targetProb ? `  p=${Math.max(...p.targetProb).toFixed(3)}${p.recognised ? ' recognised' : ''}` : '';
          bar.update(p.iteration + 1, `objective ${best.toFixed(2)}${prob}`);
        },
      });
      start?.dispose();
      bar.done();

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
      if (opts.json) await outJson(summary);
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
