// The optimisation loop: regularised gradient ascent on a unit's activation for a batch of seeds
// (one batched gradient per step), keeping each seed's best image, reporting progress and yielding
// to the event loop between steps so a live view in the same process keeps running.
import * as tf from '@tensorflow/tfjs-core';
import type { Model, TopK } from '../model.js';
import { nativeObjectiveGradient, objectiveMask, objectiveNode, type UnitObjective } from '../objectives.js';
import { nativeEngine } from '../onnx/native-net.js';
import { macoParam, pixelParam, pyramidParam, type Parameterization } from './parameterization.js';
import { regularize } from './regularizers.js';
import { SYNTH_LIMITS, type StopReason, type SynthSettings } from './settings.js';
import { gradientGain, pyramidLevels, scaledPolicy, settingsForSize } from './model-scale.js';
import { makeStepper } from './step-size.js';
import { allFinite, nonFiniteError } from '../finite.js';

const GREY = 127.5;

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

/** Roll an image batch by (dy, dx) with wrap-around. */
function roll(x: tf.Tensor4D, dy: number, dx: number): tf.Tensor4D {
  return tf.tidy(() => rollUntidy(x, dy, dx));
}

function rollUntidy(x: tf.Tensor4D, dy: number, dx: number): tf.Tensor4D {
  const [, h, w] = x.shape;
  const sy = ((dy % h) + h) % h;
  const sx = ((dx % w) + w) % w;
  let r = x;
  if (sy) r = tf.concat([tf.slice(r, [0, h - sy, 0, 0], [-1, sy, -1, -1]), tf.slice(r, [0, 0, 0, 0], [-1, h - sy, -1, -1])], 1);
  if (sx) r = tf.concat([tf.slice(r, [0, 0, w - sx, 0], [-1, -1, sx, -1]), tf.slice(r, [0, 0, 0, 0], [-1, -1, w - sx, -1])], 2);
  return r;
}

/** A small deterministic PRNG (mulberry32): seeded jitter makes runs reproducible. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Centred pixels → displayable 8-bit RGB, one array per image. */
export function toRgbBytes(img: tf.Tensor4D): Uint8Array[] {
  const [n, h, w] = img.shape;
  const data = tf.tidy(() => tf.cast(tf.round(tf.clipByValue(tf.add(img, GREY), 0, 255)), 'int32').dataSync());
  const out: Uint8Array[] = [];
  for (let i = 0; i < n; i++) out.push(Uint8Array.from(data.subarray(i * h * w * 3, (i + 1) * h * w * 3)));
  return out;
}

interface StepEval {
  value: tf.Tensor1D;
  grad: tf.Tensor4D;
  prob: tf.Tensor1D | null;
}

/** Objective, its gradient w.r.t. the NETWORK INPUT, and the target probability, for centred pixels. */
function evaluate(model: Model, img: tf.Tensor4D, objectives: UnitObjective[], node: number): StepEval {
  const [value, grad, prob] = tf.tidy(() => {
    const x = model.preprocess(tf.clipByValue(tf.add(img, GREY), 0, 255) as tf.Tensor4D);
    const classes = objectives.every((o) => o.kind === 'class');
    let value: tf.Tensor;
    let grad: tf.Tensor;
    let logits: tf.Tensor | null = null;
    if (nativeEngine(model)) {
      // The network on ONNX Runtime: objective, gradient and logits from one run.
      ({ value, grad, logits } = nativeObjectiveGradient(model, x, objectives, node, { linearStart: true, logits: classes }));
    } else {
      const values = model.compiled.net.run(x, { until: Math.max(classes ? model.compiled.logitsNode : node, node) });
      // The objective is the unit's PRE-activation (before its own ReLU/ReLU6): a unit that starts
      // dead (0 behind its ReLU) would have no gradient, and a ReLU6 unit would stop improving at 6.
      // Class logits are linear anyway.
      const pre = model.compiled.net.preActivation(values, node);
      const mask = objectiveMask(pre.shape, objectives);
      value = tf.sum(tf.reshape(tf.mul(pre, mask), [pre.shape[0]!, -1]), 1) as tf.Tensor1D;
      grad = model.compiled.net.backward(values, node, mask, { linearStart: true }) as tf.Tensor4D;
      if (classes) logits = values[model.compiled.logitsNode]!;
    }
    if (!classes || !logits) return [value, grad];
    const p = tf.softmax(tf.reshape(logits, [logits.shape[0]!, -1]));
    const prob = tf.sum(tf.mul(p, tf.oneHot(objectives.map((o) => (o as { index: number }).index), p.shape[1]!)), 1);
    return [value, grad, prob];
  });
  return { value: value as tf.Tensor1D, grad: grad as tf.Tensor4D, prob: (prob as tf.Tensor1D | undefined) ?? null };
}

const nextTick = () => new Promise<void>((r) => setImmediate(r));

/** Whether any pixel-space regulariser (or the pull toward the start image) acts at this step. */
function regularizes(s: SynthSettings, step: number): boolean {
  return s.decay > 0 || (s.blurWidth > 0 && s.blurEvery > 0 && step % s.blurEvery === 0) || s.normPct > 0 || s.contribPct > 0 || s.closeness > 0;
}

/**
 * Preview bytes as the pane shows them: centred pixels scaled about grey so the largest deviation
 * reaches the full range when it is smaller (the first steps' images are faint, not grey fields).
 */
export function previewBytes(img: tf.Tensor4D): Uint8Array[] {
  const stretched = tf.tidy(() => {
    const peak = tf.max(tf.abs(img), [1, 2, 3], true);
    const gain = tf.clipByValue(tf.div(GREY, tf.maximum(peak, 1e-6)), 1, 1e4);
    return tf.mul(img, gain) as tf.Tensor4D;
  });
  try {
    return toRgbBytes(stretched);
  } finally {
    stretched.dispose();
  }
}

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
  const objectives = Array.isArray(req.objective) ? req.objective : seeds.map(() => req.objective as UnitObjective);
  if (objectives.length !== seeds.length) throw new Error(`${objectives.length} objectives for ${seeds.length} seeds`);
  const o = objectives[0]!;
  const isClass = objectives.every((x) => x.kind === 'class');
  const [h, w] = req.size ?? model.inputSize;
  // From the least size (or the model's own input, if smaller: a 28 px digit model) to the largest.
  const least = Math.min(SYNTH_LIMITS.minSize, ...model.inputSize);
  const { maxSize } = SYNTH_LIMITS;
  if (h < least || w < least || h > maxSize || w > maxSize) throw new Error(`image size ${h}×${w} is outside ${least}…${maxSize} px`);
  const s = settingsForSize(req.settings, [h, w]);
  if (s.start === 'frame' && !req.start) throw new Error('this preset starts from a frame: pass the image to start from');
  if (req.start && (req.start.shape[1] !== h || req.start.shape[2] !== w)) throw new Error(`start image is ${req.start.shape[1]}×${req.start.shape[2]}, expected ${h}×${w}`);
  const node = objectiveNode(model, o);
  for (const x of objectives) if (objectiveNode(model, x) !== node) throw new Error('every objective of one run must read the same layer');
  const n = seeds.length;
  const t0 = performance.now();

  // The start image (centred), when the preset starts from the user's frame: every seed starts
  // there, with a little seeded noise so that seeds differ.
  const anchor = s.start === 'frame' && req.start ? tf.tidy(() => tf.tile(tf.sub(req.start!, GREY), [n, 1, 1, 1]) as tf.Tensor4D) : null;
  const noise = tf.tidy(() => tf.concat(seeds.map((sd) => tf.randomNormal([1, h, w, 3], 0, anchor ? 2 : 10, 'float32', sd))) as tf.Tensor4D);
  const init = anchor ? tf.tidy(() => tf.add(anchor, noise) as tf.Tensor4D) : noise;
  const param: Parameterization =
    s.param === 'pixels' ? pixelParam(init) : s.param === 'pyramid' ? pyramidParam(n, h, w, seeds[0]!, pyramidLevels([h, w])) : macoParam(n, h, w, seeds[0]!);
  tf.dispose([noise, init]);
  // η scaled for models whose gradients are weaker than the bundled ones' (model-scale.ts).
  let gain = 1;
  if (s.param === 'pixels' && s.step.kind !== 'adam') {
    const img0 = param.image();
    const ev0 = evaluate(model, img0, objectives, node);
    const rms = tf.tidy(() => tf.sqrt(tf.mean(tf.square(ev0.grad))));
    gain = gradientGain((await rms.data())[0]!);
    tf.dispose([img0, ev0.value, ev0.grad, rms, ...(ev0.prob ? [ev0.prob] : [])]);
  }
  // One stepper per variable: Adam keeps moment estimates of that variable's shape.
  const steppers = param.params.map(() => makeStepper(scaledPolicy(s.step, gain)));
  const jitter = mulberry32(seeds[0]! * 7919 + 1);
  let best: tf.Tensor4D = param.image();
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
  let it = 0;

  try {
    if (req.onProgress && req.previewEveryMs) {
      // The start image at once, before the first gradient returns (which can take seconds on a
      // busy machine): the run is visibly under way from the moment it is asked for.
      const now = performance.now();
      req.onProgress({ iteration: 0, iterations: s.iterations, objective: [], targetProb: null, recognised: false, elapsedMs: now - t0, preview: { width: w, height: h, images: previewBytes(best) } });
      lastPreview = now;
    }
    for (it = 0; it < s.iterations; it++) {
      if (req.signal?.aborted) {
        cancelled = true;
        stopReason = 'cancelled';
        break;
      }
      const img = param.image();
      // This step's tensors, released however the step ends (a throw from a kernel or data() too).
      const held: tf.Tensor[] = [img];
      try {
        const dy = s.jitter ? Math.round((jitter() * 2 - 1) * s.jitter) : 0;
        const dx = s.jitter ? Math.round((jitter() * 2 - 1) * s.jitter) : 0;
        const seen = dy || dx ? roll(img, dy, dx) : img;
        held.push(seen);
        const ev = evaluate(model, seen, objectives, node);
        held.push(ev.value, ev.grad, ...(ev.prob ? [ev.prob] : []));
        const gIn = dy || dx ? roll(ev.grad, -dy, -dx) : ev.grad;
        held.push(gIn);
        const gradFinite = tf.tidy(() => tf.all(tf.isFinite(gIn)));
        held.push(gradFinite);
        const values = Array.from(await ev.value.data());
        const probs = ev.prob ? Array.from(await ev.prob.data()) : null;
        // A NaN or Infinity would be kept as the best image's value, shown in previews and, once
        // stepped on, fill the image with NaN: the run ends here with one named error instead.
        if (!allFinite(values) || !(await gradFinite.data())[0]) {
          const x = tf.tidy(() => model.preprocess(tf.clipByValue(tf.add(seen, GREY), 0, 255) as tf.Tensor4D));
          held.push(x);
          throw nonFiniteError(model, x, allFinite(values) ? 'objective’s gradient' : 'objective', ` at step ${it + 1} of the synthesis`);
        }
        const now = performance.now();

        // Keep each seed's best image (the image whose objective was just measured).
        const improved = values.map((v, i) => v > bestValue[i]!);
        if (improved.some(Boolean)) {
          // Whole-batch copy when every seed improved (the usual case); otherwise splice per seed.
          // (A broadcast mask + where costs a Tile of the image on wasm: 6 ms a step at 224 px.)
          const next = improved.every(Boolean)
            ? img.clone()
            : (tf.tidy(() => tf.concat(improved.map((b, i) => tf.slice(b ? img : best, [i, 0, 0, 0], [1, -1, -1, -1])))) as tf.Tensor4D);
          best.dispose();
          best = next;
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
            p.preview = { width: img.shape[2], height: img.shape[1], images: previewBytes(img) };
            lastPreview = now;
          }
          req.onProgress(p);
        }
        // The stop rule (fast presets): recognised in every seed and no longer improving.
        let stop: StopReason | null = null;
        if (s.stop) {
          if (probs !== null) {
            recognisedRun = probs.every((q) => q >= s.stop!.prob) ? recognisedRun + 1 : 0;
            if (recognisedRun >= s.stop.window) stop = 'recognised';
          } else if (plateaued(curves, s.stop.window, s.stop.plateau)) stop = 'plateau';
        }
        if (!stop && s.timeBudgetS > 0 && now - t0 >= s.timeBudgetS * 1000) stop = 'budget';

        if (!stop) {
          // The step: Δ = step(∂a/∂input) on the variables, see settings.ts for why the input gradient.
          const grads = param.paramGrads(gIn);
          param.params.forEach((v, i) => {
            const u = steppers[i]!.update(grads[i]! as tf.Tensor4D);
            const moved = tf.add(v, u);
            v.assign(moved); // assign shares the data; the handle is ours to drop
            tf.dispose([u, moved]);
          });
          tf.dispose(grads);
          // Then the regularisers, in pixel space, whatever the parameterisation (and the clip).
          if (regularizes(s, it + 1)) {
            const next = tf.tidy(() => {
              const moved = param.image();
              return tf.clipByValue(regularize(moved, gIn, s, it + 1, anchor), -GREY, GREY) as tf.Tensor4D;
            });
            param.setImage(next);
            next.dispose();
          } else if (s.param === 'pixels') {
            const v = param.params[0]!;
            v.assign(tf.tidy(() => tf.clipByValue(v, -GREY, GREY)));
          }
        }
        if (stop) {
          stopReason = stop;
          it += 1;
          break;
        }
      } finally {
        tf.dispose(held);
      }
      await nextTick();
    }

    // Judge the saved images as a user would: the 8-bit best image, unjittered.
    const rgb = toRgbBytes(best);
    const saved = tf.tidy(() => tf.concat(rgb.map((b) => tf.tensor4d(b, [1, h, w, 3], 'int32').toFloat())) as tf.Tensor4D);
    let top5: TopK[][] | null = null;
    let finalProb: number[] | null = null;
    if (isClass) {
      const logits = tf.tidy(() => model.forward(model.preprocess(saved)).logits!);
      top5 = await model.topK(logits, 5);
      const p = tf.tidy(() => tf.softmax(logits).dataSync());
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
    best.dispose();
    anchor?.dispose();
    param.dispose();
    steppers.forEach((st) => st.dispose());
  }
}
