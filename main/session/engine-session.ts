// The engine host shared by Electron main and web mode. It routes: frames (with back-projection
// and Grad-CAM) go to the live worker thread, latest-wins per client and the clients' frames taken
// in turn; synthesis runs on the job pool (scheduler.ts: worker threads, round-robin across
// clients, owner-only cancel), so a frame never waits behind a synthesis step and no engine work
// blocks this thread's event loop (the WebSocket / IPC). A live worker that traps or exits is
// replaced: its frame gets an error naming what happened, every client a notice, and the next
// frame runs on the new thread. Every incoming message is validated against the contract before
// anything else looks at it; handle() never throws — failures become error replies.
import { EventEmitter } from 'node:events';
import os from 'node:os';
import * as tf from '@tensorflow/tfjs-core';
import {
  parseRequest,
  seqOf,
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
  modelFromFiles,
  modelsDir as defaultModelsDir,
  preprocessInfoOf,
  readModelFiles,
  selectBackend,
  withModelsDir,
  type BackendReport,
  type Model,
  type ModelFiles,
} from '../engine/index.js';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { defaultAtlasRoot, findAtlas } from '../engine/synthesis/atlas.js';
import { prepareSynthJob, specFromRequest, toSynthEvent, type SynthJobEvent } from '../engine/synthesis/jobs.js';
import type { ResolvedTarget } from '../engine/synthesis/target.js';
import type { SynthSettings } from '../engine/synthesis/settings.js';
import { checkJobFits } from '../engine/memory-budget.js';
import type { WorkerFrameEventT, WorkerJobEventT } from '../../contract/worker.js';
import { DEFAULT_PRESET, DEFAULT_SEEDS } from '../../contract/synthesis.js';
import { jobBackend, JobScheduler, poolSize } from './scheduler.js';
import { JobWorker, type JobMessage } from './job-worker.js';
import { startPreview } from '../engine/synthesis/start-preview.js';
import { oneLine } from '../engine/errors.js';
import { checkFrame } from './live-frame.js';
import { FrameQueue, JOB_LIVE_FPS, jobsContend, type QueuedWork } from './frame-queue.js';
import { TopKHost, type TopKHostOptions } from './topk-host.js';
import type { SessionClient } from './client.js';
import type { AppStateStore } from '../persist/app-state.js';
import { AtlasHost } from './atlas-host.js';
import { modelFolderReply, UserModelsHost } from './user-models-host.js';
import type { PreprocessName } from '../../contract/user-models.js';
import { mkdirSync } from 'node:fs';

export type { SessionClient } from './client.js';

const NO_CLIENT: SessionClient = { id: 'default', emit: () => {} };

/**
 * What a job worker runs once when a model is chosen, so the window's first synthesis on it starts
 * stepping at once: one step of the default preset on the layer the window opens on and on a
 * class, at the model’s input size with the window’s seeds (each builds that gradient graph’s
 * session, which is per batch shape, in the worker).
 */
function synthWarmups(m: Model): Omit<JobMessage, 'jobId'>[] {
  const layers = [...new Set([m.layer(m.descriptor.defaultLayer ?? m.layers[0]!.name).name, m.logitsLayer])];
  return layers.map((layer) => ({ type: 'synth', modelId: m.id, preprocess: m.chosenPreprocess, spec: { layer, unit: 0, preset: DEFAULT_PRESET, seeds: DEFAULT_SEEDS, iterations: 1, previewEveryMs: 0 } }));
}

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
    case 'indexDone': // an index batch's, never a synthesis's
      return { phase: 'error', jobId: e.jobId, message: 'the worker answered a synthesis with an index batch' };
  }
}

export interface EngineSessionOptions {
  /** Force a backend (tensorflow-gpu, tensorflow, wasm, cpu); default: the first that starts. */
  backend?: string | null;
  /** Model to load at start. Default: mobilenet-v1-0.75 when installed, else the first that loads. */
  model?: string | null;
  /** Folder of models (<id>/deepvis.json + weights). Default: the bundled models/ (hosts pass DEEPVIS_MODELS_DIR). */
  modelsDir?: string;
  /** Progress and problems, one line each (default: nothing). */
  log?: (line: string) => void;
  /** Where `deepvis atlas` caches layers (default ~/.cache/deepvis/atlas; hosts pass DEEPVIS_ATLAS_DIR). */
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
  /** Job workers (synthesis); default poolSize(): cores − 1, at least 1 (hosts pass DEEPVIS_WORKERS). */
  workers?: number | null;
  /** ONNX Runtime threads per engine thread (hosts pass DEEPVIS_ORT_THREADS); default 1. */
  ortThreads?: number | null;
  /** The live view's frame-rate ceiling while jobs contend with it (hosts pass DEEPVIS_JOB_LIVE_FPS); default JOB_LIVE_FPS. */
  jobLiveFps?: number | null;
  /** Cores the host, its workers and the window share (default os.availableParallelism()): the pool's default size and jobsContend read it. */
  cores?: number;
  /** The Vulkan driver the host's environment names (VK_ICD_FILENAMES), for the automatic backend choice. */
  vulkanDriver?: string;
  /** Memory one job may use (bytes); default: the backend's real limit (jobMemoryLimit). */
  jobMemoryBytes?: number;
  /**
   * This run's folder for model folders opened in the window (uploaded or copied there, listed
   * after the others; removed when the session ends). Absent: the window cannot open models.
   */
  userModelsDir?: string;
  /**
   * A live frame not answered in this time (ms) ends its worker, which is replaced: a stuck engine
   * never leaves a stuck pane. Default 60 s (a frame on the slowest backend takes a few seconds).
   */
  frameTimeoutMs?: number;
}


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
    preprocess: m.preprocessInfo,
  };
}

export class EngineSession extends EventEmitter<SessionEvents> {
  readonly modelsDir: string;
  private backendReport: BackendReport | null = null;
  private current: Model | null = null;
  private currentInfo: ModelInfo | null = null;
  private startupError: string | null = null;
  /** Frames latest-wins per client, clients in turn, loads in their place (frame-queue.ts). */
  private readonly queue: FrameQueue;
  private computingFrame: number | null = null;
  private disposed = false;
  private framesProcessed = 0;
  private jobs: JobScheduler | null = null;
  /** The live worker: frames, back-projection and Grad-CAM run on this thread, never on the host's. */
  private live: JobWorker | null = null;
  private liveFrames = 0;
  /** Clients seen, for notices that concern everyone (a worker restarted). */
  private readonly clients = new Map<string, SessionClient>();
  /** The machine's cores as this session counts them: the live view's contention rule and the pool's size read the same number. */
  private readonly cores: number;
  private readonly log: (line: string) => void;
  /** Top-k patches: folder index, background indexing, session memory (topk-host.ts). */
  readonly topk: TopKHost;
  /** Atlases built from the window (atlas-host.ts). */
  readonly atlasBuilds: AtlasHost;
  /** Model folders opened in the window (user-models-host.ts), or null when the host gives none. */
  readonly userModels: UserModelsHost | null;
  /** Input conventions picked this run when nothing is persisted (else the app state keeps them). */
  private readonly preprocessChoices = new Map<string, PreprocessName>();

  private constructor(private readonly opts: EngineSessionOptions) {
    super();
    this.cores = opts.cores ?? os.availableParallelism();
    this.queue = new FrameQueue((work) => this.runQueued(work), () => jobsContend(this.jobs?.running ?? 0, this.cores), opts.jobLiveFps ?? JOB_LIVE_FPS);
    this.userModels = opts.userModelsDir ? new UserModelsHost(opts.userModelsDir) : null;
    if (this.userModels) {
      mkdirSync(this.userModels.modelsDir, { recursive: true });
      void this.userModels.sweepStale().catch(() => {});
    }
    this.modelsDir = withModelsDir(this.userModels?.modelsDir, opts.modelsDir ?? defaultModelsDir());
    this.log = opts.log ?? (() => {});
    this.topk = new TopKHost(this, { log: this.log, ...opts.topk });
    this.atlasBuilds = new AtlasHost({
      model: () => this.current,
      pool: () => this.jobs!,
      backend: () => this.backend.backend,
      root: opts.atlasDir ?? defaultAtlasRoot(),
      jobMemoryBytes: opts.jobMemoryBytes,
      onModelChange: (listener) => this.on('modelChange', listener),
      log: this.log,
    });
  }

  /** The input convention picked for a model (remembered in the app state when there is one). */
  private preprocessFor(id: string): PreprocessName | null {
    return this.opts.appState ? this.opts.appState.preprocessFor(id) : (this.preprocessChoices.get(id) ?? null);
  }

  /**
   * Select the backend and load the start-up model. An explicitly requested model that fails to
   * load is an error; when the default fails, the next installed model is tried, and when none
   * loads the session still starts (hello reports why; loadModel may succeed later).
   */
  static async create(opts: EngineSessionOptions = {}): Promise<EngineSession> {
    const s = new EngineSession(opts);
    s.backendReport = await selectBackend(opts.backend ?? null, { ortThreads: opts.ortThreads, vulkanDriver: opts.vulkanDriver });
    s.log(describeBackend(s.backendReport));
    // A GPU belongs to the live worker: this thread's own model (session memory, patches, job
    // preparation) runs on the CPU like the jobs. ONNX Runtime's WebGPU provider also crashes the
    // process when two threads start sessions on it at once.
    const here = jobBackend(s.backendReport.choice);
    if (here && here !== s.backendReport.choice) await selectBackend(here);
    // Each worker selects its backend itself: the live worker the choice made here, the job
    // workers its CPU counterpart (jobBackend).
    s.jobs = new JobScheduler({
      backend: jobBackend(s.backendReport.choice),
      modelsDir: s.modelsDir,
      workers: poolSize(opts.workers, { liveWorker: true, cores: s.cores }),
      ortThreads: opts.ortThreads,
      log: s.log,
      onRestart: (why) => s.notify('warning', `engine: ${why}`),
    });
    s.live = new JobWorker({ backend: s.backendReport.choice, modelsDir: s.modelsDir, name: 'live worker' });
    s.live.on('restart', (why) => s.notify('warning', `engine: ${why}`));
    if (opts.model) {
      try {
        await s.setModel(await readModelFiles(opts.model, s.modelsDir, { preprocess: s.preprocessFor(opts.model) }));
      } catch (e) {
        // No session: its worker threads must not keep the process alive.
        await Promise.all([s.jobs.dispose(), s.live.terminate()]);
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
          await s.setModel(await readModelFiles(e.id, s.modelsDir, { preprocess: s.preprocessFor(e.id) }));
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
    const waiting = this.queue.waiting();
    return { computing: this.computingFrame, waiting: waiting.frame, loadsQueued: waiting.loads };
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
          return this.queue.push({ kind: 'load', req });
        case 'frame':
          return this.queue.pushFrame(req, client.id);
        case 'synthStart':
          return this.startSynth(req, client);
        case 'atlas':
          return Promise.resolve(this.atlas(req));
        case 'atlasBuild':
          return this.atlasBuilds.start(req, client);
        case 'atlasCancel':
          return Promise.resolve(this.atlasBuilds.cancel(req, client));
        case 'modelUploadStart':
        case 'modelUploadChunk':
        case 'modelUploadFinish':
          return modelFolderReply(this.userModels, req, client.id, () => listModels(this.modelsDir));
        case 'openModelFolder':
          // A path names a folder on the host's disk: only Electron main, for its own window, opens one.
          return Promise.resolve(this.error(req, 'opening a folder by its path exists only in the desktop app — in the browser, pick or drop the folder to upload it'));
        case 'setPreprocess':
          return this.setPreprocess(req);
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
      const { target, settings, seeds, size } = prepareSynthJob(model, spec);
      // Before the worker has measured the model this waits for it (it was asked when the model was
      // chosen): a job is never judged on a guess.
      const footprint = await this.jobs!.footprint(model);
      const fit = checkJobFits({ model, backend: this.backend.backend, images: seeds.length, size, limitBytes: this.opts.jobMemoryBytes, footprint });
      if (!fit.ok) return this.error(req, fit.message);
      if (this.current !== model) return this.error(req, 'the model changed meanwhile');
      this.jobs!.cancelClient(client.id);
      const waits = !this.jobs!.canStartNow;
      let heard = false;
      const jobId = this.jobs!.submit(client.id, { type: 'synth', modelId: model.id, preprocess: model.chosenPreprocess, spec }, (e) => {
        heard = true;
        client.emit(toSynthEvent(jobEvent(e, target, settings)));
      });
      // The worker finishes its current step first: the start image comes from here meanwhile.
      if (waits) {
        setImmediate(() => {
          if (heard || this.jobs!.owner(jobId) !== client.id) return;
          const preview = startPreview(settings, seeds, size);
          if (preview && !heard) client.emit(toSynthEvent({ phase: 'progress', jobId, progress: { iteration: 0, iterations: settings.iterations, objective: [], targetProb: null, recognised: false, elapsedMs: 0, preview } }));
        });
      }
      return { type: 'synthStarted', jobId, label: target.label, layer: target.layer, unit: target.unit, settings, ...seqOf(req) };
    } catch (e) {
      return this.error(req, oneLine(e));
    }
  }

  /** Copy a model folder from disk into the user models folder and list it (the desktop app's dialog or drop). */
  addModelFolder(path: string, seq?: number): Promise<Reply> {
    return modelFolderReply(this.userModels, { type: 'openModelFolder', path, seq }, '', () => listModels(this.modelsDir));
  }

  /** Pick a model's input convention (remembered), reloading it when it is the one running. */
  private async setPreprocess(req: Extract<Request, { type: 'setPreprocess' }>): Promise<Reply> {
    const entry = (await listModels(this.modelsDir)).find((e) => e.id === req.model);
    if (!entry) return this.error(req, `unknown model "${req.model}"`);
    if (!entry.inferred) return this.error(req, `model ${req.model} has a deepvis.json: its "preprocess" there says how the model takes its input — edit ${join(entry.dir, 'deepvis.json')} to change it`);
    const preset = req.preset === 'auto' ? null : req.preset;
    if (this.opts.appState) this.opts.appState.setPreprocess(req.model, preset);
    else if (preset) this.preprocessChoices.set(req.model, preset);
    else this.preprocessChoices.delete(req.model);
    if (this.current?.id === req.model) {
      const r = await this.queue.push({ kind: 'load', req: { type: 'loadModel', id: req.model }, reload: true });
      if (r.type !== 'loadModel') return this.error(req, r.type === 'error' ? r.message : `model ${req.model} did not reload`);
      return { type: 'preprocessSet', model: req.model, preprocess: r.model.preprocess!, ...seqOf(req) };
    }
    // Not the running model: the listing says what its convention is now; its weights are read when it loads.
    if (!entry.descriptor) return this.error(req, `model ${req.model} cannot be loaded: ${entry.problem ?? 'no descriptor'}`);
    return { type: 'preprocessSet', model: req.model, preprocess: preprocessInfoOf(entry.descriptor, true, preset), ...seqOf(req) };
  }

  /** The job pool (tests kill its workers; hosts read its size). */
  get pool(): JobScheduler {
    return this.jobs!;
  }

  /** The live worker (tests kill it; it restarts itself). */
  get liveWorker(): JobWorker {
    return this.live!;
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
          hint: `no atlas for ${layer.display} yet — build it here (Build atlas), or with: npx deepvis atlas --model ${model.id} --layer ${layer.display}`,
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
    this.atlasBuilds.disconnect(clientId);
    void this.userModels?.disconnect(clientId);
    this.clients.delete(clientId);
    this.queue.forget(clientId);
  }

  stats(seq?: number): Extract<Reply, { type: 'stats' }> {
    // This thread's tensors (session memory, indexing) and the live worker's as it last reported
    // them (after its model load and after each frame).
    const mem = tf.memory();
    return {
      type: 'stats',
      numTensors: mem.numTensors + (this.live?.tensors.numTensors ?? 0),
      numBytes: mem.numBytes + (this.live?.tensors.numBytes ?? 0),
      rssBytes: process.memoryUsage.rss(),
      framesProcessed: this.framesProcessed,
      framesDropped: this.queue.dropped,
      modelId: this.current?.id ?? null,
      backend: this.backendReport?.backend ?? 'none',
      ...(seq === undefined ? {} : { seq }),
    };
  }

  /** Resolves when nothing is computing or waiting. */
  async idle(): Promise<void> {
    await this.queue.idle();
    await this.topk.settled();
  }

  /** Refuse new work, let the running job finish, answer waiting ones with errors, unload the model. */
  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    this.queue.drain((work) => this.error(work.req, 'the engine is shutting down'));
    this.atlasBuilds.stopAll();
    await this.jobs?.dispose();
    await this.atlasBuilds.settled();
    await this.topk.dispose();
    await this.idle();
    await this.live?.terminate();
    this.current?.dispose();
    this.current = null;
    this.currentInfo = null;
    await this.userModels?.dispose().catch(() => {});
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

  /** One item of the frame queue: a frame or a load, its failure as an error reply. */
  private async runQueued(work: QueuedWork): Promise<Reply> {
    try {
      return work.kind === 'frame' ? await this.runFrame(work.req) : await this.runLoad(work.req, work.reload);
    } catch (e) {
      return this.error(work.req, work.kind === 'frame' ? `frame ${work.req.frameId}: ${oneLine(e)}` : oneLine(e));
    } finally {
      this.computingFrame = null;
    }
  }

  /** Build the model here from its files, and have every worker build it from the same bytes. */
  private async setModel(files: ModelFiles): Promise<void> {
    const m = modelFromFiles(files);
    // Jobs run the model they started with: stop them, and have the workers load the new one.
    await this.jobs?.cancelAll();
    this.jobs?.preload(m.id, m.chosenPreprocess, files, synthWarmups(m));
    // A synthesis is checked against the model's memory footprint before it queues: a job worker
    // measures it now, once (a full pass: on this thread it would stall every frame behind it).
    this.jobs?.footprint(m).catch((e: unknown) => this.log(`memory estimate of ${m.id}: ${oneLine(e)}`));
    // The switch is done when the live view can answer on the new model (its first frame does
    // not wait for the load, and stats count the live worker's tensors from the start).
    await this.live?.preload(m.id, m.chosenPreprocess, files);
    const old = this.current;
    this.current = m;
    this.currentInfo = modelInfo(m);
    this.startupError = null;
    if (old && old !== m) old.dispose();
    this.log(`model ${m.id} loaded (${m.layers.length} layers shown)`);
    this.emit('modelChange', this.currentInfo);
  }

  private async runLoad(req: Extract<Request, { type: 'loadModel' }>, reload = false): Promise<Reply> {
    if (this.current?.id === req.id && !reload) return { type: 'loadModel', model: this.currentInfo!, ...seqOf(req) };
    let files: ModelFiles;
    try {
      files = await readModelFiles(req.id, this.modelsDir, { preprocess: this.preprocessFor(req.id) });
      await this.setModel(files);
    } catch (e) {
      const why = oneLine(e);
      const keep = this.current ? `; still running ${this.current.id}` : '';
      // The engine's messages usually name the model already; make sure the reply does.
      const msg = why.includes(req.id) ? `${why}${keep}` : `model ${req.id} failed to load: ${why}${keep}`;
      this.log(msg);
      return this.error(req, msg);
    }
    return { type: 'loadModel', model: this.currentInfo!, ...seqOf(req) };
  }

  private async runFrame(req: FrameRequestT): Promise<Reply> {
    const model = this.current;
    if (!model) return this.error(req, `frame ${req.frameId}: no model is loaded${this.startupError ? ` (${this.startupError})` : ''}`);
    const live = this.live!;
    // What the host can check itself it checks before the frame leaves (the same messages).
    checkFrame(model, req);
    if (live.broken) throw new Error(live.broken);
    this.computingFrame = req.frameId;
    this.emit('frameStart', req.frameId);
    const tap = this.opts.topk?.session?.enabled !== false;
    const e = await this.liveFrame(live, model, req, tap);
    if (e.type === 'error') throw new Error(e.message);
    this.framesProcessed++;
    if (e.tap) this.remember(model, req, e.reply.layer, e.tap);
    return e.reply;
  }

  /**
   * One frame on the live worker. The pixels go as a copy of their own that is moved, not cloned
   * (the caller keeps its buffer: session memory reads it after the reply); every reply buffer
   * comes back moved.
   */
  private liveFrame(live: JobWorker, model: Model, req: FrameRequestT, tap: boolean): Promise<WorkerFrameEventT> {
    const rgba = req.rgba.slice();
    const jobId = `frame-${++this.liveFrames}`;
    const limit = this.opts.frameTimeoutMs ?? 60_000;
    return new Promise((resolve) => {
      const stuck = setTimeout(() => void live.kill(`did not answer frame ${req.frameId} within ${limit >= 1000 ? `${Math.round(limit / 1000)} s` : `${limit} ms`}`), limit);
      live.run({ type: 'frame', jobId, modelId: model.id, preprocess: model.chosenPreprocess, req: { ...req, rgba }, tap }, (e) => {
        if (e.type === 'frame' || e.type === 'error') clearTimeout(stuck);
        if (e.type === 'frame') resolve(e);
        // A trap ends the thread after this message: say so (an exit already says it).
        else if (e.type === 'error') resolve(e.fatal && !/restarted/.test(e.message) ? { ...e, message: `${e.message} — the ${live.name} was restarted` } : e);
      }, [rgba.buffer]);
    });
  }

  /** Offer the frame's activations to the session memory of top-k patches (topk-host.ts). */
  private remember(model: Model, req: FrameRequestT, layerName: string, tap: Float32Array): void {
    if (this.current !== model) return;
    this.topk.captureFrame(req, layerName, tap);
  }
}

/** Convenience for hosts: create a session (see EngineSession.create). */
export function createEngineSession(opts: EngineSessionOptions = {}): Promise<EngineSession> {
  return EngineSession.create(opts);
}
