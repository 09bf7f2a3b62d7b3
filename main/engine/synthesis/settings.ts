// Synthesis settings and the named presets: the four complementary settings of Yosinski et al.
// (2015), Table 1, and our faster mode.
//
// Step-size mapping. The paper's rates were tuned for CaffeNet, whose input WAS mean-subtracted
// pixels (one input unit = one grey level). Our models scale their input (MobileNet: x/127.5 − 1,
// Darknet: x/255), so "η × gradient" is ambiguous. We take the step in pixel units as
//     Δpixels = η · ∂a/∂(network input)  =  η · s · ∂a/∂pixels,   s = pixels per input unit
// (s = 127.5 for the MobileNets, 255 for darknet-tiny; Model.pixelScale). This keeps what η meant
// for Caffe — a step measured against the gradient in the network's own input units — and, as
// measured on these models, makes every tested class its model's top-1 under paper-3, whereas η
// applied literally to the pixel gradient leaves faint images (±9 grey levels) after 1000 steps.
// The "progress" policy uses the same gradient: η = min(η_max, progress / ‖∂a/∂input‖²).
import { z } from 'zod';

export const StepPolicySchema = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('constant'), eta: z.number().positive() }),
  z.object({ kind: z.literal('progress'), etaMax: z.number().positive(), progress: z.number().positive() }),
  z.object({ kind: z.literal('adam'), lr: z.number().positive(), beta1: z.number().min(0).max(1).default(0.9), beta2: z.number().min(0).max(1).default(0.999) }),
]);
export type StepPolicy = z.infer<typeof StepPolicySchema>;

export const SynthSettingsSchema = z.object({
  /** θ_decay: x ← (1 − decay)·x after each step. */
  decay: z.number().min(0).max(1),
  /** θ_b_width: Gaussian σ in pixels (0 = off). */
  blurWidth: z.number().min(0).max(10),
  /** θ_b_every: blur every k steps (0 = never). */
  blurEvery: z.number().int().min(0),
  /** θ_n_pct: zero pixels whose RGB norm is below this percentile (0 = off). */
  normPct: z.number().min(0).max(100),
  /** θ_c_pct: zero pixels whose |Σ_c x·g| is below this percentile (0 = off). */
  contribPct: z.number().min(0).max(100),
  iterations: z.number().int().min(1).max(100_000),
  step: StepPolicySchema,
  /** Random translation (roll) of up to this many pixels before each gradient (0 = off; not in the paper). */
  jitter: z.number().int().min(0).max(64).default(0),
  /** Image parameterisation: raw pixels (paper) or decorrelated colour + Laplacian pyramid (fast mode). */
  param: z.enum(['pixels', 'pyramid']).default('pixels'),
  /** Stop early once the target class reaches this probability (class units only; 0 = never). */
  stopAtProb: z.number().min(0).max(1).default(0),
});
export type SynthSettings = z.infer<typeof SynthSettingsSchema>;

const paper = (s: Omit<SynthSettings, 'jitter' | 'param' | 'stopAtProb'>): SynthSettings => ({ ...s, jitter: 0, param: 'pixels', stopAtProb: 0 });

export const PRESETS = {
  'paper-1': paper({ decay: 0, blurWidth: 0.5, blurEvery: 4, normPct: 50, contribPct: 0, iterations: 500, step: { kind: 'progress', etaMax: 100, progress: 2.0 } }),
  'paper-2': paper({ decay: 0.3, blurWidth: 0, blurEvery: 0, normPct: 20, contribPct: 0, iterations: 750, step: { kind: 'constant', eta: 100 } }),
  'paper-3': paper({ decay: 0.0001, blurWidth: 1.0, blurEvery: 4, normPct: 0, contribPct: 0, iterations: 1000, step: { kind: 'constant', eta: 100 } }),
  'paper-4': paper({ decay: 0, blurWidth: 0.5, blurEvery: 4, normPct: 0, contribPct: 90, iterations: 1000, step: { kind: 'progress', etaMax: 1e8, progress: 2.0 } }),
  /**
   * Our fast mode: Adam on a decorrelated-colour Laplacian-pyramid parameterisation with random
   * jitter (after Lucid's optvis). The pyramid puts most of each step into coarse structure, the
   * jitter keeps the image from exploiting single-pixel patterns, Adam makes the step size
   * independent of the gradient's scale. It keeps going after the target class passes p ≥ 0.9
   * (typically within the first few dozen steps) because the image keeps becoming more legible.
   */
  fast: {
    decay: 0,
    blurWidth: 0,
    blurEvery: 0,
    normPct: 0,
    contribPct: 0,
    iterations: 200,
    step: { kind: 'adam', lr: 0.05, beta1: 0.9, beta2: 0.999 },
    jitter: 16,
    param: 'pyramid',
    stopAtProb: 0,
  } satisfies SynthSettings,
} as const;

export type PresetName = keyof typeof PRESETS;
export const PRESET_NAMES = Object.keys(PRESETS) as PresetName[];

export function presetSettings(name: string): SynthSettings {
  if (!(name in PRESETS)) throw new Error(`unknown preset "${name}" (choose ${PRESET_NAMES.join(', ')})`);
  return structuredClone(PRESETS[name as PresetName]) as SynthSettings;
}
