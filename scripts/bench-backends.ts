// Per-backend figures for `npm run bench`, with each backend's ratio to wasm from the same run:
// the backends take turns inside every round (one timing of each figure per backend per round),
// so a machine shared with other work loads them alike; every figure is the median over rounds.
//   forward_ms        logits, batch 1
//   forward_taps_ms   logits + every displayed layer, downloaded
//   grad_ms_logit     input gradient of a class logit
//   grad_ms_mid       input gradient of a middle layer's unit (centre position)
//   grad_ms_batch4    input gradient of a class logit, batch 4
//   backprop_ms / deconv_ms / guided_ms / gradcam_ms   one unit of the middle layer
// Also run by scripts/gpu-check.sh; `npx tsx scripts/bench-backends.ts [--backends a,b] [--models …] [--runs N]`
// runs it alone.
import * as tf from '@tensorflow/tfjs-core';
import { parseArgs } from 'node:util';
import { pathToFileURL } from 'node:url';
import { BACK_MODES, backproject, gradCam, inputGradient, listModels, loadModel, modelsDir, selectBackend, type Model, type UnitObjective } from '../main/engine/index.js';
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

function middleLayer(m: Model): string {
  const convs = m.layers.filter((l) => l.shape[0] > 1 && l.name !== m.logitsLayer);
  return convs[Math.floor(convs.length / 2)]!.name;
}

type Figure = () => Promise<void>;

function figures(m: Model, x1: tf.Tensor4D, x4: tf.Tensor4D): Record<string, Figure> {
  const taps = m.layers.map((l) => l.name);
  const mid = middleLayer(m);
  const logit: UnitObjective = { kind: 'class', index: 22 };
  const unit = { kind: 'channel' as const, layer: mid, channel: 0 };
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
    grad_ms_mid: () => grad(x1, { ...unit, at: 'center' }),
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

export async function benchBackendRatios(opts: { backends?: string[]; models?: string[]; runs?: number; warmup?: number } = {}): Promise<RatioReport> {
  const want = opts.backends ?? defaultRatioBackends();
  const runs = opts.runs ?? 10;
  const warmup = opts.warmup ?? 2;
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
  const ids = opts.models ?? (await listModels(modelsDir(readHostConfig().modelsDir))).filter((e) => !e.problem).map((e) => e.id);
  const report: RatioReport = { backends, backends_skipped: skipped, rounds: runs, ms: {}, ratio_to_wasm: {} };
  for (const id of ids) {
    await selectBackend(backends.includes('wasm') ? 'wasm' : backends[0]);
    const m = await loadModel(id, modelsDir(readHostConfig().modelsDir));
    const [h, w] = m.inputSize;
    const x1 = m.preprocess(tf.randomUniform([1, h, w, 3], 0, 255, 'float32', 1) as tf.Tensor4D);
    const x4 = m.preprocess(tf.randomUniform([4, h, w, 3], 0, 255, 'float32', 2) as tf.Tensor4D);
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
    tf.dispose([x1, x4]);
    m.dispose();
    report.ms[id] = Object.fromEntries(backends.map((b) => [b, Object.fromEntries(Object.keys(figs).map((k) => [k, round(median(times[b]![k]!))]))]));
    if (backends.includes('wasm')) {
      const base = report.ms[id]!.wasm!;
      report.ratio_to_wasm[id] = Object.fromEntries(backends.map((b) => [b, Object.fromEntries(Object.keys(figs).map((k) => [k, round(report.ms[id]![b]![k]! / base[k]!, 3)]))]));
    }
  }
  return report;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const { values: a } = parseArgs({ options: { backends: { type: 'string' }, models: { type: 'string' }, runs: { type: 'string' } } });
  const r = await benchBackendRatios({ backends: a.backends?.split(','), models: a.models?.split(','), runs: a.runs ? Number(a.runs) : undefined });
  process.stdout.write(JSON.stringify(r, null, 2) + '\n');
}
