// `npm run bench:live`: the live view end to end — web mode, Chromium with a fake 30 fps camera
// (640×480, the fixture photos), each bundled model for BENCH_LIVE_SECONDS (default 30) — and print
// JSON from window.__deepvisStats:
//   display_fps     distinct engine results drawn per second (bounded by the camera's fps)
//   latency_ms_*    frame grabbed → its grid drawn, p50 / p95
//   engine_ms_p50   the host's forward pass + packing time per frame
//   display_fps_backproj (and *_backproj) the same with back-projection on (grad norm, `b b`)
// Env: BENCH_LIVE_SECONDS, BENCH_LIVE_MODELS (comma list), BENCH_LIVE_CAMERA_FPS (30), BENCH_LIVE_BACK (0: skip),
// BENCH_LIVE_CAMERA_SIZE (640x480), BENCH_LIVE_SETTINGS (renderer settings JSON), DEEPVIS_BACKEND. Logs go to stderr, the JSON to stdout.
import { measure, openLivePage, startLive } from '../e2e/harness.js';

const seconds = Number(process.env.BENCH_LIVE_SECONDS ?? 30);
const models = (process.env.BENCH_LIVE_MODELS ?? 'darknet-tiny,mobilenet-v1-0.25,mobilenet-v1-0.75').split(',').filter(Boolean);
const cameraFps = Number(process.env.BENCH_LIVE_CAMERA_FPS ?? 30);
const cameraSize = process.env.BENCH_LIVE_CAMERA_SIZE ?? '640x480';
/** Renderer settings for the run (JSON), e.g. BENCH_LIVE_SETTINGS='{"pipelineDepth":2}'. */
const settings = JSON.parse(process.env.BENCH_LIVE_SETTINGS ?? '{}') as Record<string, unknown>;
/** Also measure with back-projection on (display_fps_backproj); BENCH_LIVE_BACK=0 skips it. */
const backRun = process.env.BENCH_LIVE_BACK !== '0';
const WARMUP_S = Math.min(5, Math.max(1, seconds / 6));

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
      out[model] = await measure(page, seconds);
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
      await page.close();
    }
  } finally {
    await live.close();
  }
  console.log(JSON.stringify({ models: out, backend, camera: { fps: cameraFps, size: cameraSize }, settings, seconds, cores: (await import('node:os')).cpus().length }, null, 2));
}

main().catch((e: unknown) => {
  console.error(`bench:live: ${(e as Error).stack ?? e}`);
  process.exit(1);
});
