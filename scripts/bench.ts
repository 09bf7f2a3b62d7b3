// `npm run bench`: engine speed figures as one JSON document (also written to bench/latest.json).
// Per model and per backend that starts here: forward_ms, forward_taps_ms, grad_ms_logit,
// grad_ms_mid, grad_ms_batch4 and backproj_ms {backprop, deconv, guided, gradcam} (one unit of
// the middle layer, batch 1) — each the median of ≥ 10 rounds after warm-up, measured once with
// the backends taking turns inside every round (scripts/bench-backends.ts), so backend_ratios
// (each figure's ratio to wasm) comes from the same timings as the per-backend figures.
// index_images_per_s: top-k indexing of preloaded images, every displayed layer.
// Synthesis: scripts/bench-synthesis.ts. section_seconds: where the run's time went.
// --atlas: atlas_units_per_min with 1 job worker and with the pool (worker threads, no live view).
//   npm run bench -- --help
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { readFileSync } from 'node:fs';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { benchSynthesis } from './bench-synthesis.js';
import { defaultRatioBackends, measureInterleaved, ratioReport, startBackends, type InterleavedFigures } from './bench-backends.js';
import { BACKEND_ORDER, listModels, loadModel, modelsDir, selectBackend, type Model } from '../main/engine/index.js';
import { readHostConfig } from '../main/host-config.js';
import { relaxHeapGrowth } from '../main/session/heap-growth.js';
import { BACK_MODES } from '../main/engine/index.js';

const HELP = `npm run bench -- [options]     engine speed figures as JSON (stdout and bench/latest.json)

  --backends LIST        comma list of backends to measure (default: wasm and onnx, a GPU
                         provider where a hardware adapter answers, tensorflow / tensorflow-gpu
                         when installed); cpu only when named — it takes hours
  --models LIST          comma list of model ids (default: every installed model)
  --runs N               timed runs per figure, at least 10 (default 10); synthesis steps timed
                         per preset: N rounded up to a multiple of 4, at least 12
  --skip-synth           leave out the synthesis figures
  --fast4-all            four seeds at 224 px (synth_fast4_224) on every model, not only
                         mobilenet-v1-0.75 (the model its target names)
  --synth-steps          only the synthesis step figures (synth_step_ms, synth_grad_ms_batch4,
                         synth_step_vs_grad), measured as in the full run
  --skip-ratios          leave out backend_ratios (every figure per backend, ratio to wasm; it
                         costs nothing: the per-backend figures are the same timings)
  --paper3-iterations N  iterations of the paper-3 synthesis figure (default: the preset's)
  --full                 run paper-3 to its iteration count (a minute or more per model and
                         backend); without it every backend times 110 steps and reports
                         synth_paper3_ms_per_step and synth_paper3_224_s_projected
  --atlas                only the atlas throughput: units per minute with 1 job worker and
                         with the pool (--workers, default $DEEPVIS_WORKERS or deepvis atlas's one per core, at least 2)
  --atlas-units N        units per atlas run (default 8)
  --workers N            pool size for --atlas
  --out FILE             where to write the JSON (default bench/latest.json)
  --quality              synthesis quality instead of speed (scripts/bench-quality.ts):
                         self and cross-model top-1/top-5, spectrum slope, seconds to target
  --classes LIST         --quality: classes to add to the reference ones
  --no-held-out          --quality: leave out the held-out classes
  --quality-seconds S    --quality: wall time per preset and class (default 10)
  --quality-seeds N      --quality: seeds per run (default 1)
  --presets LIST         --quality: only these of paper-3 and the fast presets
  --contact-sheet DIR    --quality: also write a contact sheet per model there
  -h, --help             this text
`;

const { values: args } = parseArgs({
  options: {
    backends: { type: 'string' },
    models: { type: 'string' },
    runs: { type: 'string', default: '10' },
    'skip-synth': { type: 'boolean', default: false },
    'fast4-all': { type: 'boolean', default: false },
    'synth-steps': { type: 'boolean', default: false },
    'skip-ratios': { type: 'boolean', default: false },
    full: { type: 'boolean', default: false },
    'paper3-iterations': { type: 'string' },
    atlas: { type: 'boolean', default: false },
    'atlas-units': { type: 'string', default: '8' },
    workers: { type: 'string' },
    out: { type: 'string' },
    // Synthesis quality (scripts/bench-quality.ts) instead of the speed figures.
    quality: { type: 'boolean', default: false },
    classes: { type: 'string' },
    'no-held-out': { type: 'boolean', default: false },
    'quality-seconds': { type: 'string', default: '10' },
    'quality-seeds': { type: 'string', default: '1' },
    presets: { type: 'string' },
    'contact-sheet': { type: 'string' },
    help: { type: 'boolean', short: 'h', default: false },
  },
});
if (args.help) {
  process.stdout.write(HELP);
  process.exit(0);
}
if (args.quality) {
  const { runQualityBench } = await import('./bench-quality.js');
  await runQualityBench(args);
  process.exit(0);
}
// The figures timed in this process (steps, passes) run under the heap setting of the engine
// threads that run them in the app; the atlas's workers get it anyway.
relaxHeapGrowth();
const RUNS = Math.max(10, Number(args.runs));

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

async function timeIt(fn: () => Promise<void> | void, runs = RUNS, warmup = 2): Promise<number> {
  for (let i = 0; i < warmup; i++) await fn();
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    await fn();
    times.push(performance.now() - t0);
  }
  return Math.round(median(times) * 100) / 100;
}

/** The same model through tfjs-layers' own predict(): the "before" figure for forward_ms. */
async function layersPredictMs(m: Model): Promise<number> {
  const json = JSON.parse(readFileSync(join(m.dir, 'model.json'), 'utf8'));
  const specs = json.weightsManifest.flatMap((g: { weights: unknown[] }) => g.weights);
  const data = Buffer.concat(json.weightsManifest.flatMap((g: { paths: string[] }) => g.paths.map((p) => readFileSync(join(m.dir, p)))));
  const lm = await tfl.loadLayersModel({
    load: async () => ({ modelTopology: json.modelTopology, weightSpecs: specs, weightData: data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength) }),
  });
  const [h, w] = m.inputSize;
  const x = tf.randomUniform([1, h, w, 3], -1, 1);
  const ms = await timeIt(async () => {
    const y = lm.predict(x) as tf.Tensor;
    await y.data();
    y.dispose();
  });
  x.dispose();
  lm.dispose();
  return ms;
}

// ── Top-k index: index_images_per_s — images added per second to a fresh TopKIndexer
// tracking every displayed layer (k = 9) at 224 px, over 56 distinct images (the 7 fixture photos
// and their mirror images, each whole and as three crops) PRELOADED as pixel tensors: decoding is
// not counted. index_images_per_s_second_half: images 29–56 only, nearer the steady state of a big
// folder (in the first k images every unit takes every image). Each round also times forward_taps
// (forward + download of every displayed layer, preprocessing excluded as in forward_taps_ms) on
// the same images, so the target (index ≥ 0.8 / forward_taps_ms × 1000) compares like with like
// on a shared CPU: index_target_images_per_s is computed from that paired figure.
async function benchIndexing(m: Model): Promise<Record<string, unknown>> {
  const { TopKIndexer } = await import('../main/engine/topk/indexer.js');
  const { loadImageForModel } = await import('../main/engine/images.js');
  const photosDir = process.env.DEEPVIS_PHOTOS ?? join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'shared', 'fixtures', 'photos');
  const names = ['dog', 'eagle', 'giraffe', 'horses', 'kite', 'person', 'scream'];
  const [h, w] = m.inputSize;
  const pixels: tf.Tensor4D[] = [];
  const crop = (t: tf.Tensor4D, top: number, left: number, f: number) =>
    tf.tidy(() => tf.image.resizeBilinear(tf.slice(t, [0, Math.round(h * top), Math.round(w * left), 0], [1, Math.round(h * f), Math.round(w * f), 3]) as tf.Tensor4D, [h, w], false, true));
  for (const [i, n] of names.entries()) {
    const file = join(photosDir, `${n}.jpg`);
    const base = existsSync(file) ? await loadImageForModel(file, m.inputSize) : (tf.randomUniform([1, h, w, 3], 0, 255, 'float32', i) as tf.Tensor4D);
    for (const img of [base, tf.tidy(() => tf.reverse(base, 2) as tf.Tensor4D)]) {
      pixels.push(img, crop(img, 0, 0, 0.75), crop(img, 0.25, 0.25, 0.5), crop(img, 0.2, 0.4, 0.6));
    }
  }
  const taps = m.layers.map((l) => l.name);
  const half = pixels.length >> 1;
  const indexRound = async (images = pixels) => {
    const ix = TopKIndexer.create(m, 9);
    const t0 = performance.now();
    let tHalf = t0;
    for (const [i, px] of images.entries()) {
      if (i === half) tHalf = performance.now();
      await ix.addPixels(px, { path: `/bench/${i}.jpg`, size: i, mtimeMs: 0, width: w, height: h });
    }
    const t1 = performance.now();
    ix.dispose();
    return { all: (t1 - t0) / pixels.length, second: (t1 - tHalf) / (pixels.length - half) };
  };
  // The comparator is forward_taps_ms's own operation on each image, preprocessing excluded (as
  // there); indexing includes its preprocessing.
  const inputs = pixels.map((px) => m.preprocess(px));
  const tapsRound = async (xs = inputs) => {
    const t0 = performance.now();
    for (const x of xs) {
      const r = tf.tidy(() => m.forward(x, { taps }) as unknown as tf.TensorContainer) as unknown as ReturnType<Model['forward']>;
      await Promise.all([r.logits!.data(), ...Object.values(r.taps).map((t) => t.data())]);
      tf.dispose([r.logits!, ...Object.values(r.taps)]);
    }
    return (performance.now() - t0) / pixels.length;
  };
  // Warm-up: a few images through both (compiling and allocating is done after the first ones).
  await indexRound(pixels.slice(0, 12));
  await tapsRound(inputs.slice(0, 12));
  const all: number[] = [];
  const second: number[] = [];
  const fwd: number[] = [];
  for (let r = 0; r < 5; r++) {
    const t = await indexRound();
    all.push(t.all);
    second.push(t.second);
    fwd.push(await tapsRound());
  }
  tf.dispose([...pixels, ...inputs]);
  const tapsMs = median(fwd);
  const round2 = (v: number) => Math.round(v * 100) / 100;
  return {
    index_images_per_s: round2(1000 / median(all)),
    index_images_per_s_second_half: round2(1000 / median(second)),
    index_forward_taps_ms_paired: round2(tapsMs),
    index_target_images_per_s: round2((0.8 / tapsMs) * 1000),
    index_images: pixels.length,
    index_note: 'decoding excluded (images preloaded); fresh index per round, k=9, all displayed layers',
  };
}

// Without --backends: wasm and onnx, a native tfjs backend only when its package is installed, a
// GPU provider only where hardware was found (software Vulkan takes minutes per figure); the cpu
// backend is a reference, hours per model here: measured only when named.
const installed = (pkg: string) => {
  try {
    import.meta.resolve(pkg);
    return true;
  } catch {
    return false;
  }
};
const gpuDefault = new Set(defaultRatioBackends());
const defaultBackends = BACKEND_ORDER.filter(
  (b) =>
    b === 'wasm' ||
    b === 'onnx' ||
    (b.startsWith('onnx-') && gpuDefault.has(b)) ||
    (b === 'tensorflow' && installed('@tensorflow/tfjs-node')) ||
    (b === 'tensorflow-gpu' && installed('@tensorflow/tfjs-node-gpu')),
);
const wantBackends = args.backends ? args.backends.split(',') : defaultBackends;
const MODELS_DIR = modelsDir(readHostConfig().modelsDir);
const modelIds = args.models ? args.models.split(',') : (await listModels(MODELS_DIR)).filter((e) => !e.problem).map((e) => e.id);
const results: Record<string, Record<string, Record<string, unknown>>> = {};
const skipped: Record<string, string> = {};
let backendRatios: ReturnType<typeof ratioReport> | null = null;
const t0 = performance.now();
/** model → part → seconds it took (per backend as "backend.part"), to see where the run's time goes. */
const sectionSeconds: Record<string, Record<string, number>> = {};
async function timed<T>(id: string, part: string, fn: () => Promise<T>): Promise<T> {
  const t = performance.now();
  try {
    return await fn();
  } finally {
    (sectionSeconds[id] ??= {})[part] = Math.round(performance.now() - t) / 1000;
  }
}

/** A backend's figures out of the interleaved rounds, under the names the per-backend figures have. */
function perBackendFigures(f: InterleavedFigures, b: string): Record<string, unknown> {
  const ms = f.ms[b]!;
  const modes = [...BACK_MODES, 'gradcam'];
  return {
    forward_ms: ms.forward_ms,
    forward_taps_ms: ms.forward_taps_ms,
    grad_ms_logit: ms.grad_ms_logit,
    grad_ms_mid: ms.grad_ms_mid,
    grad_ms_batch4: ms.grad_ms_batch4,
    mid_layer: f.mid_layer,
    backproj_ms: Object.fromEntries(modes.map((k) => [k, ms[`${k}_ms`]])),
    // The gradient of the same unit in the same rounds: the target is each ratio ≤ 1.2.
    backproj_vs_grad_mid: Object.fromEntries(modes.map((k) => [k, Math.round((ms[`${k}_ms`]! / ms.grad_ms_mid!) * 100) / 100])),
    backproj_gradcam_layer: f.gradcam_layer,
  };
}
if (args.atlas) {
  const { benchAtlas } = await import('./bench-atlas.js');
  for (const b of wantBackends) {
    for (const id of modelIds) {
      process.stderr.write(`bench: atlas ${id} on ${b}…\n`);
      (results[id] ??= {})[b] = await timed(id, `${b}.atlas`, () => benchAtlas(id, b, { units: Number(args['atlas-units']), workers: args.workers ? Number(args.workers) : undefined }));
    }
  }
} else {
  const started = await startBackends(wantBackends);
  Object.assign(skipped, started.skipped);
  const backends = started.backends;
  const interleaved: Record<string, InterleavedFigures> = {};
  for (const id of backends.length && !args['synth-steps'] ? modelIds : []) {
    interleaved[id] = await timed(id, 'forward_grad_backproj_interleaved', () => measureInterleaved(id, backends, RUNS, 2));
    for (const b of backends) (results[id] ??= {})[b] = perBackendFigures(interleaved[id]!, b);
  }
  if (!args['skip-ratios'] && !args['synth-steps']) backendRatios = ratioReport(backends, started.skipped, RUNS, interleaved);
  for (const b of backends) {
    await selectBackend(b);
    for (const id of modelIds) {
      const m = await loadModel(id, MODELS_DIR);
      const figures = ((results[id] ??= {})[b] ??= {});
      // On the onnx backends tfjs-layers would run on wasm again: the wasm figure is that one.
      if (!b.startsWith('onnx') && !args['synth-steps']) figures.layers_predict_ms = await timed(id, `${b}.layers_predict`, () => layersPredictMs(m));
      if (!args['synth-steps']) {
        process.stderr.write(`bench: ${id} indexing on ${b}…\n`);
        Object.assign(figures, await timed(id, `${b}.indexing`, () => benchIndexing(m)));
      }
      if (!args['skip-synth']) {
        process.stderr.write(`bench: ${id} synthesis on ${b}…\n`);
        Object.assign(
          figures,
          await benchSynthesis(m, {
            paper3Iterations: args['paper3-iterations'] ? Number(args['paper3-iterations']) : undefined,
            paper3Full: args.full,
            runs: RUNS,
            stepsOnly: args['synth-steps'],
            fast4All: args['fast4-all'],
            section: (name, fn) => timed(id, `${b}.${name}`, fn),
          }),
        );
      }
      m.dispose();
    }
  }
}
const doc = {
  date: new Date().toISOString(),
  machine: { cores: os.cpus().length, cpu: os.cpus()[0]?.model ?? 'unknown', node: process.version, platform: `${os.platform()} ${os.arch()}` },
  tfjs: tf.version_core,
  runs: RUNS,
  backends_skipped: skipped,
  models: results,
  backend_ratios: backendRatios,
  section_seconds: { ...sectionSeconds, total: Math.round(performance.now() - t0) / 1000 },
};
const json = JSON.stringify(doc, null, 2);
const outPath = args.out ?? join(dirname(fileURLToPath(import.meta.url)), '..', 'bench', 'latest.json');
mkdirSync(dirname(outPath), { recursive: true });
writeFileSync(outPath, json + '\n');
process.stdout.write(json + '\n');
