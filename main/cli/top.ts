// deepvis top --model ID --layer L --unit U [--k N] [--index-dir D] [--json]
// A unit's top-k images from the saved index (see `deepvis index`), each with the receptive field
// of the arg-max position in the ORIGINAL image's pixels (centre crop and resize undone, clipped
// to the image). Reads only the index file: no backend, no model weights.
import { existsSync } from 'node:fs';
import { Command, InvalidArgumentError, Option } from 'commander';
import { DEFAULT_MODEL_ID, modelIdentity } from '../engine/index.js';
import { indexPath, TopKIndex } from '../engine/topk/index-file.js';
import { CliError, EXIT_BAD_INPUT, EXIT_FAILURE, findModel, globals, hostConfig, modelsDirOf, oneLine, out, outJson, positiveInt, readModelClasses, warn } from './common.js';
import { UNIT_HELP, unitOption } from './unit-option.js';

interface TopOptions {
  model: string;
  layer?: string;
  unit: string;
  k?: number;
  indexDir?: string;
  json?: boolean;
}

export interface TopRow {
  image: string;
  x: number;
  y: number;
  w: number;
  h: number;
  activation: number;
}

export async function runTop(opts: TopOptions, cmd: Command): Promise<number> {
  const g = globals(cmd);
  const indexDir = opts.indexDir ?? hostConfig().indexDir;
  const path = indexPath(indexDir, opts.model);
  const mdir = modelsDirOf(g);
  if (!existsSync(path)) {
    await findModel(opts.model, mdir, false); // an unknown model id is the better message
    throw new CliError(`no index for ${opts.model} in ${indexDir} — run \`deepvis index --model ${opts.model} DIR…\` first`, EXIT_FAILURE);
  }
  let idx: TopKIndex;
  try {
    idx = await TopKIndex.read(path);
  } catch (e) {
    throw new CliError(oneLine(e), EXIT_FAILURE);
  }
  // Weights changed since indexing? Only a warning: the index still says what it saw.
  try {
    const entry = await findModel(opts.model, mdir, false);
    const id = entry.descriptor ? await modelIdentity(entry.dir, entry.descriptor) : null;
    if (id && id !== idx.checksum) warn(`the index was built from other weights of ${opts.model}; run \`deepvis index --model ${opts.model} --rebuild DIR…\``);
  } catch {
    /* the model is not installed here: the index alone is enough */
  }
  // The unit in any of the search box's forms; class names come from the model's class files.
  let classes: { name: string; wnid: string | null }[] = [];
  let logitsLayer: string | null = null;
  try {
    const entry = await findModel(opts.model, mdir, false);
    logitsLayer = entry.descriptor?.logits ?? null;
    if (!opts.unit.includes(':')) classes = await readModelClasses(entry);
  } catch {
    /* not installed here: layer:unit and numbers still work */
  }
  const ref = unitOption(
    { id: idx.modelId, layers: idx.layers.map((l) => ({ name: l.name, display: l.display, units: l.shape[2] })), logitsLayer, classes },
    opts.layer,
    opts.unit,
  );
  const unit = ref.unit;
  let hits;
  try {
    hits = idx.top(ref.layer, unit, opts.k ?? idx.k);
  } catch (e) {
    throw new CliError(oneLine(e), EXIT_BAD_INPUT);
  }
  const rows: TopRow[] = hits.map((h) => ({ image: h.image, x: h.box.x, y: h.box.y, w: h.box.w, h: h.box.h, activation: h.activation }));
  if (opts.json) {
    await outJson(rows);
    return 0;
  }
  const l = idx.layer(ref.layer);
  const lines = [`${idx.modelId} ${l.display} unit ${unit}: top ${rows.length} of ${idx.imageCount} image(s)`];
  if (!rows.length) lines.push('  (nothing indexed yet)');
  hits.forEach((h, i) => {
    lines.push(
      `${String(i + 1).padStart(3)}. ${h.activation.toFixed(3).padStart(9)}  ${`${h.box.w}×${h.box.h}+${h.box.x}+${h.box.y}`.padEnd(20)} ${h.image}`,
    );
  });
  await out(lines.join('\n') + '\n');
  return 0;
}

export function topCommand(): Command {
  return new Command('top')
    .description("a unit's top images from the index, with the receptive field in each image's own pixels")
    .addOption(new Option('-m, --model <id>', 'model id (see `deepvis models`)').default(DEFAULT_MODEL_ID))
    .option('-l, --layer <layer>', 'layer (display name like pw5, or layer name), or give --unit layer:unit')
    .requiredOption('-u, --unit <unit>', UNIT_HELP)
    .addOption(new Option('-k, --k <n>', 'how many (default: all the index keeps)').argParser(positiveInt))
    .option('--index-dir <dir>', 'where index files live (default: $DEEPVIS_CACHE_DIR/index, else ~/.cache/deepvis/index)')
    .option('--json', 'print [{image, x, y, w, h, activation}] (x, y, w, h: receptive field in original pixels)')
    .action(async (opts: TopOptions, cmd: Command) => {
      process.exitCode = await runTop(opts, cmd);
    });
}
