// `npm run bench:live`: the live view end to end — web mode, Chromium with a fake 30 fps camera
// (640×480, the fixture photos), each bundled model for BENCH_LIVE_SECONDS (default 30) — and print
// JSON from window.__deepvisStats:
//   display_fps     distinct engine results drawn per second (bounded by the camera's fps)
//   latency_ms_*    frame grabbed → its grid drawn, p50 / p95
//   engine_ms_p50   the host's forward pass + packing time per frame
//   display_fps_backproj (and *_backproj) the same with back-projection on (grad norm, `b b`)
//   synth_*: a fast-preset synthesis (4 seeds by default, class "flamingo") sent over a second WebSocket on the
//     same model — first alone (synth_seconds_alone, seconds_to_target_alone; after an untimed two-step run of the same batch), then while the page
//     streams (display_fps_during_synth, latency_ms_p95_during_synth over the synthesis's run, and
//     its seconds_to_target_during_live, synth_seconds_during_live, synth_slowdown = during/alone)
//   cpu_ms_per_frame (and *_during_synth): CPU ms per drawn frame of the engine host's main thread, its live
//     worker, its other threads and each kind of Chromium process (/proc, Linux), and the job worker's total.
//     The other threads are V8's helpers (GC, compiler), shared by every thread: during a synthesis most
//     of theirs is the job's garbage, not the frames'
//   two_clients: two tabs streaming at once — frames each got over the window, and the smaller share
// Env: BENCH_LIVE_SECONDS, BENCH_LIVE_MODELS (comma list), BENCH_LIVE_CAMERA_FPS (30), BENCH_LIVE_BACK (0: skip),
// BENCH_LIVE_CAMERA_SIZE (640x480), BENCH_LIVE_SETTINGS (renderer settings JSON), BENCH_LIVE_SYNTH (0: skip the
// synthesis case), BENCH_LIVE_SYNTH_SEEDS (4), BENCH_LIVE_SYNTH_ITERATIONS (the fast preset's), BENCH_LIVE_TWO (0: skip the two-client case), DEEPVIS_BACKEND, DEEPVIS_WORKERS. Logs go to stderr,
// the JSON to stdout.
import WebSocket from 'ws';
import { parseEvent, parseReply } from '../contract/messages.js';
import { decodeMessage, encodeMessage } from '../contract/wire.js';
import { cpuDelta, cpuSnapshot, measure, measureWhile, openLivePage, pageStats, round, startLive, type LiveSession, type ProcessCpu } from '../e2e/harness.js';

const seconds = Number(process.env.BENCH_LIVE_SECONDS ?? 30);
const models = (process.env.BENCH_LIVE_MODELS ?? 'darknet-tiny,mobilenet-v1-0.25,mobilenet-v1-0.75').split(',').filter(Boolean);
const cameraFps = Number(process.env.BENCH_LIVE_CAMERA_FPS ?? 30);
const cameraSize = process.env.BENCH_LIVE_CAMERA_SIZE ?? '640x480';
/** Renderer settings for the run (JSON), e.g. BENCH_LIVE_SETTINGS='{"pipelineDepth":2}'. */
const settings = JSON.parse(process.env.BENCH_LIVE_SETTINGS ?? '{}') as Record<string, unknown>;
/** Also measure with back-projection on (display_fps_backproj); BENCH_LIVE_BACK=0 skips it. */
const backRun = process.env.BENCH_LIVE_BACK !== '0';
const WARMUP_S = Math.min(5, Math.max(1, seconds / 6));
const synthRun = process.env.BENCH_LIVE_SYNTH !== '0';
const twoRun = process.env.BENCH_LIVE_TWO !== '0';
const synthSeeds = Number(process.env.BENCH_LIVE_SYNTH_SEEDS ?? 4);
const synthIterations = process.env.BENCH_LIVE_SYNTH_ITERATIONS ? Number(process.env.BENCH_LIVE_SYNTH_ITERATIONS) : undefined;

/** The engine host's threads that did the most work over a window, busiest first (its main thread aside). */
function busiestThreads(d: ReturnType<typeof cpuDelta>, host: number): number[] {
  return [...(d.threads.get(host) ?? new Map<number, number>())].filter(([tid]) => tid !== host).sort((x, y) => y[1] - x[1]).map(([tid]) => tid);
}

/**
 * CPU ms per drawn frame over a window, per thread of the engine host (main: WebSocket and routing;
 * the live worker; the rest) and per Chromium process type; the job worker's total apart (it is the
 * synthesis's, not the frames'). Threads are told apart by what they did alone: the live worker is
 * the busiest worker thread while only the live view ran, the job worker while only a synthesis ran.
 */
function cpuPerFrame(a: ProcessCpu[], b: ProcessCpu[], host: number, frames: number, liveTid: number | undefined, jobTid: number | undefined) {
  const d = cpuDelta(a, b);
  const t = d.threads.get(host) ?? new Map<number, number>();
  const per = (ms: number) => round(ms / Math.max(1, frames), 2);
  const hostMs = [...t.values()].reduce((x, y) => x + y, 0);
  const mainMs = t.get(host) ?? 0;
  const liveMs = liveTid === undefined ? 0 : (t.get(liveTid) ?? 0);
  const jobMs = jobTid === undefined ? 0 : (t.get(jobTid) ?? 0);
  const chromium: Record<string, number | null> = {};
  let browserMs = 0;
  for (const [name, ms] of Object.entries(d.byName)) {
    if (!/chrom/i.test(name)) continue;
    chromium[name.replace(/^\S+ ?/, '') || 'browser'] = per(ms);
    browserMs += ms;
  }
  return {
    frames,
    host_main: per(mainMs),
    live_worker: per(liveMs),
    host_other_threads: per(Math.max(0, hostMs - mainMs - liveMs - jobMs)),
    chromium,
    live_total: per(mainMs + liveMs + Math.max(0, hostMs - mainMs - liveMs - jobMs) + browserMs),
    job_worker_ms: round(jobMs, 0),
    /** Every host thread that worked, by id (main = the process id), busiest first. */
    host_threads: Object.fromEntries([...t].filter(([, ms]) => ms > 0).sort((x, y) => y[1] - x[1]).map(([tid, ms]) => [tid === host ? `${tid} main` : tid === liveTid ? `${tid} live` : tid === jobTid ? `${tid} job` : String(tid), per(ms)])),
  };
}

/** One fast-preset synthesis over a WebSocket of its own (another client of the same engine). */
async function synthOverSocket(live: LiveSession, iterations = synthIterations): Promise<{ seconds: number; secondsToTarget: number | null; wallSeconds: number }> {
  const u = new URL(live.url);
  const ws = new WebSocket(`ws://${u.host}/ws?token=${u.searchParams.get('token')}`, { maxPayload: 256 << 20 });
  ws.binaryType = 'arraybuffer';
  await new Promise<void>((res, rej) => (ws.once('open', () => res()), ws.once('error', rej)));
  const t0 = performance.now();
  try {
    return await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('synthesis: no result within 15 minutes')), 15 * 60_000);
      ws.on('message', (data: ArrayBuffer) => {
        const raw = decodeMessage(new Uint8Array(data));
        const r = parseReply(raw);
        if (r.ok && r.reply.type === 'error') reject(new Error(`synthesis refused: ${r.reply.message}`));
        const e = parseEvent(raw);
        if (!e.ok || e.event.type !== 'synth') return;
        if (e.event.phase === 'done') {
          clearTimeout(timer);
          resolve({ seconds: e.event.result!.seconds, secondsToTarget: e.event.result!.secondsToTarget, wallSeconds: (performance.now() - t0) / 1000 });
        } else if (e.event.phase === 'error' || e.event.phase === 'cancelled') reject(new Error(`synthesis ${e.event.phase}: ${e.event.message ?? ''}`));
      });
      ws.send(encodeMessage({ type: 'synthStart', layer: 'logits', unit: 'flamingo', preset: 'fast', seeds: synthSeeds, ...(iterations ? { iterations } : {}), seq: 1 }));
    });
  } finally {
    ws.close();
  }
}

async function main(): Promise<void> {
  if (!(seconds > 0) || !models.length) throw new Error('BENCH_LIVE_SECONDS must be > 0 and BENCH_LIVE_MODELS non-empty');
  const live = await startLive({ model: models[0]!, cameraFps, cameraSize });
  const out: Record<string, unknown> = {};
  let backend = '';
  try {
    for (const model of models) {
      process.stderr.write(`${model}: warming up ${WARMUP_S} s, measuring ${seconds} s…\n`);
      const page = await openLivePage(live, model, settings);
      backend = (await page.getByTestId('status-backend').textContent()) ?? '';
      await page.waitForTimeout(WARMUP_S * 1000);
      const host = live.server.child.pid!;
      const c0 = cpuSnapshot(process.pid, [host]);
      out[model] = await measure(page, seconds);
      const c1 = cpuSnapshot(process.pid, [host]);
      const liveTid = busiestThreads(cpuDelta(c0, c1), host)[0];
      Object.assign(out[model] as object, { cpu_ms_per_frame: cpuPerFrame(c0, c1, host, (out[model] as { frames: number }).frames, liveTid, undefined) });
      process.stderr.write(`${model}: ${JSON.stringify(out[model])}\n`);
      if (backRun) {
        // The same view with back-projection on (b b: grad norm of the selected unit, every frame).
        await page.keyboard.press('b');
        await page.keyboard.press('b');
        await page.waitForTimeout(WARMUP_S * 1000);
        const m = await measure(page, seconds);
        Object.assign(out[model] as object, { display_fps_backproj: m.display_fps, latency_ms_p50_backproj: m.latency_ms_p50, engine_ms_p50_backproj: m.engine_ms_p50, errors_backproj: m.errors, back_mode: await page.getByTestId('status-back').textContent() });
        process.stderr.write(`${model} with back-projection: ${JSON.stringify(m)}\n`);
      }
      // The synthesis alone is timed with no page open: nothing else asks the engine for work.
      await page.close();
      if (synthRun) {
        // Untimed first: two steps of the same batch build what the worker keeps (ONNX Runtime's
        // session for this batch shape: ~3 s on mobilenet-v1-0.75), which the run beside the live
        // view would otherwise find ready and the run alone would pay for.
        await synthOverSocket(live, 2);
        process.stderr.write(`${model}: fast synthesis alone…\n`);
        const s0 = cpuSnapshot(process.pid, [host]);
        const alone = await synthOverSocket(live);
        const s1 = cpuSnapshot(process.pid, [host]);
        const jobTid = busiestThreads(cpuDelta(s0, s1), host).find((tid) => tid !== liveTid);
        const again = await openLivePage(live, model, settings);
        await again.waitForTimeout(WARMUP_S * 1000);
        process.stderr.write(`${model}: fast synthesis while the live view streams…\n`);
        const d0 = cpuSnapshot(process.pid, [host]);
        const during = synthOverSocket(live);
        const m = await measureWhile(again, during);
        const d = await during;
        const d1 = cpuSnapshot(process.pid, [host]);
        Object.assign(out[model] as object, {
          display_fps_during_synth: m.display_fps,
          latency_ms_p50_during_synth: m.latency_ms_p50,
          latency_ms_p95_during_synth: m.latency_ms_p95,
          errors_during_synth: m.errors,
          synth_seconds_alone: round(alone.seconds, 2),
          seconds_to_target_alone: round(alone.secondsToTarget, 2),
          synth_seconds_during_live: round(d.seconds, 2),
          seconds_to_target_during_live: round(d.secondsToTarget, 2),
          synth_slowdown: round(d.seconds / alone.seconds, 2),
          cpu_ms_per_frame_during_synth: cpuPerFrame(d0, d1, host, m.frames, liveTid, jobTid),
          job_worker_cpu_ms_alone: round(cpuDelta(s0, s1).threads.get(host)?.get(jobTid ?? -1) ?? 0, 0),
        });
        process.stderr.write(`${model} during synthesis: ${JSON.stringify(m)}; synthesis ${JSON.stringify({ alone, during: d })}\n`);
        await again.close();
      }
      if (twoRun) {
        process.stderr.write(`${model}: two tabs streaming…\n`);
        const [a, b] = [await openLivePage(live, model, settings), await openLivePage(live, model, settings)];
        await a.waitForTimeout(WARMUP_S * 1000);
        const [a0, b0] = await Promise.all([pageStats(a), pageStats(b)]);
        await a.waitForTimeout(seconds * 1000);
        const [a1, b1] = await Promise.all([pageStats(a), pageStats(b)]);
        const fa = a1.framesDrawn - a0.framesDrawn;
        const fb = b1.framesDrawn - b0.framesDrawn;
        Object.assign(out[model] as object, { two_clients: { frames: [fa, fb], fps: [round(fa / seconds, 2), round(fb / seconds, 2)], min_share: round(Math.min(fa, fb) / Math.max(1, fa + fb), 3) } });
        process.stderr.write(`${model} two tabs: ${fa} and ${fb} frames\n`);
        await Promise.all([a.close(), b.close()]);
      }
    }
  } finally {
    await live.close();
  }
  console.log(JSON.stringify({ models: out, backend, workers: process.env.DEEPVIS_WORKERS ?? 'default', camera: { fps: cameraFps, size: cameraSize }, settings, synth: { preset: 'fast', seeds: synthSeeds, iterations: synthIterations ?? 'preset' }, seconds, cores: (await import('node:os')).cpus().length }, null, 2));
}

main().catch((e: unknown) => {
  console.error(`bench:live: ${(e as Error).stack ?? e}`);
  process.exit(1);
});
