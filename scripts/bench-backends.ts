// Per-backend figures for `npm run bench`, with each backend's ratio to wasm from the same run:
// the backends take turns inside every round (one timing of each figure per backend per round),
// so a machine shared with other work loads them alike; every figure is the median over rounds.
// `npm run bench` reports these medians as each backend's own figures too: one measurement.
//   forward_ms        logits, batch 1
//   forward_taps_ms   logits + every displayed layer, downloaded
//   grad_ms_logit     input gradient of a class logit
//   grad_ms_mid       input gradient of one unit of a middle layer (channel 0, its whole map: the
//                     unit the back-projections below are of, so their ratios compare like with like)
//   grad_ms_batch4    input gradient of a class logit, batch 4
//   backprop_ms / deconv_ms / guided_ms / gradcam_ms   the same unit of the middle layer
// Also run by scripts/gpu-check.sh; `npx tsx scripts/bench-backends.ts [--backends a,b] [--models …] [--runs N]`
// runs it alone.
import * as tf from '@tensorflow/tfjs-core';
import { parseArgs } from 'node:util';
import { pathToFileURL } from 'node:url';
import { BACK_MODES, backproject, defaultGradCamLayer, gradCam, inputGradient, listModels, loadModel, modelsDir, selectBackend, type Model, type UnitObjective } from '../main/engine/index.js';
import { hardwareGpuHint } from '../main/engine/onnx/runtime.js';
import { readHostConfig } from '../main/host-config.js';

/** One timed run per back-projection mode and of Grad-CAM, for one unit: `npm run bench` and the ratios use these. */
export function backprojectionRuns(m: Model, x: tf.Tensor4D, unit: UnitObjective): Record<string, () => Promise<void>> {
  const runs: Record<string, () => Promise<void>> = {};
  for (const mode of BACK_MODES) {
    runs[mode] = async () => {
      const g = backproject(m, x, unit, mode);
      await g.data();
      g.dispose();
    };
  }
  runs.gradcam = async () => {
    const r = gradCam(m, x, unit);
    await r.heat.data();
    tf.dispose([r.heat, r.coarse]);
  };
  return runs;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

const round = (x: number, d = 2) => Math.round(x * 10 ** d) / 10 ** d;

/**
 * The backends compared when none are named: wasm (the reference), onnx, and a GPU provider only
 * where hardware was found (software Vulkan would take minutes per figure).
 */
export function defaultRatioBackends(): string[] {
  const out = ['wasm', 'onnx'];
  if (!hardwareGpuHint(readHostConfig().vulkanDriver)) out.push(process.platform === 'darwin' ? 'onnx-coreml' : process.platform === 'win32' ? 'onnx-directml' : 'onnx-webgpu');
  return out;
}

/** A middle conv layer: the displayed layer halfway down the list (a real conv unit). */
export function middleLayer(m: Model): string {
  const convs = m.layers.filter((l) => l.shape[0] > 1 && l.name !== m.logitsLayer);
  return convs[Math.floor(convs.length / 2)]!.name;
}

type Figure = () => Promise<void>;

function figures(m: Model, x1: tf.Tensor4D, x4: tf.Tensor4D): Record<string, Figure> {
  const taps = m.layers.map((l) => l.name);
  const mid = middleLayer(m);
  const logit: UnitObjective = { kind: 'class', index: 22 };
  const unit: UnitObjective = { kind: 'channel', layer: mid, channel: 0 };
  const grad = async (x: tf.Tensor4D, o: UnitObjective) => {
    const r = inputGradient(m, x, o);
    await r.grad.data();
    tf.dispose([r.grad, r.value]);
  };
  const f: Record<string, Figure> = {
    forward_ms: async () => {
      const l = tf.tidy(() => m.forward(x1).logits!);
      await l.data();
      l.dispose();
    },
    forward_taps_ms: async () => {
      const outs = tf.tidy(() => {
        const r = m.forward(x1, { taps });
        return [r.logits!, ...Object.values(r.taps)];
      });
      await Promise.all(outs.map((t) => t.data()));
      tf.dispose(outs);
    },
    grad_ms_logit: () => grad(x1, logit),
    grad_ms_mid: () => grad(x1, unit),
    grad_ms_batch4: () => grad(x4, logit),
  };
  for (const [name, run] of Object.entries(backprojectionRuns(m, x1, unit))) f[`${name}_ms`] = run;
  return f;
}

export interface RatioReport {
  backends: string[];
  backends_skipped: Record<string, string>;
  rounds: number;
  /** model → backend → figure → median ms. */
  ms: Record<string, Record<string, Record<string, number>>>;
  /** model → backend → figure → median ms / wasm's median ms (same rounds). */
  ratio_to_wasm: Record<string, Record<string, Record<string, number>>>;
}

/** Start each backend once: those that start, in order, and why the others did not. */
export async function startBackends(want: string[]): Promise<{ backends: string[]; skipped: Record<string, string> }> {
  const skipped: Record<string, string> = {};
  const backends: string[] = [];
  for (const b of want) {
    try {
      await selectBackend(b);
      backends.push(b);
    } catch (e) {
      skipped[b] = (e as Error).message;
    }
  }
  return { backends, skipped };
}

export interface InterleavedFigures {
  mid_layer: string;
  gradcam_layer: string;
  /** backend → figure → median ms over the rounds. */
  ms: Record<string, Record<string, number>>;
}

/** One model's figures on every backend, the backends taking turns inside every round. */
export async function measureInterleaved(id: string, backends: string[], runs: number, warmup: number): Promise<InterleavedFigures> {
  await selectBackend(backends.includes('wasm') ? 'wasm' : backends[0]);
  const m = await loadModel(id, modelsDir(readHostConfig().modelsDir));
  const [h, w] = m.inputSize;
  const x1 = m.preprocess(tf.randomUniform([1, h, w, 3], 0, 255, 'float32', 1) as tf.Tensor4D);
  const x4 = m.preprocess(tf.randomUniform([4, h, w, 3], 0, 255, 'float32', 2) as tf.Tensor4D);
  try {
    const figs = figures(m, x1, x4);
    const times: Record<string, Record<string, number[]>> = Object.fromEntries(backends.map((b) => [b, Object.fromEntries(Object.keys(figs).map((k) => [k, []]))]));
    process.stderr.write(`bench: ${id}, ${backends.join(' / ')} interleaved, ${runs} rounds…\n`);
    for (let r = 0; r < warmup + runs; r++) {
      for (const b of backends) {
        await selectBackend(b);
        for (const [k, fn] of Object.entries(figs)) {
          const t0 = performance.now();
          await fn();
          if (r >= warmup) times[b]![k]!.push(performance.now() - t0);
        }
      }
    }
    const mid = middleLayer(m);
    return {
      mid_layer: mid,
      gradcam_layer: defaultGradCamLayer(m, { kind: 'channel', layer: mid, channel: 0 }),
      ms: Object.fromEntries(backends.map((b) => [b, Object.fromEntries(Object.keys(figs).map((k) => [k, round(median(times[b]![k]!))]))])),
    };
  } finally {
    tf.dispose([x1, x4]);
    m.dispose();
  }
}

/** The ratios report of measured figures: each backend's median over wasm's (same rounds). */
export function ratioReport(backends: string[], skipped: Record<string, string>, runs: number, perModel: Record<string, InterleavedFigures>): RatioReport {
  const report: RatioReport = { backends, backends_skipped: skipped, rounds: runs, ms: {}, ratio_to_wasm: {} };
  for (const [id, f] of Object.entries(perModel)) {
    report.ms[id] = f.ms;
    const base = f.ms.wasm;
    if (base) report.ratio_to_wasm[id] = Object.fromEntries(backends.map((b) => [b, Object.fromEntries(Object.keys(base).map((k) => [k, round(f.ms[b]![k]! / base[k]!, 3)]))]));
  }
  return report;
}

export async function benchBackendRatios(opts: { backends?: string[]; models?: string[]; runs?: number; warmup?: number } = {}): Promise<RatioReport> {
  const { backends, skipped } = await startBackends(opts.backends ?? defaultRatioBackends());
  const runs = opts.runs ?? 10;
  const ids = opts.models ?? (await listModels(modelsDir(readHostConfig().modelsDir))).filter((e) => !e.problem).map((e) => e.id);
  const perModel: Record<string, InterleavedFigures> = {};
  for (const id of ids) perModel[id] = await measureInterleaved(id, backends, runs, opts.warmup ?? 2);
  return ratioReport(backends, skipped, runs, perModel);
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const { values: a } = parseArgs({ options: { backends: { type: 'string' }, models: { type: 'string' }, runs: { type: 'string' } } });
  const r = await benchBackendRatios({ backends: a.backends?.split(','), models: a.models?.split(','), runs: a.runs ? Number(a.runs) : undefined });
  process.stdout.write(JSON.stringify(r, null, 2) + '\n');
}
