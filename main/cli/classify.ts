// deepvis classify [--model ID] [--top K] [--json] IMAGE…
// Each image (any JPEG/PNG/WebP…, any size) is centre-cropped and resized to the model's input;
// the readable ones go through the model together (batches of up to BATCH). An unreadable image
// gets a one-line error on stderr and an {"image","error"} entry in the JSON results; the others
// are still classified, and the exit code is 2.
import { stat } from 'node:fs/promises';
import { Command, Option } from 'commander';
import * as tf from '@tensorflow/tfjs-core';
import { DEFAULT_MODEL_ID, loadImageForModel, type Model, type TopK } from '../engine/index.js';
import {
  CliError,
  EXIT_BAD_INPUT,
  findModel,
  globals,
  modelsDirOf,
  oneLine,
  openModel,
  out,
  outJson,
  positiveInt,
  startBackend,
  verbose,
  warn,
  noSoftmaxNote,
} from './common.js';

/** Images per forward pass: all of them for ordinary calls, bounded so huge lists stay in memory. */
const BATCH = 32;
/** Images decoded at once (sharp decodes off the main thread). */
const DECODE_CONCURRENCY = 2;

export interface ClassifyResult {
  image: string;
  /** The top-K classes (K = --top, default 5), most probable first; absent when `error` is set. */
  top5?: TopK[];
  /** Why the image could not be classified; such an image has no `top5`. */
  error?: string;
}

export interface ClassifyOutput {
  backend: string;
  model: string;
  /** False when the model's head has no softmax: the probabilities are a softmax DeepVis applies to its outputs. */
  softmaxHead: boolean;
  results: ClassifyResult[];
}

interface ClassifyOptions {
  model: string;
  top: number;
  json?: boolean;
}

async function readStdin(): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

/** Decode one argument to [1,h,w,3] pixels, or throw a one-line error naming it. */
async function loadOne(arg: string, size: [number, number]): Promise<tf.Tensor4D> {
  if (arg === '-') {
    const buf = await readStdin();
    if (buf.length === 0) throw new Error('-: empty input on stdin');
    return loadImageForModel(buf, size, '-');
  }
  let st;
  try {
    st = await stat(arg);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new Error(`${arg}: ${code === 'ENOENT' ? 'no such file' : `cannot open (${oneLine(e)})`}`);
  }
  if (st.isDirectory()) throw new Error(`${arg}: is a directory, not an image`);
  if (st.size === 0) throw new Error(`${arg}: empty file (0 bytes), not an image`);
  return loadImageForModel(arg, size, arg);
}

async function decodeAll(
  images: string[],
  size: [number, number],
): Promise<Array<{ pixels: tf.Tensor4D } | { error: string }>> {
  const slots: Array<{ pixels: tf.Tensor4D } | { error: string }> = new Array(images.length);
  let next = 0;
  const worker = async () => {
    while (next < images.length) {
      const i = next++;
      try {
        slots[i] = { pixels: await loadOne(images[i]!, size) };
      } catch (e) {
        const msg = oneLine(e);
        slots[i] = { error: msg.startsWith(images[i]!) ? msg : `${images[i]}: ${msg}` };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(DECODE_CONCURRENCY, images.length) }, worker));
  return slots;
}

/** Classify decoded images in batches; frees the pixel tensors. */
async function classifyBatches(model: Model, pixels: tf.Tensor4D[], k: number): Promise<TopK[][]> {
  const outRows: TopK[][] = [];
  for (let start = 0; start < pixels.length; start += BATCH) {
    const group = pixels.slice(start, start + BATCH);
    const batch = group.length === 1 ? group[0]! : tf.concat(group, 0);
    try {
      outRows.push(...(await model.classify(batch, k)));
    } finally {
      if (batch !== group[0]) batch.dispose();
      tf.dispose(group);
    }
  }
  return outRows;
}

function pct(p: number): string {
  return `${(p * 100).toFixed(1)}%`.padStart(6);
}

function table(o: ClassifyOutput): string {
  const lines = [`model ${o.model}, backend ${o.backend}`];
  for (const r of o.results) {
    lines.push('', r.image);
    if (r.error) {
      lines.push(`  error: ${r.error}`);
      continue;
    }
    const w = Math.max(...r.top5!.map((t) => String(t.index).length));
    r.top5!.forEach((t, j) => {
      lines.push(`  ${String(j + 1).padStart(2)}. ${pct(t.prob)}  ${String(t.index).padStart(w)}  ${t.wnid ?? '-'.padEnd(9)}  ${t.name}`);
    });
  }
  return lines.join('\n') + '\n';
}

export async function runClassify(images: string[], opts: ClassifyOptions, cmd: Command): Promise<number> {
  const g = globals(cmd);
  const dir = modelsDirOf(g);
  if (images.filter((a) => a === '-').length > 1) throw new CliError('stdin ("-") can be given only once', EXIT_BAD_INPUT);
  const entry = await findModel(opts.model, dir, true);
  const backend = await startBackend(g);
  const t0 = performance.now();
  const model = await openModel(entry, dir);
  verbose(g, `loaded ${model.id} in ${(performance.now() - t0).toFixed(0)} ms`);
  // The default top-5 lists all classes of a model with fewer; an explicit --top is checked.
  if (cmd.getOptionValueSource('top') === 'default') opts.top = Math.min(opts.top, model.classes.length);
  if (opts.top > model.classes.length) {
    throw new CliError(`--top ${opts.top} is more than the ${model.classes.length} classes of ${model.id}`, EXIT_BAD_INPUT);
  }
  try {
    const t1 = performance.now();
    const decoded = await decodeAll(images, model.inputSize);
    for (const d of decoded) if ('error' in d) warn(d.error);
    const good = decoded.flatMap((d) => ('pixels' in d ? [d.pixels] : []));
    const t2 = performance.now();
    const rows = await classifyBatches(model, good, opts.top);
    verbose(g, `decoded ${good.length} image(s) in ${(t2 - t1).toFixed(0)} ms, classified in ${(performance.now() - t2).toFixed(0)} ms`);
    let r = 0;
    const results: ClassifyResult[] = decoded.map((d, i) =>
      'pixels' in d ? { image: images[i]!, top5: rows[r++]! } : { image: images[i]!, error: d.error },
    );
    const output: ClassifyOutput = { backend: backend.backend, model: model.id, softmaxHead: model.softmaxHead, results };
    if (!model.softmaxHead) warn(noSoftmaxNote(model));
    await (opts.json ? outJson(output) : out(table(output)));
    return results.some((x) => x.error) ? EXIT_BAD_INPUT : 0;
  } finally {
    model.dispose();
  }
}

export function classifyCommand(): Command {
  return new Command('classify')
    .description('classify images (any JPEG/PNG, any size; centre-cropped to the model input). "-" reads one image from stdin')
    .argument('<images...>', 'image files')
    .addOption(new Option('-m, --model <id>', 'model id (see `deepvis models`)').default(DEFAULT_MODEL_ID))
    .addOption(new Option('-k, --top <k>', 'number of classes per image').argParser(positiveInt).default(5))
    .option('--json', 'print one JSON object {backend, model, results:[{image, top5|error}]} on stdout')
    .addHelpText(
      'after',
      '\nUnreadable images get a one-line error on stderr (and an "error" entry in the JSON results);\n' +
        'the other images are still classified, and the exit code is 2.',
    )
    .action(async (images: string[], opts: ClassifyOptions, cmd: Command) => {
      process.exitCode = await runClassify(images, opts, cmd);
    });
}
