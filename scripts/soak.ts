// `npm run soak -- --minutes N`: a long run as at a conference demo. Web mode hosts the engine (its own
// process); Debian's Chromium shows the live view from a fake camera; every --synth-every-seconds a
// synthesis job is started the way a user does it: click a layer, click a unit's tile, press y. The
// layer and unit change from job to job. A job still running when the next one is due is cancelled
// with Esc (counted as cancelled), so jobs never pile up and each lasts at most one interval.
//
// Samples (stderr as they come, and in the JSON): the engine's tensor count and resident memory (the
// contract's `stats` request, answered by the engine host process itself; VmRSS of that pid from /proc
// alongside as a cross-check), frames processed and drawn, the page's JS heap (CDP).
//
// Errors are everything a user would call one: uncaught page errors, console errors, error replies and
// failed-job events on the page's WebSocket, the page losing its connection, a job that never starts,
// the engine process exiting, a `stats` request left unanswered.
//
// Prints JSON on stdout; exit code 1 when errors > 0, the tensor count at quiet points is not flat, or
// resident memory grew by 50 MB or more — so the command itself is the check.
// Env fallbacks: SOAK_SECONDS, SOAK_MODEL, SOAK_SAMPLE_SECONDS, SOAK_WARMUP_SECONDS,
// SOAK_SYNTH_EVERY_SECONDS, SOAK_SETTINGS (renderer settings JSON), BENCH_LIVE_CAMERA_FPS / _SIZE,
// DEEPVIS_BACKEND.
import { readFileSync } from 'node:fs';
import { Command } from 'commander';
import type { Page } from '@playwright/test';
import { openLivePage, pageStats, round, startLive, type LiveSession } from '../e2e/harness.js';
import { setRange } from '../e2e/helpers.js';

const MB = 1024 * 1024;
const RSS_LIMIT_MB = 50;
const STATS_BURST = 5;

const envNum = (name: string): number | undefined => (process.env[name] ? Number(process.env[name]) : undefined);

const program = new Command('soak')
  .description('long run: live view plus a synthesis job every 30 s; JSON on stdout, exit 1 on failure')
  .option('--minutes <n>', 'measured run length after warm-up', String((envNum('SOAK_SECONDS') ?? 600) / 60))
  .option('--model <id>', 'model the app shows', process.env.SOAK_MODEL ?? 'mobilenet-v1-0.75')
  .option('--sample-seconds <n>', 'seconds between samples', String(envNum('SOAK_SAMPLE_SECONDS') ?? 15))
  .option('--synth-every-seconds <n>', 'start a synthesis job this often (0 = none)', String(envNum('SOAK_SYNTH_EVERY_SECONDS') ?? 30))
  .option('--warmup-seconds <n>', 'live view before the first synthesis job of the warm-up', process.env.SOAK_WARMUP_SECONDS)
  .option('--synth-preset <name>', 'synthesis preset chosen in the pane', 'fast')
  // 60 × 1 seed, not the preset's 200 × 2: on 2 cores with the live view running, the preset's job
  // on mobilenet-v1-0.75 takes about two minutes (wasm), so every job would be cancelled and the
  // completion path never soaked; this one usually finishes inside the 30 s.
  .option('--synth-iterations <n>', 'iterations slider', '60')
  .option('--synth-seeds <n>', 'seeds slider', '1')
  .option('--synth-size <n>', "size slider (default: the pane's, 224)");
program.parse();
const o = program.opts<Record<string, string | undefined>>();
const num = (name: string, v: string | undefined): number | undefined => {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0) {
    console.error(`soak: --${name} must be a number ≥ 0, got "${v}"`);
    process.exit(2);
  }
  return n;
};
const minutes = num('minutes', o.minutes)!;
const seconds = minutes * 60;
const model = o.model!;
const sampleEvery = Math.max(1, num('sample-seconds', o.sampleSeconds)!);
const synthEvery = num('synth-every-seconds', o.synthEverySeconds)!;
const warmup = num('warmup-seconds', o.warmupSeconds) ?? Math.min(30, Math.max(5, seconds / 10));
const synthKnobs = { preset: o.synthPreset!, iterations: num('synth-iterations', o.synthIterations), seeds: num('synth-seeds', o.synthSeeds), size: num('synth-size', o.synthSize) };
const settings = JSON.parse(process.env.SOAK_SETTINGS ?? '{}') as Record<string, unknown>;

interface Sample {
  t: number;
  phase: 'warmup' | 'run' | 'end';
  /** No synthesis job was running while the sample was taken. */
  quiet: boolean;
  /** The engine's tensor count: the least of STATS_BURST replies (see sample()). */
  tensors: number;
  /** How many more the busiest of those replies counted (frames in flight). */
  tensors_in_flight: number;
  engine_mb: number;
  /** Resident memory of the engine host (web-mode process), as it reports it. */
  rss_mb: number;
  /** The same process's VmRSS from /proc (null off Linux). */
  rss_proc_mb: number | null;
  frames_processed: number;
  frames_dropped: number;
  frames_drawn: number;
  page_heap_mb: number | null;
}

interface ErrorNote {
  t: number;
  source: string;
  message: string;
}

interface JobNote {
  n: number;
  target: string;
  outcome: 'completed' | 'cancelled' | 'failed' | 'running';
  seconds: number;
  status: string;
}

const t0 = Date.now();
const now = () => round((Date.now() - t0) / 1000, 1)!;
const log = (line: string) => process.stderr.write(`${line}\n`);

const errors: ErrorNote[] = [];
/** Messages the page received, all read for errors (0 would mean the watch saw nothing). */
let watched = 0;
function error(source: string, message: string): void {
  errors.push({ t: now(), source, message: message.slice(0, 300) });
  log(`soak: ERROR (${source}) ${message}`);
}

/** VmRSS and VmHWM (peak) of a process, MB (Linux). */
function procMemory(pid: number | undefined): { rss: number; peak: number } | null {
  if (!pid) return null;
  try {
    const s = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(s)?.[1] ?? NaN);
    return { rss: round(kb('VmRSS') / 1024, 1)!, peak: round(kb('VmHWM') / 1024, 1)! };
  } catch {
    return null;
  }
}

/** The header of a framed contract message (see contract/wire.ts), without copying its blobs. */
function wireHeader(payload: Buffer): { type?: string; phase?: string; message?: string } | null {
  if (payload.length < 4) return null;
  const n = payload.readUInt32LE(0);
  if (4 + n > payload.length) return null;
  try {
    return JSON.parse(payload.subarray(4, 4 + n).toString('utf8')) as { type?: string; phase?: string; message?: string };
  } catch {
    return null;
  }
}

/** Everything on the page a user would call an error. */
function watchPage(page: Page, closing: () => boolean): void {
  page.on('pageerror', (e) => error('page error', e.message));
  page.on('console', (m) => {
    if (m.type() === 'error') error('console error', m.text());
  });
  page.on('websocket', (ws) => {
    ws.on('framereceived', ({ payload }) => {
      if (typeof payload === 'string') return;
      watched++;
      const h = wireHeader(payload);
      if (h?.type === 'error') error('error reply', h.message ?? '(no message)');
      else if (h?.type === 'synth' && h.phase === 'error') error('synthesis job failed', h.message ?? '(no message)');
    });
    ws.on('socketerror', (e) => error('websocket', e));
    ws.on('close', () => {
      if (!closing()) error('websocket', 'the page lost its connection to the engine');
    });
  });
}

async function synthStatus(page: Page): Promise<string> {
  // The status line is only there once a job has been started.
  return page.evaluate(() => document.querySelector('[data-testid="synth-status"]')?.textContent?.trim() ?? '');
}
const isRunning = (s: string) => s === 'running' || s.startsWith('starting');

async function statusLayerUnit(page: Page): Promise<string> {
  return (await page.getByTestId('status-layer-unit').textContent()) ?? '';
}

/** Click layer `name` in the layer list, then unit `pick(units)`'s tile; returns "layer:unit". */
async function selectUnit(page: Page, name: string, pick: (units: number) => number): Promise<string> {
  await page.getByTestId('layer-item').filter({ hasText: new RegExp(`^${name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`) }).click();
  await page.waitForFunction((n) => document.querySelector('[data-testid="status-layer-unit"]')?.textContent?.startsWith(`${n}:`), name, { timeout: 30_000 });
  // The grid shows the new layer once a frame for it is drawn.
  const drawn = (await pageStats(page)).framesDrawn;
  await page.waitForFunction((d) => ((window as unknown as { __deepvisStats?: { framesDrawn: number } }).__deepvisStats?.framesDrawn ?? 0) >= d + 2, drawn, { timeout: 60_000 });
  const grid = page.getByTestId('grid-canvas');
  const { cols, rows, count } = await grid.evaluate((c: HTMLCanvasElement) => ({ cols: Number(c.dataset.cols), rows: Number(c.dataset.rows), count: Number(c.dataset.count) }));
  const unit = pick(count);
  const box = (await grid.boundingBox())!;
  await grid.click({ position: { x: ((unit % cols) + 0.5) * (box.width / cols), y: (Math.floor(unit / cols) + 0.5) * (box.height / rows) } });
  const want = `${name}:${unit}`;
  await page.waitForFunction((w) => document.querySelector('[data-testid="status-layer-unit"]')?.textContent === w, want, { timeout: 15_000 });
  return want;
}

async function main(): Promise<void> {
  if (!(seconds > 0)) throw new Error('--minutes must be > 0');
  let closing = false;
  const live: LiveSession = await startLive({
    model,
    cameraFps: Number(process.env.BENCH_LIVE_CAMERA_FPS ?? 30),
    cameraSize: process.env.BENCH_LIVE_CAMERA_SIZE ?? '640x480',
  });
  const pid = live.server.child.pid;
  live.server.child.once('exit', (code, signal) => {
    if (!closing) error('engine', `the engine process exited (code ${code}, signal ${signal})`);
  });
  const samples: Sample[] = [];
  const jobs: JobNote[] = [];
  let warmupJob: JobNote | null = null;
  let peakProcMb: number | null = null;
  let backend = '';
  let result: { base: Sample; runSeconds: number; knobs: Record<string, unknown> } | null = null;
  try {
    const page = await openLivePage(live, model, settings, (p) => watchPage(p, () => closing));
    backend = (await page.getByTestId('status-backend').textContent()) ?? '';
    const cdp = await page.context().newCDPSession(page);
    await cdp.send('Performance.enable');

    const sample = async (phase: Sample['phase']): Promise<Sample> => {
      const before = await synthStatus(page);
      // A frame in flight holds its packed result and the top-k capture for a moment, so one reply
      // may count a frame's tensors; the least of a few replies is what stays between frames.
      const burst: Awaited<ReturnType<LiveSession['engineStats']>>[] = [];
      try {
        for (let i = 0; i < STATS_BURST; i++) {
          if (i) await page.waitForTimeout(150);
          burst.push(await live.engineStats());
        }
      } catch (err) {
        throw new Error(`the engine did not answer \`stats\`: ${(err as Error).message}`);
      }
      const e = burst[burst.length - 1]!;
      const least = burst.reduce((a, b) => (b.numTensors < a.numTensors ? b : a));
      const [p, metrics, after] = await Promise.all([pageStats(page), cdp.send('Performance.getMetrics'), synthStatus(page)]);
      const heap = metrics.metrics.find((m) => m.name === 'JSHeapUsedSize')?.value ?? null;
      const proc = procMemory(pid);
      const s: Sample = {
        t: now(),
        phase,
        quiet: !isRunning(before) && !isRunning(after),
        tensors: least.numTensors,
        tensors_in_flight: Math.max(...burst.map((b) => b.numTensors)) - least.numTensors,
        engine_mb: round(least.numBytes / MB, 1)!,
        rss_mb: round(e.rssBytes / MB, 1)!,
        rss_proc_mb: proc?.rss ?? null,
        frames_processed: e.framesProcessed,
        frames_dropped: e.framesDropped,
        frames_drawn: p.framesDrawn,
        page_heap_mb: heap === null ? null : round(heap / MB, 1),
      };
      log(JSON.stringify(s));
      if (await page.getByTestId('error-connection').isVisible()) error('page', (await page.getByTestId('error-connection').textContent()) ?? 'connection banner');
      return s;
    };

    // ------------------------------------------------------------------ synthesis, as a user does it
    const layers = (await page.getByTestId('layer-item').allTextContents()).map((s) => s.trim()).filter(Boolean);
    if (!layers.length) throw new Error('the layer list is empty');
    // Spread the jobs over the network: the class layer (last) first, then every 5th layer on.
    const targetOf = (n: number) => ({ layer: layers[(layers.length - 1 + 5 * n) % layers.length]!, pick: (units: number) => (13 + 97 * n) % Math.max(1, units) });
    await page.getByTestId('synth-preset').selectOption(synthKnobs.preset);
    if (synthKnobs.iterations !== undefined) await setRange(page, 'synth-iterations', synthKnobs.iterations);
    if (synthKnobs.seeds !== undefined) await setRange(page, 'synth-seeds', synthKnobs.seeds);
    if (synthKnobs.size !== undefined) await setRange(page, 'synth-size', synthKnobs.size);
    const knobs = {
      preset: synthKnobs.preset,
      iterations: Number(await page.getByTestId('synth-iterations').inputValue()),
      seeds: Number(await page.getByTestId('synth-seeds').inputValue()),
      size: Number(await page.getByTestId('synth-size').inputValue()),
    };

    let current: (JobNote & { startedAt: number; cancelAsked: boolean }) | null = null;
    let jobCount = 0;
    const startJob = async (): Promise<JobNote & { startedAt: number; cancelAsked: boolean }> => {
      const n = jobCount++;
      const { layer, pick } = targetOf(n);
      const target = await selectUnit(page, layer, pick);
      await page.keyboard.press('y');
      const job = { n, target, outcome: 'running' as const, seconds: 0, status: '', startedAt: Date.now(), cancelAsked: false };
      try {
        await page.waitForFunction(() => {
          const s = document.querySelector('[data-testid="synth-status"]')?.textContent ?? '';
          return s === 'running' || s.startsWith('starting') || s.startsWith('error');
        }, null, { timeout: 15_000 });
      } catch {
        error('synthesis', `pressing y on ${target} started no job`);
      }
      log(`soak: job ${n} on ${target}`);
      return job;
    };
    /** The job's outcome once it has one (null while it runs). */
    const settle = async (job: JobNote & { startedAt: number; cancelAsked: boolean }): Promise<JobNote | null> => {
      const s = await synthStatus(page);
      if (isRunning(s)) return null;
      const outcome: JobNote['outcome'] = s.startsWith('done') ? 'completed' : s === 'cancelled' ? 'cancelled' : 'failed';
      if (outcome === 'cancelled' && !job.cancelAsked) error('synthesis', `job ${job.n} on ${job.target} was cancelled by nobody`);
      if (outcome === 'failed' && !s.startsWith('error')) error('synthesis', `job ${job.n} on ${job.target} ended in an unknown state "${s}"`);
      const done: JobNote = { n: job.n, target: job.target, outcome, seconds: round((Date.now() - job.startedAt) / 1000, 1)!, status: s };
      log(`soak: job ${job.n} ${outcome} after ${done.seconds} s (${s})`);
      return done;
    };
    /** Esc cancels a running job (and only it); wait for the engine to confirm. */
    const cancel = async (job: JobNote & { startedAt: number; cancelAsked: boolean }): Promise<JobNote> => {
      job.cancelAsked = true;
      if (isRunning(await synthStatus(page))) await page.keyboard.press('Escape');
      const deadline = Date.now() + 30_000;
      for (;;) {
        const r = await settle(job);
        if (r) return r;
        if (Date.now() > deadline) {
          error('synthesis', `job ${job.n} on ${job.target} did not stop within 30 s of Esc`);
          return { n: job.n, target: job.target, outcome: 'running', seconds: round((Date.now() - job.startedAt) / 1000, 1)!, status: await synthStatus(page) };
        }
        await page.waitForTimeout(200);
      }
    };
    /** Let the running job go on until `until`, then cancel it. */
    const finish = async (job: JobNote & { startedAt: number; cancelAsked: boolean }, until: number): Promise<JobNote> => {
      while (Date.now() < until) {
        const r = await settle(job);
        if (r) return r;
        await page.waitForTimeout(500);
      }
      return cancel(job);
    };

    // ------------------------------------------------------------------ warm-up
    // The live view, then one synthesis job: the baseline is taken after both have run once, so
    // one-time growth (backend kernels, allocator pools, JIT) is not counted as a leak.
    log(`soak: engine pid ${pid}; ${model} for ${minutes} min after warm-up (${warmup} s live view + one synthesis job); a sample every ${sampleEvery} s, a job every ${synthEvery || '—'} s (${JSON.stringify(knobs)})`);
    samples.push(await sample('warmup'));
    await page.waitForTimeout(warmup * 1000);
    if (synthEvery > 0) {
      warmupJob = await finish(await startJob(), Date.now() + Math.max(synthEvery, 120) * 1000);
      await page.waitForTimeout(2000);
    }

    // ------------------------------------------------------------------ the run
    const base = await sample('run');
    samples.push(base);
    const runStart = Date.now();
    result = { base, runSeconds: 0, knobs };
    const runEnd = runStart + seconds * 1000;
    let nextJob = runStart;
    let nextSample = runStart + sampleEvery * 1000;
    while (Date.now() < runEnd) {
      if (live.server.child.exitCode !== null) break;
      // Each job's end is followed by a sample: a quiet point for the tensor comparison even when
      // jobs fill every interval.
      if (current) {
        const r = await settle(current);
        if (r) {
          jobs.push(r);
          current = null;
          samples.push(await sample('run'));
        }
      }
      if (Date.now() >= nextSample) {
        samples.push(await sample('run'));
        nextSample += sampleEvery * 1000;
        while (nextSample <= Date.now()) nextSample += sampleEvery * 1000;
      }
      if (synthEvery > 0 && Date.now() >= nextJob) {
        if (current) {
          jobs.push(await cancel(current));
          samples.push(await sample('run'));
        }
        current = await startJob();
        nextJob += synthEvery * 1000;
        while (nextJob <= Date.now()) nextJob += synthEvery * 1000;
      }
      await page.waitForTimeout(Math.max(50, Math.min(500, nextJob - Date.now(), nextSample - Date.now())));
    }
    // The last job gets the rest of its interval, as the others did; then a quiet end sample.
    if (live.server.child.exitCode === null) {
      if (current) jobs.push(await finish(current, current.startedAt + synthEvery * 1000));
      await page.waitForTimeout(2000);
      samples.push(await sample('end'));
      peakProcMb = procMemory(pid)?.peak ?? null;
    }
    result.runSeconds = (Date.now() - runStart) / 1000;
  } catch (e) {
    // Once the run has a baseline, a failure is one more error in the report, not a lost report.
    if (!result) throw e;
    error('soak', (e as Error).message.split('\n')[0]!);
  } finally {
    closing = true;
    // A killed server never emits 'exit' again, so the harness's stop() would wait for ever.
    const dead = live.server.child.exitCode !== null || live.server.child.signalCode !== null;
    await (dead ? live.browser.close() : live.close()).catch(() => undefined);
  }
  report(result);

  function report(r: typeof result): void {
    if (!r) throw new Error('the run ended before its first sample');
    const { base, knobs } = r;
    const end0 = samples[samples.length - 1]!;
    // A run cut short by a failure has no end time of its own: use its last sample's.
    const runSeconds = r.runSeconds > 0 ? r.runSeconds : Math.max(1, end0.t - base.t);
    const end = samples[samples.length - 1]!;
    const run = samples.filter((s) => s.phase !== 'warmup');
    // A running job legitimately holds tensors (its images, optimiser state, gradients): compare
    // only samples taken while no job ran.
    const quiet = run.filter((s) => s.quiet);
    const qt = quiet.map((s) => s.tensors);
    const rss = run.map((s) => s.rss_mb);
    const heap = run.map((s) => s.page_heap_mb).filter((h): h is number => h !== null);
    const flat = qt.length >= 2 && Math.max(...qt) === Math.min(...qt);
    const growth = round(end.rss_mb - base.rss_mb, 1)!;
    const count = (k: JobNote['outcome']) => jobs.filter((j) => j.outcome === k).length;
    const failures: string[] = [];
    if (errors.length) failures.push(`${errors.length} error(s)`);
    if (!watched) failures.push("the page's WebSocket was not watched (no messages seen), so its errors were not counted");
    if (!flat) failures.push(qt.length < 2 ? 'fewer than 2 quiet samples to compare tensor counts' : `tensor count at quiet points varied ${Math.min(...qt)}–${Math.max(...qt)}`);
    if (!(growth < RSS_LIMIT_MB)) failures.push(`resident memory grew ${growth} MB (limit < ${RSS_LIMIT_MB})`);
    const out = {
      ok: failures.length === 0,
      failures,
      model,
      backend,
      engine_pid: pid,
      minutes,
      run_seconds: round(runSeconds, 1),
      warmup: { seconds: warmup, job: warmupJob },
      sample_seconds: sampleEvery,
      synth_every_seconds: synthEvery,
      synth: {
        ...knobs,
        policy: 'a job starts every interval (click a layer, click a unit, press y); one still running when the next is due is cancelled with Esc',
      },
      notes: {
        start: 'the first sample after warm-up (live view for warmup.seconds, then one synthesis job run to its end)',
        tensors: 'compared at quiet points only (samples taken while no synthesis job ran): a running job legitimately holds its images, optimiser state and gradients; flat = the same count at every quiet point. Each sample counts the least of 5 stats replies 150 ms apart, since a live frame in flight holds a few tensors for a moment (tensors_in_flight in the samples)',
        rss_mb: 'resident memory of the engine host process (web mode), as it reports it; samples carry /proc VmRSS of the same pid as a cross-check; peak_proc = VmHWM at the end; growth = end − start, both quiet points',
      },
      frames: {
        processed: end.frames_processed - base.frames_processed,
        drawn: end.frames_drawn - base.frames_drawn,
        dropped: end.frames_dropped - base.frames_dropped,
        drawn_per_second: round((end.frames_drawn - base.frames_drawn) / runSeconds, 2),
      },
      jobs: { started: jobs.length, completed: count('completed'), cancelled: count('cancelled'), failed: count('failed'), stuck: count('running'), list: jobs },
      tensors: {
        start: base.tensors,
        end: end.tensors,
        min: qt.length ? Math.min(...qt) : null,
        max: qt.length ? Math.max(...qt) : null,
        flat,
        quiet_samples: quiet.length,
        max_during_jobs: run.some((s) => !s.quiet) ? Math.max(...run.filter((s) => !s.quiet).map((s) => s.tensors)) : null,
      },
      rss_mb: { before_warmup: samples[0]!.rss_mb, start: base.rss_mb, max: Math.max(...rss), end: end.rss_mb, growth, peak_proc: peakProcMb },
      page_heap_mb: { start: base.page_heap_mb, max: heap.length ? Math.max(...heap) : null, end: end.page_heap_mb },
      errors: { count: errors.length, first: errors.slice(0, 5), page_messages_watched: watched },
      samples,
    };
    console.log(JSON.stringify(out, null, 2));
    if (out.ok) process.exitCode = 0;
    else log(`soak: FAILED: ${failures.join('; ')}`);
  }
}

// Only a finished, passing report clears this: a run that ends any other way has failed.
process.exitCode = 1;
main().catch((e: unknown) => {
  console.error(`soak: ${(e as Error).stack ?? e}`);
  process.exit(1);
});
