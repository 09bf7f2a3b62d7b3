// `npm run bench -- --quality`: do the synthesised class images show what the network sees, and how
// soon? For paper-3 and every fast preset, each run given the same wall-time budget, on the five
// reference classes (plus a held-out five never used while tuning, and any --classes):
//   self_top1            share of images that are the generator's own top-1 for their class
//   cross_top1/top5      per judge (every other installed model): share whose class is the judge's
//                        top-1 / in its top-5 — a picture a person could read transfers
//   cross_top5_missed    per judge: the classes whose image was not in its top-5, and what its top-1 was
//   spectrum_slope       log-log slope of the radially averaged power spectrum (greyscale),
//                        compared with the same slope of the fixture photos (natural images ≈ −2)
//   to_target_s          seconds until the class reached p ≥ 0.9 on the generator
// --contact-sheet DIR writes one PNG per model: a row per preset, a column per class and seed.
import { mkdirSync, readdirSync } from 'node:fs';
import os from 'node:os';
import { join, resolve } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import sharp from 'sharp';
import { decodeImage, cropResize, listModels, loadModel, modelsDir, resolveClass, type Model } from '../main/engine/index.js';
import { readHostConfig } from '../main/host-config.js';
import { PRESETS, PRESET_NAMES, presetSettings, synthesize } from '../main/engine/synthesis/index.js';

/** Reference classes (the ones the presets were tuned on): flamingo, bald eagle, monarch, school bus, banana. */
export const REFERENCE_CLASSES = ['n02007558', 'n01614925', 'n02279972', 'n04146614', 'n07753592'];
/** Held out from tuning: goldfish, zebra, church, orange, hummingbird. */
export const HELD_OUT_CLASSES = ['n01443537', 'n02391049', 'n03028079', 'n07747607', 'n01833805'];

export interface QualityOptions {
  classes?: string[];
  heldOut: boolean;
  seconds: number;
  seeds: number;
  models?: string[];
  /** A subset of qualityPresets() (all of them when absent). */
  presets?: string[];
  contactSheet?: string;
  photosDir: string;
  log: (s: string) => void;
}

const round = (x: number, d = 3) => Math.round(x * 10 ** d) / 10 ** d;

function median(xs: number[]): number | null {
  if (!xs.length) return null;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/**
 * Median of times to a target where null is a run that never got there: it counts as slower than
 * every run that did, so a median exists while at most half the runs miss (null once more miss).
 */
export function medianToTarget(times: readonly (number | null)[]): number | null {
  const reached = times.filter((t): t is number => t !== null).sort((a, b) => a - b);
  const n = times.length;
  const m = n >> 1;
  if (reached.length <= m) return null;
  return n % 2 ? reached[m]! : (reached[m - 1]! + reached[m]!) / 2;
}

const dftTables = new Map<number, { cos: Float64Array; sin: Float64Array }>();

/** cos/sin of 2πjk/n, n×n. */
function dftTable(n: number): { cos: Float64Array; sin: Float64Array } {
  let t = dftTables.get(n);
  if (!t) {
    t = { cos: new Float64Array(n * n), sin: new Float64Array(n * n) };
    for (let j = 0; j < n; j++) for (let k = 0; k < n; k++) {
      const a = (2 * Math.PI * ((j * k) % n)) / n;
      t.cos[j * n + k] = Math.cos(a);
      t.sin[j * n + k] = Math.sin(a);
    }
    dftTables.set(n, t);
  }
  return t;
}

/**
 * Slope of log power against log spatial frequency of a square RGB image's luminance (Hann-windowed
 * to keep the borders from adding a cross of energy), over radii 4 … n/2 cycles per image.
 */
export function spectrumSlope(rgb: Uint8Array, n: number): number {
  const lum = new Float64Array(n * n);
  let mean = 0;
  for (let i = 0; i < n * n; i++) mean += lum[i] = 0.299 * rgb[i * 3]! + 0.587 * rgb[i * 3 + 1]! + 0.114 * rgb[i * 3 + 2]!;
  mean /= n * n;
  const hann = Array.from({ length: n }, (_, i) => 0.5 - 0.5 * Math.cos((2 * Math.PI * i) / (n - 1)));
  for (let y = 0; y < n; y++) for (let x = 0; x < n; x++) lum[y * n + x] = (lum[y * n + x]! - mean) * hann[y]! * hann[x]!;
  const { cos, sin } = dftTable(n);
  // Rows, then columns (separable 2-D DFT).
  const re1 = new Float64Array(n * n);
  const im1 = new Float64Array(n * n);
  for (let y = 0; y < n; y++) for (let k = 0; k < n; k++) {
    let r = 0;
    let im = 0;
    for (let x = 0; x < n; x++) {
      const v = lum[y * n + x]!;
      r += v * cos[k * n + x]!;
      im -= v * sin[k * n + x]!;
    }
    re1[y * n + k] = r;
    im1[y * n + k] = im;
  }
  const bins = new Float64Array(n);
  const counts = new Float64Array(n);
  for (let k = 0; k < n; k++) for (let u = 0; u < n; u++) {
    let r = 0;
    let im = 0;
    for (let y = 0; y < n; y++) {
      const c = cos[u * n + y]!;
      const s = sin[u * n + y]!;
      r += re1[y * n + k]! * c + im1[y * n + k]! * s;
      im += im1[y * n + k]! * c - re1[y * n + k]! * s;
    }
    const fu = u <= n / 2 ? u : n - u;
    const fk = k <= n / 2 ? k : n - k;
    const rad = Math.round(Math.hypot(fu, fk));
    if (rad < n) {
      bins[rad] = bins[rad]! + r * r + im * im;
      counts[rad] = counts[rad]! + 1;
    }
  }
  const xs: number[] = [];
  const ys: number[] = [];
  for (let rad = 4; rad <= n / 2; rad++) {
    if (!counts[rad] || bins[rad]! <= 0) continue;
    xs.push(Math.log(rad));
    ys.push(Math.log(bins[rad]! / counts[rad]!));
  }
  const mx = xs.reduce((a, b) => a + b, 0) / xs.length;
  const my = ys.reduce((a, b) => a + b, 0) / ys.length;
  let num = 0;
  let den = 0;
  xs.forEach((x, i) => {
    num += (x - mx) * (ys[i]! - my);
    den += (x - mx) ** 2;
  });
  return num / den;
}

/** The natural-image reference: median slope of the fixture photos, centre-cropped to n×n. */
export async function naturalSlope(photosDir: string, n: number): Promise<{ median: number; photos: Record<string, number> }> {
  const photos: Record<string, number> = {};
  for (const f of readdirSync(photosDir).filter((x) => /\.jpe?g$/i.test(x)).sort()) {
    const img = await decodeImage(join(photosDir, f));
    const t = cropResize(img, [n, n]);
    const rgb = Uint8Array.from(await t.data());
    t.dispose();
    photos[f] = round(spectrumSlope(rgb, n));
  }
  return { median: round(median(Object.values(photos))!), photos };
}

/** Top-5 class indices of packed RGB images on a model (resized to its input when needed). */
async function judgeTop5(judge: Model, images: { rgb: Uint8Array; width: number; height: number }[]): Promise<number[][]> {
  const out: number[][] = [];
  for (const im of images) {
    const logits = tf.tidy(() => {
      let x = tf.tensor4d(im.rgb, [1, im.height, im.width, 3], 'int32').toFloat() as tf.Tensor4D;
      const [h, w] = judge.inputSize;
      if (im.height !== h || im.width !== w) x = tf.image.resizeBilinear(x, [h, w], false, true);
      return judge.forward(judge.preprocess(x)).logits!;
    });
    const top = await judge.topK(logits, 5);
    logits.dispose();
    out.push(top[0]!.map((t) => t.index));
  }
  return out;
}

/** The presets the quality bench compares: paper-3 and every fast preset. */
export function qualityPresets(): string[] {
  return ['paper-3', ...PRESET_NAMES.filter((p) => PRESETS[p].kind === 'fast')];
}

export async function benchQuality(opts: QualityOptions): Promise<Record<string, unknown>> {
  const wnids = opts.classes?.length ? opts.classes : [...REFERENCE_CLASSES, ...(opts.heldOut ? HELD_OUT_CLASSES : [])];
  const dir = modelsDir(readHostConfig().modelsDir);
  const ids = opts.models ?? (await listModels(dir)).filter((e) => !e.problem).map((e) => e.id);
  const models: Model[] = [];
  for (const id of ids) models.push(await loadModel(id, dir));
  const presets = opts.presets ?? qualityPresets();
  const unknown = presets.filter((p) => !qualityPresets().includes(p));
  if (unknown.length) throw new Error(`--presets: ${unknown.join(', ')} not among ${qualityPresets().join(', ')}`);
  const reference = await naturalSlope(opts.photosDir, 224);
  const loadBefore = os.loadavg().map((x) => round(x, 1));
  const perModel: Record<string, Record<string, unknown>> = {};
  const sheets: Record<string, string> = {};
  for (const gen of models) {
    perModel[gen.id] = {};
    const rows: { preset: string; tiles: Uint8Array[]; size: number }[] = [];
    for (const preset of presets) {
      const toTargetPerClass: Record<string, number | null> = {};
      const slopes: number[] = [];
      const seconds: number[] = [];
      const cpu: number[] = [];
      const steps: number[] = [];
      let selfHits = 0;
      let total = 0;
      const cross1: Record<string, number> = {};
      const cross5: Record<string, number> = {};
      /** Per judge: each class whose image (any seed) was not in its top-5, with the judge's top-1 for it. */
      const missed5: Record<string, Record<string, string>> = {};
      const tiles: Uint8Array[] = [];
      for (const wnid of wnids) {
        const c = resolveClass(gen.classes, wnid, gen.id);
        const s = presetSettings(preset);
        // Equal wall time: every preset gets the same budget; paper presets run as many of their
        // steps as fit, fast presets may stop earlier on their own rule.
        if (preset.startsWith('paper')) s.iterations = Math.max(s.iterations, 100_000);
        const abort = new AbortController();
        const timer = setTimeout(() => abort.abort(), opts.seconds * 1000);
        const seeds = Array.from({ length: opts.seeds }, (_, i) => 1 + i);
        const cpu0 = process.cpuUsage();
        const r = await synthesize({ model: gen, objective: { kind: 'class', index: c.index }, settings: s, seeds, signal: abort.signal });
        clearTimeout(timer);
        // The CPU time this process got: on a shared machine, what the wall-time budget bought.
        const used = process.cpuUsage(cpu0);
        cpu.push((used.user + used.system) / 1e6);
        const name = c.name.split(',')[0]!;
        toTargetPerClass[name] = r.secondsToTarget === null ? null : round(r.secondsToTarget, 2);
        seconds.push(r.seconds);
        steps.push(r.iterations);
        for (const im of r.images) {
          total += 1;
          if (im.top5?.[0]?.index === c.index) selfHits += 1;
          slopes.push(spectrumSlope(im.rgb, im.width));
          tiles.push(im.rgb);
        }
        for (const judge of models) {
          if (judge === gen) continue;
          const jc = resolveClass(judge.classes, wnid, judge.id).index;
          const tops = await judgeTop5(judge, r.images);
          cross1[judge.id] = (cross1[judge.id] ?? 0) + tops.filter((t) => t[0] === jc).length;
          cross5[judge.id] = (cross5[judge.id] ?? 0) + tops.filter((t) => t.includes(jc)).length;
          tops.forEach((t, k) => {
            if (!t.includes(jc)) (missed5[judge.id] ??= {})[opts.seeds > 1 ? `${name} (seed ${k + 1})` : name] = judge.classes[t[0]!]!.name.split(',')[0]!;
          });
        }
        opts.log(`quality: ${gen.id} ${preset} ${name}: ${r.iterations} steps ${r.seconds.toFixed(1)} s, to target ${toTargetPerClass[name] ?? '—'} s`);
      }
      const rate = (o: Record<string, number>) => Object.fromEntries(Object.entries(o).map(([k, v]) => [k, round(v / total)]));
      const c5 = rate(cross5);
      const slopeMed = median(slopes)!;
      perModel[gen.id]![preset] = {
        to_target_s_median: ((t) => (t === null ? null : round(t, 2)))(medianToTarget(Object.values(toTargetPerClass))),
        to_target_missed: Object.values(toTargetPerClass).filter((t) => t === null).length,
        to_target_s: toTargetPerClass,
        self_top1: round(selfHits / total),
        cross_top1: rate(cross1),
        cross_top5: c5,
        cross_top5_min: Object.keys(c5).length ? Math.min(...Object.values(c5)) : null,
        cross_top5_missed: missed5,
        spectrum_slope_median: round(slopeMed),
        spectrum_slope_distance: round(Math.abs(slopeMed - reference.median)),
        seconds_median: round(median(seconds)!, 2),
        cpu_s_median: round(median(cpu)!, 2),
        steps_median: median(steps),
      };
      rows.push({ preset, tiles, size: 224 });
    }
    if (opts.contactSheet) sheets[gen.id] = await contactSheet(opts.contactSheet, gen.id, rows, wnids.length * opts.seeds);
  }
  models.forEach((m) => m.dispose());
  return {
    quality: {
      // 1/5/15-minute load averages of the machine at the start and at the end (2 cores here).
      load_average: { start: loadBefore, end: os.loadavg().map((x) => round(x, 1)) },
      budget_s: opts.seconds,
      seeds_per_class: opts.seeds,
      classes: wnids,
      reference_classes: REFERENCE_CLASSES,
      held_out_classes: opts.classes?.length ? [] : opts.heldOut ? HELD_OUT_CLASSES : [],
      natural_spectrum_slope: reference,
      presets,
      models: perModel,
      ...(opts.contactSheet ? { contact_sheets: sheets } : {}),
    },
  };
}

/** One PNG: a row per preset (label at the left), the images at half size. */
async function contactSheet(dir: string, modelId: string, rows: { preset: string; tiles: Uint8Array[]; size: number }[], cols: number): Promise<string> {
  const tile = 112;
  const label = 90;
  const width = label + cols * tile;
  const height = rows.length * tile;
  const parts: sharp.OverlayOptions[] = [];
  for (const [r, row] of rows.entries()) {
    const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${label}" height="${tile}"><text x="6" y="${tile / 2}" font-family="sans-serif" font-size="14" fill="#ddd">${row.preset}</text></svg>`;
    parts.push({ input: Buffer.from(svg), left: 0, top: r * tile });
    for (const [c, rgb] of row.tiles.entries()) {
      const png = await sharp(Buffer.from(rgb), { raw: { width: row.size, height: row.size, channels: 3 } }).resize(tile, tile).png().toBuffer();
      parts.push({ input: png, left: label + c * tile, top: r * tile });
    }
  }
  mkdirSync(resolve(dir), { recursive: true });
  const path = resolve(dir, `${modelId}.png`);
  await sharp({ create: { width, height, channels: 3, background: '#202024' } }).composite(parts).png().toFile(path);
  return path;
}

/** The --quality entry of scripts/bench.ts: parse its options, print and save the JSON. */
export async function runQualityBench(args: Record<string, string | boolean | undefined>): Promise<void> {
  const { selectBackend } = await import('../main/engine/index.js');
  const { writeFileSync } = await import('node:fs');
  const backend = typeof args.backends === 'string' ? args.backends.split(',')[0]! : 'wasm';
  await selectBackend(backend as 'wasm');
  const here = new URL('.', import.meta.url).pathname;
  const doc = {
    date: new Date().toISOString(),
    backend,
    ...(await benchQuality({
      classes: typeof args.classes === 'string' ? args.classes.split(',').map((c) => c.trim()).filter(Boolean) : undefined,
      heldOut: !args['no-held-out'],
      seconds: Number(args['quality-seconds'] ?? 10),
      seeds: Math.max(1, Number(args['quality-seeds'] ?? 1)),
      models: typeof args.models === 'string' ? args.models.split(',') : undefined,
      presets: typeof args.presets === 'string' ? args.presets.split(',').map((p) => p.trim()).filter(Boolean) : undefined,
      contactSheet: typeof args['contact-sheet'] === 'string' ? args['contact-sheet'] : undefined,
      photosDir: process.env.DEEPVIS_PHOTOS ?? resolve(here, '../../shared/fixtures/photos'),
      log: (s) => process.stderr.write(s + '\n'),
    })),
  };
  const json = JSON.stringify(doc, null, 2);
  const outPath = typeof args.out === 'string' ? args.out : resolve(here, '..', 'bench', 'quality.json');
  mkdirSync(resolve(outPath, '..'), { recursive: true });
  writeFileSync(outPath, json + '\n');
  process.stdout.write(json + '\n');
}
