// The synthesis pane's view of the presets in contract/synthesis.ts: each preset's slider values,
// the θ it offers, and the sliders' labels, ranges and hints.
import { PRESETS, THETAS, type PresetName, type Theta } from '../../../contract/synthesis';

export type SynthPreset = PresetName;
export { THETAS, type Theta };

/** The slider values of a preset. */
export function presetTheta(p: SynthPreset): Record<Theta, number> {
  const s = PRESETS[p].settings;
  return Object.fromEntries(THETAS.map((k) => [k, s[k]])) as Record<Theta, number>;
}

/** The θ a preset offers (the pane shows only these). */
export function presetThetas(p: SynthPreset): readonly Theta[] {
  return PRESETS[p].thetas;
}

/** Slider ranges (within the contract's limits). */
export const THETA_UI: Record<Theta, { label: string; min: number; max: number; step: number; hint: string }> = {
  decay: { label: 'L2 decay', min: 0, max: 0.5, step: 0.0001, hint: 'θ_decay: x ← (1 − θ)·x after each step' },
  blurWidth: { label: 'blur width', min: 0, max: 3, step: 0.1, hint: 'θ_b_width: Gaussian σ in pixels (0 = off)' },
  blurEvery: { label: 'blur every', min: 0, max: 20, step: 1, hint: 'θ_b_every: blur every k steps (0 = never)' },
  normPct: { label: 'norm %', min: 0, max: 99, step: 1, hint: 'θ_n_pct: zero pixels whose RGB norm is below this percentile' },
  contribPct: { label: 'contribution %', min: 0, max: 99, step: 1, hint: 'θ_c_pct: zero pixels whose |Σ x·g| is below this percentile' },
  jitter: { label: 'jitter px', min: 0, max: 64, step: 1, hint: 'random shift of up to this many pixels before each gradient (not in the paper)' },
  closeness: { label: 'closeness', min: 0, max: 0.5, step: 0.01, hint: 'pull toward your frame after each step: x ← x − θ·(x − frame)' },
  timeBudgetS: { label: 'time budget s', min: 0, max: 60, step: 1, hint: 'stop after this many seconds (0 = when the class is recognised)' },
};
