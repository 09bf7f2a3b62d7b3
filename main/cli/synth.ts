// deepvis synth: synthesise a unit's preferred image(s) by regularised gradient ascent, one PNG per
// seed plus one JSON sidecar with every setting, the objective curves and the timing.
import { UNIT_HELP, unitOption } from './unit-option.js';
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Command, InvalidArgumentError, Option } from 'commander';
import { DEFAULT_MODEL_ID, encodePng } from '../engine/index.js';
import { writeFileAtomic } from '../persist/atomic-file.js';
import { PRESET_NAMES, presetSettings, resolveTarget, synthesize, type SynthSettings } from '../engine/synthesis/index.js';
import { CliError, EXIT_BAD_INPUT, findModel, globals, modelsDirOf, oneLine, openModel, out, outJson, positiveInt, startBackend } from './common.js';
import { ProgressLine } from './progress.js';

function sizeArg(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 32 || n > 1024) throw new InvalidArgumentError('expected a size in pixels between 32 and 1024.');
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
    .option('-s, --seeds <n>', 'number of seeds (images), optimised together as one batch', positiveInt, 1)
    .option('--seed-base <n>', 'first seed value (seeds are base, base+1, …)', (v) => Number(v), 1)
    .option('--size <px>', 'image size (square)', sizeArg)
    .option('-i, --iterations <n>', "number of steps (default: the preset's)", positiveInt)
    .requiredOption('-o, --out <dir>', 'output folder')
    .option('--json', 'print a JSON summary on stdout')
    .action(async (opts, cmd: Command) => {
      const g = globals(cmd);
      const dir = modelsDirOf(g);
      const entry = findModel(opts.model, dir, true);
      const backend = await startBackend(g);
      const model = await openModel(entry, dir);
      let target;
      try {
        const ref = unitOption(model, opts.layer, opts.unit);
        target = resolveTarget(model, ref.layer, ref.unit);
      } catch (e) {
        if (e instanceof CliError) throw e;
        throw new CliError(oneLine(e), EXIT_BAD_INPUT);
      }
      const settings: SynthSettings = presetSettings(opts.preset);
      if (opts.iterations) settings.iterations = opts.iterations;
      const seeds = Array.from({ length: opts.seeds }, (_, i) => opts.seedBase + i);
      const size: [number, number] = opts.size ? [opts.size, opts.size] : model.inputSize;
      const outDir = resolve(opts.out);
      mkdirSync(outDir, { recursive: true });

      const bar = new ProgressLine(`synth ${model.id} ${target.label} ${opts.preset}`, settings.iterations);
      const result = await synthesize({
        model,
        objective: target.objective,
        settings,
        seeds,
        size,
        onProgress: (p) => {
          const best = Math.max(...p.objective);
          const prob = p.targetProb ? `  p=${Math.max(...p.targetProb).toFixed(3)}` : '';
          bar.update(p.iteration + 1, `objective ${best.toFixed(2)}${prob}`);
        },
      });
      bar.done();

      const base = slug(`${model.id}_${target.label}_${opts.preset}_${size[0]}px`);
      const images = [];
      for (const im of result.images) {
        const path = join(outDir, `${base}_seed${im.seed}.png`);
        await writeFileAtomic(path, await encodePng(im.rgb, im.width, im.height));
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
        seconds_to_target: result.secondsToTarget,
        images: images.map((im, i) => ({ ...im, curve: result.images[i]!.curve })),
      };
      await writeFileAtomic(join(outDir, `${base}.json`), JSON.stringify(sidecar, null, 2) + '\n');
      if (opts.json) await outJson(summary);
      else {
        const lines = images.map(
          (im) =>
            `${im.path}  objective ${im.objective_start.toFixed(2)} → ${im.objective_best.toFixed(2)}` +
            (im.top5 ? `  top-1 ${im.top5[0]!.name.split(',')[0]} ${(im.top5[0]!.prob * 100).toFixed(1)}%` : ''),
        );
        await out(lines.join('\n') + `\n${result.seconds.toFixed(1)} s\n`);
      }
    });
}
