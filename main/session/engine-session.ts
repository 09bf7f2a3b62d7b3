// The engine host shared by Electron main and web mode: the loaded model answers frames here,
// latest-wins per client and the clients' frames taken in turn; synthesis runs on the job pool
// (scheduler.ts: worker threads, round-robin across clients, owner-only cancel), so a frame never
// waits behind a synthesis step. Every incoming message is validated against the contract before
// anything else looks at it; handle() never throws — failures become error replies.
import { EventEmitter } from 'node:events';
import * as tf from '@tensorflow/tfjs-core';
import {
  parseRequest,
  seqOf,
  type AppEvent,
  type FrameRequestT,
  type ModelInfo,
  type ModelSummary,
  type Reply,
  type Request,
  CONTRACT_VERSION,
} from '../../contract/messages.js';
import {
  DEFAULT_MODEL_ID,
  describeBackend,
  listModels,
  loadModel,
  modelsDir as defaultModelsDir,
  rgbaToModelPixels,
  selectBackend,
  type BackendReport,
  type Model,
} from '../engine/index.js';
import { allFinite, nonFiniteError } from '../engine/finite.js';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { defaultAtlasRoot, findAtlas } from '../engine/synthesis/atlas.js';
import { SynthJobs, specFromRequest, toSynthEvent, type SynthJobEvent } from '../engine/synthesis/jobs.js';
import type { ResolvedTarget } from '../engine/synthesis/target.js';
import type { SynthSettings } from '../engine/synthesis/settings.js';
import { checkJobFits } from '../engine/memory-budget.js';
import type { WorkerJobEventT } from '../../contract/worker.js';
import { JobScheduler } from './scheduler.js';
import { oneLine } from '../engine/errors.js';
import { BackFramePass } from './backprojection-frame.js';
import { TopKHost, type TopKHostOptions } from './topk-host.js';
import type { AppStateStore } from '../persist/app-state.js';

/** Who sent a request, and how to push events (synthesis progress) back to them. */
export interface SessionClient {
  id: string;
  emit(event: AppEvent): void;
}

const NO_CLIENT: SessionClient = { id: 'default', emit: () => {} };

/** A worker's job event as the engine's own (toSynthEvent is the one conversion to the contract). */
function jobEvent(e: WorkerJobEventT, target: ResolvedTarget, settings: SynthSettings): SynthJobEvent {
  switch (e.type) {
    case 'progress':
      return { phase: 'progress', jobId: e.jobId, progress: e.progress };
    case 'done':
      return { phase: 'done', jobId: e.jobId, result: e.result, target, settings };
    case 'cancelled':
      return { phase: 'cancelled', jobId: e.jobId };
    case 'error':
      return { phase: 'error', jobId: e.jobId, message: e.message };
  }
}

export interface EngineSessionOptions {
  /** Force a backend (tensorflow-gpu, tensorflow, wasm, cpu); default: the first that starts. */
  backend?: string | null;
  /** Model to load at start. Default: mobilenet-v1-0.75 when installed, else the first that loads. */
  model?: string | null;
  /** Folder of models (<id>/deepvis.json + weights). Default: $DEEPVIS_MODELS_DIR or models/. */
  modelsDir?: string;
  /** Progress and problems, one line each (default: nothing). */
  log?: (line: string) => void;
  /** Where `deepvis atlas` caches layers (default: $DEEPVIS_ATLAS_DIR or ~/.cache/deepvis/atlas). */
  atlasDir?: string;
  /** Read-only atlas folders searched after atlasDir (the packaged app's resources/atlases). */
  bundledAtlasDirs?: readonly string[];
  /** Top-k patches: index folder (default as `deepvis index`), session memory budget (see topk-host.ts). */
  topk?: TopKHostOptions;
  /**
   * Where the renderer's view state is kept across restarts (main/persist/app-state.ts); the host
   * owns it (opens and closes it). Absent: nothing is kept (state requests answer "not persisted").
   */
  appState?: AppStateStore | null;
  /** Job workers (synthesis); default poolSize(): $DEEPVIS_WORKERS, else cores − 1, at least 1. */
  workers?: number;
  /** Memory one job may use (bytes); default: the backend's real limit (jobMemoryLimit). */
  jobMemoryBytes?: number;
}

type FrameJob = { kind: 'frame'; req: FrameRequestT; client: string; resolve: (r: Reply) => void };
type LoadJob = { kind: 'load'; req: Extract<Request, { type: 'loadModel' }>; resolve: (r: Reply) => void };
type Job = FrameJob | LoadJob;

export interface SessionState {
  /** frameId of the frame in the engine, or null. */
  computing: number | null;
  /** frameId of the first frame waiting for the engine (at most one per client), or null. */
  waiting: number | null;
  /** Model loads waiting (they keep their arrival order relative to frames). */
  loadsQueued: number;
}

export interface SessionEvents {
  /** A frame enters the engine (after this, newer frames wait or replace the waiting one). */
  frameStart: [frameId: number];
  /** The loaded model changed (after a successful loadModel). */
  modelChange: [model: ModelInfo];
}


export function modelInfo(m: Model): ModelInfo {
  const [h, w] = m.inputSize;
  return {
    id: m.id,
    title: m.descriptor.title,
    inputSize: [h, w],
    layers: m.layers.map((l) => ({ name: l.name, display: l.display, shape: [...l.shape] as [number, number, number], units: l.units })),
    defaultLayer: m.layer(m.descriptor.defaultLayer ?? m.layers[0]!.name).name,
    logitsLayer: m.logitsLayer,
    classCount: m.classes.length,
    softmaxHead: m.softmaxHead,
    inputChannels: m.compiled.inputChannels,
    classes: m.classes.map((c) => ({ name: c.name, wnid: c.wnid ?? null })),
  };
}

export class EngineSession extends EventEmitter<SessionEvents> {
  readonly modelsDir: string;
  private backendReport: BackendReport | null = null;
  private current: Model | null = null;
  private currentInfo: ModelInfo | null = null;
  private startupError: string | null = null;
  private queue: Job[] = [];
  private running = false;
  private computingFrame: number | null = null;
  private idleWaiters: (() => void)[] = [];
  private disposed = false;
  private framesProcessed = 0;
  private framesDropped = 0;
  private jobs: JobScheduler | null = null;
  /** Clients seen, for notices that concern everyone (a worker restarted). */
  private readonly clients = new Map<string, SessionClient>();
  private readonly log: (line: string) => void;
  /** Top-k patches: folder index, background indexing, session memory (topk-host.ts). */
  readonly topk: TopKHost;

  private constructor(private readonly opts: EngineSessionOptions) {
    super();
    this.modelsDir = opts.modelsDir ?? defaultModelsDir();
    this.log = opts.log ?? (() => {});
    this.topk = new TopKHost(this, { log: this.log, ...opts.topk });
  }

  /**
   * Select the backend and load the start-up model. An explicitly requested model that fails to
   * load is an error; when the default fails, the next installed model is tried, and when none
   * loads the session still starts (hello reports why; loadModel may succeed later).
   */
  static async create(opts: EngineSessionOptions = {}): Promise<EngineSession> {
    const s = new EngineSession(opts);
    s.backendReport = await selectBackend(opts.backend ?? null);
    s.log(describeBackend(s.backendReport));
    // The workers run the backend this thread runs, chosen by the same option inside each worker.
    s.jobs = new JobScheduler({
      backend: s.backendReport.backend,
      modelsDir: s.modelsDir,
      workers: opts.workers,
      log: s.log,
      onRestart: (why) => s.notify('warning', `engine: ${why}`),
    });
    if (opts.model) {
      try {
        await s.setModel(await loadModel(opts.model, s.modelsDir));
      } catch (e) {
        await s.jobs.dispose(); // no session: its worker threads must not keep the process alive
        throw e;
      }
    } else {
      const entries = await listModels(s.modelsDir);
      const order = [
        ...entries.filter((e) => e.id === DEFAULT_MODEL_ID),
        ...entries.filter((e) => e.id !== DEFAULT_MODEL_ID && !e.problem),
      ];
      const failures: string[] = [];
      for (const e of order) {
        try {
          await s.setModel(await loadModel(e.id, s.modelsDir));
          break;
        } catch (err) {
          failures.push(oneLine(err));
          s.log(`model ${e.id} did not load: ${oneLine(err)}`);
        }
      }
      if (!s.current) {
        s.startupError = failures.length
          ? `no model could be loaded: ${failures.join('; ')}`
          : `no installed model in ${s.modelsDir} — run \`npm run fetch-models\``;
        s.log(s.startupError);
      }
    }
    return s;
  }

  get model(): Model | null {
    return this.current;
  }

  get backend(): BackendReport {
    return this.backendReport!;
  }

  state(): SessionState {
    const waiting = this.queue.find((j): j is FrameJob => j.kind === 'frame');
    return { computing: this.computingFrame, waiting: waiting?.req.frameId ?? null, loadsQueued: this.queue.filter((j) => j.kind === 'load').length };
  }

  async models(): Promise<ModelSummary[]> {
    return (await listModels(this.modelsDir)).map((e) => ({
      id: e.id,
      title: e.descriptor?.title ?? e.id,
      installed: !e.problem,
      problem: e.problem,
      ...(e.fault ? { fault: e.fault } : {}),
    }));
  }

  /**
   * Handle one message from a renderer. Validates it first; never throws and never rejects. Frames
   * may resolve with `dropped` when a newer frame replaces them before they reach the engine.
   */
  handle(raw: unknown, client: SessionClient = NO_CLIENT): Promise<Reply> {
    try {
      if (client !== NO_CLIENT) this.clients.set(client.id, client);
      const parsed = parseRequest(raw);
      if (!parsed.ok) {
        const type = raw && typeof raw === 'object' && typeof (raw as { type?: unknown }).type === 'string' ? (raw as { type: string }).type : undefined;
        const seq = raw && typeof raw === 'object' ? (raw as { seq?: unknown }).seq : undefined;
        return Promise.resolve({
          type: 'error',
          message: `invalid message: ${parsed.error}`,
          ...(type && type.length <= 40 ? { request: type } : {}),
          ...(typeof seq === 'number' && Number.isSafeInteger(seq) && seq >= 0 ? { seq } : {}), // the contract's seq is a safe integer
        });
      }
      if (this.disposed) return Promise.resolve(this.error(parsed.request, 'the engine is shutting down'));
      const req = parsed.request;
      switch (req.type) {
        case 'hello':
          return this.models().then((models) => ({
            type: 'hello',
            version: CONTRACT_VERSION,
            backend: { backend: this.backend.backend, choice: this.backend.choice, description: describeBackend(this.backend) },
            models,
            model: this.currentInfo,
            modelError: this.current ? null : this.startupError,
            ...seqOf(req),
          }));
        case 'listModels':
          return this.models().then((models) => ({ type: 'models', models, ...seqOf(req) }));
        case 'stats':
          return Promise.resolve(this.stats(req.seq));
        case 'loadModel':
          return this.enqueue({ kind: 'load', req });
        case 'frame':
          return this.enqueueFrame(req, client.id);
        case 'synthStart':
          return this.startSynth(req, client);
        case 'atlas':
          return Promise.resolve(this.atlas(req));
        case 'synthCancel': {
          const outcome = this.jobs!.cancel(client.id, req.jobId);
          if (outcome === 'not-owner') return Promise.resolve(this.error(req, `job ${req.jobId} belongs to another window — only the window that started it can cancel it`));
          return Promise.resolve({ type: 'synthCancel', jobId: req.jobId, cancelled: outcome === 'cancelled', ...seqOf(req) });
        }
        case 'indexStart':
          return this.topk.indexStart(req, client);
        case 'indexStop':
          return this.topk.indexStop(req);
        case 'topk':
          return this.topk.topk(req, client);
        case 'openIndexedImage':
          return this.topk.openIndexedImage(req);
        case 'listedImage':
          // Electron main answers these (it holds what the user picked); browsers read their own files.
          return Promise.resolve(this.error(req, 'image listings exist only in the desktop app'));
        case 'getAppState':
        case 'saveAppState':
          return Promise.resolve(this.appState(req));
      }
    } catch (e) {
      return Promise.resolve({ type: 'error', message: oneLine(e) });
    }
  }

  /**
   * Start a synthesis job for this client on the job pool (its previous job is cancelled); events
   * go to client.emit. Refused up front when its memory would not fit, saying what would.
   */
  private async startSynth(req: Extract<Request, { type: 'synthStart' }>, client: SessionClient): Promise<Reply> {
    const model = this.current;
    if (!model) return this.error(req, 'no model is loaded');
    try {
      const spec = specFromRequest(req);
      const { target, settings, seeds, size } = SynthJobs.prepare(model, spec);
      const fit = await checkJobFits({ model, backend: this.backend.backend, images: seeds.length, size, limitBytes: this.opts.jobMemoryBytes });
      if (!fit.ok) return this.error(req, fit.message);
      if (this.current !== model) return this.error(req, 'the model changed meanwhile');
      this.jobs!.cancelClient(client.id);
      const jobId = this.jobs!.submit(client.id, { type: 'synth', modelId: model.id, spec }, (e) => client.emit(toSynthEvent(jobEvent(e, target, settings))),
      );
      return { type: 'synthStarted', jobId, label: target.label, layer: target.layer, unit: target.unit, settings, ...seqOf(req) };
    } catch (e) {
      return this.error(req, oneLine(e));
    }
  }

  /** The job pool (tests kill its workers; hosts read its size). */
  get pool(): JobScheduler {
    return this.jobs!;
  }

  /** A one-line notice to every client (the window shows it in its status area). */
  private notify(level: 'info' | 'warning' | 'error', message: string): void {
    this.log(message);
    for (const c of this.clients.values()) {
      try {
        c.emit({ type: 'notice', level, message: message.slice(0, 500) });
      } catch {
        /* a client that went away */
      }
    }
  }

  private atlas(req: Extract<Request, { type: 'atlas' }>): Reply {
    const model = this.current;
    if (!model) return this.error(req, 'no model is loaded');
    try {
      const layer = model.layer(req.layer);
      const found = findAtlas([this.opts.atlasDir ?? defaultAtlasRoot(), ...(this.opts.bundledAtlasDirs ?? [])], model, layer.name);
      if (!found?.index.sprite) {
        return {
          type: 'atlas',
          layer: layer.name,
          found: false,
          hint: `no atlas for ${layer.display} yet — build one with: npx deepvis atlas --model ${model.id} --layer ${layer.display}`,
          ...seqOf(req),
        };
      }
      const { index, dir } = found;
      const sprite = readFileSync(join(dir, index.sprite!.file));
      return {
        type: 'atlas',
        layer: layer.name,
        found: true,
        preset: index.preset,
        unitCount: index.unitCount,
        tile: index.sprite!.tile,
        cols: index.sprite!.cols,
        units: index.sprite!.units,
        sprite: new Uint8Array(sprite.buffer, sprite.byteOffset, sprite.byteLength) as Uint8Array<ArrayBuffer>,
        ...seqOf(req),
      };
    } catch (e) {
      return this.error(req, oneLine(e));
    }
  }

  /** The saved view state, or save it (validated by the contract; written coalesced and atomically). */
  private appState(req: Extract<Request, { type: 'getAppState' | 'saveAppState' }>): Reply {
    const store = this.opts.appState ?? null;
    if (req.type === 'saveAppState') {
      store?.setView(req.view);
      return { type: 'appStateSaved', persisted: !!store, ...seqOf(req) };
    }
    return {
      type: 'appState',
      view: store?.state.view ?? null,
      persisted: !!store,
      ...(store?.warning ? { warning: store.warning } : {}),
      ...seqOf(req),
    };
  }

  /** A client went away: stop its jobs. */
  disconnect(clientId: string): void {
    this.jobs?.cancelClient(clientId);
    this.clients.delete(clientId);
    // Its waiting frame has no one to go to.
    const i = this.queue.findIndex((j) => j.kind === 'frame' && j.client === clientId);
    if (i >= 0) {
      const [old] = this.queue.splice(i, 1) as FrameJob[];
      old!.resolve({ type: 'dropped', frameId: old!.req.frameId, supersededBy: old!.req.frameId, ...seqOf(old!.req) });
    }
  }

  stats(seq?: number): Extract<Reply, { type: 'stats' }> {
    const mem = tf.memory();
    return {
      type: 'stats',
      numTensors: mem.numTensors,
      numBytes: mem.numBytes,
      rssBytes: process.memoryUsage.rss(),
      framesProcessed: this.framesProcessed,
      framesDropped: this.framesDropped,
      modelId: this.current?.id ?? null,
      backend: this.backendReport?.backend ?? 'none',
      ...(seq === undefined ? {} : { seq }),
    };
  }

  /** Resolves when nothing is computing or waiting. */
  async idle(): Promise<void> {
    if (this.running || this.queue.length > 0) await new Promise<void>((r) => this.idleWaiters.push(r));
    await this.topk.settled();
  }

  /** Refuse new work, let the running job finish, answer waiting ones with errors, unload the model. */
  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    for (const job of this.queue.splice(0)) job.resolve(this.error(job.req, 'the engine is shutting down'));
    await this.jobs?.dispose();
    await this.topk.dispose();
    await this.idle();
    this.current?.dispose();
    this.current = null;
    this.currentInfo = null;
  }

  // ------------------------------------------------------------------ queue

  private error(req: Request, message: string): Reply {
    return {
      type: 'error',
      message,
      request: req.type,
      ...(req.type === 'frame' ? { frameId: req.frameId } : {}),
      ...seqOf(req),
    };
  }

  private enqueueFrame(req: FrameRequestT, client: string): Promise<Reply> {
    // Latest wins per client: its frame still waiting is answered "dropped" and replaced; never a
    // queue. Each client has its own waiting slot and a new frame goes to the back, so two
    // clients' frames are taken in turn (one tab cannot starve another).
    const i = this.queue.findIndex((j) => j.kind === 'frame' && j.client === client);
    if (i >= 0) {
      const old = this.queue.splice(i, 1)[0] as FrameJob;
      this.framesDropped++;
      old.resolve({ type: 'dropped', frameId: old.req.frameId, supersededBy: req.frameId, ...seqOf(old.req) });
    }
    return this.enqueue({ kind: 'frame', req, client });
  }

  private enqueue(job: Omit<FrameJob, 'resolve'> | Omit<LoadJob, 'resolve'>): Promise<Reply> {
    return new Promise<Reply>((resolve) => {
      this.queue.push({ ...job, resolve } as Job);
      if (!this.running) {
        this.running = true;
        // Start on the next turn so a burst of messages read together is collapsed first.
        setImmediate(() => void this.pump());
      }
    });
  }

  private async pump(): Promise<void> {
    try {
      for (let job = this.queue.shift(); job; job = this.queue.shift()) {
        let reply: Reply;
        try {
          reply = job.kind === 'frame' ? await this.runFrame(job.req) : await this.runLoad(job.req);
        } catch (e) {
          reply = this.error(job.req, job.kind === 'frame' ? `frame ${job.req.frameId}: ${oneLine(e)}` : oneLine(e));
        } finally {
          this.computingFrame = null;
        }
        job.resolve(reply);
      }
    } finally {
      this.running = false;
      for (const w of this.idleWaiters.splice(0)) w();
    }
  }

  private async setModel(m: Model): Promise<void> {
    // Jobs run the model they started with: stop them, and have the workers load the new one.
    await this.jobs?.cancelAll();
    this.jobs?.preload(m.id);
    const old = this.current;
    this.current = m;
    this.currentInfo = modelInfo(m);
    this.startupError = null;
    if (old && old !== m) old.dispose();
    this.log(`model ${m.id} loaded (${m.layers.length} layers shown)`);
    this.emit('modelChange', this.currentInfo);
  }

  private async runLoad(req: Extract<Request, { type: 'loadModel' }>): Promise<Reply> {
    if (this.current?.id === req.id) return { type: 'loadModel', model: this.currentInfo!, ...seqOf(req) };
    let m: Model;
    try {
      m = await loadModel(req.id, this.modelsDir);
    } catch (e) {
      const why = oneLine(e);
      const keep = this.current ? `; still running ${this.current.id}` : '';
      // The engine's messages usually name the model already; make sure the reply does.
      const msg = why.includes(req.id) ? `${why}${keep}` : `model ${req.id} failed to load: ${why}${keep}`;
      this.log(msg);
      return this.error(req, msg);
    }
    await this.setModel(m);
    return { type: 'loadModel', model: this.currentInfo!, ...seqOf(req) };
  }

  private async runFrame(req: FrameRequestT): Promise<Reply> {
    const model = this.current;
    if (!model) return this.error(req, `frame ${req.frameId}: no model is loaded${this.startupError ? ` (${this.startupError})` : ''}`);
    const t0 = performance.now();
    const layer = model.layer(req.layer);
    const [h, w, c] = layer.shape;
    if (req.unit >= c) throw new Error(`unit ${req.unit} is out of range for layer ${layer.display} (${c} units)`);
    if (req.rgba.length !== req.width * req.height * 4) {
      throw new Error(`rgba is ${req.rgba.length} bytes, expected ${req.width}×${req.height}×4 = ${req.width * req.height * 4}`);
    }
    this.computingFrame = req.frameId;
    this.emit('frameStart', req.frameId);
    const hw = h * w;
    const n = c * hw;
    const K = Math.min(5, model.classes.length || 5);
    // One forward, one tensor out, one read: [tiles 0..255 (C·H·W) | channelMax (C) | scale | unit map (H·W) | top-K probs | top-K indices]
    // Back-projection, back diffs and Grad-CAM share this forward: see backprojection-frame.ts.
    const backPass = new BackFramePass(model, req, layer.name);
    const packed = tf.tidy(() => {
      const pixels = rgbaToModelPixels(req.rgba, req.width, req.height, model.inputSize);
      const out = backPass.forward(model.preprocess(pixels));
      const act = out.taps[layer.name]!; // [1,H,W,C]
      this.topk.captureFrame(req, layer.name, act, pixels); // session memory of top-k patches (topk-host.ts)
      const chw = tf.transpose(tf.reshape(act, [hw, c]), [1, 0]); // [C, H·W]
      const pos = tf.relu(chw);
      const channelMax = tf.max(pos, 1); // [C]
      const scale = tf.max(channelMax).reshape([1]);
      const k = tf.div(tf.scalar(255), tf.maximum(scale, tf.scalar(1e-30)));
      const tiles = tf.round(tf.mul(pos, k)).reshape([n]);
      const unitMap = tf.slice(chw, [req.unit, 0], [1, hw]).reshape([hw]);
      const top = tf.topk(tf.softmax(out.logits!), K);
      return tf.concat([tiles, channelMax, scale, unitMap, top.values.reshape([K]), tf.cast(top.indices, 'float32').reshape([K]), ...backPass.parts()]);
    });
    let all: Float32Array;
    try {
      all = (await packed.data()) as Float32Array;
    } finally {
      packed.dispose();
    }
    if (!allFinite(all)) throw frameNonFinite(model, req);
    const data = new Uint8Array(n);
    data.set(all.subarray(0, n)); // exact integers 0..255: a native typed-array conversion
    const channelMax = all.slice(n, n + c);
    const scale = all[n + c]!;
    const unitData = all.slice(n + c + 1, n + c + 1 + hw);
    let unitMax = -Infinity;
    for (let i = 0; i < hw; i++) if (unitData[i]! > unitMax) unitMax = unitData[i]!;
    const at = n + c + 1 + hw;
    const top5: { index: number; wnid: string | null; name: string; prob: number }[] = [];
    for (let j = 0; j < K; j++) {
      const index = all[at + K + j]!;
      const cls = model.classes[index];
      top5.push({ index, wnid: cls?.wnid ?? null, name: cls?.name ?? `class ${index}`, prob: all[at + j]! });
    }
    const backExtras = backPass.decode(all.subarray(at + 2 * K));
    this.framesProcessed++;
    return {
      type: 'frame',
      frameId: req.frameId,
      modelId: model.id,
      top5,
      layer: layer.name,
      tiles: { count: c, h, w, scale, channelMax, data },
      unit: { index: req.unit, h, w, max: unitMax, data: unitData },
      ...backExtras,
      engineMs: performance.now() - t0,
      ...seqOf(req),
    };
  }
}


/** The named error for a frame whose results hold NaN or Infinity (found again, layer by layer). */
function frameNonFinite(model: Model, req: FrameRequestT): Error {
  const x = tf.tidy(() => model.preprocess(rgbaToModelPixels(req.rgba, req.width, req.height, model.inputSize)));
  try {
    return nonFiniteError(model, x);
  } finally {
    x.dispose();
  }
}

/** Convenience for hosts: create a session (see EngineSession.create). */
export function createEngineSession(opts: EngineSessionOptions = {}): Promise<EngineSession> {
  return EngineSession.create(opts);
}
