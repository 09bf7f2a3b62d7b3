// State that survives: the saved view and window come back after a restart; an
// unusable state file gives the defaults, a warning, and is kept aside; a writer SIGKILLed at random
// moments never leaves a state file or an exported PNG that fails to load — the old one or the new
// one, never a mix; the engine host validates what a renderer sends.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import type { ViewState } from '../contract/app-state.js';
import { parseReply } from '../contract/messages.js';
import { mulberry32 } from '../main/engine/synthesis/run.js';
import { writeFileAtomic, writeFileAtomicSync } from '../main/engine/atomic-file.js';
import { AppStateStore, defaultAppState, loadAppState, saveAppState, STATE_FILE, type AppState } from '../main/persist/app-state.js';
import { placeWindow } from '../main/persist/window-bounds.js';
import { EngineSession } from '../main/session/engine-session.js';
import { REPO } from './support/fixtures.js';
import { stateFor } from './support/state-writer.js';

const WRITER = join(REPO, 'tests/support/state-writer.ts');

let work: string;
beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'deepvis-state-'));
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

let n = 0;
function freshDir(): string {
  const d = join(work, `case-${++n}`);
  mkdirSync(d);
  return d;
}

const VIEW: ViewState = {
  model: 'darknet-tiny',
  layer: 'conv2d_5',
  unit: 17,
  gamma: 0.5,
  channelBoost: 0.3,
  back: { mode: 'deconv', filter: 'raw' },
  grid: 'backDiffs',
  gradcam: true,
  gradcamOpacity: 0.35,
  showLabels: false,
  synthPreset: 'paper-3',
};

function tempsBeside(path: string): string[] {
  const dir = join(path, '..');
  const base = path.split('/').pop()!;
  return existsSync(dir) ? readdirSync(dir).filter((f) => f.startsWith(base + '.') && f.endsWith('.tmp')) : [];
}

/** A pid that is certainly gone: a child that has exited. */
async function deadPid(): Promise<number> {
  const child = spawn(process.execPath, ['-e', '0']);
  const pid = child.pid!;
  await new Promise((r) => child.once('exit', r));
  return pid;
}

describe('atomic writer', () => {
  it('writes the whole file, creates the folder, and leaves no temp file', async () => {
    const p = join(freshDir(), 'sub', 'out.bin');
    const data = randomBytes(1 << 20);
    await writeFileAtomic(p, data);
    expect(readFileSync(p).equals(data)).toBe(true);
    writeFileAtomicSync(p, 'second');
    expect(readFileSync(p, 'utf8')).toBe('second');
    expect(tempsBeside(p)).toEqual([]);
  });

  it("removes a dead writer's temp file on the next write, and keeps a live writer's", async () => {
    const dir = freshDir();
    const p = join(dir, 'index.json');
    await writeFileAtomic(p, '{"a":1}');
    const dead = `index.json.${await deadPid()}-0badc0de.tmp`;
    const live = `index.json.${process.pid}-00c0ffee.tmp`;
    writeFileSync(join(dir, dead), '{"a":');
    writeFileSync(join(dir, live), '{"a":');
    // Readers never look at temp files.
    expect(loadAppState(join(dir, STATE_FILE)).warning).toBeNull();
    await writeFileAtomic(p, '{"a":2}');
    expect(readdirSync(dir).sort()).toEqual(['index.json', live].sort());
    expect(readFileSync(p, 'utf8')).toBe('{"a":2}');
  });

  it('leaves the target untouched when the write fails', async () => {
    const dir = freshDir();
    const p = join(dir, 'out.png');
    await writeFileAtomic(p, 'old');
    // A folder in the target's place: the rename fails, the temp file is removed.
    const blocked = join(dir, 'blocked');
    await writeFileAtomic(join(blocked, 'x'), 'x');
    await expect(writeFileAtomic(blocked, 'new')).rejects.toThrow();
    expect(readFileSync(p, 'utf8')).toBe('old');
    expect(tempsBeside(blocked)).toEqual([]);
  });
});

describe('app state file', () => {
  it('missing → defaults without a warning', () => {
    const r = loadAppState(join(freshDir(), STATE_FILE));
    expect(r).toEqual({ state: defaultAppState(), warning: null, keptAs: null });
  });

  it('round trip: what was saved comes back', async () => {
    const p = join(freshDir(), STATE_FILE);
    const s: AppState = { ...defaultAppState(), view: VIEW, window: { x: 40, y: 30, width: 1200, height: 800, maximized: false } };
    await saveAppState(p, s);
    expect(loadAppState(p)).toEqual({ state: s, warning: null, keptAs: null });
  });

  const bad: [string, (valid: string) => string, RegExp][] = [
    ['not JSON', () => 'this is { not json', /not JSON/],
    ['truncated', (valid) => valid.slice(0, Math.floor(valid.length / 2)), /not JSON/],
    ['empty (0 bytes)', () => '', /not JSON/],
    ['a wrong type', (valid) => valid.replace('"unit": 17', '"unit": "seventeen"'), /view\.unit/],
    ['another program’s JSON', () => '{"hello": "world"}', /format/],
  ];
  for (const [what, corrupt, why] of bad) {
    it(`${what} → defaults, a one-line warning, and the file kept aside`, async () => {
      const p = join(freshDir(), STATE_FILE);
      await saveAppState(p, { ...defaultAppState(), view: VIEW });
      const text = corrupt(readFileSync(p, 'utf8'));
      writeFileSync(p, text);
      const r = loadAppState(p);
      expect(r.state).toEqual(defaultAppState());
      expect(r.warning).toMatch(why);
      expect(r.warning).toContain(p);
      expect(r.warning!.split('\n')).toHaveLength(1);
      expect(r.keptAs).toMatch(/state\.json\.corrupt-\d{4}-\d\d-\d\dT/);
      expect(r.warning).toContain(r.keptAs!);
      expect(readFileSync(r.keptAs!, 'utf8')).toBe(text); // never silently lost
      expect(existsSync(p)).toBe(false);
      // The next start is clean.
      expect(loadAppState(p).warning).toBeNull();
    });
  }

  it('a newer file: unknown fields are dropped, known ones kept', async () => {
    const p = join(freshDir(), STATE_FILE);
    writeFileSync(p, JSON.stringify({ format: 'deepvis-state', version: 7, view: { ...VIEW, lens: 'fisheye' }, window: null, plugins: ['x'] }));
    const r = loadAppState(p);
    expect(r.warning).toBeNull();
    expect(r.state.view).toEqual(VIEW);
    expect(r.state).not.toHaveProperty('plugins');
  });

  it('an invalid state is never written', async () => {
    const p = join(freshDir(), STATE_FILE);
    await expect(saveAppState(p, { ...defaultAppState(), view: { ...VIEW, unit: -1 } })).rejects.toThrow();
    expect(existsSync(p)).toBe(false);
  });
});

describe('state store', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('a burst of changes makes one write, and the last one wins', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'] });
    const p = join(freshDir(), STATE_FILE);
    const store = AppStateStore.open(p, { debounceMs: 300 });
    for (let u = 0; u < 50; u++) {
      store.setView({ ...VIEW, unit: u });
      vi.advanceTimersByTime(10); // key repeat: every 10 ms, never 300 ms of quiet
    }
    expect(store.writes).toBe(0);
    expect(existsSync(p)).toBe(false);
    vi.advanceTimersByTime(300);
    await store.flush();
    expect(store.writes).toBe(1);
    expect(loadAppState(p).state.view?.unit).toBe(49);
    await store.close();
  });

  it('a held key still saves: changes wait at most maxWaitMs', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'] });
    const p = join(freshDir(), STATE_FILE);
    const store = AppStateStore.open(p, { debounceMs: 300, maxWaitMs: 1000 });
    for (let u = 0; u < 150; u++) {
      store.setView({ ...VIEW, unit: u });
      vi.advanceTimersByTime(10);
    }
    await store.flush();
    // 1.5 s of changes with maxWait 1 s: one write during the burst, one for the rest.
    expect(store.writes).toBeGreaterThanOrEqual(2);
    expect(loadAppState(p).state.view?.unit).toBe(149);
  });

  it('the window and the view are kept together; unchanged state is not rewritten; flushSync writes at once', async () => {
    const p = join(freshDir(), STATE_FILE);
    const a = AppStateStore.open(p);
    a.setView(VIEW);
    a.setWindow({ x: 10, y: 20, width: 1000, height: 700, maximized: true });
    a.flushSync();
    expect(a.writes).toBe(1);
    a.setView(VIEW);
    await a.flush();
    expect(a.writes).toBe(1);
    const b = AppStateStore.open(p);
    expect(b.warning).toBeNull();
    expect(b.state.view).toEqual(VIEW);
    expect(b.state.window).toEqual({ x: 10, y: 20, width: 1000, height: 700, maximized: true });
  });

  it('rejects an invalid view', () => {
    const store = AppStateStore.open(join(freshDir(), STATE_FILE));
    expect(() => store.setView({ ...VIEW, gradcamOpacity: 3 })).toThrow();
    expect(store.state.view).toBeNull();
  });
});

describe('engine host: getAppState / saveAppState', () => {
  let session: EngineSession;
  let store: AppStateStore;
  let path: string;
  beforeAll(async () => {
    const dir = freshDir();
    path = join(dir, STATE_FILE);
    store = AppStateStore.open(path, { debounceMs: 10 });
    // No models needed: state requests do not touch the engine.
    session = await EngineSession.create({ backend: 'cpu', modelsDir: join(dir, 'no-models'), appState: store });
  });
  afterAll(async () => {
    await session.dispose();
    await store.close();
  });

  it('saves what the renderer sends and gives it back (also after a restart)', async () => {
    const first = await session.handle({ type: 'getAppState', seq: 1 });
    expect(first).toEqual({ type: 'appState', view: null, persisted: true, seq: 1 });
    const saved = await session.handle({ type: 'saveAppState', view: VIEW, seq: 2 });
    expect(saved).toEqual({ type: 'appStateSaved', persisted: true, seq: 2 });
    const back = await session.handle({ type: 'getAppState' });
    expect(parseReply(back).ok).toBe(true);
    expect(back).toMatchObject({ type: 'appState', view: VIEW });
    await store.flush();
    expect(AppStateStore.open(path).state.view).toEqual(VIEW);
  });

  const garbage: [string, unknown][] = [
    ['a wrong type', { ...VIEW, unit: 'three' }],
    ['a negative unit', { ...VIEW, unit: -4 }],
    ['a huge string', { ...VIEW, layer: 'x'.repeat(100_000) }],
    ['a huge array in place of a field', { ...VIEW, model: Array.from({ length: 100_000 }, () => 1) }],
    ['an unknown back mode', { ...VIEW, back: { mode: 'telepathy', filter: 'raw' } }],
    ['no view at all', undefined],
  ];
  for (const [what, view] of garbage) {
    it(`refuses ${what} with a clear message and keeps the saved state`, async () => {
      const r = await session.handle({ type: 'saveAppState', view, seq: 9 });
      expect(r.type).toBe('error');
      expect(r).toMatchObject({ request: 'saveAppState', seq: 9 });
      expect((r as { message: string }).message).toMatch(/^invalid message: view/);
      expect((r as { message: string }).message.length).toBeLessThan(2000);
      expect(store.state.view).toEqual(VIEW);
    });
  }

  it('drops unknown fields a renderer adds', async () => {
    const r = await session.handle({ type: 'saveAppState', view: { ...VIEW, unit: 3, secret: 'x' } });
    expect(r.type).toBe('appStateSaved');
    expect(store.state.view).toEqual({ ...VIEW, unit: 3 });
  });

  it('a host without a state store keeps nothing and says so', async () => {
    const bare = await EngineSession.create({ backend: 'cpu', modelsDir: join(work, 'none') });
    try {
      expect(await bare.handle({ type: 'saveAppState', view: VIEW })).toEqual({ type: 'appStateSaved', persisted: false });
      expect(await bare.handle({ type: 'getAppState' })).toEqual({ type: 'appState', view: null, persisted: false });
    } finally {
      await bare.dispose();
    }
  });
});

describe('window placement', () => {
  const laptop = { x: 0, y: 0, width: 1366, height: 740 };
  const monitor = { x: 1366, y: 0, width: 2560, height: 1400 };

  it('first start: the default size, placed by the system, never larger than the screen', () => {
    expect(placeWindow(null, [monitor])).toEqual({ width: 1400, height: 900, maximized: false });
    expect(placeWindow(null, [laptop])).toEqual({ width: 1366, height: 740, maximized: false });
  });

  it('keeps bounds that are on a display', () => {
    expect(placeWindow({ x: 1500, y: 100, width: 1600, height: 1000, maximized: false }, [laptop, monitor])).toEqual({ x: 1500, y: 100, width: 1600, height: 1000, maximized: false });
  });

  it('a window left on a monitor that is gone comes back centred on the primary display, shrunk to fit', () => {
    expect(placeWindow({ x: 1500, y: 100, width: 1600, height: 1000, maximized: true }, [laptop])).toEqual({ x: 0, y: 0, width: 1366, height: 740, maximized: true });
    expect(placeWindow({ x: 5000, y: 4000, width: 900, height: 650, maximized: false }, [laptop])).toEqual({ x: 233, y: 45, width: 900, height: 650, maximized: false });
  });

  it('a window hanging off the edge is pulled fully onto the display that shows most of it', () => {
    expect(placeWindow({ x: -300, y: -50, width: 1000, height: 700, maximized: false }, [laptop, monitor])).toEqual({ x: 0, y: 0, width: 1000, height: 700, maximized: false });
    expect(placeWindow({ x: 3500, y: 900, width: 1000, height: 700, maximized: false }, [laptop, monitor])).toEqual({ x: 2926, y: 700, width: 1000, height: 700, maximized: false });
  });

  it('never below the minimum size unless the display itself is smaller', () => {
    expect(placeWindow({ x: 10, y: 10, width: 50, height: 40, maximized: false }, [monitor, laptop])).toMatchObject({ width: 800, height: 600 });
    expect(placeWindow({ x: 0, y: 0, width: 50, height: 40, maximized: false }, [{ x: 0, y: 0, width: 640, height: 480 }])).toMatchObject({ x: 0, y: 0, width: 640, height: 480 });
  });
});

// ---------------------------------------------------------------- kill tests

interface Writer {
  /** Number of the last write the child reported complete (-1: none yet). */
  last: number;
  /** Resolves at the first reported write. */
  started: Promise<void>;
  kill(): Promise<void>;
}

function startWriter(args: string[]): Writer {
  const child = spawn(process.execPath, ['--import', 'tsx', WRITER, ...args], { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'] });
  let buf = '';
  let err = '';
  let onFirst: () => void;
  let failStart: (e: Error) => void;
  const started = new Promise<void>((res, rej) => {
    onFirst = res;
    failStart = rej;
  });
  const w: Writer = {
    last: -1,
    started,
    kill: async () => {
      const closed = new Promise((r) => child.once('close', r));
      child.kill('SIGKILL');
      await closed; // stdout is drained by now: `last` is final
    },
  };
  child.stdout.on('data', (b: Buffer) => {
    buf += b.toString();
    const lines = buf.split('\n');
    buf = lines.pop()!;
    for (const l of lines) if (l) w.last = Number(l);
    if (w.last >= 0) onFirst();
  });
  child.stderr.on('data', (b: Buffer) => (err += b.toString()));
  child.once('exit', (code, signal) => {
    if (signal !== 'SIGKILL') failStart(new Error(`writer exited (${code ?? signal}): ${err}`));
  });
  return w;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('killed writers', () => {
  it('a state writer SIGKILLed 30 times at random moments: each time the file loads as the old or the new state', async () => {
    const p = join(freshDir(), STATE_FILE);
    const rand = mulberry32(20150622);
    let previous: AppState | null = null;
    let midWrite = 0;
    for (let run = 1; run <= 30; run++) {
      const w = startWriter(['state', p, String(run)]);
      await w.started;
      // Varied moments: right after a write returned, or a few ms to ~60 ms (many writes) later.
      await sleep(run % 5 === 0 ? 0 : Math.floor(rand() * 60));
      await w.kill();
      if (tempsBeside(p).length) midWrite++;
      const r = loadAppState(p);
      expect(r.warning, `run ${run}`).toBeNull();
      const j = r.state.view!.unit;
      // The last write reported complete, or the one after it (done, not yet reported) — never older, never a mix.
      expect([w.last, w.last + 1], `run ${run}: loaded write ${j}, last reported ${w.last}`).toContain(j);
      expect(r.state).toEqual(stateFor(run, j));
      expect(r.state).not.toEqual(previous);
      previous = r.state;
    }
    // Stale temp files from the kills go away with the next write.
    await saveAppState(p, defaultAppState());
    expect(tempsBeside(p)).toEqual([]);
    console.log(`state kill test: ${midWrite} of 30 kills left a temp file (killed mid-write)`);
  });

  it('an exported PNG written over while being SIGKILLed is always one whole PNG or the other', async () => {
    const dir = freshDir();
    const target = join(dir, 'export.png');
    // Incompressible 1600×1600 images: ~7.7 MB each, so most kills land inside a write.
    const pngs = await Promise.all(
      [1, 2].map(async (k) => {
        const file = join(work, `big-${k}.png`);
        await sharp(randomBytes(1600 * 1600 * 3), { raw: { width: 1600, height: 1600, channels: 3 } }).png({ compressionLevel: 1 }).toFile(file);
        return file;
      }),
    );
    const bytes = pngs.map((f) => readFileSync(f));
    const rand = mulberry32(7);
    let midWrite = 0;
    for (let run = 1; run <= 12; run++) {
      const w = startWriter(['png', target, pngs[0]!, pngs[1]!]);
      await w.started;
      await sleep(Math.floor(rand() * 80));
      await w.kill();
      if (tempsBeside(target).length) midWrite++;
      const got = readFileSync(target);
      expect(got.equals(bytes[0]!) || got.equals(bytes[1]!), `run ${run}: ${got.length} bytes at the target`).toBe(true);
      const meta = await sharp(got).metadata();
      expect([meta.width, meta.height]).toEqual([1600, 1600]);
    }
    // The kills did hit writes in progress (else this test would prove nothing).
    expect(midWrite).toBeGreaterThan(0);
  });
});
