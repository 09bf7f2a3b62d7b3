// `npm run bench`: engine speed figures as one JSON document (also written to bench/latest.json).
// Per model and per backend that starts here: forward_ms, forward_taps_ms, grad_ms_logit,
// grad_ms_mid, grad_ms_batch4 — each the median of ≥ 10 runs after warm-up.
// backproj_ms {backprop, deconv, guided, gradcam}: one unit of the middle layer, batch 1.
// index_images_per_s: top-k indexing of preloaded images, every displayed layer.
// backend_ratios: every figure per backend with its ratio to wasm, the backends interleaved in the
// same rounds (scripts/bench-backends.ts; --skip-ratios leaves it out).
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
import { backprojectionRuns, benchBackendRatios, defaultRatioBackends } from './bench-backends.js';
import { BACKEND_ORDER, inputGradient, listModels, loadModel, modelsDir, selectBackend, type Model, type UnitObjective } from '../main/engine/index.js';
import { readHostConfig } from '../main/host-config.js';
import { defaultGradCamLayer, BACK_MODES } from '../main/engine/index.js';

const HELP = `npm run bench -- [options]     engine speed figures as JSON (stdout and bench/latest.json)

  --backends LIST        comma list of backends to measure (default: wasm, and tensorflow /
                         tensorflow-gpu when installed); cpu only when named — it takes hours
  --models LIST          comma list of model ids (default: every installed model)
  --runs N               timed runs per figure, at least 10 (default 10)
  --skip-synth           leave out the synthesis figures
  --skip-ratios          leave out backend_ratios (every figure per backend, ratio to wasm)
  --paper3-iterations N  iterations of the paper-3 synthesis figure (default: the preset's)
  --atlas                only the atlas throughput: units per minute with 1 job worker and
                         with the pool (--workers, default $DEEPVIS_WORKERS or cores − 1)
  --atlas-units N        units per atlas run (default 8)
  --workers N            pool size for --atlas
  --out FILE             where to write the JSON (default bench/latest.json)
  --quality              synthesis quality instead of speed (scripts/bench-quality.ts):
                         self and cross-model top-1/top-5, spectrum slope, seconds to target
  --classes LIST         --quality: classes to add to the reference ones
  --no-held-out          --quality: leave out the held-out classes
  --quality-seconds S    --quality: wall time per preset and class (default 10)
  --quality-seeds N      --quality: seeds per run (default 1)
  --contact-sheet DIR    --quality: also write a contact sheet per model there
  -h, --help             this text
`;

const { values: args } = parseArgs({
  options: {
    backends: { type: 'string' },
    models: { type: 'string' },
    runs: { type: 'string', default: '10' },
    'skip-synth': { type: 'boolean', default: false },
    'skip-ratios': { type: 'boolean', default: false },
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
const RUNS = Math.max(10, Number(args.runs));

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

async function timeIt(fn: () => Promise<void> | void, runs = RUNS, warmup = 3): Promise<number> {
  for (let i = 0; i < warmup; i++) await fn();
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    await fn();
    times.push(performance.now() - t0);
  }
  return Math.round(median(times) * 100) / 100;
}

/** A middle conv layer: the displayed layer halfway down the list (a real conv unit, centre position). */
function middleLayer(m: Model): string {
  const convs = m.layers.filter((l) => l.shape[0] > 1 && l.name !== m.logitsLayer);
  return convs[Math.floor(convs.length / 2)]!.name;
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

async function benchModel(m: Model): Promise<Record<string, number | string>> {
  const [h, w] = m.inputSize;
  const x1 = m.preprocess(tf.randomUniform([1, h, w, 3], 0, 255, 'float32', 1) as tf.Tensor4D);
  const x4 = m.preprocess(tf.randomUniform([4, h, w, 3], 0, 255, 'float32', 2) as tf.Tensor4D);
  const taps = m.layers.map((l) => l.name);
  const mid = middleLayer(m);
  const logit: UnitObjective = { kind: 'class', index: 22 };
  const midUnit: UnitObjective = { kind: 'channel', layer: mid, channel: 0 };
  const grad = async (x: tf.Tensor4D, o: UnitObjective) => {
    const r = inputGradient(m, x, o);
    await r.grad.data();
    tf.dispose([r.grad, r.value]);
  };
  const out = {
    forward_ms: await timeIt(async () => {
      const l = tf.tidy(() => m.forward(x1).logits!);
      await l.data();
      l.dispose();
    }),
    forward_taps_ms: await timeIt(async () => {
      const r = tf.tidy(() => m.forward(x1, { taps }) as unknown as tf.TensorContainer) as unknown as ReturnType<Model['forward']>;
      await Promise.all([r.logits!.data(), ...Object.values(r.taps).map((t) => t.data())]);
      tf.dispose([r.logits!, ...Object.values(r.taps)]);
    }),
    grad_ms_logit: await timeIt(() => grad(x1, logit)),
    grad_ms_mid: await timeIt(() => grad(x1, midUnit)),
    grad_ms_batch4: await timeIt(() => grad(x4, logit)),
    mid_layer: mid,
    layers_predict_ms: await layersPredictMs(m),
  };
  tf.dispose([x1, x4]);
  return out;
}

// ── Back-projection: backproj_ms per mode for one unit (channel 0) of the middle layer,
// batch 1 — the whole map (forward to the layer + backward to the input, or to the Grad-CAM layer).
// The input gradient of the same layer is timed in the same rounds (grad_ms_mid_paired) so the
// ratios compare like with like on a shared CPU; target: each ratio ≤ 1.2.
async function benchBackprojection(m: Model): Promise<Record<string, unknown>> {
  const [h, w] = m.inputSize;
  const x = m.preprocess(tf.randomUniform([1, h, w, 3], 0, 255, 'float32', 1) as tf.Tensor4D);
  const mid = middleLayer(m);
  const unit = { kind: 'channel' as const, layer: mid, channel: 0 };
  const runs: Record<string, () => Promise<void>> = {
    grad: async () => {
      const r = inputGradient(m, x, unit);
      await r.grad.data();
      tf.dispose([r.grad, r.value]);
    },
  };
  Object.assign(runs, backprojectionRuns(m, x, unit));
  const times: Record<string, number[]> = Object.fromEntries(Object.keys(runs).map((k) => [k, []]));
  for (let i = 0; i < RUNS + 3; i++) {
    for (const [k, fn] of Object.entries(runs)) {
      const t0 = performance.now();
      await fn();
      if (i >= 3) times[k]!.push(performance.now() - t0);
    }
  }
  x.dispose();
  const med = (k: string) => Math.round(median(times[k]!) * 100) / 100;
  const modes = [...BACK_MODES, 'gradcam'];
  return {
    backproj_ms: Object.fromEntries(modes.map((k) => [k, med(k)])),
    backproj_vs_grad_mid: Object.fromEntries(modes.map((k) => [k, Math.round((med(k) / med('grad')) * 100) / 100])),
    grad_ms_mid_paired: med('grad'),
    backproj_gradcam_layer: defaultGradCamLayer(m, unit),
  };
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
  const indexRound = async () => {
    const ix = TopKIndexer.create(m, 9);
    const t0 = performance.now();
    let tHalf = t0;
    for (const [i, px] of pixels.entries()) {
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
  const tapsRound = async () => {
    const t0 = performance.now();
    for (const x of inputs) {
      const r = tf.tidy(() => m.forward(x, { taps }) as unknown as tf.TensorContainer) as unknown as ReturnType<Model['forward']>;
      await Promise.all([r.logits!.data(), ...Object.values(r.taps).map((t) => t.data())]);
      tf.dispose([r.logits!, ...Object.values(r.taps)]);
    }
    return (performance.now() - t0) / pixels.length;
  };
  await indexRound();
  await tapsRound();
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
const results: Record<string, Record<string, unknown>> = {};
const skipped: Record<string, string> = {};
if (args.atlas) {
  const { benchAtlas } = await import('./bench-atlas.js');
  for (const b of wantBackends) {
    for (const id of modelIds) {
      process.stderr.write(`bench: atlas ${id} on ${b}…\n`);
      (results[id] ??= {})[b] = await benchAtlas(id, b, { units: Number(args['atlas-units']), workers: args.workers ? Number(args.workers) : undefined });
    }
  }
} else for (const b of wantBackends) {
  try {
    await selectBackend(b);
  } catch (e) {
    skipped[b] = (e as Error).message;
    continue;
  }
  for (const id of modelIds) {
    const m = await loadModel(id, MODELS_DIR);
    process.stderr.write(`bench: ${id} on ${b}…\n`);
    const figures: Record<string, unknown> = await benchModel(m);
    Object.assign(figures, await benchBackprojection(m));
    Object.assign(figures, await benchIndexing(m));
    if (!args['skip-synth']) {
      process.stderr.write(`bench: ${id} synthesis on ${b}…\n`);
      Object.assign(figures, await benchSynthesis(m, { paper3Iterations: args['paper3-iterations'] ? Number(args['paper3-iterations']) : undefined }));
    }
    (results[id] ??= {})[b] = figures;
    m.dispose();
  }
}
const backendRatios = args['skip-ratios'] ? null : await benchBackendRatios({ models: modelIds, runs: RUNS });
const doc = {
  date: new Date().toISOString(),
  machine: { cores: os.cpus().length, cpu: os.cpus()[0]?.model ?? 'unknown', node: process.version, platform: `${os.platform()} ${os.arch()}` },
  tfjs: tf.version_core,
  runs: RUNS,
  backends_skipped: skipped,
  models: results,
  backend_ratios: backendRatios,
};
const json = JSON.stringify(doc, null, 2);
const outPath = args.out ?? join(dirname(fileURLToPath(import.meta.url)), '..', 'bench', 'latest.json');
mkdirSync(dirname(outPath), { recursive: true });
writeFileSync(outPath, json + '\n');
process.stdout.write(json + '\n');
