// deepvis init DIR [--preprocess NAME] [--force]: write the descriptor DeepVis infers for a bare
// model folder (model.json + weights) to DIR/deepvis.json, for the user to edit. The inferred
// guesses are printed so the user knows which fields to check.
import { existsSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Command, Option } from 'commander';
import { inferDescriptor, PREPROCESS_PRESET_NAMES, type PreprocessPreset } from '../engine/model-infer.js';
import { CliError, EXIT_BAD_INPUT, EXIT_FAILURE, oneLine, out, outJson, warn } from './common.js';

export function initCommand(): Command {
  return new Command('init')
    .description('write the descriptor (deepvis.json) DeepVis infers for a model folder holding model.json, to edit')
    .argument('<dir>', 'the model folder (model.json and its weight files, perhaps labels.txt)')
    .addOption(
      new Option('--preprocess <name>', 'input convention: 0-1 (pixel/255), -1-1 (pixel/127.5−1), caffe (BGR minus the ImageNet mean), raw (0…255)').choices(
        PREPROCESS_PRESET_NAMES,
      ),
    )
    .option('--force', 'replace an existing deepvis.json')
    .option('--json', 'print {path, descriptor, inferred} as JSON')
    .action(async (dirArg: string, opts: { preprocess?: PreprocessPreset; force?: boolean; json?: boolean }) => {
      const dir = resolve(dirArg);
      if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new CliError(`${dir}: no such folder`, EXIT_BAD_INPUT);
      if (!existsSync(join(dir, 'model.json'))) {
        throw new CliError(`${dir}: no model.json here — point init at the folder tensorflowjs_converter or model.save() wrote`, EXIT_BAD_INPUT);
      }
      const target = join(dir, 'deepvis.json');
      if (existsSync(target) && !opts.force) throw new CliError(`${target} already exists — edit it, or pass --force to replace it`, EXIT_BAD_INPUT);
      let inferred;
      try {
        inferred = await inferDescriptor(dir, { preprocess: opts.preprocess, fillChannels: true });
      } catch (e) {
        throw new CliError(oneLine(e), EXIT_FAILURE);
      }
      // Written beside and renamed: an interrupted init leaves no half descriptor behind.
      const tmp = `${target}.${process.pid}.tmp`;
      try {
        writeFileSync(tmp, JSON.stringify(inferred.descriptor, null, 2) + '\n', { flag: 'wx' });
        renameSync(tmp, target);
      } catch (e) {
        rmSync(tmp, { force: true });
        throw new CliError(`cannot write ${target}: ${oneLine(e)}`, EXIT_FAILURE);
      }
      if (opts.json) return outJson({ path: target, descriptor: inferred.descriptor, inferred: inferred.notes });
      for (const n of inferred.notes) warn(`inferred: ${n}`);
      await out(`${target}\n`);
    });
}
