// deepvis explain --mode backprop|deconv|guided|gradcam (--class C | --layer L --unit U)
//                 [--model ID] [--filter raw|gray|norm|normblur] [--percentile P] [--gradcam-layer L]
//                 [--opacity A] --out FILE.png [--json] IMAGE
// What in the image makes a unit fire: the unit's back-projection onto the image (seeded as in
// the Deep Visualization Toolbox: a channel with its own activation map, a class with a one-hot),
// written as a PNG through a display filter at the window's scale (full contrast at the 99.5th
// percentile, not at the single largest value), or Grad-CAM — its heat map to FILE.png and the heat
// map over the image to FILE.overlay.png. With --json, one JSON object on stdout:
//   {model, backend, mode, target, grid, out, …} where grid is 14 rows of 14 numbers: the
//   non-negative map (the per-pixel RGB norm for the pixel-space modes, the normalised cam for
//   Grad-CAM) average-pooled to 14×14 and divided by the largest cell (so it is 1).
import { UNIT_HELP, unitOption } from './unit-option.js';
import { stat } from 'node:fs/promises';
import { Command, InvalidArgumentError, Option } from 'commander';
import * as tf from '@tensorflow/tfjs-core';
import {
  backproject,
  BACK_MODES,
  DEFAULT_MODEL_ID,
  DISPLAY_FILTERS,
  displayBytes,
  encodePng,
  gradCam,
  jet,
  loadImageForModel,
  overlayHeat,
  pixelNorm,
  resolveClass,
  rgbBytes,
  toByteRange,
  type BackMode,
  type BackTarget,
  type DisplayFilter,
  type Model,
} from '../engine/index.js';
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
  startBackend,
  verbose,
} from './common.js';
import { OutputFiles } from './output-file.js';
import { BACK_PERCENTILE_DEFAULT, BACK_PERCENTILE_MIN } from '../../contract/backprojection.js';

export const EXPLAIN_MODES = [...BACK_MODES, 'gradcam'] as const;
export type ExplainMode = (typeof EXPLAIN_MODES)[number];
const GRID = 14;

interface ExplainOptions {
  model: string;
  mode: ExplainMode;
  class?: string;
  layer?: string;
  unit?: string;
  filter?: DisplayFilter;
  percentile?: number;
  gradcamLayer?: string;
  opacity?: number;
  out: string;
  json?: boolean;
}

export type ExplainTarget =
  | { kind: 'class'; index: number; wnid: string | null; name: string }
  | { kind: 'channel'; layer: string; display: string; unit: number };

export interface ExplainOutput {
  model: string;
  backend: string;
  mode: ExplainMode;
  target: ExplainTarget;
  /** Pixel-space modes: the display filter of the PNG, and the percentile drawn at full contrast (100: the largest value). */
  filter?: DisplayFilter;
  percentile?: number;
  /** Grad-CAM: the layer whose maps were weighted, the overlay file and its opacity. */
  layer?: string;
  overlay?: string;
  opacity?: number;
  grid: number[][];
  out: string;
}

function nonNegativeInt(value: string): number {
  if (!/^\d+$/.test(value.trim())) throw new InvalidArgumentError('expected a non-negative integer.');
  return Number(value);
}

function unitInterval(value: string): number {
  const v = Number(value);
  if (value.trim() === '' || !Number.isFinite(v) || v < 0 || v > 1) throw new InvalidArgumentError('expected a number from 0 to 1.');
  return v;
}

function percentileArg(value: string): number {
  const v = Number(value);
  if (value.trim() === '' || !Number.isFinite(v) || v < BACK_PERCENTILE_MIN || v > 100) throw new InvalidArgumentError(`expected a percentile from ${BACK_PERCENTILE_MIN} to 100 (100: the largest value).`);
  return v;
}

/** FILE.png → FILE.overlay.png (FILE → FILE.overlay.png). */
export function overlayPath(file: string): string {
  return /\.png$/i.test(file) ? file.replace(/\.png$/i, '.overlay.png') : `${file}.overlay.png`;
}

function bad(message: string): CliError {
  return new CliError(message, EXIT_BAD_INPUT);
}

/** Option combinations that are wrong whatever the model: checked before anything loads. */
function checkOptions(o: ExplainOptions): void {
  if (o.class !== undefined && (o.layer !== undefined || o.unit !== undefined)) throw bad('give either --class or --unit (with --layer for a channel number), not both');
  if (o.layer !== undefined && o.unit === undefined) throw bad('--layer needs --unit');
  if (o.mode === 'gradcam' && o.filter !== undefined) throw bad('--filter applies to backprop, deconv and guided; gradcam writes a heat map and an overlay');
  if (o.mode === 'gradcam' && o.percentile !== undefined) throw bad('--percentile applies to backprop, deconv and guided; gradcam writes a heat map and an overlay');
  if (o.mode !== 'gradcam' && o.gradcamLayer !== undefined) throw bad('--gradcam-layer needs --mode gradcam');
  if (o.mode !== 'gradcam' && o.opacity !== undefined) throw bad('--opacity needs --mode gradcam');
}

async function readImage(model: Model, image: string): Promise<tf.Tensor4D> {
  let st;
  try {
    st = await stat(image);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw bad(`${image}: ${code === 'ENOENT' ? 'no such file' : `cannot open (${oneLine(e)})`}`);
  }
  if (st.isDirectory()) throw bad(`${image}: is a directory, not an image`);
  if (st.size === 0) throw bad(`${image}: empty file (0 bytes), not an image`);
  try {
    return await loadImageForModel(image, model.inputSize, image);
  } catch (e) {
    throw bad(oneLine(e));
  }
}

/** The target from --class / --layer --unit; neither → the image's top-1 class. */
async function resolveTarget(model: Model, o: ExplainOptions, x: tf.Tensor4D): Promise<{ target: BackTarget; json: ExplainTarget }> {
  if (o.unit !== undefined) {
    const ref = unitOption(model, o.layer, o.unit);
    if (ref.layer !== model.logitsLayer) {
      const layer = model.layer(ref.layer);
      return {
        target: { kind: 'channel', layer: layer.name, channel: ref.unit },
        json: { kind: 'channel', layer: layer.name, display: layer.display, unit: ref.unit },
      };
    }
    o = { ...o, class: String(ref.unit) };
  }
  let c;
  if (o.class !== undefined) {
    try {
      c = resolveClass(model.classes, o.class, model.id);
    } catch (e) {
      throw bad(oneLine(e));
    }
  } else {
    const logits = tf.tidy(() => model.forward(x).logits!);
    const top = (await model.topK(logits, 1))[0]![0]!;
    logits.dispose();
    c = model.classes[top.index] ?? { index: top.index, wnid: top.wnid, name: top.name };
  }
  return { target: { kind: 'class', index: c.index }, json: { kind: 'class', index: c.index, wnid: c.wnid, name: c.name } };
}

/** Average-pool a non-negative [H,W] map to cells×cells (any H, W ≥ cells), scaled so the largest cell is 1. */
export function poolGrid(map: ArrayLike<number>, h: number, w: number, cells = GRID): number[][] {
  const means: number[][] = [];
  let max = 0;
  for (let r = 0; r < cells; r++) {
    const y0 = Math.floor((r * h) / cells);
    const y1 = Math.max(y0 + 1, Math.floor(((r + 1) * h) / cells));
    const row: number[] = [];
    for (let c = 0; c < cells; c++) {
      const x0 = Math.floor((c * w) / cells);
      const x1 = Math.max(x0 + 1, Math.floor(((c + 1) * w) / cells));
      let sum = 0;
      for (let y = y0; y < y1; y++) for (let x = x0; x < x1; x++) sum += map[y * w + x]!;
      const mean = sum / ((y1 - y0) * (x1 - x0));
      max = Math.max(max, mean);
      row.push(mean);
    }
    means.push(row);
  }
  return means.map((row) => row.map((v) => (max > 0 ? Math.round((v / max) * 1e4) / 1e4 : 0)));
}

async function writePng(files: OutputFiles, file: string, t: tf.Tensor4D): Promise<void> {
  const [, h, w] = t.shape;
  const [bytes] = await rgbBytes(t);
  await files.write(file, await encodePng(bytes!, w, h));
}

export async function runExplain(image: string, o: ExplainOptions, cmd: Command): Promise<void> {
  checkOptions(o);
  // Before any work: the outputs must not be the input photo, a link, or a folder.
  const files = new OutputFiles([image]);
  await files.checkAll(o.mode === 'gradcam' ? [o.out, overlayPath(o.out)] : [o.out]);
  await files.run(() => explainInto(files, image, o, cmd));
}

async function explainInto(files: OutputFiles, image: string, o: ExplainOptions, cmd: Command): Promise<void> {
  const g = globals(cmd);
  const dir = modelsDirOf(g);
  const entry = await findModel(o.model, dir, true);
  const backend = await startBackend(g);
  const t0 = performance.now();
  const model = await openModel(entry, dir);
  verbose(g, `loaded ${model.id} in ${(performance.now() - t0).toFixed(0)} ms`);
  const keep: tf.Tensor[] = [];
  try {
    const pixels = await readImage(model, image);
    keep.push(pixels);
    const x = model.preprocess(pixels);
    keep.push(x);
    const { target, json: targetJson } = await resolveTarget(model, o, x);
    const [h, w] = model.inputSize;
    const t1 = performance.now();
    let result: ExplainOutput;
    if (o.mode === 'gradcam') {
      let cam;
      try {
        cam = gradCam(model, x, target, { layer: o.gradcamLayer });
      } catch (e) {
        throw bad(oneLine(e));
      }
      keep.push(cam.heat, cam.coarse);
      const opacity = o.opacity ?? 0.5;
      const heatRgb = tf.tidy(() => toByteRange(jet(cam.heat)));
      const over = tf.tidy(() => toByteRange(overlayHeat(pixels, cam.heat, opacity), 1));
      keep.push(heatRgb, over);
      const overlay = overlayPath(o.out);
      await writePng(files, o.out, heatRgb);
      await writePng(files, overlay, over);
      const grid = poolGrid(await cam.heat.data(), h, w);
      result = { model: model.id, backend: backend.backend, mode: o.mode, target: targetJson, layer: cam.layer, overlay, opacity, grid, out: o.out };
    } else {
      const filter = o.filter ?? 'raw';
      const map = backproject(model, x, target, o.mode as BackMode);
      keep.push(map);
      const percentile = o.percentile ?? BACK_PERCENTILE_DEFAULT;
      const img = displayBytes(map, filter, { percentile });
      const norm = pixelNorm(map);
      keep.push(img, norm);
      await writePng(files, o.out, img);
      const grid = poolGrid(await norm.data(), h, w);
      result = { model: model.id, backend: backend.backend, mode: o.mode, target: targetJson, filter, percentile, grid, out: o.out };
    }
    verbose(g, `${o.mode} in ${(performance.now() - t1).toFixed(0)} ms`);
    if (o.json) await outJson(result);
    else await out(`${result.out}${result.overlay ? ` and ${result.overlay}` : ''}: ${o.mode} of ${describe(targetJson)} (${model.id})\n`);
  } finally {
    tf.dispose(keep);
    model.dispose();
  }
}

function describe(t: ExplainTarget): string {
  return t.kind === 'class' ? `class ${t.index} ${t.name.split(',')[0]}` : `${t.display}:${t.unit}`;
}

export function explainCommand(): Command {
  return new Command('explain')
    .description("what in an image makes a unit fire: back-projection (backprop, deconv, guided) or Grad-CAM, written as PNG")
    .argument('<image>', 'image file (any JPEG/PNG/WebP…, centre-cropped to the model input)')
    .addOption(new Option('-m, --model <id>', 'model id (see `deepvis models`)').default(DEFAULT_MODEL_ID))
    .addOption(new Option('--mode <mode>', 'backprop (gradient), deconv (Zeiler & Fergus), guided (Springenberg) or gradcam').choices([...EXPLAIN_MODES]).makeOptionMandatory())
    .option('-c, --class <class>', 'target class: index, WordNet id or exact name (default: the image\'s top-1 class)')
    .option('-l, --layer <layer>', 'target layer (name or display name, see `deepvis models`), with --unit')
    .option('-u, --unit <unit>', UNIT_HELP)
    .addOption(new Option('--filter <filter>', 'display filter for the pixel-space modes (default raw)').choices([...DISPLAY_FILTERS]))
    .addOption(new Option('--percentile <p>', `full contrast at this percentile of |value| (raw, gray) or of the norm, the brightest beyond it clip; 100: the largest value, as DVT (default ${BACK_PERCENTILE_DEFAULT}, the window's)`).argParser(percentileArg))
    .option('--gradcam-layer <layer>', 'Grad-CAM: the layer whose feature maps are weighted (default: the last rectified spatial layer before the target)')
    .addOption(new Option('--opacity <a>', 'Grad-CAM: opacity of the heat map over the image, 0…1 (default 0.5)').argParser(unitInterval))
    .addOption(new Option('-o, --out <file.png>', 'output PNG (Grad-CAM also writes <file>.overlay.png)').makeOptionMandatory())
    .option('--json', 'print one JSON object {model, backend, mode, target, grid (14×14), out, …} on stdout')
    .addHelpText(
      'after',
      '\nChannel targets are seeded with their own activation map (as in the Deep Visualization Toolbox), classes with a\n' +
        'one-hot on the logits. Filters: raw (zero = grey, per channel), gray, norm (RGB L2, min–max), normblur (σ 4).\n' +
        'grid: the per-pixel RGB norm (Grad-CAM: the heat map) average-pooled to 14×14, scaled so the largest cell is 1.',
    )
    .action(async (image: string, opts: ExplainOptions, cmd: Command) => {
      await runExplain(image, opts, cmd);
    });
}
