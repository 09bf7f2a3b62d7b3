// deepvis class [--model ID] [--json] CLASS: resolve a class given as the model's own index, a
// WordNet id or an exact name, in that model's class order. Needs only the class files (no
// weights, no backend), so it is instant.
import { Command, Option } from 'commander';
import { DEFAULT_MODEL_ID, resolveClass } from '../engine/index.js';
import { CliError, EXIT_BAD_INPUT, findModel, globals, modelsDirOf, oneLine, out, outJson, readModelClasses } from './common.js';

export function classCommand(): Command {
  return new Command('class')
    .description("look up a class by index, WordNet id (n01530575) or exact name, in the model's own class order")
    .argument('<class>', 'index, WordNet id or name (the full ImageNet name or one of its synonyms, any case)')
    .addOption(new Option('-m, --model <id>', 'model id (see `deepvis models`)').default(DEFAULT_MODEL_ID))
    .option('--json', 'print {index, wnid, name} as JSON')
    .action(async (spec: string, opts: { model: string; json?: boolean }, cmd: Command) => {
      const dir = modelsDirOf(globals(cmd));
      const entry = await findModel(opts.model, dir, false);
      const classes = await readModelClasses(entry);
      let c;
      try {
        c = resolveClass(classes, spec, entry.id);
      } catch (e) {
        throw new CliError(oneLine(e), EXIT_BAD_INPUT);
      }
      const result = { index: c.index, wnid: c.wnid, name: c.name };
      await (opts.json ? outJson(result) : out(`${c.index}\t${c.wnid ?? '-'}\t${c.name}\n`));
    });
}
