// A layer's atlas built from the window through the real session (real model, real job worker):
// tiles arrive as units finish, with progress and an ETA; only the window that started the build
// may cancel it; a cancelled build keeps what it finished and the same request continues it,
// skipping those units; pattern mode then finds the whole layer; a build too big for the memory
// budget is refused up front.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AtlasBuildEventT } from '../contract/atlas.js';
import type { AppEvent, Reply } from '../contract/messages.js';
import { EngineSession } from '../main/session/engine-session.js';

const BACKEND = process.env.DEEPVIS_BACKEND ?? 'wasm';
let root: string;
let session: EngineSession;

class Window {
  readonly events: AtlasBuildEventT[] = [];
  private waiters: (() => void)[] = [];
  constructor(readonly id: string) {}
  emit = (e: AppEvent) => {
    if (e.type === 'atlasBuild') this.events.push(e);
    for (const w of this.waiters.splice(0)) w();
  };
  async until(pred: (events: AtlasBuildEventT[]) => boolean, ms = 120_000): Promise<void> {
    const end = Date.now() + ms;
    while (!pred(this.events)) {
      if (Date.now() > end) throw new Error(`timed out; events: ${JSON.stringify(this.events.map((e) => ({ ...e, tiles: e.tiles.map((t) => t.unit) })))}`);
      await new Promise<void>((r) => {
        this.waiters.push(r);
        setTimeout(r, 500);
      });
    }
  }
  get tiles(): number[] {
    return this.events.flatMap((e) => e.tiles.map((t) => t.unit));
  }
}

const BUILD = { type: 'atlasBuild', layer: 'pw3', preset: 'fast', seeds: 1, size: 64, iterations: 4, units: [0, 5] } as const;

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), 'deepvis-atlas-host-'));
  session = await EngineSession.create({ backend: BACKEND, model: 'mobilenet-v1-0.25', atlasDir: root, workers: 1 });
}, 120_000);

afterAll(async () => {
  await session?.dispose();
  if (root) rmSync(root, { recursive: true, force: true });
});

describe('atlas built from the window', () => {
  it('fills in as units finish, with tiles of the atlas size, and cancels for its owner only', async () => {
    const owner = new Window('tab-a');
    const other = new Window('tab-b');
    const started = await session.handle(BUILD, owner);
    expect(started).toMatchObject({ type: 'atlasBuildStarted', layer: 'conv_pw_3_relu', display: 'pw3', total: 6, skipped: 0 });
    const buildId = (started as Extract<Reply, { type: 'atlasBuildStarted' }>).buildId;

    // The six units are one batch: another window's cancel is refused while it runs.
    const refused = await session.handle({ type: 'atlasCancel', buildId }, other);
    expect(refused.type === 'error' && refused.message).toMatch(/belongs to another window — only the window that started it can cancel it/);
    await owner.until((ev) => ev.some((e) => e.phase !== 'progress'));
    const end = owner.events.at(-1)!;
    expect(end).toMatchObject({ phase: 'done', done: 6, total: 6, etaSeconds: 0 });
    expect(owner.tiles.sort((a, b) => a - b)).toEqual([0, 1, 2, 3, 4, 5]);
    const png = owner.events.flatMap((e) => e.tiles)[0]!.png;
    expect((await sharp(png).metadata()).width).toBe(end.tile);
    expect(other.events).toEqual([]);
  }, 240_000);

  it('a cancelled build keeps what it finished and the same request continues it', async () => {
    const w = new Window('tab-c');
    // Two units per batch: several batches, so a cancel lands between them.
    const req = { ...BUILD, seeds: 4, units: [0, 7] as [number, number], iterations: 3 };
    const first = await session.handle(req, w);
    expect(first).toMatchObject({ type: 'atlasBuildStarted', total: 8, skipped: 0 });
    const id = (first as Extract<Reply, { type: 'atlasBuildStarted' }>).buildId;
    await w.until((ev) => ev.some((e) => e.tiles.length > 0));
    expect(w.events.some((e) => e.etaSeconds !== null && e.etaSeconds > 0)).toBe(true);
    expect(await session.handle({ type: 'atlasCancel', buildId: id }, w)).toMatchObject({ type: 'atlasCancel', buildId: id, cancelled: true });
    await w.until((ev) => ev.some((e) => e.phase !== 'progress'));
    const stopped = w.events.at(-1)!;
    expect(stopped.phase).toBe('cancelled');
    expect(stopped.done).toBeGreaterThan(0);
    expect(stopped.done).toBeLessThan(8);

    const resumed = new Window('tab-c');
    const again = await session.handle(req, resumed);
    expect(again).toMatchObject({ type: 'atlasBuildStarted', total: 8, skipped: stopped.done });
    await resumed.until((ev) => ev.some((e) => e.phase !== 'progress'));
    expect(resumed.events.at(-1)).toMatchObject({ phase: 'done', done: 8 });
    // The finished units come first (from disk), then the rest as they are made.
    expect(resumed.tiles.sort((a, b) => a - b)).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    const atlas = await session.handle({ type: 'atlas', layer: 'pw3' });
    expect(atlas).toMatchObject({ type: 'atlas', found: true, units: [0, 1, 2, 3, 4, 5, 6, 7] });
  }, 240_000);

  it('a session shut down mid-build returns only once the build has ended: nothing reads or writes its folder after dispose', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'deepvis-atlas-shutdown-'));
    const s = await EngineSession.create({ backend: BACKEND, model: 'mobilenet-v1-0.25', atlasDir: dir, workers: 1 });
    try {
      const w = new Window('shutdown');
      expect((await s.handle({ ...BUILD, units: [0, 31] }, w)).type).toBe('atlasBuildStarted');
      await w.until((ev) => ev.some((e) => e.done >= 1));
      await s.dispose();
      expect(s.atlasBuilds.active).toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 120_000);

  it('refuses a build over the memory budget before running, and a range outside the layer', async () => {
    const tiny = await EngineSession.create({ backend: BACKEND, model: 'mobilenet-v1-0.25', atlasDir: root, workers: 1, jobMemoryBytes: 64 << 20 });
    try {
      const big = await tiny.handle({ ...BUILD, size: 448, seeds: 4 });
      expect(big.type === 'error' && big.message).toMatch(/batch items at 448 px need ~.* GB on mobilenet-v1-0\.25, more than the .* GB allowed.*— pick a smaller size or fewer seeds/);
      const range = await tiny.handle({ ...BUILD, units: [0, 5000] });
      expect(range.type === 'error' && range.message).toMatch(/unit range 0-5000 is outside pw3 \(0…\d+\)/);
    } finally {
      await tiny.dispose();
    }
  }, 120_000);
});
