// Synthesis jobs for interactive hosts: start → progress events (with previews) → result; cancel;
// a new job from the same client cancels its previous one. Jobs run in this process between other
// work (each step yields to the event loop), so a live view keeps running.
import type { Model } from '../model.js';
import { presetSettings, SynthSettingsSchema, type PresetName, type SynthSettings } from './settings.js';
import { synthesize, type SynthProgress, type SynthResult } from './run.js';
import { resolveTarget, type ResolvedTarget } from './target.js';

export interface SynthJobSpec {
  layer: string;
  unit: number | string;
  preset: PresetName;
  /** Overrides of the preset's settings (θ sliders). */
  overrides?: Partial<SynthSettings>;
  seeds: number;
  seedBase?: number;
  size?: number;
  iterations?: number;
  previewEveryMs?: number;
}

export type SynthJobEvent =
  | { phase: 'progress'; jobId: string; progress: SynthProgress }
  | { phase: 'done'; jobId: string; result: SynthResult; target: ResolvedTarget; settings: SynthSettings }
  | { phase: 'cancelled'; jobId: string }
  | { phase: 'error'; jobId: string; message: string };

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
    const merged = { ...presetSettings(spec.preset), ...(spec.overrides ?? {}) };
    if (spec.iterations) merged.iterations = spec.iterations;
    const parsed = SynthSettingsSchema.safeParse(merged);
    if (!parsed.success) throw new Error(`bad synthesis settings: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
    const base = spec.seedBase ?? 1;
    const seeds = Array.from({ length: Math.max(1, Math.min(16, spec.seeds)) }, (_, i) => base + i);
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
        const result = await synthesize({
          model,
          objective: prepared.target.objective,
          settings: prepared.settings,
          seeds: prepared.seeds,
          size: prepared.size,
          signal: abort.signal,
          previewEveryMs: spec.previewEveryMs ?? 250,
          onProgress: (progress) => emit({ phase: 'progress', jobId: id, progress }),
        });
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
