// `npm run bench -- --atlas`: atlas throughput on job workers (no live view) — the same atlas (a
// middle layer's first N units, fast preset, one unit per batch) built with 1 worker and with the
// pool, each into a fresh folder; units per minute for both, their ratio, and whether the two
// builds wrote byte-identical images (they must: a batch is the same whoever runs it).
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
  const poolWorkers = o.workers ?? Math.max(2, poolSize(readHostConfig().workers));
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
      const t0 = performance.now();
      const r = await buildAtlas({
        model,
        layer,
        units: [0, o.units - 1],
        spec: { preset: 'fast', seeds: 1, iterations },
        root,
        batch: 1,
        runBatch: poolBatchRunner(pool, 'bench', model.id),
        concurrency: workers,
      });
      const minutes = (performance.now() - t0) / 60_000;
      const images = readdirSync(r.dir).filter((f) => f.startsWith('unit-')).sort().map((f) => readFileSync(join(r.dir, f)));
      return { unitsPerMin: r.built / minutes, images };
    } finally {
      await pool.dispose();
      rmSync(root, { recursive: true, force: true });
    }
  };
  const one = await run(1);
  const many = await run(poolWorkers);
  model.dispose();
  const same = one.images.length === many.images.length && one.images.every((b, i) => b.equals(many.images[i]!));
  const r2 = (v: number) => Math.round(v * 100) / 100;
  return {
    atlas_layer: layer,
    atlas_units: o.units,
    atlas_iterations: iterations,
    atlas_units_per_min_1_worker: r2(one.unitsPerMin),
    atlas_units_per_min_pool: r2(many.unitsPerMin),
    atlas_pool_workers: poolWorkers,
    atlas_pool_speedup: r2(many.unitsPerMin / one.unitsPerMin),
    atlas_images_identical: same,
  };
}
