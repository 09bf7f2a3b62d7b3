// `deepvis synth` on the job pool: one job per seed, handed to whichever worker is free. A batch's
// jitter and parameterisation are seeded from its first seed, so batches of one seed each make a
// seed's image depend on that seed alone, whatever the number of workers.
import type { SynthFrame, SynthOverrides } from '../../contract/synthesis.js';
import type { WorkerResultT } from '../../contract/worker.js';
import type { PresetName } from '../engine/synthesis/index.js';
import { JobScheduler } from '../session/scheduler.js';
import { CliError, EXIT_FAILURE } from './common.js';

export interface SeedJobs {
  pool: JobScheduler;
  modelId: string;
  layer: string;
  unit: number;
  preset: PresetName;
  overrides?: SynthOverrides;
  seeds: number[];
  size?: number;
  iterations?: number;
  frame?: SynthFrame;
  signal: AbortSignal;
  /** Steps done so far by one seed (its last progress), and whether that seed finished. */
  onProgress: (seed: number, iteration: number, finished: boolean, targetProb: number | null) => void;
}

export type SeedResult = WorkerResultT & { seed: number };

/**
 * Run every seed as its own job; resolves with the results in seed order, or null when the
 * signal aborted (every job is cancelled). The first failure cancels the other seeds and
 * rejects with a CliError naming the seed.
 */
export async function runSeedJobs(o: SeedJobs): Promise<SeedResult[] | null> {
  const ids: string[] = [];
  const cancelAll = () => {
    for (const id of ids) o.pool.cancel('cli', id);
  };
  o.signal.addEventListener('abort', cancelAll, { once: true });
  try {
    const runs = o.seeds.map(
      (seed) =>
        new Promise<SeedResult | null>((resolve, reject) => {
          const spec = { layer: o.layer, unit: o.unit, preset: o.preset, overrides: o.overrides, seeds: 1, seedBase: seed, size: o.size, iterations: o.iterations, previewEveryMs: 0, frame: o.frame };
          const id = o.pool.submit('cli', { type: 'synth', modelId: o.modelId, spec }, (e) => {
            if (e.type === 'progress') o.onProgress(seed, e.progress.iteration + 1, false, e.progress.targetProb?.[0] ?? null);
            else if (e.type === 'done') {
              o.onProgress(seed, e.result.iterations, true, null);
              resolve({ ...e.result, seed });
            } else if (e.type === 'cancelled') resolve(null);
            else reject(new CliError(`seed ${seed}: ${e.type === 'error' ? e.message : `the job worker answered a synthesis with ${e.type}`}`, EXIT_FAILURE));
          });
          ids.push(id);
        }),
    );
    // One failure ends the command: the others are cancelled rather than left running.
    const results = await Promise.all(runs.map((r) => r.catch((e: unknown) => (cancelAll(), Promise.reject(e)))));
    if (o.signal.aborted || results.some((r) => r === null)) return null;
    return results as SeedResult[];
  } finally {
    o.signal.removeEventListener('abort', cancelAll);
  }
}
