// A batch held as plain arrays: the pyramid (the fast preset). Render, jitter, clip and preprocess,
// the network's objective gradient (one ONNX Runtime run on arrays when it is selected), the
// adjoint and the step are each one pass of a loop; tensors appear only for the pixel-space
// regularisers a user may switch on, previews and the final image. Each seed has its own start
// and its own jitter, so a seed's image does not depend on the seeds beside it.
import * as tf from '@tensorflow/tfjs-core';
import type { Model } from '../model.js';
import { objectiveGradientData, type UnitObjective } from '../objectives.js';
import { nonFiniteError } from '../finite.js';
import { Pyramid } from './pyramid.js';
import { regularize } from './regularizers.js';
import type { SynthSettings } from './settings.js';
import { makeArrayStepper } from './step-size.js';
import { inputAffine, unrollGradient, unwarpGradient, viewInput, warpInput, type InputAffine, type Warp } from './view.js';
import { drawShift, drawWarp, GREY, jitterSource, previewBytes, regularizes, targetProbs, type Evaluation, type OptimisedBatch } from './batch.js';

export interface PyramidGradient {
  /** Objective per seed. */
  value: Float32Array;
  /** [n, classes] when asked for. */
  logits: Float32Array | null;
  /** The gradient at the image (the jitter undone), in network-input units. */
  image: () => Float32Array;
  /** The same gradient on each level: what the step moves. */
  levels: Float32Array[];
  finite: boolean;
}

/**
 * The objectives at each seed's view of the pyramid's current image (image b rolled by shifts[b]),
 * and the gradient that reaches the levels — with respect to the network input's units, as every
 * step takes it (settings.ts), through the clip as if it were not there (as the tensor path).
 */
export function pyramidGradient(
  model: Model,
  pyr: Pyramid,
  objectives: readonly UnitObjective[],
  node: number,
  shifts: readonly (readonly [number, number])[],
  opts: { logits: boolean; affine?: InputAffine; img?: Float32Array; levels?: Float32Array[]; x?: Float32Array; warps?: readonly Warp[] | null; unwarped?: Float32Array },
): PyramidGradient & { x: Float32Array; img: Float32Array } {
  const { n, h, w } = pyr;
  const img = pyr.render(opts.img);
  const affine = opts.affine ?? inputAffine(model);
  const warps = opts.warps ?? null;
  const x = warps ? warpInput(img, n, h, w, shifts, warps, affine, opts.x) : viewInput(img, n, h, w, shifts, affine, opts.x);
  const r = objectiveGradientData(model, x, [n, h, w, 3], objectives, node, { logits: opts.logits });
  const levels = opts.levels ?? pyr.levels.map((v) => new Float32Array(v.length));
  // A warped view's gradient is taken back to the image first; a roll's is undone inside the adjoint.
  let atImage: Float32Array | null = null;
  if (warps) {
    atImage = opts.unwarped ?? new Float32Array(img.length);
    unwarpGradient(r.grad, n, h, w, shifts, warps, atImage);
  }
  const finite = atImage ? pyr.adjointOfViews(atImage, shifts.map(() => [0, 0] as const), levels) : pyr.adjointOfViews(r.grad, shifts, levels);
  // The gradient at the image itself only for the regulariser that reads it.
  const image = () => {
    if (atImage) return Float32Array.from(atImage);
    const g = new Float32Array(img.length);
    unrollGradient(r.grad, n, h, w, shifts, g);
    return g;
  };
  return { value: r.value, logits: r.logits, image, levels, finite, x, img };
}

export function pyramidBatch(
  model: Model,
  s: SynthSettings,
  objectives: UnitObjective[],
  node: number,
  seeds: number[],
  size: [number, number],
  levels: number,
  anchor: tf.Tensor4D | null,
): OptimisedBatch {
  const [h, w] = size;
  const n = seeds.length;
  const pyr = new Pyramid(n, h, w, seeds, levels);
  const steppers = pyr.levels.map(() => makeArrayStepper(s.step));
  const jitters = seeds.map(jitterSource);
  const affine = inputAffine(model);
  const classes = objectives.every((o) => o.kind === 'class');
  const index = classes ? objectives.map((o) => (o as { index: number }).index) : [];
  const tensor = (a: Float32Array) => tf.tensor4d(a, [n, h, w, 3]);
  const best = pyr.render();
  const per = h * w * 3;
  let last: PyramidGradient | null = null;
  let img: Float32Array | null = null;
  // Reused every step (a 4×224 px batch is 2.4 MB per image-sized array).
  let spare: Float32Array | undefined;
  const grads = pyr.levels.map((v) => new Float32Array(v.length));
  const input = new Float32Array(n * per);
  const unwarped = s.scale || s.rotate ? new Float32Array(n * per) : undefined;

  return {
    async evaluate(it) {
      const shifts = jitters.map((j) => drawShift(j, s.jitter));
      const drawn = jitters.map((j) => drawWarp(j, s.scale, s.rotate));
      const warps = drawn.every((d) => d !== null) ? (drawn as Warp[]) : null;
      const g = pyramidGradient(model, pyr, objectives, node, shifts, { logits: classes, affine, img: spare, levels: grads, x: input, warps, unwarped });
      img = g.img;
      const values = Array.from(g.value);
      if (!values.every(Number.isFinite) || !g.finite) {
        const x = tf.tensor4d(g.x, [n, h, w, 3]);
        try {
          throw nonFiniteError(model, x, values.every(Number.isFinite) ? 'objective’s gradient' : 'objective', ` at step ${it + 1} of the synthesis`);
        } finally {
          x.dispose();
        }
      }
      last = g;
      return { values, probs: g.logits ? targetProbs(g.logits, index) : null } satisfies Evaluation;
    },
    keepBest(improved) {
      improved.forEach((b, i) => {
        if (b) best.set(img!.subarray(i * per, (i + 1) * per), i * per);
      });
    },
    preview() {
      const t = tensor(img ?? best);
      try {
        return previewBytes(t);
      } finally {
        t.dispose();
      }
    },
    step(k) {
      const g = last!;
      pyr.levels.forEach((v, i) => steppers[i]!.step(v, g.levels[i]!, n));
      // Then the pixel-space regularisers a user switched on (and the clip), as on every image.
      if (regularizes(s, k)) {
        const next = tf.tidy(() => tf.clipByValue(regularize(tensor(pyr.render()), tensor(g.image()), s, k, anchor), -GREY, GREY).dataSync() as Float32Array);
        pyr.setImage(next);
      }
    },
    endStep() {
      // The image buffer goes back for the next render; `best` holds its own copy.
      if (img) spare = img;
      last = null;
      img = null;
    },
    best: () => tensor(best),
    dispose() {},
  };
}
