// Synthesis jobs for interactive hosts: start → progress events (with previews) → result; cancel;
// a new job from the same client cancels its previous one. Jobs run in this process between other
// work (each step yields to the event loop), so a live view keeps running.
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

export type PreparedJob = ReturnType<typeof SynthJobs.prepare>;

/**
 * Run a prepared job to its end, wherever it runs (this process or an engine worker): the one
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
      // Four previews a second at least when steps are fast; every step's when they are slower.
      previewEveryMs: spec.previewEveryMs ?? 200,
      onProgress,
    });
  } finally {
    start?.dispose();
  }
}

interface Running {
  id: string;
  client: string;
  abort: AbortController;
  done: Promise<void>;
}

export class SynthJobs {
  private readonly running = new Map<string, Running>();
  private counter = 0;

  /** Resolve and validate a spec into settings and target (throws with a user-facing message). */
  static prepare(model: Model, spec: SynthJobSpec): { target: ResolvedTarget; settings: SynthSettings; seeds: number[]; size: [number, number] } {
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

  /**
   * Start a job for `client`, cancelling that client's previous job. Returns the job id at once;
   * everything else arrives through `emit`. Throws (before starting) when the spec is invalid.
   */
  start(client: string, model: Model, spec: SynthJobSpec, emit: (e: SynthJobEvent) => void): { jobId: string; target: ResolvedTarget; settings: SynthSettings } {
    const prepared = SynthJobs.prepare(model, spec);
    this.cancelClient(client);
    const id = `synth-${++this.counter}`;
    const abort = new AbortController();
    const run = async () => {
      try {
        const result = await runSynthJob(model, spec, prepared, abort.signal, (progress) => emit({ phase: 'progress', jobId: id, progress }));
        if (result.cancelled) emit({ phase: 'cancelled', jobId: id });
        else emit({ phase: 'done', jobId: id, result, target: prepared.target, settings: prepared.settings });
      } catch (e) {
        emit({ phase: 'error', jobId: id, message: (e as Error).message.split('\n')[0] ?? String(e) });
      } finally {
        this.running.delete(id);
      }
    };
    // Start on the next turn: the caller replies "started" before the first progress event.
    const done = new Promise<void>((r) => setImmediate(() => void run().then(r)));
    this.running.set(id, { id, client, abort, done });
    return { jobId: id, target: prepared.target, settings: prepared.settings };
  }

  cancel(jobId: string): boolean {
    const j = this.running.get(jobId);
    if (!j) return false;
    j.abort.abort();
    return true;
  }

  cancelClient(client: string): void {
    for (const j of this.running.values()) if (j.client === client) j.abort.abort();
  }

  /** Cancel everything and wait until every job has stopped (e.g. before unloading the model). */
  async cancelAll(): Promise<void> {
    const all = [...this.running.values()];
    all.forEach((j) => j.abort.abort());
    await Promise.all(all.map((j) => j.done));
  }

  get active(): number {
    return this.running.size;
  }
}
