// `npm run bench:preview`: how soon the synthesis pane shows a picture after `y`, as a user sees it
// — web mode, Chromium with the fake camera (e2e/harness.ts, like bench:live), each bundled model;
// per model BENCH_PREVIEW_PRESSES (5) presses of `y` on a fresh class each (and on a fresh channel
// of the layer the window opens on), cancelled before the next. Timed in the page from the keydown
// event with its performance.now(), the pane's canvas read with getImageData on every animation
// frame. JSON on stdout, per model and unit kind (medians over the presses, each press listed;
// cold_first_preview_ms / cold_first_progress_ms: the model's first press, right after it was chosen):
//   first_preview_ms       keydown → the large canvas drawn non-grey (luminance max − min ≥ 32)
//   first_progress_ms      keydown → the progress line shows a finished step (iteration ≥ 1)
//   preview_updates_per_s  distinct pictures drawn per second from the first one to 3 s after keydown,
//                          or to the run's end when it ends sooner (recognised: nothing more to draw)
//   recognised_ms          keydown → the status says recognised (class units; null when not within
//                          BENCH_PREVIEW_RECOGNISE_S, default 30)
//   and where the time goes, on the page's clock: synth_start_sent_ms (keydown → synthStart on the
//   socket), synth_started_ms (→ the host's synthStarted reply: validation, memory check, queue),
//   first_event_ms (→ the first synth event: scheduler, worker, the start image's preview) and
//   worker_elapsed_ms (the synthesis's own time at that event, from its start in the worker; 0 when
//   the host sent the start image because the worker was inside a step).
// Env: BENCH_PREVIEW_MODELS (comma list), BENCH_PREVIEW_PRESSES (5), BENCH_PREVIEW_KINDS (class,channel),
// BENCH_PREVIEW_SETTLE_S (2: wait after the model is shown, as a user would before pressing y; the first
// press of a model comes right after its first frame), BENCH_PREVIEW_RECOGNISE_S (30), DEEPVIS_BACKEND,
// DEEPVIS_WORKERS. Logs go to stderr.
import type { Page } from '@playwright/test';
import { openLivePage, round, startLive } from '../e2e/harness.js';

const models = (process.env.BENCH_PREVIEW_MODELS ?? 'darknet-tiny,mobilenet-v1-0.25,mobilenet-v1-0.75').split(',').filter(Boolean);
const presses = Number(process.env.BENCH_PREVIEW_PRESSES ?? 5);
const kinds = (process.env.BENCH_PREVIEW_KINDS ?? 'class,channel').split(',').filter(Boolean) as ('class' | 'channel')[];
const settleS = Number(process.env.BENCH_PREVIEW_SETTLE_S ?? 2);
const recogniseS = Number(process.env.BENCH_PREVIEW_RECOGNISE_S ?? 30);
/** The quality bench's reference and held-out classes: a fresh one per press. */
const CLASSES = [130, 22, 323, 779, 954, 1, 340, 497, 950, 94];
/** The window after keydown over which preview updates are counted. */
const UPDATE_WINDOW_MS = 3000;

/** What the page records for one press (page clock, ms from keydown; null: not seen). */
interface PressTimes {
  firstPreview: number | null;
  firstProgress: number | null;
  recognised: number | null;
  updates: number;
  sent: number | null;
  started: number | null;
  firstEvent: number | null;
  workerElapsed: number | null;
  error: string | null;
}

/**
 * Installed before the app loads: watches the app's WebSocket (synthStart out, synthStarted and
 * synth events in: only their JSON headers are read) and, from a `y` keydown on, polls the pane.
 */
function installProbe(): void {
  type Probe = { t0: number; marks: Record<string, number | string | null>; updates: number; done: boolean };
  const w = window as unknown as { __previewProbe: Probe | null; __armPreviewProbe: (maxMs: number, updateMs: number, classUnit: boolean) => void };
  const header = (data: unknown): Record<string, unknown> | null => {
    if (!(data instanceof ArrayBuffer) || data.byteLength < 4) return null;
    const n = new DataView(data).getUint32(0, true);
    if (n > 1 << 20 || 4 + n > data.byteLength) return null;
    try {
      return JSON.parse(new TextDecoder().decode(new Uint8Array(data, 4, n))) as Record<string, unknown>;
    } catch {
      return null;
    }
  };
  const mark = (k: string, v?: number | string) => {
    const p = w.__previewProbe;
    if (p && !p.done && p.marks[k] == null) p.marks[k] = v ?? performance.now() - p.t0;
  };
  const Native = window.WebSocket;
  class Watched extends Native {
    constructor(url: string | URL, protocols?: string | string[]) {
      super(url, protocols);
      this.addEventListener('message', (ev) => {
        const h = header(ev.data);
        if (!h) return;
        if (h.type === 'synthStarted') mark('started');
        else if (h.type === 'error' && h.request === 'synthStart') mark('error', String(h.message));
        else if (h.type === 'synth') {
          mark('firstEvent');
          if (typeof h.elapsedMs === 'number') mark('workerElapsed', h.elapsedMs);
          if (h.phase === 'error') mark('error', String(h.message));
        }
      });
    }
    override send(data: string | ArrayBufferLike | Blob | ArrayBufferView): void {
      const buf = data instanceof ArrayBuffer ? data : ArrayBuffer.isView(data) ? (data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength) as ArrayBuffer) : null;
      if (w.__previewProbe && header(buf)?.type === 'synthStart') mark('sent');
      super.send(data);
    }
  }
  window.WebSocket = Watched as typeof WebSocket;

  const spread = (c: HTMLCanvasElement): number => {
    const d = c.getContext('2d')!.getImageData(0, 0, c.width, c.height).data;
    let lo = 255;
    let hi = 0;
    for (let i = 0; i < d.length; i += 4) {
      const y = 0.299 * d[i]! + 0.587 * d[i + 1]! + 0.114 * d[i + 2]!;
      if (y < lo) lo = y;
      if (y > hi) hi = y;
    }
    return hi - lo;
  };
  // Armed by the bench; the keydown starts the clock and the polling.
  w.__armPreviewProbe = (maxMs: number, updateMs: number, classUnit: boolean) => {
    w.__previewProbe = null;
    addEventListener(
      'keydown',
      (e) => {
        if (e.key !== 'y') return;
        const p: Probe = { t0: performance.now(), marks: {}, updates: 0, done: false };
        w.__previewProbe = p;
        let last: string | null = null;
        const poll = () => {
          const now = performance.now() - p.t0;
          const c = document.querySelector<HTMLCanvasElement>('[data-testid="synth-image-large"]');
          if (c && c.width && c.height) {
            if (p.marks.firstPreview == null && spread(c) >= 32) p.marks.firstPreview = now;
            // Counted while the run runs: a run that ended (recognised, its stop rule) draws no more.
            if (p.marks.firstProgress != null && !document.querySelector('[data-testid="synth-cancel"]')) mark('ended');
            if (p.marks.firstPreview != null && now <= updateMs && p.marks.ended == null) {
              const h = window.__canvasHash!(c);
              if (h !== last) p.updates++;
              last = h;
            }
          }
          const it = /^(\d+)\//.exec(document.querySelector('[data-testid="synth-progress-text"]')?.textContent ?? '');
          if (it && Number(it[1]) >= 1) mark('firstProgress');
          if (/recognised/.test(document.querySelector('[data-testid="synth-status"]')?.textContent ?? '')) mark('recognised');
          const settled = p.marks.error != null || (p.marks.firstPreview != null && p.marks.firstProgress != null && now > updateMs && (p.marks.recognised != null || !classUnit));
          if (settled || now > maxMs) p.done = true;
          else requestAnimationFrame(poll);
        };
        requestAnimationFrame(poll);
      },
      { capture: true, once: true },
    );
  };
}

/** Select `layer` (null: the logits, the list's last layer) and `unit` on it. */
async function selectUnit(page: Page, layer: string | null, unit: number): Promise<void> {
  const items = page.getByTestId('layer-item');
  const exact = (t: string) => new RegExp(`^\\s*${t.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\s*$`);
  await (layer === null ? items.last() : items.filter({ hasText: exact(layer) }).first()).click();
  // The pane's unit field moves the cursor (its change handler gives the keys back to the page).
  await page.getByTestId('synth-unit').evaluate((el: HTMLInputElement, u) => {
    el.value = String(u);
    el.dispatchEvent(new Event('change', { bubbles: true }));
  }, unit);
  await page.waitForFunction((u) => (document.querySelector('[data-testid="status-layer-unit"]')?.textContent ?? '').endsWith(`:${u}`), unit, { timeout: 30_000 });
}

async function press(page: Page, classUnit: boolean): Promise<PressTimes> {
  const maxMs = Math.max(UPDATE_WINDOW_MS, classUnit ? recogniseS * 1000 : 0) + 5000;
  // A channel unit is never "recognised": its press ends without waiting for that.
  await page.evaluate(([m, u, c]) => (window as unknown as { __armPreviewProbe: (a: number, b: number, c: boolean) => void }).__armPreviewProbe(m as number, u as number, c as boolean), [maxMs, UPDATE_WINDOW_MS, classUnit]);
  await page.keyboard.press('y');
  await page.waitForFunction(() => (window as unknown as { __previewProbe: { done: boolean } | null }).__previewProbe?.done === true, null, { timeout: maxMs + 30_000, polling: 100 });
  const p = await page.evaluate(() => (window as unknown as { __previewProbe: { marks: Record<string, number | string | null>; updates: number } }).__previewProbe);
  // Stop the job (a finished one has nothing to cancel) before the next press.
  const cancel = page.getByTestId('synth-cancel');
  if (await cancel.isVisible()) await cancel.click();
  await page.getByTestId('synth-start').waitFor({ state: 'visible', timeout: 60_000 });
  const num = (k: string) => (typeof p.marks[k] === 'number' ? (p.marks[k] as number) : null);
  const first = num('firstPreview');
  return {
    firstPreview: first,
    firstProgress: num('firstProgress'),
    recognised: num('recognised'),
    updates: first === null || first >= UPDATE_WINDOW_MS ? 0 : p.updates / ((Math.max(first + 1, Math.min(UPDATE_WINDOW_MS, num('ended') ?? Infinity)) - first) / 1000),
    sent: num('sent'),
    started: num('started'),
    firstEvent: num('firstEvent'),
    workerElapsed: num('workerElapsed'),
    error: typeof p.marks.error === 'string' ? p.marks.error : null,
  };
}

function median(xs: (number | null)[]): number | null {
  const v = xs.filter((x): x is number => x !== null).sort((a, b) => a - b);
  if (!v.length) return null;
  const m = v.length >> 1;
  return v.length % 2 ? v[m]! : (v[m - 1]! + v[m]!) / 2;
}

function summary(runs: PressTimes[], classUnit: boolean) {
  return {
    first_preview_ms: round(median(runs.map((r) => r.firstPreview))),
    first_progress_ms: round(median(runs.map((r) => r.firstProgress))),
    preview_updates_per_s: round(median(runs.map((r) => r.updates)), 2),
    ...(classUnit ? { recognised_ms: round(median(runs.map((r) => r.recognised))), recognised_presses: runs.filter((r) => r.recognised !== null).length } : {}),
    breakdown_ms: {
      synth_start_sent_ms: round(median(runs.map((r) => r.sent))),
      synth_started_ms: round(median(runs.map((r) => r.started))),
      first_event_ms: round(median(runs.map((r) => r.firstEvent))),
      worker_elapsed_ms: round(median(runs.map((r) => r.workerElapsed))),
    },
    presses: runs.map((r) => ({
      first_preview_ms: round(r.firstPreview),
      first_progress_ms: round(r.firstProgress),
      ...(classUnit ? { recognised_ms: round(r.recognised) } : {}),
      synth_started_ms: round(r.started),
      first_event_ms: round(r.firstEvent),
      ...(r.error ? { error: r.error } : {}),
    })),
  };
}

async function main(): Promise<void> {
  if (!(presses >= 1) || !models.length || !kinds.length) throw new Error('BENCH_PREVIEW_PRESSES must be ≥ 1, BENCH_PREVIEW_MODELS and BENCH_PREVIEW_KINDS non-empty');
  const live = await startLive({ model: models[0]! });
  const out: Record<string, unknown> = {};
  let backend = '';
  try {
    for (const model of models) {
      // As source text: tsx names functions with a helper of its own, which the page has to have too.
      const probe = `var __name = (f) => f; (${installProbe.toString()})();`;
      const page = await openLivePage(live, model, {}, (p) => void p.addInitScript({ content: probe }));
      backend = (await page.getByTestId('status-backend').textContent()) ?? '';
      const openLayer = (await page.locator('[data-testid="layer-item"][aria-selected="true"]').textContent())?.trim() ?? '';
      const result: Record<string, unknown> = {};
      let n = 0;
      for (const kind of kinds) {
        const runs: PressTimes[] = [];
        let layerShown = '';
        for (let i = 0; i < presses; i++, n++) {
          // The model's first press right after its first frame (as an impatient user); the rest after a pause.
          if (n > 0) await page.waitForTimeout(settleS * 1000);
          const classUnit = kind === 'class';
          const unit = classUnit ? CLASSES[i % CLASSES.length]! : 3 + 5 * i;
          await selectUnit(page, classUnit ? null : openLayer, unit);
          layerShown = ((await page.getByTestId('status-layer-unit').textContent()) ?? '').replace(/:\d+$/, '');
          const r = await press(page, classUnit);
          process.stderr.write(`${model} ${kind} ${unit}: ${JSON.stringify(r)}\n`);
          runs.push(r);
        }
        result[kind] = { layer: layerShown, ...summary(runs, kind === 'class') };
      }
      // The model's first press, right after it was chosen: what is built on first use shows here.
      const cold = (result[kinds[0]!] as { presses: { first_preview_ms: number | null; first_progress_ms: number | null }[] }).presses[0]!;
      out[model] = { cold_first_preview_ms: cold.first_preview_ms, cold_first_progress_ms: cold.first_progress_ms, ...result };
      await page.close();
    }
  } finally {
    await live.close();
  }
  console.log(JSON.stringify({ models: out, backend, workers: process.env.DEEPVIS_WORKERS ?? 'default', presses, settle_s: settleS, cores: (await import('node:os')).cpus().length }, null, 2));
}

main().catch((e: unknown) => {
  console.error(`bench:preview: ${(e as Error).stack ?? e}`);
  process.exit(1);
});
