// Synthesis figures for `npm run bench`:
//  synth_paper3_224_s        paper-3, 1000 iterations, one seed, 224 px (flamingo)
//  synth_fast_to_target_s    per fast preset: seconds until the target class is top-1 with p ≥ 0.9,
//                            median over the five reference classes (bench-quality.ts)
//  synth_fast_seconds        per fast preset: wall time of one seed until its stop rule ends it
//  synth_fast4_224_s         per fast preset: four seeds at 224 px, wall time to the stop rule
//  synth_step_ms             per preset, ms per step (20 steps after warm-up), batch of 4 seeds
//  synth_grad_ms_batch4      the plain input gradient of a class logit for the same batch of 4
//  synth_step_vs_grad        synth_step_ms / synth_grad_ms_batch4 (target ≤ 1.3)
import * as tf from '@tensorflow/tfjs-core';
import { inputGradient, resolveClass, type Model } from '../main/engine/index.js';
import { PRESETS, PRESET_NAMES, presetSettings, synthesize } from '../main/engine/synthesis/index.js';
import { REFERENCE_CLASSES } from './bench-quality.js';

export const TARGET_CLASSES = REFERENCE_CLASSES;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

const round = (x: number, d = 2) => Math.round(x * 10 ** d) / 10 ** d;

const FAST = PRESET_NAMES.filter((p) => PRESETS[p].kind === 'fast');

/** The same batch through the plain input gradient (no parameterisation, no regularisers). */
async function gradMs(m: Model, index: number, batch: number, runs = 10): Promise<number> {
  const x = tf.tidy(() => m.preprocess(tf.randomUniform([batch, ...m.inputSize, 3], 0, 255, 'float32', 3) as tf.Tensor4D));
  const times: number[] = [];
  for (let i = 0; i < runs + 2; i++) {
    const t0 = performance.now();
    const r = inputGradient(m, x, { kind: 'class', index });
    await r.grad.data();
    tf.dispose([r.grad, r.value] as tf.Tensor[]);
    if (i >= 2) times.push(performance.now() - t0);
  }
  x.dispose();
  return median(times);
}

export async function benchSynthesis(m: Model, opts: { paper3Iterations?: number } = {}): Promise<Record<string, unknown>> {
  const flamingo = resolveClass(m.classes, TARGET_CLASSES[0]!, m.id).index;
  const seeds4 = [1, 2, 3, 4];
  const grad4 = await gradMs(m, flamingo, 4);
  const stepMs: Record<string, number> = {};
  const ratio: Record<string, number> = {};
  for (const p of PRESET_NAMES) {
    if (PRESETS[p].kind === 'frame') continue; // needs a frame; its step is the paper's pixel step
    const s = presetSettings(p);
    s.iterations = 20;
    s.stop = null;
    await synthesize({ model: m, objective: { kind: 'class', index: flamingo }, settings: { ...s, iterations: 3 }, seeds: seeds4 }); // warm-up
    const r = await synthesize({ model: m, objective: { kind: 'class', index: flamingo }, settings: s, seeds: seeds4 });
    stepMs[p] = round((r.seconds * 1000) / r.iterations);
    ratio[p] = round(stepMs[p]! / grad4);
  }
  const p3 = presetSettings('paper-3');
  if (opts.paper3Iterations) p3.iterations = opts.paper3Iterations;
  const paper3 = await synthesize({ model: m, objective: { kind: 'class', index: flamingo }, settings: p3, seeds: [1] });
  const toTarget: Record<string, number | null> = {};
  const toTargetPerClass: Record<string, Record<string, number | null>> = {};
  const fastSeconds: Record<string, number> = {};
  const fast4: Record<string, { seconds: number; iterations: number; stop: string; top1: number }> = {};
  for (const preset of FAST) {
    const per: Record<string, number | null> = {};
    const secs: number[] = [];
    for (const wnid of TARGET_CLASSES) {
      const c = resolveClass(m.classes, wnid, m.id);
      const r = await synthesize({ model: m, objective: { kind: 'class', index: c.index }, settings: presetSettings(preset), seeds: [1] });
      per[c.name.split(',')[0]!] = r.secondsToTarget === null ? null : round(r.secondsToTarget);
      secs.push(r.seconds);
    }
    const reached = Object.values(per).filter((v): v is number => v !== null);
    toTarget[preset] = reached.length === TARGET_CLASSES.length ? round(median(reached)) : null;
    toTargetPerClass[preset] = per;
    fastSeconds[preset] = round(median(secs));
    const r4 = await synthesize({ model: m, objective: { kind: 'class', index: flamingo }, settings: presetSettings(preset), seeds: seeds4, size: [224, 224] });
    fast4[preset] = { seconds: round(r4.seconds, 1), iterations: r4.iterations, stop: r4.stopReason, top1: r4.images.filter((im) => im.top5?.[0]?.index === flamingo).length / 4 };
  }
  return {
    synth_paper3_224_s: round(paper3.seconds, 1),
    synth_paper3_iterations: p3.iterations,
    synth_paper3_top1: paper3.images[0]!.top5![0]!.name.split(',')[0],
    synth_fast_to_target_s: toTarget,
    synth_fast_to_target_per_class_s: toTargetPerClass,
    synth_fast_seconds: fastSeconds,
    synth_fast4_224: fast4,
    synth_step_ms: stepMs,
    synth_grad_ms_batch4: round(grad4),
    synth_step_vs_grad: ratio,
  };
}
