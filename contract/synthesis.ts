// Synthesis (preferred images): the one definition of the presets, the θ each of them uses, the
// limits, and the messages of a synthesis job (start request, progress, result). The engine runs
// these settings, the renderer shows these sliders, the CLI offers these names; nothing keeps a
// copy. Free of Node and DOM imports like the rest of the contract.
import { z } from 'zod';

const Bytes = z.instanceof(Uint8Array);
const Seq = z.number().int().nonnegative().optional();

/** Every bound a synthesis job is held to, wherever it was asked for. */
export const SYNTH_LIMITS = {
  /** Seeds of one job (DVT showed nine per unit); they run as one batch. */
  maxSeeds: 9,
  /** Image side in pixels: the CLI may ask for anything in min…max (a model's own input may be smaller still: a 28 px digit model). */
  minSize: 16,
  maxSize: 1024,
  /** What the window and web mode may ask for (a job's images travel in every preview). */
  maxRequestSize: 448,
  minRequestSize: 64,
  maxIterations: 100_000,
  maxRequestIterations: 5000,
  /** A user's time budget for a fast preset, seconds. */
  maxTimeBudgetS: 600,
  /** "from this frame": the largest frame the request may carry (a 4K camera frame). */
  maxFrameSide: 4096,
} as const;

export const StepPolicySchema = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('constant'), eta: z.number().positive() }),
  z.object({ kind: z.literal('progress'), etaMax: z.number().positive(), progress: z.number().positive() }),
  z.object({ kind: z.literal('adam'), lr: z.number().positive(), beta1: z.number().min(0).max(1).default(0.9), beta2: z.number().min(0).max(1).default(0.999) }),
]);
export type StepPolicy = z.infer<typeof StepPolicySchema>;

/**
 * A channel's plateau is judged over this many steps. Each step's objective is read under a fresh
 * random view, so its best grows in bursts. Measured (fast, onnx, one seed, the middle layer's first
 * 8 channels of each bundled model, against the best of 120 steps): a 4-step window at 2 % stopped
 * them after 5–27 steps with 69–94 % of it on mobilenet-v1-0.75, 10–100 % on mobilenet-v1-0.25 and
 * 14–99 % on darknet-tiny, and the images were visibly fainter; 20 steps at 1 % stopped them after
 * 21–89 steps with 84–100 %, 94–100 % and 59–99 % (a dead channel, whose gradient is zero, after 21).
 */
const PLATEAU_WINDOW = 20;

/**
 * When a fast preset is done. A class: every seed's target probability has stayed ≥ `prob` for
 * `window` steps running (recognised, and still recognised under fresh jitter: the probability has
 * plateaued at the top; the logit itself grows without bound), then `after` steps more have run
 * (so that the image shows the class to other models too, not only to its generator). Progress
 * calls a run recognised from the first step at `prob`. Any other unit: its best objective grew by
 * less than `plateau` (relative) over the last `plateauWindow` steps.
 */
export const StopRuleSchema = z.object({
  prob: z.number().min(0).max(1),
  plateau: z.number().min(0).max(1),
  window: z.number().int().min(1).max(1000),
  /** Steps to go on once a class has held for `window` (0: stop then). */
  after: z.number().int().min(0).max(10_000),
  plateauWindow: z.number().int().min(1).max(1000).default(PLATEAU_WINDOW),
});
export type StopRule = z.infer<typeof StopRuleSchema>;

export const SynthSettingsSchema = z.object({
  /** θ_decay: x ← (1 − decay)·x after each step. */
  decay: z.number().min(0).max(1),
  /** θ_b_width: Gaussian σ in pixels (0 = off). */
  blurWidth: z.number().min(0).max(10),
  /** θ_b_every: blur every k steps (0 = never). */
  blurEvery: z.number().int().min(0).max(100),
  /** θ_n_pct: zero pixels whose RGB norm is below this percentile (0 = off). */
  normPct: z.number().min(0).max(100),
  /** θ_c_pct: zero pixels whose |Σ_c x·g| is below this percentile (0 = off). */
  contribPct: z.number().min(0).max(100),
  /** Most steps; a stop rule or a time budget may end the run sooner. */
  iterations: z.number().int().min(1).max(SYNTH_LIMITS.maxIterations),
  step: StepPolicySchema,
  /** Random translation (roll) of up to this many pixels before each gradient (0 = off; not in the paper). */
  jitter: z.number().int().min(0).max(64),
  /** Random scale of each step's view about its centre, 1 ± this (0 = off; the pyramid only). */
  scale: z.number().min(0).max(0.5),
  /** Random rotation of each step's view, up to ± this many degrees (0 = off; the pyramid only). */
  rotate: z.number().min(0).max(45),
  /**
   * Image parameterisation: raw pixels (the paper), decorrelated colour + Laplacian pyramid (fast),
   * or Fourier phase with a fixed natural-image amplitude (MACO).
   */
  param: z.enum(['pixels', 'pyramid', 'maco']),
  /** Start image: N(0, 10²) noise or the parameterisation's own start (paper, fast), or the user's frame. */
  start: z.enum(['noise', 'frame']),
  /** Pull toward the start image, x ← x − closeness·(x − start) after each step ("from this frame"). */
  closeness: z.number().min(0).max(1),
  /** Fast presets' stop rule (null: run every iteration, as the paper). */
  stop: StopRuleSchema.nullable(),
  /** Stop after this many seconds (0 = no budget). */
  timeBudgetS: z.number().min(0).max(SYNTH_LIMITS.maxTimeBudgetS),
});
export type SynthSettings = z.infer<typeof SynthSettingsSchema>;

/** The sliders: settings a person may change, each declared by the presets it means something for. */
export const THETAS = ['decay', 'blurWidth', 'blurEvery', 'normPct', 'contribPct', 'jitter', 'closeness', 'timeBudgetS'] as const;
export type Theta = (typeof THETAS)[number];

export type PresetKind = 'paper' | 'fast' | 'frame';

export interface PresetDef {
  kind: PresetKind;
  /** One line for the pane. */
  note: string;
  /** Where the method comes from (README lists the same). */
  source: string;
  settings: SynthSettings;
  /** The θ that change this preset's result; every other θ is refused. */
  thetas: readonly Theta[];
}

const PAPER_THETAS = ['decay', 'blurWidth', 'blurEvery', 'normPct', 'contribPct'] as const satisfies readonly Theta[];

const paper = (s: Pick<SynthSettings, 'decay' | 'blurWidth' | 'blurEvery' | 'normPct' | 'contribPct' | 'iterations' | 'step'>): SynthSettings => ({
  ...s,
  jitter: 0,
  scale: 0,
  rotate: 0,
  param: 'pixels',
  start: 'noise',
  closeness: 0,
  stop: null,
  timeBudgetS: 0,
});

const PAPER_SOURCE = 'Yosinski et al. 2015, "Understanding Neural Networks Through Deep Visualization", Table 1';

/**
 * Done when the class has been recognised (p ≥ 0.9) for 4 steps running and 60 steps more have
 * followed, or when a channel grows < 1 % in 20 steps. The generator recognises its class within
 * a few tens of steps, but the image shows the class to other models only later: measured here (onnx, the
 * five reference classes, one seed, each image judged by the two other bundled models' top-5, 30
 * judgements), with Adam's β1 = 0.5 the best image after 20 / 40 / 60 / 80 / 100 steps was in 10 /
 * 14 / 19 / 20 / 25 of them (β1 = 0.9: 1 / 9 / 14 / – / 19), so 60 steps after the window (about 70
 * in all) transfer about as often as 100 steps did with β1 = 0.9, in 40 % fewer steps; on the five
 * held-out classes, checked once, 20 / 23 / 23 / 24 / 21 against 14 / 19 / 21 / 21 / 23. (Earlier, with
 * β1 = 0.9: stopping 0 / 40 / 100 steps after the window gave 4 / 16 / 23 of 30; a higher
 * threshold, p ≥ 0.99, or a longer window bought no more than the steps did.)
 */
const FAST_STOP: StopRule = { prob: 0.9, plateau: 0.01, window: 4, after: 60, plateauWindow: PLATEAU_WINDOW };

/**
 * MACO's: FAST_STOP without the steps more. Measured as above on darknet-tiny, MACO's images
 * were in no other model's top-5 at any of 20 … 120 steps (4 classes), and its steps cost about
 * twice the pyramid's: the longer run would buy time and no transfer.
 */
const MACO_STOP: StopRule = { ...FAST_STOP, after: 0 };

/** A fast preset from noise: Adam at rate `lr` with momentum `beta1`, jitter 16 px (and `transforms`), no pixel regulariser, stop rule `stop`, a 200-step cap. */
const fastFromNoise = (param: SynthSettings['param'], lr: number, beta1: number, stop: StopRule, transforms: Pick<SynthSettings, 'scale' | 'rotate'> = { scale: 0, rotate: 0 }): SynthSettings => ({
  decay: 0,
  blurWidth: 0,
  blurEvery: 0,
  normPct: 0,
  contribPct: 0,
  iterations: 200,
  step: { kind: 'adam', lr, beta1, beta2: 0.999 },
  jitter: 16,
  ...transforms,
  param,
  start: 'noise',
  closeness: 0,
  stop,
  timeBudgetS: 0,
});

export const PRESETS = {
  'paper-1': {
    kind: 'paper',
    note: 'Table 1 #1: norm clipping, light blur, "progress" step',
    source: PAPER_SOURCE,
    thetas: PAPER_THETAS,
    settings: paper({ decay: 0, blurWidth: 0.5, blurEvery: 4, normPct: 50, contribPct: 0, iterations: 500, step: { kind: 'progress', etaMax: 100, progress: 2.0 } }),
  },
  'paper-2': {
    kind: 'paper',
    note: 'Table 1 #2: strong L2 decay, norm clipping',
    source: PAPER_SOURCE,
    thetas: PAPER_THETAS,
    settings: paper({ decay: 0.3, blurWidth: 0, blurEvery: 0, normPct: 20, contribPct: 0, iterations: 750, step: { kind: 'constant', eta: 100 } }),
  },
  'paper-3': {
    kind: 'paper',
    note: "Table 1 #3 (most of the paper's figures): weak decay, blur σ 1 every 4 steps",
    source: PAPER_SOURCE,
    thetas: PAPER_THETAS,
    settings: paper({ decay: 0.0001, blurWidth: 1.0, blurEvery: 4, normPct: 0, contribPct: 0, iterations: 1000, step: { kind: 'constant', eta: 100 } }),
  },
  'paper-4': {
    kind: 'paper',
    note: 'Table 1 #4: contribution clipping, light blur',
    source: PAPER_SOURCE,
    thetas: PAPER_THETAS,
    settings: paper({ decay: 0, blurWidth: 0.5, blurEvery: 4, normPct: 0, contribPct: 90, iterations: 1000, step: { kind: 'progress', etaMax: 1e8, progress: 2.0 } }),
  },
  /**
   * Adam on a decorrelated-colour Laplacian pyramid with random jitter (Lucid's optvis): the
   * pyramid puts most of each step into coarse structure, jitter keeps the image from exploiting
   * single-pixel patterns, Adam makes the step independent of the gradient's scale. (Measured here on
   * mobilenet-v1-0.25, flamingo: seeing the image at half size for the first 12 or 20 steps —
   * coarse-to-fine — took 22 or 30 steps to the target against 15 without, so every step is at full
   * size; Adam's rate 0.1 took fewer steps than 0.05 or 0.2, on flamingo and monarch. Measured
   * again with the half-size image drawn from the pyramid's coarser levels, the finest held at zero:
   * such a step costs about a quarter of a full one — 4 seeds on mobilenet-v1-0.75, 0.26× —, but at
   * 72 fixed steps the images were in the other models' top-5 in 38 / 37 / 34 of 60 judgements
   * (reference classes, two seeds) with 12 / 24 / 36 half-size steps against 42 all at full size,
   * no more than full-size steps alone at the same cost gave, 39 at 54 steps and 32 at 45; under
   * the stop rule 12 half-size steps made the run 82 steps instead of 72, in the same 8.2 s.) Each step's
   * view is also scaled by 1 ± 10 % and turned by up to ±10°: with them, the images at 160 steps
   * were in the other models' top-5 in 23 of 30 judgements against 18 with jitter alone (and 23
   * with jitter 32 px, ± 15 %, ± 15°); a blur every 4 steps or an L2 decay cost 4–10× per step.
   * Adam's momentum β1 is 0.5, not the usual 0.9: each step follows its own random view more and
   * the last ones' less, which measured (as FAST_STOP) 10 / 19 / 25 of 30 judgements after 20 / 60 /
   * 100 steps against 1 / 14 / 19 with 0.9; β1 = 0, 0.3 or 0.7 gave 6–12 at 20 steps and 23 at
   * 100, rate 0.05 or 0.15 with β1 = 0.5 19 and 22 at 100, β2 = 0.99 23; with β1 = 0.9, rate 0.2
   * or 0.05, a rate annealed from 0.2, larger steps on the coarse levels or smaller on the fine
   * ones, or scale ± 20 % and turn ± 15° gave 8–20 at 100. Two views per step (twice the network
   * runs) gave 19 of 30 after 40 steps, as one view did after 60–80: no more per network run.
   * Nothing else tried bought transfer per step either (measured as FAST_STOP with β1 = 0.5; base
   * 6 / 17 / 19 / 25 / 26 of 30 after 20 / 40 / 60 / 80 / 100 steps): the class's log-probability
   * as the objective made images their generator's top-1 and no other model's (0 of 30 at every
   * count: once p nears 1 its gradient vanishes and the image stops growing); the logit less the
   * mean of the other logits (weight 1 or 10) 19 at 60, 22–26 at 80–100; keeping the last image
   * instead of the best under each step's random view 20 / 24 / 25 at 60 / 80 / 100; Gaussian noise
   * in the view (σ 8 or 20 grey levels) 11 or 5 at 60; a colour jitter of each view (gain ± 10–20 %,
   * offset ± 10–20 levels) 15–17; larger steps on the fine or the coarse levels 17; jitter 8 or
   * 32 px 17; scale ± 20 % with turn ± 15° 20, turn ± 20° 22. With three seeds (90 judgements,
   * after 72 steps, where the stop rule ends): base 61, turn ± 20° 62, scale ± 20 % and turn ± 15°
   * 63, logit less 10 × the mean 63, a random mirror of each view 61, mirror and turn ± 20° 60 —
   * all within the count's own spread (about ± 4). Only more steps transfer more.
   */
  fast: {
    kind: 'fast',
    note: 'ours: Adam on a decorrelated-colour pyramid with jitter; stops when recognised',
    source: 'Olah, Mordvintsev, Schubert 2017, "Feature Visualization" (Distill; Lucid optvis)',
    thetas: ['jitter', 'decay', 'blurWidth', 'blurEvery', 'timeBudgetS'],
    settings: fastFromNoise('pyramid', 0.1, 0.5, FAST_STOP, { scale: 0.1, rotate: 10 }),
  },
  /**
   * MACO: only the Fourier phase is optimised; the amplitude spectrum is fixed to a natural
   * image's 1/f fall-off, so the image keeps natural-image statistics by construction.
   */
  maco: {
    kind: 'fast',
    note: 'MACO: Fourier phase optimised, amplitude fixed to a natural-image spectrum',
    source: 'Fel et al. 2023, "Unlocking Feature Visualization for Deeper Networks with MAgnitude Constrained Optimization" (NeurIPS)',
    thetas: ['jitter', 'timeBudgetS'],
    settings: fastFromNoise('maco', 0.3, 0.9, MACO_STOP),
  },
  /**
   * Feature accentuation: start from the person's own frame and keep close to it, so what changes
   * is what in their picture drives the unit.
   */
  frame: {
    kind: 'frame',
    note: 'from this frame: accentuate what in your picture drives the unit, staying close to it',
    source: 'Hamblin, Fel, Saha, Konkle, Alvarez 2024, "Feature Accentuation: Revealing \'What\' Features Respond to in Natural Images"',
    thetas: ['closeness', 'jitter', 'blurWidth', 'blurEvery'],
    settings: {
      decay: 0,
      blurWidth: 0.5,
      blurEvery: 4,
      normPct: 0,
      contribPct: 0,
      iterations: 60,
      step: { kind: 'adam', lr: 2, beta1: 0.9, beta2: 0.999 },
      jitter: 4,
      scale: 0,
      rotate: 0,
      param: 'pixels',
      start: 'frame',
      closeness: 0.05,
          stop: null,
      timeBudgetS: 0,
    },
  },
} as const satisfies Record<string, PresetDef>;

export type PresetName = keyof typeof PRESETS;
export const PRESET_NAMES = Object.keys(PRESETS) as PresetName[];
export const SYNTH_PRESETS = PRESET_NAMES as [PresetName, ...PresetName[]];
/** The window's default: recognisable within seconds on every bundled model, from noise. */
export const DEFAULT_PRESET: PresetName = 'fast';
/**
 * The window's seeds side by side. A model's warm-up synthesises this many too: ONNX Runtime's
 * sessions are built per batch shape, and building one took about 3 s on mobilenet-v1-0.75, which
 * a first press of `y` would otherwise wait for.
 */
export const DEFAULT_SEEDS = 2;

export function presetDef(name: string): PresetDef {
  if (!(name in PRESETS)) throw new Error(`unknown preset "${name}" (choose ${PRESET_NAMES.join(', ')})`);
  return PRESETS[name as PresetName] as PresetDef;
}

/** A fresh, mutable copy of a preset's settings. */
export function presetSettings(name: string): SynthSettings {
  return structuredClone(presetDef(name).settings);
}

/** Overrides of a preset's θ (only those the preset declares; see checkOverrides). */
export const SynthOverridesSchema = z
  .object({
    decay: SynthSettingsSchema.shape.decay,
    blurWidth: SynthSettingsSchema.shape.blurWidth,
    blurEvery: SynthSettingsSchema.shape.blurEvery,
    normPct: SynthSettingsSchema.shape.normPct,
    contribPct: SynthSettingsSchema.shape.contribPct,
    jitter: SynthSettingsSchema.shape.jitter,
    closeness: SynthSettingsSchema.shape.closeness,
    timeBudgetS: SynthSettingsSchema.shape.timeBudgetS,
  })
  .partial()
  .strict();
export type SynthOverrides = z.infer<typeof SynthOverridesSchema>;

/** The θ among `overrides` that `preset` does not use: a one-line reason, or null when all apply. */
export function undeclaredThetas(preset: PresetName, overrides: SynthOverrides | undefined): string | null {
  const def = presetDef(preset);
  const bad = Object.keys(overrides ?? {}).filter((k) => !(def.thetas as readonly string[]).includes(k));
  return bad.length ? `${bad.join(', ')} ${bad.length > 1 ? 'do' : 'does'} not apply to preset ${preset} (it uses ${def.thetas.join(', ')})` : null;
}

/** The camera frame or image a "from this frame" job starts from, as the renderer holds it (RGBA). */
export const SynthFrameSchema = z
  .object({
    width: z.number().int().min(1).max(SYNTH_LIMITS.maxFrameSide),
    height: z.number().int().min(1).max(SYNTH_LIMITS.maxFrameSide),
    rgba: Bytes,
  })
  .refine((f) => f.rgba.length === f.width * f.height * 4, { message: 'frame.rgba must hold width × height × 4 bytes' });
export type SynthFrame = z.infer<typeof SynthFrameSchema>;

/**
 * Start synthesising the preferred image(s) of a unit: a channel of a layer, or with layer
 * "logits" a class (index, WordNet id or exact name). Replies synthStarted at once; progress,
 * previews and the result arrive as `synth` events. A new job from the same client cancels its
 * previous one. Preset "frame" needs the frame to start from; the others take none.
 */
export const SynthStartRequest = z
  .object({
    type: z.literal('synthStart'),
    layer: z.string().min(1).max(200),
    unit: z.union([z.number().int().nonnegative(), z.string().min(1).max(200)]),
    preset: z.enum(SYNTH_PRESETS),
    overrides: SynthOverridesSchema.optional(),
    seeds: z.number().int().min(1).max(SYNTH_LIMITS.maxSeeds),
    size: z.number().int().min(SYNTH_LIMITS.minRequestSize).max(SYNTH_LIMITS.maxRequestSize).optional(),
    iterations: z.number().int().min(1).max(SYNTH_LIMITS.maxRequestIterations).optional(),
    frame: SynthFrameSchema.optional(),
    seq: Seq,
  })
  .superRefine((r, ctx) => {
    const why = undeclaredThetas(r.preset, r.overrides);
    if (why) ctx.addIssue({ code: 'custom', path: ['overrides'], message: why });
    const needsFrame = PRESETS[r.preset].kind === 'frame';
    if (needsFrame && !r.frame) ctx.addIssue({ code: 'custom', path: ['frame'], message: `preset ${r.preset} starts from a frame: send the current frame` });
    if (!needsFrame && r.frame) ctx.addIssue({ code: 'custom', path: ['frame'], message: `preset ${r.preset} starts from noise and takes no frame` });
  });
export type SynthStartRequestT = z.infer<typeof SynthStartRequest>;

export const SynthCancelRequest = z.object({ type: z.literal('synthCancel'), jobId: z.string().min(1).max(100), seq: Seq });

export const SynthStartedReply = z.object({
  type: z.literal('synthStarted'),
  jobId: z.string(),
  /** e.g. "logits:130 flamingo" or "pw5:17". */
  label: z.string(),
  layer: z.string(),
  unit: z.number().int(),
  /** The full settings the job runs with (preset + overrides), for display and export. */
  settings: SynthSettingsSchema,
  seq: Seq,
});

export const SynthCancelReply = z.object({ type: z.literal('synthCancel'), jobId: z.string(), cancelled: z.boolean(), seq: Seq });

const TopKSchema = z.object({ index: z.number().int(), wnid: z.string().nullable(), name: z.string(), prob: z.number() });

export const SynthImageSchema = z.object({
  seed: z.number().int(),
  width: z.number().int(),
  height: z.number().int(),
  /** Packed RGB bytes of the best image. */
  rgb: Bytes,
  objectiveStart: z.number(),
  objectiveBest: z.number(),
  bestIteration: z.number().int(),
  /** Objective at every iteration. */
  curve: z.instanceof(Float32Array),
  targetProb: z.number().nullable(),
  top5: z.array(TopKSchema).nullable(),
});

/** Why a run ended. */
export const STOP_REASONS = ['iterations', 'recognised', 'plateau', 'budget', 'cancelled'] as const;
export type StopReason = (typeof STOP_REASONS)[number];

export const SynthResultSchema = z.object({
  images: z.array(SynthImageSchema),
  seconds: z.number(),
  iterations: z.number().int(),
  secondsToTarget: z.number().nullable(),
  stopReason: z.enum(STOP_REASONS),
  label: z.string(),
  settings: SynthSettingsSchema,
});

/** Progress and outcome of a synthesis job (engine → renderer, over the event channel). */
export const SynthEvent = z.object({
  type: z.literal('synth'),
  jobId: z.string(),
  phase: z.enum(['progress', 'done', 'cancelled', 'error']),
  iteration: z.number().int().optional(),
  iterations: z.number().int().optional(),
  /** Objective per seed at this iteration. */
  objective: z.array(z.number()).optional(),
  /** Target class probability per seed (class units). */
  targetProb: z.array(z.number()).nullable().optional(),
  /** The target class has passed the stop rule's threshold (or p ≥ 0.9) in some seed. */
  recognised: z.boolean().optional(),
  elapsedMs: z.number().optional(),
  /**
   * The current images, one per seed, as the pane shows them: contrast-stretched around grey so
   * that the first steps' faint images are visible (the result carries the real pixels).
   */
  preview: z.object({ width: z.number().int(), height: z.number().int(), images: z.array(Bytes) }).optional(),
  result: SynthResultSchema.optional(),
  message: z.string().optional(),
});
export type SynthEventT = z.infer<typeof SynthEvent>;
