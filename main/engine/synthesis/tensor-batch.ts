// A batch held as tensors: raw pixels (the paper's presets, "from this frame") and MACO's phase.
// Raw pixels take one jitter for the whole batch per step, from the first seed; MACO's seeds each
// take their own (its view is made on plain arrays), so a seed's image does not depend on the
// seeds beside it.
import * as tf from '@tensorflow/tfjs-core';
import type { Model } from '../model.js';
import { nativeObjectiveGradient, objectiveGradientData, tfObjectiveGradient, type UnitObjective } from '../objectives.js';
import { nativeEngine } from '../onnx/native-net.js';
import { allFinite, nonFiniteError } from '../finite.js';
import { macoParam, pixelParam, type Parameterization } from './parameterization.js';
import { regularize } from './regularizers.js';
import type { SynthSettings } from './settings.js';
import { gradientGain, scaledPolicy } from './model-scale.js';
import { makeStepper } from './step-size.js';
import { drawShift, GREY, jitterSource, previewBytes, regularizes, targetProbs, type Evaluation, type OptimisedBatch } from './batch.js';
import { inputAffine, unrollGradient, viewInput, type InputAffine } from './view.js';

/** Roll an image batch by (dy, dx) with wrap-around. */
export function roll(x: tf.Tensor4D, dy: number, dx: number): tf.Tensor4D {
  return tf.tidy(() => {
    const [, h, w] = x.shape;
    const sy = ((dy % h) + h) % h;
    const sx = ((dx % w) + w) % w;
    let r = x;
    if (sy) r = tf.concat([tf.slice(r, [0, h - sy, 0, 0], [-1, sy, -1, -1]), tf.slice(r, [0, 0, 0, 0], [-1, h - sy, -1, -1])], 1);
    if (sx) r = tf.concat([tf.slice(r, [0, 0, w - sx, 0], [-1, -1, sx, -1]), tf.slice(r, [0, 0, 0, 0], [-1, -1, w - sx, -1])], 2);
    return r;
  });
}

interface StepEval {
  value: tf.Tensor1D;
  grad: tf.Tensor4D;
  prob: tf.Tensor1D | null;
}

/** Objective, its gradient w.r.t. the NETWORK INPUT, and the target probability, for centred pixels. */
function evaluateImage(model: Model, img: tf.Tensor4D, objectives: readonly UnitObjective[], node: number): StepEval {
  const [value, grad, prob] = tf.tidy(() => {
    const x = model.preprocess(tf.clipByValue(tf.add(img, GREY), 0, 255) as tf.Tensor4D);
    const classes = objectives.every((o) => o.kind === 'class');
    // On ONNX Runtime: objective, gradient and logits from one run.
    const r = nativeEngine(model)
      ? nativeObjectiveGradient(model, x, objectives, node, { linearStart: true, logits: classes })
      : tfObjectiveGradient(model, x, objectives, node, { logits: classes });
    if (!r.logits) return [r.value, r.grad];
    const p = tf.softmax(r.logits);
    const prob = tf.sum(tf.mul(p, tf.oneHot(objectives.map((o) => (o as { index: number }).index), p.shape[1]!)), 1);
    return [r.value, r.grad, prob];
  });
  return { value: value as tf.Tensor1D, grad: grad as tf.Tensor4D, prob: (prob as tf.Tensor1D | undefined) ?? null };
}

/**
 * Each seed's jittered view of the parameterisation's image (image b rolled by shifts[b]) on plain
 * arrays, its objective, logits and the gradient at the image (the roll undone; in network-input
 * units), through the clip as if it were not there: one ONNX Runtime run when it is selected.
 * Rolling tensors costs tens of ms a step on the wasm backend; the view is one pass.
 */
export function viewGradient(
  model: Model,
  img: tf.Tensor4D,
  objectives: readonly UnitObjective[],
  node: number,
  shifts: readonly (readonly [number, number])[],
  opts: { logits: boolean; affine?: InputAffine },
): { value: Float32Array; logits: Float32Array | null; grad: tf.Tensor4D; x: Float32Array; finite: boolean } {
  const [n, h, w] = img.shape;
  const x = viewInput(img.dataSync() as Float32Array, n, h, w, shifts, opts.affine ?? inputAffine(model));
  const r = objectiveGradientData(model, x, [n, h, w, 3], objectives, node, { logits: opts.logits });
  const g = new Float32Array(x.length);
  const finite = unrollGradient(r.grad, n, h, w, shifts, g);
  return { value: r.value, logits: r.logits, grad: tf.tensor4d(g, [n, h, w, 3]), x, finite };
}

/**
 * The gradient reaching the parameterisation's variables when each seed's objective is read at
 * its image rolled by shifts[b] — in network-input units, as every step takes it (settings.ts).
 */
export function tensorParamGradients(model: Model, param: Parameterization, objectives: readonly UnitObjective[], node: number, shifts: readonly (readonly [number, number])[]): { value: tf.Tensor1D; grads: tf.Tensor4D[] } {
  const img = param.image();
  const ev = viewGradient(model, img, objectives, node, shifts, { logits: false });
  const grads = param.paramGrads(ev.grad);
  tf.dispose([img, ev.grad]);
  return { value: tf.tensor1d(ev.value), grads };
}

export async function tensorBatch(
  model: Model,
  s: SynthSettings,
  objectives: readonly UnitObjective[],
  node: number,
  seeds: number[],
  size: [number, number],
  anchor: tf.Tensor4D | null,
): Promise<OptimisedBatch> {
  const [h, w] = size;
  const n = seeds.length;
  const noise = tf.tidy(() => tf.concat(seeds.map((sd) => tf.randomNormal([1, h, w, 3], 0, anchor ? 2 : 10, 'float32', sd))) as tf.Tensor4D);
  const init = anchor ? tf.tidy(() => tf.add(anchor, noise) as tf.Tensor4D) : noise;
  const param: Parameterization = s.param === 'pixels' ? pixelParam(init) : macoParam(n, h, w, seeds);
  tf.dispose([noise, init]);
  // η scaled for models whose gradients are weaker than the bundled ones' (model-scale.ts).
  let gain = 1;
  if (s.param === 'pixels' && s.step.kind !== 'adam') {
    const img0 = param.image();
    const ev0 = evaluateImage(model, img0, objectives, node);
    const rms = tf.tidy(() => tf.sqrt(tf.mean(tf.square(ev0.grad))));
    gain = gradientGain((await rms.data())[0]!);
    tf.dispose([img0, ev0.value, ev0.grad, rms, ...(ev0.prob ? [ev0.prob] : [])]);
  }
  // One stepper per variable: Adam keeps moment estimates of that variable's shape.
  const steppers = param.params.map(() => makeStepper(scaledPolicy(s.step, gain)));
  const jitter = jitterSource(seeds[0]!);
  const jitters = seeds.map(jitterSource);
  const affine = inputAffine(model);
  const classes = objectives.every((o) => o.kind === 'class');
  const index = classes ? objectives.map((o) => (o as { index: number }).index) : [];
  let best: tf.Tensor4D = param.image();
  // This step's tensors, released however the step ends (a throw from a kernel or data() too).
  let held: tf.Tensor[] = [];
  let img: tf.Tensor4D | null = null;
  let gIn: tf.Tensor4D | null = null;

  return {
    async evaluate(it) {
      img = param.image();
      held.push(img);
      if (s.param === 'maco') {
        const shifts = jitters.map((j) => drawShift(j, s.jitter));
        const ev = viewGradient(model, img, objectives, node, shifts, { logits: classes, affine });
        gIn = ev.grad;
        held.push(gIn);
        const values = Array.from(ev.value);
        if (!allFinite(values) || !ev.finite) {
          const x = tf.tensor4d(ev.x, img.shape);
          held.push(x);
          throw nonFiniteError(model, x, allFinite(values) ? 'objective’s gradient' : 'objective', ` at step ${it + 1} of the synthesis`);
        }
        return { values, probs: ev.logits ? targetProbs(ev.logits, index) : null } satisfies Evaluation;
      }
      const [dy, dx] = drawShift(jitter, s.jitter);
      const seen = dy || dx ? roll(img, dy, dx) : img;
      held.push(seen);
      const ev = evaluateImage(model, seen, objectives, node);
      held.push(ev.value, ev.grad, ...(ev.prob ? [ev.prob] : []));
      gIn = dy || dx ? roll(ev.grad, -dy, -dx) : ev.grad;
      held.push(gIn);
      const gradFinite = tf.tidy(() => tf.all(tf.isFinite(gIn!)));
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
      return { values, probs } satisfies Evaluation;
    },
    keepBest(improved) {
      const cur = img!;
      // Whole-batch copy when every seed improved (the usual case); otherwise splice per seed.
      // (A broadcast mask + where costs a Tile of the image on wasm: 6 ms a step at 224 px.)
      const next = improved.every(Boolean)
        ? cur.clone()
        : (tf.tidy(() => tf.concat(improved.map((b, i) => tf.slice(b ? cur : best, [i, 0, 0, 0], [1, -1, -1, -1])))) as tf.Tensor4D);
      best.dispose();
      best = next;
    },
    preview: () => previewBytes(img ?? best),
    step(k) {
      // The step: Δ = step(∂a/∂input) on the variables, see settings.ts for why the input gradient.
      const grads = param.paramGrads(gIn!);
      param.params.forEach((v, i) => {
        const u = steppers[i]!.update(grads[i]! as tf.Tensor4D);
        const moved = tf.add(v, u);
        v.assign(moved); // assign shares the data; the handle is ours to drop
        tf.dispose([u, moved]);
      });
      tf.dispose(grads);
      // Then the regularisers, in pixel space, whatever the parameterisation (and the clip).
      if (regularizes(s, k)) {
        const next = tf.tidy(() => tf.clipByValue(regularize(param.image(), gIn!, s, k, anchor), -GREY, GREY) as tf.Tensor4D);
        param.setImage(next);
        next.dispose();
      } else if (s.param === 'pixels') {
        const v = param.params[0]!;
        v.assign(tf.tidy(() => tf.clipByValue(v, -GREY, GREY)));
      }
    },
    endStep() {
      tf.dispose(held);
      held = [];
      img = gIn = null;
    },
    best: () => best.clone(),
    dispose() {
      tf.dispose(held);
      held = [];
      best.dispose();
      param.dispose();
      steppers.forEach((st) => st.dispose());
    },
  };
}
