// `npm run bench`: engine speed figures as one JSON document (also written to bench/latest.json).
// Per model and per backend that starts here: forward_ms, forward_taps_ms, grad_ms_logit,
// grad_ms_mid, grad_ms_batch4 — each the median of ≥ 10 runs after warm-up.
//   npm run bench -- [--backends wasm,cpu] [--models id,…] [--runs N]
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { readFileSync } from 'node:fs';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { benchSynthesis } from './bench-synthesis.js';
import { BACKEND_ORDER, inputGradient, listModels, loadModel, selectBackend, type Model, type UnitObjective } from '../main/engine/index.js';

const { values: args } = parseArgs({
  options: {
    backends: { type: 'string' },
    models: { type: 'string' },
    runs: { type: 'string', default: '10' },
    'skip-synth': { type: 'boolean', default: false },
    'paper3-iterations': { type: 'string' },
    out: { type: 'string' },
  },
});
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

const wantBackends = args.backends ? args.backends.split(',') : [...BACKEND_ORDER];
const modelIds = args.models ? args.models.split(',') : listModels().filter((e) => !e.problem).map((e) => e.id);
const results: Record<string, Record<string, unknown>> = {};
const skipped: Record<string, string> = {};
for (const b of wantBackends) {
  try {
    await selectBackend(b);
  } catch (e) {
    skipped[b] = (e as Error).message;
    continue;
  }
  for (const id of modelIds) {
    const m = await loadModel(id);
    process.stderr.write(`bench: ${id} on ${b}…\n`);
    const figures: Record<string, unknown> = await benchModel(m);
    if (!args['skip-synth']) {
      process.stderr.write(`bench: ${id} synthesis on ${b}…\n`);
      Object.assign(figures, await benchSynthesis(m, { paper3Iterations: args['paper3-iterations'] ? Number(args['paper3-iterations']) : undefined }));
    }
    (results[id] ??= {})[b] = figures;
    m.dispose();
  }
}
const doc = {
  date: new Date().toISOString(),
  machine: { cores: os.cpus().length, cpu: os.cpus()[0]?.model ?? 'unknown', node: process.version, platform: `${os.platform()} ${os.arch()}` },
  tfjs: tf.version_core,
  runs: RUNS,
  backends_skipped: skipped,
  models: results,
};
const json = JSON.stringify(doc, null, 2);
const outPath = args.out ?? join(dirname(fileURLToPath(import.meta.url)), '..', 'bench', 'latest.json');
mkdirSync(dirname(outPath), { recursive: true });
writeFileSync(outPath, json + '\n');
process.stdout.write(json + '\n');
