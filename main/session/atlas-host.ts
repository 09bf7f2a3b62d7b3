// A layer's atlas built from the window: the layer's units run as batches on the job pool, owned
// by the window that asked (only it may cancel), written where `deepvis atlas` writes them (one
// cache: engine/synthesis/atlas.ts, atomic files) and resumable — units already on disk are
// skipped, so asking again continues. Each finished batch goes to the window as tiles, so the grid
// fills in while the build runs, with its progress and an ETA.
import { randomUUID } from 'node:crypto';
import { seqOf, type AppEvent, type ModelInfo, type Reply } from '../../contract/messages.js';
import type { AtlasBuildEventT, AtlasBuildRequestT } from '../../contract/atlas.js';
import { checkJobFits } from '../engine/memory-budget.js';
import { oneLine } from '../engine/errors.js';
import type { Model } from '../engine/model.js';
import { ATLAS_TILE, atlasTilePng, buildAtlas, planAtlas, type AtlasIndex } from '../engine/synthesis/atlas.js';
import { poolBatchRunner, type JobScheduler } from './scheduler.js';

/** Batch items (units × seeds) optimised together per step, as `deepvis atlas` does by default. */
const BATCH_ITEMS = 8;
/** Step progress is sent at most this often (tiles go out as soon as a batch is on disk). */
const PROGRESS_EVERY_MS = 400;
/** Tiles per event: a layer's finished units are sent in parts, each a modest message. */
const TILES_PER_EVENT = 128;

export interface AtlasClient {
  id: string;
  emit(event: AppEvent): void;
}

export interface AtlasHostOptions {
  model: () => Model | null;
  pool: () => JobScheduler;
  backend: () => string;
  /** Where atlases are written (the session's atlas folder). */
  root: string;
  /** Memory one batch may use (bytes); default the backend's limit. */
  jobMemoryBytes?: number;
  /** A model change ends every build (the pool's jobs are cancelled with it): subscribe to it. */
  onModelChange: (listener: (m: ModelInfo) => void) => void;
  log?: (line: string) => void;
}

interface Build {
  id: string;
  client: string;
  dir: string;
  abort: AbortController;
  /** The build's run, settled when it has sent its last event and touches its folder no more. */
  ran?: Promise<void>;
}

export class AtlasHost {
  private readonly builds = new Map<string, Build>();

  constructor(private readonly opts: AtlasHostOptions) {
    opts.onModelChange(() => {
      for (const b of this.builds.values()) b.abort.abort();
    });
  }

  /** Start (or continue) a build of a layer for this client; a previous build of the client stops. */
  async start(req: AtlasBuildRequestT, client: AtlasClient): Promise<Reply> {
    const error = (message: string): Reply => ({ type: 'error', message, request: req.type, ...seqOf(req) });
    const model = this.opts.model();
    if (!model) return error('no model is loaded');
    try {
      const spec = { preset: req.preset, seeds: req.seeds, ...(req.iterations ? { iterations: req.iterations } : {}), ...(req.size ? { size: req.size } : {}) };
      const plan = planAtlas(model, req.layer, spec, req.units, this.opts.root);
      const other = [...this.builds.values()].find((b) => b.dir === plan.dir && b.client !== client.id);
      if (other) return error(`the atlas of ${plan.display} with these settings is being built by another window — wait for it, or pick other settings`);
      const items = Math.max(1, Math.floor(BATCH_ITEMS / plan.seeds.length)) * plan.seeds.length;
      const footprint = await this.opts.pool().footprint(model);
      const fit = checkJobFits({ model, backend: this.opts.backend(), images: items, size: plan.size, limitBytes: this.opts.jobMemoryBytes, footprint }, 'batch items');
      if (!fit.ok) return error(`${fit.message} — pick a smaller size or fewer seeds`);
      if (this.opts.model() !== model) return error('the model changed meanwhile');
      for (const b of this.builds.values()) if (b.client === client.id) b.abort.abort();
      const build: Build = { id: randomUUID(), client: client.id, dir: plan.dir, abort: new AbortController() };
      this.builds.set(build.id, build);
      const total = plan.range[1] - plan.range[0] + 1;
      const skipped = total - plan.todo.length;
      const started: Reply = { type: 'atlasBuildStarted', buildId: build.id, layer: plan.layer, display: plan.display, preset: req.preset, total, skipped, ...seqOf(req) };
      // After the reply: the window knows the build's id before its first event.
      build.ran = new Promise((resolve) => setImmediate(() => void this.run(build, model, req, spec, plan.index, total, client).finally(resolve)));
      return started;
    } catch (e) {
      return error(oneLine(e));
    }
  }

  /** Cancel a build: only the window that started it may. */
  cancel(req: { buildId: string; seq?: number }, client: AtlasClient): Reply {
    const b = this.builds.get(req.buildId);
    if (b && b.client !== client.id) {
      return { type: 'error', message: `atlas build ${req.buildId} belongs to another window — only the window that started it can cancel it`, request: 'atlasCancel', ...seqOf(req) };
    }
    b?.abort.abort();
    return { type: 'atlasCancel', buildId: req.buildId, cancelled: !!b, ...seqOf(req) };
  }

  /** A client went away: its builds stop (what is finished stays on disk). */
  disconnect(clientId: string): void {
    for (const b of this.builds.values()) if (b.client === clientId) b.abort.abort();
  }

  get active(): number {
    return this.builds.size;
  }

  /** Shutting down: stop every build (settled() then waits for them to end). */
  stopAll(): void {
    for (const b of this.builds.values()) b.abort.abort();
  }

  /** Resolves when every build that was running has ended. */
  async settled(): Promise<void> {
    await Promise.all([...this.builds.values()].map((b) => b.ran));
  }

  private async run(build: Build, model: Model, req: AtlasBuildRequestT, spec: Parameters<typeof planAtlas>[2], initial: AtlasIndex, total: number, client: AtlasClient): Promise<void> {
    const lo = req.units?.[0] ?? 0;
    const hi = req.units?.[1] ?? lo + total - 1;
    const inRange = (u: number) => u >= lo && u <= hi;
    const base = { type: 'atlasBuild' as const, buildId: build.id, layer: initial.layer, total, tile: ATLAS_TILE };
    const send = (e: Omit<AtlasBuildEventT, keyof typeof base>) => {
      try {
        client.emit({ ...base, ...e });
      } catch {
        /* a client that went away */
      }
    };
    let done = Object.keys(initial.done).map(Number).filter(inRange).length;
    const startedAt = performance.now();
    const doneAtStart = done;
    // Fraction of each batch in flight (by its first unit), for an ETA that moves within a batch.
    const inFlight = new Map<number, { units: number; fraction: number }>();
    const eta = (): number | null => {
      const progressed = done - doneAtStart + [...inFlight.values()].reduce((a, b) => a + b.units * b.fraction, 0);
      if (progressed <= 0) return null;
      const seconds = (performance.now() - startedAt) / 1000;
      return Math.max(0, (seconds / progressed) * (total - done - [...inFlight.values()].reduce((a, b) => a + b.units * b.fraction, 0)));
    };
    // Tiles are made one batch after another, in order, whatever finishes first.
    let tiles: Promise<void> = this.sendTiles(initial, build.dir, Object.keys(initial.done).map(Number).filter(inRange), (t) => send({ phase: 'progress', done, etaSeconds: null, tiles: t }));
    tiles.catch(() => {});
    let lastProgress = 0;
    try {
      const pool = this.opts.pool();
      await buildAtlas({
        model,
        layer: req.layer,
        units: req.units,
        spec,
        root: this.opts.root,
        batch: BATCH_ITEMS,
        signal: build.abort.signal,
        // Batches run under their own client id: a synthesis the window starts does not cancel them.
        runBatch: poolBatchRunner(pool, `${client.id}:atlas`, model.id, model.chosenPreprocess),
        concurrency: pool.workers.length,
        onProgress: (p) => {
          if (p.unitsThisBatch.length) inFlight.set(p.unitsThisBatch[0]!, { units: p.unitsThisBatch.length, fraction: p.iterations ? (p.iteration + 1) / p.iterations : 0 });
          const now = performance.now();
          if (now - lastProgress < PROGRESS_EVERY_MS) return;
          lastProgress = now;
          send({ phase: 'progress', done, etaSeconds: eta(), tiles: [] });
        },
        onUnits: (units, dir, index) => {
          inFlight.delete(units[0]!);
          done += units.length;
          const at = done;
          tiles = tiles.then(() => this.sendTiles(index, dir, units, (t) => send({ phase: 'progress', done: at, etaSeconds: eta(), tiles: t })));
          // Awaited after the build (or in its catch); a tile that fails meanwhile must not go unhandled.
          tiles.catch(() => {});
        },
      });
      await tiles;
      send({ phase: build.abort.signal.aborted ? 'cancelled' : 'done', done, etaSeconds: build.abort.signal.aborted ? null : 0, tiles: [] });
    } catch (e) {
      await tiles.catch(() => {});
      const message = oneLine(e);
      this.opts.log?.(`atlas of ${req.layer}: ${message}`);
      send({ phase: 'error', done, etaSeconds: null, tiles: [], message: message.slice(0, 500) });
    } finally {
      this.builds.delete(build.id);
    }
  }

  private async sendTiles(index: AtlasIndex, dir: string, units: number[], emit: (tiles: { unit: number; png: Uint8Array<ArrayBuffer> }[]) => void): Promise<void> {
    for (let i = 0; i < units.length; i += TILES_PER_EVENT) {
      const part = units.slice(i, i + TILES_PER_EVENT);
      const tiles = await Promise.all(
        part.map(async (unit) => {
          const b = await atlasTilePng(dir, index.done[String(unit)]!);
          // A plain Uint8Array: a Buffer would be serialised as JSON by the web framing.
          return { unit, png: new Uint8Array(b.buffer as ArrayBuffer, b.byteOffset, b.byteLength) };
        }),
      );
      emit(tiles);
    }
  }
}
