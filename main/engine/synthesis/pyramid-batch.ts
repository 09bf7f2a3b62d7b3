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
import { inputAffine, threeChannels, unrollGradient, viewImage, viewInput, WarpedViews, type InputAffine } from './view.js';
import { drawShift, drawWarp, GREY, jitterSource, previewBytes, regularizes, targetProbs, type Evaluation, type OptimisedBatch, type Warp } from './batch.js';
import { tidyFloats } from '../tensor-data.js';
import { KernelArena } from '../kernels/synthesis-kernels.js';

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
 * The image itself is not written: each seed's decorrelated sum goes straight into its view.
 */
export function pyramidGradient(
  model: Model,
  pyr: Pyramid,
  objectives: readonly UnitObjective[],
  node: number,
  shifts: readonly (readonly [number, number])[],
  opts: { logits: boolean; affine?: InputAffine; levels?: Float32Array[]; x?: Float32Array; warps?: readonly Warp[] | null; views?: WarpedViews },
): PyramidGradient & { x: Float32Array } {
  const { n, h, w } = pyr;
  const affine = opts.affine ?? inputAffine(model);
  const warps = opts.warps ?? null;
  // A scaled or turned view samples the image between pixels: it is rendered first. A plain roll
  // reads each seed's decorrelated sum straight into its view.
  const views = warps ? (opts.views ?? new WarpedViews(n, h, w, affine)) : null;
  let x: Float32Array;
  if (views) {
    pyr.render(views.img);
    x = views.input(shifts, warps!);
  } else {
    x = opts.x ?? new Float32Array(n * h * w * 3);
    if (pyr.halves) for (let b = 0; b < n; b++) viewImage(pyr.decorrelated(b)!, 0, b, h, w, shifts[b]!, affine, x, pyr.colour);
    else viewInput(pyr.render(), n, h, w, shifts, affine, x);
  }
  const r = objectiveGradientData(model, x, [n, h, w, 3], objectives, node, { logits: opts.logits });
  const levels = opts.levels ?? pyr.levels.map((v) => new Float32Array(v.length));
  // A warped view's gradient is taken back to the image first; a roll's is undone inside the adjoint.
  const atImage = views ? views.unwarp(r.grad, shifts, warps!) : null;
  const finite = atImage ? pyr.adjointOfViews(atImage, shifts.map(() => [0, 0] as const), levels, 4) : pyr.adjointOfViews(r.grad, shifts, levels);
  // The gradient at the image itself only for the regulariser that reads it.
  const image = () => {
    if (atImage) return threeChannels(atImage);
    const g = new Float32Array(x.length);
    unrollGradient(r.grad, n, h, w, shifts, g);
    return g;
  };
  return { value: r.value, logits: r.logits, image, levels, finite, x };
}

export function pyramidBatch(
  model: Model,
  s: SynthSettings,
  objectives: readonly UnitObjective[],
  node: number,
  seeds: number[],
  size: [number, number],
  levels: number,
  anchor: tf.Tensor4D | null,
): OptimisedBatch {
  const [h, w] = size;
  const n = seeds.length;
  // The variables, their gradient, the step's state and the views live in one block of WebAssembly
  // memory, where the step is one SIMD pass over all of them and the image is rendered and taken
  // back by SIMD passes.
  const warped = s.scale || s.rotate;
  const values = Pyramid.floats(n, h, w, levels);
  const arena = new KernelArena(Pyramid.kernelFloats(n, h, w, levels) + 3 * KernelArena.floatsFor(values) + (warped ? WarpedViews.kernelFloats(n, h, w) : 0));
  const pyr = new Pyramid(n, h, w, seeds, { levels, arena });
  const gradient = arena.alloc(values);
  const stepper = makeArrayStepper(s.step, arena);
  const jitters = seeds.map(jitterSource);
  const affine = inputAffine(model);
  const classes = objectives.every((o) => o.kind === 'class');
  const index = classes ? objectives.map((o) => (o as { index: number }).index) : [];
  const tensor = (a: Float32Array) => tf.tensor4d(a, [n, h, w, 3]);
  // The best image per seed is kept as its levels (a step renders no image): copied from the
  // levels just evaluated, rendered when asked for.
  const best = pyr.levels.map((v) => v.slice());
  let last: PyramidGradient | null = null;
  // Reused every step (a 4×224 px batch is 2.4 MB per image-sized array).
  const grads = pyr.split(gradient);
  const input = warped ? undefined : new Float32Array(n * h * w * 3);
  const views = warped ? new WarpedViews(n, h, w, affine, arena) : null;
  // Whether views.img is the image of the levels as they are now (a warped evaluation rendered
  // it, and no step has moved them since): a preview then need not render them again.
  let imageCurrent = false;

  return {
    async evaluate(it) {
      const shifts = jitters.map((j) => drawShift(j, s.jitter));
      const drawn = jitters.map((j) => drawWarp(j, s.scale, s.rotate));
      const warps = drawn.every((d) => d !== null) ? (drawn as Warp[]) : null;
      const g = pyramidGradient(model, pyr, objectives, node, shifts, { logits: classes, affine, levels: grads, x: input, warps, views: views ?? undefined });
      imageCurrent = warps !== null;
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
        if (!b) return;
        pyr.levels.forEach((v, l) => {
          const per = v.length / n;
          best[l]!.set(v.subarray(i * per, (i + 1) * per), i * per);
        });
      });
    },
    preview() {
      // Before the step the levels are the ones just evaluated (or the start).
      const t = tensor(imageCurrent ? views!.img : pyr.render());
      try {
        return previewBytes(t);
      } finally {
        t.dispose();
      }
    },
    step(k) {
      imageCurrent = false;
      const g = last!;
      if (stepper.elementwise) stepper.step(pyr.storage, gradient, n);
      else pyr.levels.forEach((v, i) => stepper.step(v, g.levels[i]!, n));
      // Then the pixel-space regularisers a user switched on (and the clip), as on every image.
      if (regularizes(s, k)) {
        const next = tidyFloats(() => tf.clipByValue(regularize(tensor(pyr.render()), tensor(g.image()), s, k, anchor), -GREY, GREY));
        pyr.setImage(next);
      }
    },
    endStep() {
      last = null;
    },
    best: () => tensor(pyr.render(undefined, best)),
    dispose() {},
  };
}
