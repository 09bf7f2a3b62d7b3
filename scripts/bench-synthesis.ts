// Synthesis figures for `npm run bench`:
//  synth_paper3_224_s        paper-3, 1000 iterations, one seed, 224 px (flamingo); only with
//                            --full (a minute or more per model and backend): otherwise the same
//                            settings run 110 steps, and synth_paper3_ms_per_step (the mean of
//                            steps 11–110) gives synth_paper3_224_s_projected (the first ten as
//                            timed + that × the other iterations), a projection, named so
//  synth_fast_to_target_s    per fast preset: seconds until the target class is top-1 with p ≥ 0.9,
//                            median over the five reference classes (bench-quality.ts); each
//                            class's run ends when it gets there (the steps the stop rule would
//                            still run measure nothing here) or at TO_TARGET_CAP_S (five times the
//                            3 s target); a class not reached by then is null and counts as
//                            slower than every class that was (null median once most miss); the
//                            per-class times beside it show which missed
//  synth_fast_seconds        per fast preset: wall time of one seed (flamingo) until its stop rule ends it
//  synth_fast4_224_s         per fast preset: four seeds at 224 px, wall time to the stop rule; on
//                            FAST4_MODELS only (the model the target names) unless fast4All
//  synth_step_ms             per preset, ms per step, batch of 4 seeds: the mean over synth_steps_timed
//                            steps (a multiple of 4, so blur steps count as often as they run)
//                            after two warm-up steps of the same run
//  synth_first_step_ms       per preset, from the call to the end of its first step (set-up included)
//  synth_grad_ms_batch4      the plain input gradient of a class logit for the same batch of 4
//  synth_step_vs_grad        synth_step_ms / synth_grad_ms_batch4 (target ≤ 1.3)
import * as tf from '@tensorflow/tfjs-core';
import { inputGradient, resolveClass, type Model } from '../main/engine/index.js';
import { PRESETS, PRESET_NAMES, presetSettings, synthesize, type SynthSettings } from '../main/engine/synthesis/index.js';
import { medianToTarget, REFERENCE_CLASSES } from './bench-quality.js';

export const TARGET_CLASSES = REFERENCE_CLASSES;
/** A to-target run that has not reached the class by now has missed the 3 s target fivefold. */
export const TO_TARGET_CAP_S = 15;
/** The four-seed run's model: the one its target (≤ 20 s) names. Each run is 100+ steps of four images. */
export const FAST4_MODELS = ['mobilenet-v1-0.75'];

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

/** Warm-up steps of a step-timing run, not timed (the first steps compile and allocate). */
const WARM_STEPS = 2;

/**
 * Time the steps of one run of `settings` (without its stop rule): the first step from the call
 * (set-up included), the first `warm` steps from the call, and the mean of `timed` steps after them.
 */
async function stepTimes(m: Model, index: number, settings: SynthSettings, seeds: number[], timed: number, warm = WARM_STEPS): Promise<{ stepMs: number; firstStepMs: number; warmMs: number }> {
  const stamps: number[] = [];
  const t0 = performance.now();
  await synthesize({
    model: m,
    objective: { kind: 'class', index },
    settings: { ...settings, iterations: warm + timed, stop: null },
    seeds,
    onProgress: () => void stamps.push(performance.now()),
  });
  if (stamps.length !== warm + timed) throw new Error(`a ${settings.param} run of ${warm + timed} steps reported ${stamps.length}`);
  return { stepMs: (stamps.at(-1)! - stamps[warm - 1]!) / timed, firstStepMs: stamps[0]! - t0, warmMs: stamps[warm - 1]! - t0 };
}

export interface SynthBenchOptions {
  paper3Iterations?: number;
  /** Run paper-3 to its iteration count (else its step is timed and the run's length projected). */
  paper3Full: boolean;
  /** Timed runs per figure (--runs): steps timed per preset are this, rounded up to a multiple of 4. */
  runs: number;
  /** Only the step figures (synth_step_ms, synth_grad_ms_batch4, synth_step_vs_grad). */
  stepsOnly?: boolean;
  /** synth_fast4_224 on every model, not only FAST4_MODELS. */
  fast4All?: boolean;
  /** Times one part of the figures (section_seconds). */
  section: <T>(name: string, fn: () => Promise<T>) => Promise<T>;
}

export async function benchSynthesis(m: Model, opts: SynthBenchOptions): Promise<Record<string, unknown>> {
  const flamingo = resolveClass(m.classes, TARGET_CLASSES[0]!, m.id).index;
  const seeds4 = [1, 2, 3, 4];
  const timed = Math.max(12, Math.ceil(opts.runs / 4) * 4);
  const stepMs: Record<string, number> = {};
  const firstStepMs: Record<string, number> = {};
  const ratio: Record<string, number> = {};
  const grad4 = await opts.section('synth_steps', async () => {
    const grad4 = await gradMs(m, flamingo, 4, opts.runs);
    for (const p of PRESET_NAMES) {
      if (PRESETS[p].kind === 'frame') continue; // needs a frame; its step is the paper's pixel step
      const t = await stepTimes(m, flamingo, presetSettings(p), seeds4, timed);
      stepMs[p] = round(t.stepMs);
      firstStepMs[p] = round(t.firstStepMs);
      ratio[p] = round(stepMs[p]! / grad4);
    }
    return grad4;
  });
  const steps = { synth_step_ms: stepMs, synth_steps_timed: timed, synth_first_step_ms: firstStepMs, synth_grad_ms_batch4: round(grad4), synth_step_vs_grad: ratio };
  if (opts.stepsOnly) return steps;
  const p3 = presetSettings('paper-3');
  if (opts.paper3Iterations) p3.iterations = opts.paper3Iterations;
  const paper3: Record<string, unknown> = await opts.section('synth_paper3', async () => {
    // The first steps of a run are slower than the rest (seen on wasm: about 1.5× over the first
    // forty): they are timed as they are, the steady step after them.
    const warm = 10;
    const steps = Math.max(100, timed);
    if (!opts.paper3Full && p3.iterations > 2 * (warm + steps)) {
      const t = await stepTimes(m, flamingo, p3, [1], steps, warm);
      return {
        synth_paper3_ms_per_step: round(t.stepMs),
        synth_paper3_steps_timed: steps,
        synth_paper3_first_steps_s: round(t.warmMs / 1000, 2),
        synth_paper3_224_s_projected: round((t.warmMs + t.stepMs * (p3.iterations - warm)) / 1000, 1),
        synth_paper3_iterations: p3.iterations,
        synth_paper3_note: `projected, not measured: the first ${warm} steps as timed + ms per step × the other iterations; --full runs them all`,
      };
    }
    const r = await synthesize({ model: m, objective: { kind: 'class', index: flamingo }, settings: p3, seeds: [1] });
    return { synth_paper3_224_s: round(r.seconds, 1), synth_paper3_iterations: p3.iterations, synth_paper3_top1: r.images[0]!.top5![0]!.name.split(',')[0] };
  });
  const toTarget: Record<string, number | null> = {};
  const toTargetPerClass: Record<string, Record<string, number | null>> = {};
  const fastSeconds: Record<string, number> = {};
  const fast4: Record<string, { seconds: number; iterations: number; stop: string; top1: number }> = {};
  await opts.section('synth_fast', async () => {
    for (const preset of FAST) {
      const per: Record<string, number | null> = {};
      for (const wnid of TARGET_CLASSES) {
        const c = resolveClass(m.classes, wnid, m.id);
        const capped = { ...presetSettings(preset), timeBudgetS: TO_TARGET_CAP_S };
        const reached = new AbortController();
        const r = await synthesize({
          model: m,
          objective: { kind: 'class', index: c.index },
          settings: capped,
          seeds: [1],
          signal: reached.signal,
          onProgress: (p) => void (p.targetProb?.some((q) => q >= 0.9) && reached.abort()),
        });
        per[c.name.split(',')[0]!] = r.secondsToTarget === null ? null : round(r.secondsToTarget);
      }
      const med = medianToTarget(Object.values(per));
      toTarget[preset] = med === null ? null : round(med);
      toTargetPerClass[preset] = per;
      const whole = await synthesize({ model: m, objective: { kind: 'class', index: flamingo }, settings: presetSettings(preset), seeds: [1] });
      fastSeconds[preset] = round(whole.seconds);
      if (!opts.fast4All && !FAST4_MODELS.includes(m.id)) continue;
      const r4 = await synthesize({ model: m, objective: { kind: 'class', index: flamingo }, settings: presetSettings(preset), seeds: seeds4, size: [224, 224] });
      fast4[preset] = { seconds: round(r4.seconds, 1), iterations: r4.iterations, stop: r4.stopReason, top1: r4.images.filter((im) => im.top5?.[0]?.index === flamingo).length / 4 };
    }
  });
  return {
    ...paper3,
    synth_fast_to_target_s: toTarget,
    synth_fast_to_target_per_class_s: toTargetPerClass,
    synth_fast_seconds: fastSeconds,
    synth_fast_to_target_cap_s: TO_TARGET_CAP_S,
    synth_fast4_224: fast4,
    ...steps,
  };
}
