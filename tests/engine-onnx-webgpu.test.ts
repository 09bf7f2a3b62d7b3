// The WebGPU execution provider ("onnx-webgpu") computes what the CPU provider computes: forward,
// input gradients and back-projection in every mode, at a small input (64×64) so SwiftShader's
// software Vulkan — the GPU path on machines without a GPU — gets through it in CI. Skipped, with
// the reason in its name, where no Vulkan driver file is found.
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { BACK_MODES, backproject, inputGradient, loadImageForModel, loadModel, objectiveValue, selectBackend, type Model, type UnitObjective } from '../main/engine/index.js';
import { photo } from './support/fixtures.js';
import { CASES, relError } from './support/gradient-cases.js';

const SWIFTSHADER = '/usr/lib/chromium/vk_swiftshader_icd.json';
// DEEPVIS_WEBGPU_DRIVER=system (scripts/gpu-check.sh on a machine with a GPU): the system's own driver.
const system = process.env.DEEPVIS_WEBGPU_DRIVER === 'system';
const icd = system ? 'the system GPU driver' : (process.env.VK_ICD_FILENAMES || (existsSync(SWIFTSHADER) ? SWIFTSHADER : null));
// Dawn reads these when the provider first starts, which is after this module loads.
if (icd && !system) {
  process.env.VK_ICD_FILENAMES = icd;
  process.env.XDG_RUNTIME_DIR ??= mkdtempSync(join(tmpdir(), 'deepvis-xdg-'));
}
const SIZE: [number, number] = [64, 64];

const title = icd ? `onnx-webgpu on ${icd}` : `onnx-webgpu — skipped: no Vulkan driver (VK_ICD_FILENAMES unset and ${SWIFTSHADER} absent; apt-get install chromium)`;

// darknet-tiny (max-pools on the GPU) takes minutes on SwiftShader: with DEEPVIS_WEBGPU_ALL=1
// (scripts/gpu-check.sh) or on a real GPU.
const MODELS = system || process.env.DEEPVIS_WEBGPU_ALL === '1' ? ['mobilenet-v1-0.25', 'darknet-tiny'] : ['mobilenet-v1-0.25'];

describe.skipIf(!icd).each(MODELS)(`${title}: %s at 64×64`, (id) => {
  let model: Model;
  let x: tf.Tensor4D;
  const ref: Record<string, Float32Array> = {};
  const mid = CASES[id]!.middle[0]!;
  const unit: UnitObjective = { kind: 'channel', layer: mid, channel: 1, at: 'center' };
  const logit: UnitObjective = { kind: 'class', index: 22 };

  const run = (): Record<string, Float32Array> => {
    const out: Record<string, Float32Array> = {};
    const take = (k: string, t: tf.Tensor) => {
      out[k] = t.dataSync().slice() as Float32Array;
      t.dispose();
    };
    take('logits', tf.tidy(() => model.forward(x).logits!));
    for (const [k, o] of [['grad_unit', unit], ['grad_logit', logit]] as const) {
      const r = inputGradient(model, x, o);
      take(k, r.grad);
      take(`${k}_value`, r.value);
    }
    for (const mode of BACK_MODES) take(mode, backproject(model, x, { kind: 'channel', layer: mid, channel: 1 }, mode));
    return out;
  };

  beforeAll(async () => {
    await selectBackend('onnx');
    model = await loadModel(id);
    const px = await loadImageForModel(photo('dog'), SIZE);
    x = tf.tidy(() => model.preprocess(tf.add(px, tf.randomNormal(px.shape, 0, 2, 'float32', 5)) as tf.Tensor4D));
    px.dispose();
    Object.assign(ref, run());
  });

  it('runs the network, its input gradients and back-projection as the CPU provider does', async () => {
    const report = await selectBackend('onnx-webgpu');
    expect(report.choice).toBe('onnx-webgpu');
    const t0 = performance.now();
    const first = run();
    const firstMs = performance.now() - t0;
    const t1 = performance.now();
    const gpu = run();
    const againMs = performance.now() - t1;
    const errors: Record<string, number> = {};
    for (const k of Object.keys(ref)) {
      errors[k] = relError(gpu[k]!, ref[k]!);
      expect(relError(first[k]!, gpu[k]!), `${k}: the same twice`).toBeLessThan(1e-6);
    }
    console.log(`${id} webgpu (${icd}): first pass ${Math.round(firstMs)} ms (sessions built), second ${Math.round(againMs)} ms; relative error to the CPU provider ${JSON.stringify(Object.fromEntries(Object.entries(errors).map(([k, v]) => [k, Number(v.toExponential(2))])))}`);
    expect(errors.logits!, 'logits').toBeLessThanOrEqual(1e-4);
    for (const k of ['grad_unit', 'grad_unit_value', 'grad_logit_value', ...BACK_MODES]) expect(errors[k]!, k).toBeLessThanOrEqual(1e-4);
    // A logit's gradient crosses every gate of the network: independent forwards may put one on
    // the other side of its kink (as wasm against cpu), so direction and size are checked there.
    expect(errors.grad_logit!, 'logit gradient').toBeLessThanOrEqual(2e-2);
    await selectBackend('onnx');
  });

  it('has input gradients that agree with finite differences of its own forward pass', async () => {
    await selectBackend('onnx-webgpu');
    const { grad, value } = inputGradient(model, x, unit);
    const d = tf.tidy(() => tf.div(grad, tf.norm(grad)) as tf.Tensor4D);
    const eps = 1e-3;
    const f = (xx: tf.Tensor4D) => tf.tidy(() => objectiveValue(model.forward(xx, { taps: [mid], logits: false }).taps[mid]!, unit).dataSync()[0]!);
    const fd = (f(tf.add(x, tf.mul(d, eps)) as tf.Tensor4D) - f(tf.sub(x, tf.mul(d, eps)) as tf.Tensor4D)) / (2 * eps);
    const analytic = tf.tidy(() => tf.sum(tf.mul(grad, d)).dataSync()[0]!);
    expect(Math.abs(fd - analytic) / Math.abs(analytic), `fd ${fd} vs g·d ${analytic}`).toBeLessThanOrEqual(2e-2);
    tf.dispose([grad, value, d]);
    await selectBackend('onnx');
  });
});
