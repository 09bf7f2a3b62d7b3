// `npm run bench -- --atlas`: atlas throughput on job workers (no live view) — the same atlas (a
// middle layer's first N units, fast preset, one unit per batch) built with 1 worker and with the
// pool, each into a fresh folder; units per minute for both, their ratio, how busy the workers
// were, and whether the builds wrote byte-identical images (they must: a batch is the same
// whoever runs it).
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadModel, modelsDir, selectBackend } from '../main/engine/index.js';
import { buildAtlas } from '../main/engine/synthesis/atlas.js';
import { presetSettings } from '../main/engine/synthesis/index.js';
import { JobScheduler, jobBackend, poolBatchRunner, poolSize } from '../main/session/scheduler.js';
import { readHostConfig } from '../main/host-config.js';

export interface AtlasBenchOptions {
  units: number;
  /** Pool size compared with 1 worker (default: the pool's, at least 2). */
  workers?: number;
  iterations?: number;
}

export async function benchAtlas(modelId: string, backend: string, o: AtlasBenchOptions): Promise<Record<string, unknown>> {
  const report = await selectBackend(backend);
  const dir = modelsDir(readHostConfig().modelsDir);
  const model = await loadModel(modelId, dir);
  const convs = model.layers.filter((l) => l.shape[0] > 1);
  const layer = convs[Math.floor(convs.length / 2)]!.name;
  const iterations = o.iterations ?? 40;
  const poolWorkers = o.workers ?? Math.max(2, poolSize(readHostConfig().workers, { liveWorker: false }));
  const run = async (workers: number) => {
    // The choice (onnx…), not report.backend: that names the tfjs backend around ONNX Runtime (wasm).
    const pool = new JobScheduler({ backend: jobBackend(report.choice), modelsDir: dir, workers });
    const root = mkdtempSync(join(tmpdir(), 'deepvis-bench-atlas-'));
    try {
      pool.preload(model.id);
      await Promise.all(pool.workers.map((w) => w.ready));
      // The workers' model loads are not counted: warm each with a one-step batch first.
      const warm = poolBatchRunner(pool, 'bench', model.id);
      await Promise.all(pool.workers.map(() => warm({ objectives: [{ kind: 'channel', layer, channel: 0 }], seeds: [1], settings: { ...presetSettings('fast'), iterations: 1 }, size: model.inputSize }, undefined, () => {})));
      // Time inside the workers' batches: what is left of the wall time is the host's own work
      // between batches (PNG encoding, atomic writes, the index, the sprite) and queueing.
      const pooled = poolBatchRunner(pool, 'bench', model.id);
      let inBatches = 0;
      const runBatch: typeof pooled = async (...a) => {
        const t = performance.now();
        try {
          return await pooled(...a);
        } finally {
          inBatches += performance.now() - t;
        }
      };
      const t0 = performance.now();
      const r = await buildAtlas({
        model,
        layer,
        units: [0, o.units - 1],
        spec: { preset: 'fast', seeds: 1, iterations },
        root,
        batch: 1,
        runBatch,
        concurrency: workers,
      });
      const wallMs = performance.now() - t0;
      const minutes = wallMs / 60_000;
      const images = readdirSync(r.dir).filter((f) => f.startsWith('unit-')).sort().map((f) => readFileSync(join(r.dir, f)));
      return { built: r.built, minutes, images, inBatches, wallMs: workers * wallMs };
    } finally {
      await pool.dispose();
      rmSync(root, { recursive: true, force: true });
    }
  };
  // 1 worker, the pool, the pool, 1 worker: on a shared machine a load that rises or falls during
  // the four builds weighs on both alike.
  const builds: ({ w: number } & Awaited<ReturnType<typeof run>>)[] = [];
  for (const w of [1, poolWorkers, poolWorkers, 1]) builds.push({ w, ...(await run(w)) });
  model.dispose();
  const of = (w: number) => {
    const bs = builds.filter((b) => b.w === w);
    const sum = (k: 'built' | 'minutes' | 'inBatches' | 'wallMs') => bs.reduce((a, b) => a + b[k], 0);
    return { unitsPerMin: sum('built') / sum('minutes'), busy: sum('inBatches') / sum('wallMs') };
  };
  const one = of(1);
  const many = of(poolWorkers);
  const first = builds[0]!.images;
  const same = builds.every((b) => b.images.length === first.length && b.images.every((x, i) => x.equals(first[i]!)));
  const r2 = (v: number) => Math.round(v * 100) / 100;
  return {
    atlas_layer: layer,
    atlas_units: o.units,
    atlas_iterations: iterations,
    atlas_units_per_min_1_worker: r2(one.unitsPerMin),
    atlas_units_per_min_pool: r2(many.unitsPerMin),
    atlas_pool_workers: poolWorkers,
    atlas_builds: '1 worker, pool, pool, 1 worker; units per minute over both builds of each',
    atlas_pool_speedup: r2(many.unitsPerMin / one.unitsPerMin),
    // Fraction of the workers' wall time spent in a batch: near 1 means the speed-up is bounded
    // by the cores, not by the host's work between batches.
    atlas_workers_busy_1_worker: r2(one.busy),
    atlas_workers_busy_pool: r2(many.busy),
    atlas_images_identical: same,
  };
}
