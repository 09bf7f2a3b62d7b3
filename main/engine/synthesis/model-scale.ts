// The presets were tuned at 224 px (DVT's and our bundled models' size). A user's model may be
// 28 px (MNIST) or 96×128: the regularisers measured in pixels are scaled to its own input, so
// the same preset means the same thing on it — a 16 px jitter on a 28 px digit rolls the digit
// half-way round and its gradients cancel (measured: p stayed at 0.10 after 120 fast steps; 0.98
// with the jitter at 2 px).
import type { SynthSettings } from './settings.js';

/** The input size the presets' pixel measures were chosen for. */
export const PRESET_SIZE = 224;

/** Jitter scaled to the image's shorter side (16 px at 224 → 2 px at 28), at least 1 px when on. */
export function scaledJitter(jitter: number, size: [number, number]): number {
  if (jitter === 0) return 0;
  const side = Math.min(size[0], size[1]);
  return Math.max(1, Math.min(jitter, Math.round((jitter * side) / PRESET_SIZE)));
}

/**
 * Laplacian-pyramid levels so that the coarsest level stays about 1/16 of the image (5 levels at
 * 224, 2 at 28): a fixed 5 levels on a small image makes the coarse levels 1–2 px blobs that hold
 * almost all of each step.
 */
export function pyramidLevels(size: [number, number]): number {
  const side = Math.min(size[0], size[1]);
  return Math.max(1, Math.min(5, 1 + Math.round(Math.log2(side / 14))));
}

/** A preset's settings for an image of `size`: pixel measures scaled from 224 px. */
export function settingsForSize(s: SynthSettings, size: [number, number]): SynthSettings {
  return { ...s, jitter: scaledJitter(s.jitter, size) };
}

/**
 * The weakest input gradient (RMS over the image, in network-input units, at the noise start)
 * measured on the bundled models' units, halved: darknet-tiny's middle channels gave 4.5e-3,
 * MobileNet's classes 3e-2. The paper's constant η was tuned for gradients of that size.
 */
export const REFERENCE_GRADIENT_RMS = 2e-3;

/**
 * How much to scale the paper's η (constant, and the "progress" policy's η_max) for a model whose
 * starting gradient is weaker than any bundled model's: a model that rescales its own input
 * (a Rescaling layer: ∂/∂pixels is 1/127.5 of ∂/∂input) or whose units answer faintly. Measured
 * on small user-built nets: RMS 8e-8 … 7e-5, where η = 100 moved a channel by nothing. Models
 * with gradients at least as strong as the bundled ones keep η as it is (gain 1).
 */
export function gradientGain(rms: number): number {
  if (!(rms > 0) || !Number.isFinite(rms)) return 1;
  return Math.min(1e6, Math.max(1, REFERENCE_GRADIENT_RMS / rms));
}

/** A pixel-space step policy with its η scaled by `gain` (Adam is scale-free: unchanged). */
export function scaledPolicy(step: SynthSettings['step'], gain: number): SynthSettings['step'] {
  if (gain === 1) return step;
  if (step.kind === 'constant') return { ...step, eta: step.eta * gain };
  if (step.kind === 'progress') return { ...step, etaMax: step.etaMax * gain };
  return step;
}
