// The optimisation loop: regularised gradient ascent on a unit's activation for a batch of seeds
// (one batched gradient per step), keeping each seed's best image, reporting progress and yielding
// to the event loop between steps so a live view in the same process keeps running.
import * as tf from '@tensorflow/tfjs-core';
import type { Model, TopK } from '../model.js';
import { objectiveNode, type UnitObjective } from '../objectives.js';
import { SYNTH_LIMITS, type StopReason, type SynthSettings } from './settings.js';
import { pyramidLevels, settingsForSize } from './model-scale.js';
import { GREY, toRgbBytes, type OptimisedBatch } from './batch.js';
import { tensorBatch } from './tensor-batch.js';
import { pyramidBatch } from './pyramid-batch.js';
import { tidyData } from '../tensor-data.js';

export { mulberry32, previewBytes, toRgbBytes } from './batch.js';

export interface SynthRequest {
  model: Model;
  /** One objective for every seed, or one per seed (all reading the same layer: an atlas batch). */
  objective: UnitObjective | UnitObjective[];
  settings: SynthSettings;
  /** One image per seed; seeds make runs reproducible. */
  seeds: number[];
  /** [height, width]; the bundled models pool globally, so class units work at any size. */
  size?: [number, number];
  signal?: AbortSignal;
  onProgress?: (p: SynthProgress) => void;
  /** Minimum time between previews (ms); 0 = no previews. */
  previewEveryMs?: number;
  /** The image to start from, pixels 0…255 [1,h,w,3], for settings with start "frame". */
  start?: tf.Tensor4D;
}

export interface SynthProgress {
  iteration: number;
  iterations: number;
  /** Objective per seed at this iteration (empty in the start image's preview, sent before the first step). */
  objective: number[];
  /** Softmax probability of the target class per seed (class units), else null. */
  targetProb: number[] | null;
  /** Some seed's target class has reached the recognition threshold (the stop rule's, else 0.9). */
  recognised: boolean;
  elapsedMs: number;
  /** Current images, one per seed, contrast-stretched about grey (previewBytes), every previewEveryMs; the first step always has one. */
  preview?: { width: number; height: number; images: Uint8Array[] };
}

export interface SynthImage {
  seed: number;
  width: number;
  height: number;
  /** The best image, packed RGB bytes. */
  rgb: Uint8Array;
  objectiveStart: number;
  objectiveBest: number;
  bestIteration: number;
  /** Objective at every iteration. */
  curve: number[];
  /** For class units: the target's probability and the top-5 of the saved (8-bit) best image. */
  targetProb: number | null;
  top5: TopK[] | null;
}

export interface SynthResult {
  images: SynthImage[];
  iterations: number;
  seconds: number;
  /** Seconds until the target class first reached p ≥ 0.9 in any seed (class units), else null. */
  secondsToTarget: number | null;
  cancelled: boolean;
  /** Why the run ended: all its iterations, the stop rule (recognised / plateau), the time budget, or a cancel. */
  stopReason: StopReason;
}

const nextTick = () => new Promise<void>((r) => setImmediate(r));

/** The stop rule's plateau: the best objective of every seed grew by less than `rel` over `window` steps. */
function plateaued(curves: number[][], window: number, rel: number): boolean {
  return curves.every((c) => {
    if (c.length <= window) return false;
    let now = -Infinity;
    let then = -Infinity;
    for (let i = 0; i < c.length; i++) {
      now = Math.max(now, c[i]!);
      if (i < c.length - window) then = now;
    }
    return now - then <= rel * Math.max(Math.abs(now), 1e-6);
  });
}

export async function synthesize(req: SynthRequest): Promise<SynthResult> {
  const { model, seeds } = req;
  if (seeds.length < 1) throw new Error('at least one seed is needed');
  // A copy of the caller's list, frozen: each step's gradient reuses the seed built from it.
  const objectives = Object.freeze(Array.isArray(req.objective) ? [...req.objective] : seeds.map(() => req.objective as UnitObjective));
  if (objectives.length !== seeds.length) throw new Error(`${objectives.length} objectives for ${seeds.length} seeds`);
  const o = objectives[0]!;
  const isClass = objectives.every((x) => x.kind === 'class');
  const [h, w] = req.size ?? model.inputSize;
  // From the least size (or the model's own input, if smaller: a 28 px digit model) to the largest.
  const least = Math.min(SYNTH_LIMITS.minSize, ...model.inputSize);
  const { maxSize } = SYNTH_LIMITS;
  if (h < least || w < least || h > maxSize || w > maxSize) throw new Error(`image size ${h}×${w} is outside ${least}…${maxSize} px`);
  const s = settingsForSize(req.settings, [h, w]);
  if ((s.scale || s.rotate) && s.param !== 'pyramid') throw new Error('scaled and rotated views are implemented for the pyramid only');
  if (s.start === 'frame' && !req.start) throw new Error('this preset starts from a frame: pass the image to start from');
  if (req.start && (req.start.shape[1] !== h || req.start.shape[2] !== w)) throw new Error(`start image is ${req.start.shape[1]}×${req.start.shape[2]}, expected ${h}×${w}`);
  const node = objectiveNode(model, o);
  for (const x of objectives) if (objectiveNode(model, x) !== node) throw new Error('every objective of one run must read the same layer');
  const n = seeds.length;
  const t0 = performance.now();

  // The start image (centred), when the preset starts from the user's frame: every seed starts
  // there, with a little seeded noise so that seeds differ.
  const anchor = s.start === 'frame' && req.start ? tf.tidy(() => tf.tile(tf.sub(req.start!, GREY), [n, 1, 1, 1]) as tf.Tensor4D) : null;
  let batch: OptimisedBatch;
  try {
    batch = s.param === 'pyramid' ? pyramidBatch(model, s, objectives, node, seeds, [h, w], pyramidLevels([h, w]), anchor) : await tensorBatch(model, s, objectives, node, seeds, [h, w], anchor);
  } catch (e) {
    anchor?.dispose();
    throw e;
  }
  const bestValue = new Array<number>(n).fill(-Infinity);
  const bestIter = new Array<number>(n).fill(0);
  const curves: number[][] = seeds.map(() => []);
  let lastPreview = -Infinity;
  let secondsToTarget: number | null = null;
  let cancelled = false;
  let stopReason: StopReason = 'iterations';
  const recogniseAt = s.stop?.prob ?? 0.9;
  // Steps in a row with every seed's target probability at the stop rule's threshold.
  let recognisedRun = 0;
  // The step at which every seed had first held it for the rule's window; the run goes on `after` steps more.
  let heldAt: number | null = null;
  let it = 0;

  try {
    if (req.onProgress && req.previewEveryMs) {
      // The start image at once, before the first gradient returns (which can take seconds on a
      // busy machine): the run is visibly under way from the moment it is asked for.
      const now = performance.now();
      req.onProgress({ iteration: 0, iterations: s.iterations, objective: [], targetProb: null, recognised: false, elapsedMs: now - t0, preview: { width: w, height: h, images: batch.preview() } });
      lastPreview = now;
    }
    for (it = 0; it < s.iterations; it++) {
      if (req.signal?.aborted) {
        cancelled = true;
        stopReason = 'cancelled';
        break;
      }
      try {
        const { values, probs } = await batch.evaluate(it);
        const now = performance.now();

        // Keep each seed's best image (the image whose objective was just measured).
        const improved = values.map((v, i) => v > bestValue[i]!);
        if (improved.some(Boolean)) {
          batch.keepBest(improved);
          values.forEach((v, i) => {
            if (improved[i]) {
              bestValue[i] = v;
              bestIter[i] = it;
            }
          });
        }
        values.forEach((v, i) => curves[i]!.push(v));

        const recognised = probs !== null && probs.some((p) => p >= recogniseAt);
        if (probs !== null && probs.some((p) => p >= 0.9) && secondsToTarget === null) secondsToTarget = (now - t0) / 1000;
        if (req.onProgress) {
          const p: SynthProgress = { iteration: it, iterations: s.iterations, objective: values, targetProb: probs, recognised, elapsedMs: now - t0 };
          if (req.previewEveryMs && now - lastPreview >= req.previewEveryMs) {
            p.preview = { width: w, height: h, images: batch.preview() };
            lastPreview = now;
          }
          req.onProgress(p);
        }
        // The stop rule (fast presets): recognised in every seed, held, then `after` steps more.
        let stop: StopReason | null = null;
        if (s.stop) {
          if (probs !== null) {
            recognisedRun = probs.every((q) => q >= s.stop!.prob) ? recognisedRun + 1 : 0;
            if (heldAt === null && recognisedRun >= s.stop.window) heldAt = it;
            if (heldAt !== null && it - heldAt >= s.stop.after) stop = 'recognised';
          } else if (plateaued(curves, s.stop.plateauWindow, s.stop.plateau)) stop = 'plateau';
        }
        if (!stop && s.timeBudgetS > 0 && now - t0 >= s.timeBudgetS * 1000) stop = 'budget';

        if (!stop) batch.step(it + 1);
        if (stop) {
          stopReason = stop;
          it += 1;
          break;
        }
      } finally {
        batch.endStep();
      }
      await nextTick();
    }

    const best = batch.best();
    // Judge the saved images as a user would: the 8-bit best image, unjittered.
    const rgb = toRgbBytes(best);
    best.dispose();
    const saved = tf.tidy(() => tf.concat(rgb.map((b) => tf.tensor4d(b, [1, h, w, 3], 'int32').toFloat())) as tf.Tensor4D);
    let top5: TopK[][] | null = null;
    let finalProb: number[] | null = null;
    if (isClass) {
      const logits = tf.tidy(() => model.forward(model.preprocess(saved)).logits!);
      top5 = await model.topK(logits, 5);
      const p = tidyData(() => tf.softmax(logits));
      finalProb = objectives.map((x, i) => p[i * logits.shape[1] + (x as { index: number }).index]!);
      logits.dispose();
    }
    saved.dispose();
    return {
      images: seeds.map((seed, i) => ({
        seed,
        width: w,
        height: h,
        rgb: rgb[i]!,
        objectiveStart: curves[i]![0] ?? NaN,
        objectiveBest: bestValue[i]!,
        bestIteration: bestIter[i]!,
        curve: curves[i]!,
        targetProb: finalProb ? finalProb[i]! : null,
        top5: top5 ? top5[i]! : null,
      })),
      iterations: it,
      seconds: (performance.now() - t0) / 1000,
      secondsToTarget,
      cancelled,
      stopReason,
    };
  } finally {
    anchor?.dispose();
    batch.dispose();
  }
}
