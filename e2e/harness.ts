// The live-view harness shared by `npm run bench:live` and `npm run soak`: web mode in its own
// process, Debian's Chromium with a fake camera, and helpers to read window.__deepvisStats and the
// engine's `stats` reply.
import { chromium, type Browser, type Page } from '@playwright/test';
import { readdirSync, readFileSync } from 'node:fs';
import WebSocket from 'ws';
import { decodeMessage, encodeMessage } from '../contract/wire.js';
import { parseReply, type StatsReplyT } from '../contract/messages.js';
import { CHROMIUM_PATH, chromiumArgs, fakeCamera } from './chromium.js';
import { installCanvasHash } from './canvas-hash.js';
import { buildRenderer, startModelServer, type WebServerProcess } from './global-setup.js';
import type { DeepVisStats } from '../renderer/src/lib/stats.js';

export interface LiveSession {
  url: string;
  browser: Browser;
  /** The engine's counters (tensors, RSS) over a WebSocket of our own. */
  engineStats(): Promise<StatsReplyT>;
  /** The web-mode process that hosts the engine (its pid for /proc, its stderr, its exit). */
  server: WebServerProcess;
  close(): Promise<void>;
}

export interface LiveOptions {
  /** Model the server starts with. */
  model: string;
  cameraFps?: number;
  cameraSize?: string;
  secondsPerPhoto?: number;
  log?: (line: string) => void;
}

export async function startLive(opts: LiveOptions): Promise<LiveSession> {
  const log = opts.log ?? ((l: string) => process.stderr.write(`${l}\n`));
  buildRenderer();
  const camera = fakeCamera({ fps: opts.cameraFps ?? 30, seconds: opts.secondsPerPhoto ?? 2, size: opts.cameraSize ?? '640x480' });
  log(`fake camera: ${camera}`);
  const server = await startModelServer(opts.model);
  log(`web mode: ${server.url.replace(/token=.*/, 'token=…')}`);
  const browser = await chromium.launch({ executablePath: CHROMIUM_PATH, args: chromiumArgs(camera) });
  const u = new URL(server.url);
  const wsUrl = `ws://${u.host}/ws?token=${u.searchParams.get('token')}`;
  let ws: WebSocket | null = null;
  let seq = 0;
  const waiting = new Map<number, (r: StatsReplyT) => void>();
  const socket = async () => {
    if (ws && ws.readyState === WebSocket.OPEN) return ws;
    ws = new WebSocket(wsUrl);
    ws.binaryType = 'arraybuffer';
    ws.on('message', (data: ArrayBuffer) => {
      const r = parseReply(decodeMessage(new Uint8Array(data)));
      if (r.ok && r.reply.type === 'stats' && r.reply.seq !== undefined) waiting.get(r.reply.seq)?.(r.reply);
    });
    await new Promise<void>((res, rej) => {
      ws!.once('open', () => res());
      ws!.once('error', rej);
    });
    return ws;
  };
  return {
    url: server.url,
    browser,
    server,
    async engineStats() {
      const s = await socket();
      const n = ++seq;
      return new Promise<StatsReplyT>((res, rej) => {
        const t = setTimeout(() => rej(new Error('stats: no reply')), 30_000);
        waiting.set(n, (r) => {
          clearTimeout(t);
          waiting.delete(n);
          res(r);
        });
        s.send(encodeMessage({ type: 'stats', seq: n }));
      });
    },
    async close() {
      ws?.close();
      await browser.close();
      await server.stop();
    },
  };
}


/**
 * Open the app on `model` and wait for its first drawn frame. `beforeGoto` sees the page before it
 * loads (to watch its WebSocket, which opens during the load).
 */
export async function openLivePage(session: LiveSession, model: string, settings: Record<string, unknown> = {}, beforeGoto?: (page: Page) => void): Promise<Page> {
  const page = await session.browser.newPage({ viewport: { width: 1280, height: 800 } });
  await installCanvasHash(page);
  beforeGoto?.(page);
  await page.addInitScript((s) => localStorage.setItem('deepvis.settings', JSON.stringify(s)), { ...settings, model });
  page.on('pageerror', (e) => process.stderr.write(`page error: ${e.message}\n`));
  await page.goto(session.url);
  await page.waitForFunction((m) => document.querySelector('[data-testid="status-model"]')?.textContent === m, model, { timeout: 120_000 });
  await page.waitForFunction(() => ((window as unknown as { __deepvisStats?: DeepVisStats }).__deepvisStats?.framesDrawn ?? 0) > 0, null, { timeout: 60_000 });
  return page;
}

export async function pageStats(page: Page): Promise<DeepVisStats & { now: number }> {
  return page.evaluate(() => {
    const s = (window as unknown as { __deepvisStats: DeepVisStats }).__deepvisStats;
    return { ...s, now: performance.now() };
  });
}

export function percentile(xs: number[], p: number): number | null {
  if (!xs.length) return null;
  const s = xs.slice().sort((a, b) => a - b);
  const i = Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1));
  return s[i]!;
}

export const round = (x: number | null, d = 1): number | null => (x === null ? null : Math.round(x * 10 ** d) / 10 ** d);

/** Measure the live view for `seconds` on an open page: distinct results drawn per second, latency, engine time. */
export async function measure(page: Page, seconds: number) {
  return measureWhile(page, page.waitForTimeout(seconds * 1000));
}

/** The same figures over the time until `until` settles (e.g. a synthesis running meanwhile). */
export async function measureWhile(page: Page, until: Promise<unknown>) {
  const a = await pageStats(page);
  await until;
  const b = await pageStats(page);
  const elapsed = (b.now - a.now) / 1000;
  // latencies/engineMs are appended one per drawn frame; take the ones drawn in the window.
  const n = b.framesDrawn - a.framesDrawn;
  const lat = b.latencies.slice(-n);
  const eng = b.engineMs.slice(-n);
  return {
    display_fps: round(n / elapsed, 2),
    latency_ms_p50: round(percentile(lat, 50)),
    latency_ms_p95: round(percentile(lat, 95)),
    engine_ms_p50: round(percentile(eng, 50)),
    // Where the rest of the latency goes (p50): taking the pixels, request → reply, drawing.
    grab_ms_p50: round(percentile(b.grabMs.slice(-n), 50)),
    round_trip_ms_p50: round(percentile(b.roundTripMs.slice(-n), 50)),
    draw_ms_p50: round(percentile(b.drawMs.slice(-n), 50)),
    frames: n,
    camera_fps: round((b.cameraFrames - a.cameraFrames) / elapsed, 2),
    camera_frames_skipped: b.framesSkipped - a.framesSkipped,
    errors: b.errors - a.errors,
    seconds: round(elapsed, 1),
  };
}

/** CPU time (user + system, ms) of one process of the benchmark's tree, and of each of its threads when asked. */
export interface ProcessCpu {
  pid: number;
  /** `node`, `chromium`…, with Chromium's `--type=` (renderer, gpu-process, utility…) appended. */
  name: string;
  ms: number;
  threads?: Map<number, number>;
}

const CLK_TCK_MS = 10; // USER_HZ is 100 on every Linux the benchmark runs on

/** utime + stime of a /proc stat line, in ms (fields 14 and 15, counted after the command's closing parenthesis). */
function statCpuMs(stat: string): { ppid: number; ms: number } {
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return { ppid: Number(f[1]), ms: (Number(f[11]) + Number(f[12])) * CLK_TCK_MS };
}

/**
 * CPU time so far of every process under `root` (this benchmark: web mode's server and Chromium's
 * browser, renderers, GPU and utility processes), and of each thread of `threadsOf` (the engine host:
 * its main thread has the process's id; the live and job workers are threads of their own).
 * Linux only (/proc); elsewhere an empty list.
 */
export function cpuSnapshot(root: number, threadsOf: number[] = []): ProcessCpu[] {
  const all = new Map<number, { ppid: number; ms: number; comm: string }>();
  let entries: string[];
  try {
    entries = readdirSync('/proc').filter((d) => /^\d+$/.test(d));
  } catch {
    return [];
  }
  for (const d of entries) {
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      all.set(Number(d), { ...statCpuMs(stat), comm: stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')')) });
    } catch {
      // gone between the listing and the read
    }
  }
  const under = new Set<number>([root]);
  for (let grew = true; grew; ) {
    grew = false;
    for (const [pid, p] of all) if (!under.has(pid) && under.has(p.ppid)) (under.add(pid), (grew = true));
  }
  const out: ProcessCpu[] = [];
  for (const pid of under) {
    const p = all.get(pid);
    if (!p) continue;
    let name = p.comm;
    try {
      const type = /--type=([\w-]+)/.exec(readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' '));
      if (type) name += ` ${type[1]}`;
    } catch {
      // gone
    }
    const entry: ProcessCpu = { pid, name, ms: p.ms };
    if (threadsOf.includes(pid)) {
      entry.threads = new Map();
      try {
        for (const t of readdirSync(`/proc/${pid}/task`)) entry.threads.set(Number(t), statCpuMs(readFileSync(`/proc/${pid}/task/${t}/stat`, 'utf8')).ms);
      } catch {
        // the process ended
      }
    }
    out.push(entry);
  }
  return out;
}

/** CPU ms between two snapshots, per process (summed by name) and per thread of the processes with threads. */
export function cpuDelta(a: ProcessCpu[], b: ProcessCpu[]): { byName: Record<string, number>; threads: Map<number, Map<number, number>> } {
  const before = new Map(a.map((p) => [p.pid, p]));
  const byName: Record<string, number> = {};
  const threads = new Map<number, Map<number, number>>();
  for (const p of b) {
    const q = before.get(p.pid);
    byName[p.name] = (byName[p.name] ?? 0) + p.ms - (q?.ms ?? 0);
    if (p.threads) {
      const t = new Map<number, number>();
      for (const [tid, ms] of p.threads) t.set(tid, ms - (q?.threads?.get(tid) ?? 0));
      threads.set(p.pid, t);
    }
  }
  return { byName, threads };
}
