// The engine's worker threads, as the hosts use them: synthesis on the job pool (real workers,
// real models, wasm), a job worker killed mid-job, a job too big for memory, two clients served in
// turn (jobs and frames), and job ownership.
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import os, { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AppEvent, Reply } from '../contract/messages.js';
import type { WorkerJobEventT } from '../contract/worker.js';
import { EngineSession } from '../main/session/engine-session.js';
import { JobScheduler, poolSize } from '../main/session/scheduler.js';
import { loadModel, modelsDir } from '../main/engine/index.js';
import { measureFootprint } from '../main/engine/memory-budget.js';
import * as tf from '@tensorflow/tfjs-core';
import { photoRgba } from './support/fixtures.js';
import { collector } from './support/synth-events.js';
import { runDeepvis } from './support/cli.js';

const MODEL = 'mobilenet-v1-0.25';
const BIG = 'darknet-tiny';

let session: EngineSession;
let rgba: Uint8Array;

const frame = (frameId: number) => ({ type: 'frame', frameId, width: 224, height: 224, rgba, layer: 'conv_pw_5_relu', unit: 0 }) as const;

beforeAll(async () => {
  session = await EngineSession.create({ backend: 'wasm', model: MODEL, workers: 1 });
  rgba = await photoRgba('dog');
});

afterAll(async () => {
  await session?.dispose();
});

describe('job workers', () => {
  it('a job worker killed mid-job: the job errors saying so, the window gets a notice, frames and the next job still work', async () => {
    const c = collector();
    const notices: AppEvent[] = [];
    const client = c.client('killer');
    const withNotices = { id: client.id, emit: (e: AppEvent) => (e.type === 'notice' ? notices.push(e) : client.emit(e)) };
    const started = await session.handle({ type: 'synthStart', layer: 'logits', unit: 'flamingo', preset: 'paper-3', seeds: 1, iterations: 500 }, withNotices);
    if (started.type !== 'synthStarted') throw new Error(JSON.stringify(started));
    await c.until((e) => e.jobId === started.jobId && e.phase === 'progress' && (e.iteration ?? 0) >= 2);
    const worker = session.pool.workerOf(started.jobId);
    expect(worker).not.toBeNull();
    const restartsBefore = worker!.restarts;
    await worker!.kill();
    const end = await c.until((e) => e.jobId === started.jobId && e.phase !== 'progress');
    expect(end.phase).toBe('error');
    expect(end.message).toMatch(/job worker 1 exited \(code 1\) — it was restarted/);
    expect(worker!.restarts).toBe(restartsBefore + 1);
    expect(notices).toEqual([{ type: 'notice', level: 'warning', message: expect.stringMatching(/^engine: job worker 1 exited/) }]);
    // The next frame is answered, and the replacement worker runs the next job to the end.
    expect((await session.handle(frame(1), withNotices)).type).toBe('frame');
    const next = await session.handle({ type: 'synthStart', layer: 'logits', unit: 'flamingo', preset: 'fast', seeds: 1, iterations: 5 }, withNotices);
    if (next.type !== 'synthStarted') throw new Error(JSON.stringify(next));
    const done = await c.until((e) => e.jobId === next.jobId && e.phase !== 'progress');
    expect(done.phase).toBe('done');
    expect(done.result!.images[0]!.rgb.length).toBe(224 * 224 * 3);
  });

  it('refuses a synthesis that would exhaust the wasm heap, says what fits, and keeps serving', async () => {
    const load = await session.handle({ type: 'loadModel', id: BIG });
    expect(load.type).toBe('loadModel');
    try {
      const c = collector();
      const r = await session.handle({ type: 'synthStart', layer: 'logits', unit: 'flamingo', preset: 'fast', seeds: 9, size: 448 }, c.client('greedy'));
      if (r.type !== 'error') throw new Error(`expected a refusal, got ${r.type}`);
      expect(r.message).toMatch(/^9 seeds at 448 px need ~\d+(\.\d)? GB on darknet-tiny, more than .*; at most \d seeds fit at 448 px, or 9 at 224 px$/);
      const most = Number(r.message.match(/at most (\d) seeds/)![1]);
      expect(most).toBeGreaterThanOrEqual(1);
      expect(most).toBeLessThan(9);
      expect(session.pool.active).toBe(0); // nothing was started
      const info = (await session.handle({ type: 'hello' })) as Extract<Reply, { type: 'hello' }>;
      const layer = info.model!.defaultLayer;
      expect((await session.handle({ ...frame(3), layer })).type).toBe('frame');
      // What the message says fits is accepted.
      const ok = await session.handle({ type: 'synthStart', layer: 'logits', unit: 'flamingo', preset: 'fast', seeds: 9, iterations: 2 }, c.client('greedy'));
      expect(ok.type).toBe('synthStarted');
      if (ok.type === 'synthStarted') expect((await c.until((e) => e.jobId === ok.jobId && e.phase !== 'progress')).phase).toBe('done');
    } finally {
      await session.handle({ type: 'loadModel', id: MODEL });
    }
  });

  it('a model switch has a job worker measure its memory estimate: this thread computes no more than building the model, and the estimate is the one this thread would measure', async () => {
    // Everything this thread computes during the switch and the measurement is recorded here.
    // (tf.profile answers one record it reuses: read each one's kernels before the next.)
    const kernels = async (run: () => Promise<void>) => (await tf.profile(run)).kernels.map((k) => k.name);
    const switching = await kernels(async () => {
      expect((await session.handle({ type: 'loadModel', id: BIG })).type).toBe('loadModel');
      await session.pool.footprint(session.model!);
      await new Promise((r) => setImmediate(r));
    });
    try {
      // Building the model here measures its layers' shapes (two forward passes); nothing more.
      const building = await kernels(async () => (await loadModel(BIG)).dispose());
      expect(building.length).toBeGreaterThan(0);
      expect(switching).toEqual(building);
      const pooled = await session.pool.footprint(session.model!);
      expect(pooled.resident).toBeGreaterThan(0);
      expect(pooled.perImage).toBe((await measureFootprint(session.model!)).perImage);
    } finally {
      await session.handle({ type: 'loadModel', id: MODEL });
    }
  });

  it('only the window that started a job may cancel it; ids are unguessable', async () => {
    const c = collector();
    const owner = c.client('owner');
    const started = await session.handle({ type: 'synthStart', layer: 'logits', unit: 'flamingo', preset: 'paper-3', seeds: 1, iterations: 300 }, owner);
    if (started.type !== 'synthStarted') throw new Error(JSON.stringify(started));
    expect(started.jobId).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    const stranger = await session.handle({ type: 'synthCancel', jobId: started.jobId, seq: 7 }, c.client('stranger'));
    expect(stranger).toMatchObject({ type: 'error', request: 'synthCancel', seq: 7, message: expect.stringMatching(/belongs to another window/) });
    await c.until((e) => e.jobId === started.jobId && e.phase === 'progress' && (e.iteration ?? 0) >= 3);
    expect(c.events.some((e) => e.jobId === started.jobId && e.phase !== 'progress')).toBe(false); // still running
    // A stranger's disconnect does not touch it either; the owner's cancel stops it within a step or two.
    session.disconnect('stranger');
    const cancel = await session.handle({ type: 'synthCancel', jobId: started.jobId }, owner);
    expect(cancel).toMatchObject({ type: 'synthCancel', cancelled: true });
    const at = c.events.filter((e) => e.jobId === started.jobId && e.phase === 'progress').length;
    expect((await c.until((e) => e.jobId === started.jobId && e.phase !== 'progress')).phase).toBe('cancelled');
    expect(c.events.filter((e) => e.jobId === started.jobId && e.phase === 'progress').length - at).toBeLessThanOrEqual(2);
    expect((await session.handle({ type: 'synthCancel', jobId: started.jobId }, owner)).type).toBe('synthCancel');
  });

  it('takes two clients’ frames in turn: a fast sender cannot starve a slow one', async () => {
    const got = { a: 0, b: 0 };
    const stream = async (id: 'a' | 'b', n: number, base: number) => {
      const pending: Promise<Reply>[] = [];
      for (let i = 0; i < n; i++) {
        pending.push(session.handle(frame(base + i), { id, emit: () => {} }).then((r) => (r.type === 'frame' && got[id]++, r)));
        await new Promise((r) => setTimeout(r, id === 'a' ? 1 : 20));
      }
      await Promise.all(pending);
    };
    await Promise.all([stream('a', 200, 10_000), stream('b', 30, 20_000)]);
    // b asked 30 times in the time a asked 200 times: it still gets frames all along.
    expect(got.b).toBeGreaterThanOrEqual(Math.min(25, got.a * 0.4));
    expect(got.a).toBeGreaterThan(0);
  });
});

describe('the job scheduler', () => {
  let pool: JobScheduler;
  beforeAll(() => {
    pool = new JobScheduler({ backend: 'wasm', modelsDir: modelsDir(), workers: 1 });
  });
  afterAll(async () => {
    await pool.dispose();
  });

  it('serves two clients’ queued jobs alternately on one worker', async () => {
    const order: string[] = [];
    const jobs: Promise<WorkerJobEventT>[] = [];
    const spec = (unit: number) => ({
      type: 'batch' as const,
      modelId: MODEL,
      spec: { objectives: [{ kind: 'class' as const, index: unit }], seeds: [unit], settings: { ...FAST, iterations: 2 }, size: [64, 64] as [number, number] },
    });
    const submit = (client: string, unit: number) =>
      jobs.push(
        new Promise((resolve) =>
          pool.submit(client, spec(unit), (e) => {
            if (e.type === 'progress') return;
            order.push(client);
            resolve(e);
          }),
        ),
      );
    // a queues three jobs before b queues any: round-robin still alternates once b has work.
    for (const u of [1, 2, 3]) submit('a', u);
    for (const u of [4, 5, 6]) submit('b', u);
    const ends = await Promise.all(jobs);
    expect(ends.map((e) => e.type)).toEqual(Array(6).fill('done'));
    expect(order).toEqual(['a', 'b', 'a', 'b', 'a', 'b']);
  });

  it('a model switch while a job runs: the job ends on the model it started with, and the next job runs on the new one', async () => {
    const spec = (modelId: string, iterations: number) => ({
      type: 'batch' as const,
      modelId,
      spec: { objectives: [{ kind: 'class' as const, index: 130 }], seeds: [1], settings: { ...FAST, iterations }, size: [64, 64] as [number, number] },
    });
    let stepped!: () => void;
    const running = new Promise<void>((r) => (stepped = r));
    const first = new Promise<WorkerJobEventT>((resolve) =>
      pool.submit('a', spec(MODEL, 40), (e) => {
        if (e.type === 'progress') {
          if (e.progress.iteration >= 2) stepped();
          return;
        }
        resolve(e);
      }),
    );
    await running;
    // What a window's model switch does: every worker loads the new model at once.
    pool.preload(BIG);
    const end = await first;
    expect(end.type, JSON.stringify(end)).toBe('done');
    if (end.type !== 'done') return;
    expect(end.result.images[0]!.rgb.length).toBe(64 * 64 * 3);
    expect(end.result.images[0]!.curve.length).toBe(40);
    const next = await new Promise<WorkerJobEventT>((resolve) => pool.submit('a', spec(BIG, 2), (e) => e.type !== 'progress' && resolve(e)));
    expect(next.type, JSON.stringify(next)).toBe('done');
  });

  it('a worker that ends while it measures a model: the estimate fails saying so, and the next ask measures on the new thread', async () => {
    const worker = pool.workers[0]!;
    await worker.ready;
    const model = { id: BIG, checksum: 'a model not measured yet', chosenPreprocess: null };
    const first = pool.footprint(model);
    await worker.kill();
    await expect(first).rejects.toThrow(/job worker 1 ended before it measured/);
    const again = pool.footprint(model);
    expect(again).not.toBe(first);
    const measured = await again;
    expect(measured.perImage).toBeGreaterThan(0);
    expect(measured.resident).toBeGreaterThan(0);
    expect(pool.footprint(model)).toBe(again);
  });
});

describe('a pool whose backend cannot start', () => {
  it('ends a job with the reason instead of restarting for ever', async () => {
    // tfjs-node is an optional dependency that cannot install here (its libtensorflow download).
    const pool = new JobScheduler({ backend: 'tensorflow', modelsDir: modelsDir(), workers: 1 });
    try {
      const end = await new Promise<WorkerJobEventT>((resolve) =>
        pool.submit('c', { type: 'synth', modelId: MODEL, spec: { layer: 'logits', unit: 1, preset: 'fast', seeds: 1, iterations: 1 } }, (e) => e.type !== 'progress' && resolve(e)),
      );
      expect(end).toMatchObject({ type: 'error', message: expect.stringMatching(/^job worker 1 could not start: .*tensorflow/) });
      expect(pool.workers[0]!.restarts).toBe(0);
    } finally {
      await pool.dispose();
    }
  });
});

describe('pool size', () => {
  it('is one job worker per core but the one the live worker takes; every core where no live worker runs (the CLI); as requested when set', () => {
    expect([1, 2, 8].map((cores) => poolSize(null, { liveWorker: true, cores }))).toEqual([1, 1, 7]);
    expect([1, 2, 8].map((cores) => poolSize(null, { liveWorker: false, cores }))).toEqual([1, 2, 8]);
    expect(poolSize(3, { liveWorker: false, cores: 2 })).toBe(3);
    expect(poolSize(3, { liveWorker: true, cores: 2 })).toBe(3);
  });
});

describe('deepvis atlas on the job pool', () => {
  it('writes byte-identical images with 1 worker and with its default pool, a worker per core (no live view to leave one for), and refuses a batch that cannot fit', async () => {
    const roots = [mkdtempSync(join(tmpdir(), 'deepvis-pool-1-')), mkdtempSync(join(tmpdir(), 'deepvis-pool-2-'))];
    try {
      const files: Map<string, Buffer>[] = [];
      for (const [i, workers] of [1, null].entries()) {
        const r = await runDeepvis(['atlas', '--model', MODEL, '--layer', 'pw3', '--units', '0-3', '--preset', 'fast', '--iterations', '4', '--batch', '1', ...(workers ? ['--workers', String(workers)] : []), '--out', roots[i]!, '--json'], 180_000, { DEEPVIS_WORKERS: '' });
        expect(r.code, r.stderr).toBe(0);
        const summary = JSON.parse(r.stdout) as { dir: string; built: number; units_done: number; workers: number };
        expect(summary).toMatchObject({ built: 4, units_done: 4, workers: workers ?? os.availableParallelism() });
        const pngs = readdirSync(summary.dir).filter((f) => f.startsWith('unit-')).sort();
        expect(pngs).toEqual([0, 1, 2, 3].map((u) => `unit-000${u}-seed-1.png`));
        files.push(new Map(pngs.map((f) => [f, readFileSync(join(summary.dir, f))])));
      }
      for (const [f, bytes] of files[0]!) expect(bytes.equals(files[1]!.get(f)!), f).toBe(true);
      // Different units give different images (the comparison above can fail).
      expect(files[0]!.get('unit-0000-seed-1.png')!.equals(files[0]!.get('unit-0001-seed-1.png')!)).toBe(false);

      const big = await runDeepvis(['atlas', '--model', MODEL, '--layer', 'pw3', '--batch', '64', '--size', '448', '--out', roots[0]!]);
      expect(big.code).toBe(2);
      expect(big.stderr).toMatch(/^deepvis: 64 batch items at 448 px need ~\d+ GB on mobilenet-v1-0\.25, more than .*; at most \d+ batch items fit at 448 px, or \d+ at 224 px \(--batch 64, --seeds 1\)$/m);
    } finally {
      for (const r of roots) rmSync(r, { recursive: true, force: true });
    }
  });
});

describe('deepvis synth on the job pool', () => {
  it('writes byte-identical images and the same sidecar with 1 and with 2 workers; each seed its own image', async () => {
    const roots = [mkdtempSync(join(tmpdir(), 'deepvis-synth-1-')), mkdtempSync(join(tmpdir(), 'deepvis-synth-2-'))];
    try {
      const runs: { pngs: Map<string, Buffer>; sidecar: Record<string, unknown> }[] = [];
      for (const [i, workers] of [1, 2].entries()) {
        const r = await runDeepvis(['synth', '--model', MODEL, '--layer', 'logits', '--unit', '130', '--preset', 'fast', '--iterations', '4', '--seeds', '3', '--seed-base', '5', '--workers', String(workers), '--out', roots[i]!, '--json'], 180_000);
        expect(r.code, r.stderr).toBe(0);
        const summary = JSON.parse(r.stdout) as { images: { path: string }[]; workers: number };
        expect(summary.workers).toBe(workers);
        const names = readdirSync(roots[i]!).sort();
        const base = `${MODEL}_logits-130-flamingo_fast_224px`;
        expect(names).toEqual([`${base}.json`, ...[5, 6, 7].map((s) => `${base}_seed${s}.png`)]);
        expect(summary.images.map((im) => im.path)).toEqual([5, 6, 7].map((s) => join(roots[i]!, `${base}_seed${s}.png`)));
        const sidecar = JSON.parse(readFileSync(join(roots[i]!, `${base}.json`), 'utf8')) as Record<string, unknown> & { images: Record<string, unknown>[] };
        // Wall times differ between runs; everything else must not.
        delete sidecar.seconds;
        for (const im of sidecar.images) im.path = String(im.path).slice(roots[i]!.length);
        expect(sidecar).toMatchObject({ seeds: [5, 6, 7], iterations_run: 4, stop_reason: 'iterations' });
        runs.push({ pngs: new Map(names.filter((n) => n.endsWith('.png')).map((n) => [n, readFileSync(join(roots[i]!, n))])), sidecar });
      }
      for (const [f, bytes] of runs[0]!.pngs) expect(bytes.equals(runs[1]!.pngs.get(f)!), f).toBe(true);
      expect(runs[1]!.sidecar).toEqual(runs[0]!.sidecar);
      // Different seeds give different images (the comparison above can fail).
      const [a, b] = [...runs[0]!.pngs.values()];
      expect(a!.equals(b!)).toBe(false);
    } finally {
      for (const r of roots) rmSync(r, { recursive: true, force: true });
    }
  });
});

const FAST = (await import('../main/engine/synthesis/settings.js')).presetSettings('fast');
