// A synthesis job as the window asks for it: its spec from the request, resolved and checked
// against the model (prepareSynthJob: the host does it to refuse a bad job before it queues, the
// engine worker again to run it), run to its end (runSynthJob), and its events in the contract's
// shape (toSynthEvent). Where jobs run and who may cancel them is the session's job pool.
import type { SynthEventT, SynthFrame, SynthOverrides, SynthStartRequestT } from '../../../contract/synthesis.js';
import { rgbaToModelPixels } from '../images.js';
import type { Model } from '../model.js';
import { presetDef, presetSettings, SYNTH_LIMITS, SynthSettingsSchema, undeclaredThetas, type PresetName, type SynthSettings } from './settings.js';
import { synthesize, type SynthProgress, type SynthResult } from './run.js';
import { resolveTarget, type ResolvedTarget } from './target.js';

export interface SynthJobSpec {
  layer: string;
  unit: number | string;
  preset: PresetName;
  /** Overrides of the preset's θ (only those it declares). */
  overrides?: SynthOverrides;
  seeds: number;
  seedBase?: number;
  size?: number;
  iterations?: number;
  previewEveryMs?: number;
  /** The frame a "from this frame" job starts from (RGBA, any size: cropped and scaled like a live frame). */
  frame?: SynthFrame;
}

/** A validated synthStart request → the job's spec. */
export function specFromRequest(req: SynthStartRequestT): SynthJobSpec {
  return { layer: req.layer, unit: req.unit, preset: req.preset, overrides: req.overrides, seeds: req.seeds, size: req.size, iterations: req.iterations, frame: req.frame };
}

/** Engine job event → contract event (typed arrays for the bulky parts). */
export function toSynthEvent(e: SynthJobEvent): SynthEventT {
  switch (e.phase) {
    case 'progress': {
      const p = e.progress;
      return {
        type: 'synth',
        jobId: e.jobId,
        phase: 'progress',
        iteration: p.iteration,
        iterations: p.iterations,
        objective: p.objective,
        targetProb: p.targetProb,
        recognised: p.recognised,
        elapsedMs: p.elapsedMs,
        ...(p.preview ? { preview: p.preview as SynthEventT['preview'] } : {}),
      };
    }
    case 'done':
      return {
        type: 'synth',
        jobId: e.jobId,
        phase: 'done',
        result: {
          images: e.result.images.map((im) => ({ ...im, rgb: im.rgb as Uint8Array<ArrayBuffer>, curve: Float32Array.from(im.curve) })),
          seconds: e.result.seconds,
          iterations: e.result.iterations,
          secondsToTarget: e.result.secondsToTarget,
          stopReason: e.result.stopReason,
          label: e.target.label,
          settings: e.settings,
        },
      };
    case 'cancelled':
      return { type: 'synth', jobId: e.jobId, phase: 'cancelled' };
    case 'error':
      return { type: 'synth', jobId: e.jobId, phase: 'error', message: e.message };
  }
}

export type SynthJobEvent =
  | { phase: 'progress'; jobId: string; progress: SynthProgress }
  | { phase: 'done'; jobId: string; result: SynthResult; target: ResolvedTarget; settings: SynthSettings }
  | { phase: 'cancelled'; jobId: string }
  | { phase: 'error'; jobId: string; message: string };

export type PreparedJob = ReturnType<typeof prepareSynthJob>;

/**
 * Run a prepared job to its end (in an engine worker, or any thread that holds the model): the one
 * place a "from this frame" job's start image is made from the frame, and freed.
 */
export async function runSynthJob(model: Model, spec: SynthJobSpec, prepared: PreparedJob, signal: AbortSignal, onProgress: (p: SynthProgress) => void): Promise<SynthResult> {
  const start = spec.frame && prepared.settings.start === 'frame' ? rgbaToModelPixels(spec.frame.rgba, spec.frame.width, spec.frame.height, prepared.size) : undefined;
  try {
    return await synthesize({
      start,
      model,
      objective: prepared.target.objective,
      settings: prepared.settings,
      seeds: prepared.seeds,
      size: prepared.size,
      signal,
      // Previews are due 150 ms apart and sent at the next step's end: at least four a second when
      // steps are fast (a 48 ms step sends every fourth, 192 ms apart), every step's when slower.
      previewEveryMs: spec.previewEveryMs ?? 150,
      onProgress,
    });
  } finally {
    start?.dispose();
  }
}

/** Resolve and validate a spec into settings and target (throws with a user-facing message). */
export function prepareSynthJob(model: Model, spec: SynthJobSpec): { target: ResolvedTarget; settings: SynthSettings; seeds: number[]; size: [number, number] } {
  const target = resolveTarget(model, spec.layer, spec.unit);
  const undeclared = undeclaredThetas(spec.preset, spec.overrides);
  if (undeclared) throw new Error(undeclared);
  const needsFrame = presetDef(spec.preset).kind === 'frame';
  if (needsFrame && !spec.frame) throw new Error(`preset ${spec.preset} starts from a frame: send the current frame`);
  const merged = { ...presetSettings(spec.preset), ...(spec.overrides ?? {}) };
  if (spec.iterations) merged.iterations = spec.iterations;
  const parsed = SynthSettingsSchema.safeParse(merged);
  if (!parsed.success) throw new Error(`bad synthesis settings: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
  if (!Number.isInteger(spec.seeds) || spec.seeds < 1 || spec.seeds > SYNTH_LIMITS.maxSeeds) throw new Error(`seeds must be 1…${SYNTH_LIMITS.maxSeeds} (got ${spec.seeds})`);
  const base = spec.seedBase ?? 1;
  const seeds = Array.from({ length: spec.seeds }, (_, i) => base + i);
  const size: [number, number] = spec.size ? [spec.size, spec.size] : model.inputSize;
  return { target, settings: parsed.data, seeds, size };
}
