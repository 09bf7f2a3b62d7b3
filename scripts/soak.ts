// `npm run soak`: the live view for SOAK_SECONDS (default 600) on one model (SOAK_MODEL, default
// mobilenet-v1-0.75, the app's default), sampling the engine's tensor count and resident memory
// (the contract's `stats` request) and the page's JS heap every SOAK_SAMPLE_SECONDS (default 15).
// The first samples, during warm-up (SOAK_WARMUP_SECONDS, default 30), are not the baseline.
// Prints JSON on stdout: start/end tensors, RSS growth in MB, whether the tensor count stayed flat.
// Env also: SOAK_SETTINGS (renderer settings JSON), BENCH_LIVE_CAMERA_FPS / _SIZE, DEEPVIS_BACKEND.
import { measure, openLivePage, pageStats, round, startLive } from '../e2e/harness.js';

const seconds = Number(process.env.SOAK_SECONDS ?? 600);
const model = process.env.SOAK_MODEL ?? 'mobilenet-v1-0.75';
const sampleEvery = Number(process.env.SOAK_SAMPLE_SECONDS ?? 15);
const warmup = Number(process.env.SOAK_WARMUP_SECONDS ?? Math.min(30, Math.max(2, seconds / 10)));
const settings = JSON.parse(process.env.SOAK_SETTINGS ?? '{}') as Record<string, unknown>;
const MB = 1024 * 1024;

interface Sample {
  t: number;
  tensors: number;
  engine_mb: number;
  rss_mb: number;
  frames_processed: number;
  page_heap_mb: number | null;
  frames_drawn: number;
}

async function main(): Promise<void> {
  const live = await startLive({
    model,
    cameraFps: Number(process.env.BENCH_LIVE_CAMERA_FPS ?? 30),
    cameraSize: process.env.BENCH_LIVE_CAMERA_SIZE ?? '640x480',
  });
  const samples: Sample[] = [];
  let summary: Awaited<ReturnType<typeof measure>> | null = null;
  try {
    const page = await openLivePage(live, model, settings);
    const t0 = Date.now();
    const sample = async (): Promise<Sample> => {
      const [e, p, heap] = await Promise.all([
        live.engineStats(),
        pageStats(page),
        page.evaluate(() => (performance as unknown as { memory?: { usedJSHeapSize: number } }).memory?.usedJSHeapSize ?? null),
      ]);
      const s: Sample = {
        t: round((Date.now() - t0) / 1000, 1)!,
        tensors: e.numTensors,
        engine_mb: round(e.numBytes / MB, 1)!,
        rss_mb: round(e.rssBytes / MB, 1)!,
        frames_processed: e.framesProcessed,
        page_heap_mb: heap === null ? null : round(heap / MB, 1),
        frames_drawn: p.framesDrawn,
      };
      process.stderr.write(`${JSON.stringify(s)}\n`);
      return s;
    };
    process.stderr.write(`soak: ${model} for ${seconds} s (warm-up ${warmup} s, a sample every ${sampleEvery} s)\n`);
    samples.push(await sample());
    await page.waitForTimeout(warmup * 1000);
    const baseline = await sample();
    samples.push(baseline);
    // measure() waits the whole run; sample alongside it.
    const run = measure(page, seconds);
    let done = false;
    void run.finally(() => (done = true));
    while (!done) {
      await Promise.race([run, page.waitForTimeout(sampleEvery * 1000)]);
      if (!done) samples.push(await sample());
    }
    summary = await run;
    samples.push(await sample());
  } finally {
    await live.close();
  }
  const base = samples[1]!;
  const end = samples[samples.length - 1]!;
  const after = samples.slice(1);
  const tensors = after.map((s) => s.tensors);
  const rss = after.map((s) => s.rss_mb);
  const out = {
    model,
    seconds,
    warmup_seconds: warmup,
    frames: summary?.frames ?? null,
    display_fps: summary?.display_fps ?? null,
    latency_ms_p50: summary?.latency_ms_p50 ?? null,
    latency_ms_p95: summary?.latency_ms_p95 ?? null,
    tensors: { start: base.tensors, end: end.tensors, min: Math.min(...tensors), max: Math.max(...tensors), flat: Math.max(...tensors) === Math.min(...tensors) },
    engine_tensor_mb: { start: base.engine_mb, end: end.engine_mb },
    rss_mb: { before_warmup: samples[0]!.rss_mb, start: base.rss_mb, end: end.rss_mb, max: Math.max(...rss) },
    rss_growth_mb: round(end.rss_mb - base.rss_mb, 1),
    page_heap_mb: { start: base.page_heap_mb, end: end.page_heap_mb },
    samples,
  };
  console.log(JSON.stringify(out, null, 2));
}

main().catch((e: unknown) => {
  console.error(`soak: ${(e as Error).stack ?? e}`);
  process.exit(1);
});
