// The job pool and its scheduler: long work (synthesis, atlas batches) runs on job workers, each
// its own thread with its own backend and model, so the live view never waits behind it. Jobs
// queue per client and are served round-robin across clients; a job belongs to the client that
// started it (an unguessable id, and only that client may cancel it). A worker that dies is
// replaced (job-worker.ts) and its job ends with an error that says what happened.
import { randomUUID } from 'node:crypto';
import os from 'node:os';
import type { WorkerBatchSpecT, WorkerFootprintT, WorkerJobEventT, WorkerModelFilesT } from '../../contract/worker.js';
import type { Model } from '../engine/model.js';
import type { SynthProgress, SynthResult } from '../engine/synthesis/run.js';
import type { BatchScorer } from '../engine/topk/batches.js';
import type { IndexShard } from '../engine/topk/indexer.js';
import { JobWorker, type JobMessage } from './job-worker.js';
import type { PreprocessName } from '../../contract/user-models.js';

/**
 * Number of job workers: as requested (the hosts' --workers, else DEEPVIS_WORKERS: the one
 * setting), else one per core — but one fewer where a live worker runs beside the pool (the
 * window, web mode), which takes that core. The CLI's batch commands have no live view: their pool
 * takes every core (on two cores a 32-unit atlas took 11–12 s instead of 17–18 s). At least 1.
 */
export function poolSize(requested?: number | null, opts: { liveWorker: boolean; cores?: number } = { liveWorker: true }): number {
  const n = requested ?? (opts.cores ?? os.availableParallelism()) - (opts.liveWorker ? 1 : 0);
  return Math.max(1, Math.floor(n));
}

/**
 * The backend job workers run for a host that chose `choice`. A GPU has one context the live
 * worker owns, so the live view keeps priority: jobs run ONNX Runtime on the CPU instead (it ships
 * with every install) and never queue behind frames on the GPU, nor frames behind them.
 */
export function jobBackend(choice: string | null): string | null {
  if (choice === 'onnx-cuda' || choice === 'onnx-coreml' || choice === 'onnx-directml' || choice === 'onnx-webgpu' || choice === 'tensorflow-gpu') return 'onnx';
  return choice;
}

export interface SchedulerOptions {
  backend: string | null;
  modelsDir: string;
  /** Job workers (default poolSize()). */
  workers?: number | null;
  /** ONNX Runtime threads per worker (the host's DEEPVIS_ORT_THREADS; default 1). */
  ortThreads?: number | null;
  log?: (line: string) => void;
  /** A worker died and was restarted (one line, for the window's notice). */
  onRestart?: (why: string) => void;
}

interface QueuedJob {
  id: string;
  client: string;
  message: JobMessage;
  onEvent: (e: WorkerJobEventT) => void;
  worker: JobWorker | null;
  done: Promise<void>;
  finish: () => void;
}

export type CancelOutcome = 'cancelled' | 'unknown' | 'not-owner';

export class JobScheduler {
  readonly workers: JobWorker[];
  private readonly queues = new Map<string, QueuedJob[]>();
  /** Clients in the order they are served; the one served last moves to the back. */
  private readonly rotation: string[] = [];
  private readonly jobs = new Map<string, QueuedJob>();
  /** Warm-up runs still to do per worker (preload's `warm`), and the one each is running. */
  private readonly warmups = new Map<JobWorker, JobMessage[]>();
  private readonly warming = new Map<JobWorker, string>();
  /** Memory footprints measured on a worker, per model's weights (the pool runs one backend). */
  private readonly footprints = new Map<string, Promise<WorkerFootprintT>>();
  private disposed = false;

  constructor(private readonly opts: SchedulerOptions) {
    const n = poolSize(opts.workers);
    this.workers = Array.from({ length: n }, (_, i) => new JobWorker({ backend: opts.backend, modelsDir: opts.modelsDir, name: `job worker ${i + 1}`, ...(opts.ortThreads != null ? { ortThreads: opts.ortThreads } : {}) }));
    for (const w of this.workers) {
      w.on('free', () => this.pump());
      w.on('restart', (why) => {
        opts.log?.(why);
        opts.onRestart?.(why);
      });
    }
  }

  /**
   * Have every worker load this model now (a job then does not wait for the load), from the
   * host's bytes when given (shared, not copied per worker), else from the models folder.
   * `warm`: jobs each worker then runs while it has nothing else to do, their results dropped —
   * a model's first synthesis on a layer otherwise pays for what a thread builds once (ONNX
   * Runtime's session for that gradient graph, the backend's kernels), seconds after the user
   * asked for it. A real job cancels a warm-up at its next step; what that step built stays.
   */
  preload(modelId: string, preprocess: PreprocessName | null = null, files?: WorkerModelFilesT, warm: readonly Omit<JobMessage, 'jobId'>[] = []): void {
    this.cancelWarmups();
    for (const w of this.workers) {
      void w.preload(modelId, preprocess, files);
      if (warm.length) this.warmups.set(w, warm.map((m) => ({ ...m, jobId: `warm-${randomUUID()}` }) as JobMessage));
    }
    if (warm.length) setImmediate(() => this.pump());
  }

  /**
   * The model's memory footprint (engine/memory-budget.ts), measured once per model's weights on
   * one of the workers — the backend its jobs run on —, never in the caller's thread. A reload of
   * the same weights (another input convention) shares it; a failed measurement is not kept.
   */
  footprint(model: Pick<Model, 'id' | 'checksum' | 'chosenPreprocess'>): Promise<WorkerFootprintT> {
    const key = `${model.checksum}|${model.id}`;
    let known = this.footprints.get(key);
    if (!known) {
      // A free worker answers sooner; a busy one measures between its job's steps.
      const w = this.workers.find((x) => !x.busy) ?? this.workers.find((x) => !x.broken) ?? this.workers[0]!;
      const asked = w.footprint(model.id, model.chosenPreprocess);
      asked.catch(() => {
        if (this.footprints.get(key) === asked) this.footprints.delete(key);
      });
      this.footprints.set(key, (known = asked));
    }
    return known;
  }

  /** Warm-ups not run yet are dropped, running ones stop at their next step. */
  private cancelWarmups(): void {
    this.warmups.clear();
    for (const [w, id] of this.warming) w.cancel(id);
  }

  /** Whether a worker is still warming up (tests; a warm-up's end shows as the worker's `free`). */
  get warmingUp(): boolean {
    return this.warming.size > 0 || [...this.warmups.values()].some((q) => q.length > 0);
  }

  /**
   * Queue a job for `client`; returns its id (random, unguessable) at once. Events arrive through
   * onEvent on a later turn; the last is one of done / cancelled / error.
   */
  submit(client: string, message: Omit<JobMessage, 'jobId'>, onEvent: (e: WorkerJobEventT) => void): string {
    if (this.disposed) throw new Error('the engine is shutting down');
    const id = randomUUID();
    let finish!: () => void;
    const done = new Promise<void>((r) => (finish = r));
    const job: QueuedJob = { id, client, message: { ...message, jobId: id } as JobMessage, onEvent, worker: null, done, finish };
    this.jobs.set(id, job);
    let q = this.queues.get(client);
    if (!q) this.queues.set(client, (q = []));
    q.push(job);
    if (!this.rotation.includes(client)) this.rotation.push(client);
    setImmediate(() => this.pump());
    return id;
  }

  /** Whether a job submitted now would start at once: a worker is free and nothing waits. */
  get canStartNow(): boolean {
    return this.queues.size === 0 && this.workers.some((w) => !w.busy);
  }

  /** Who owns a job (null: no such job). */
  owner(jobId: string): string | null {
    return this.jobs.get(jobId)?.client ?? null;
  }

  /** The worker running a job (null: queued or unknown). */
  workerOf(jobId: string): JobWorker | null {
    return this.jobs.get(jobId)?.worker ?? null;
  }

  /** Cancel a job on behalf of `client`: only its owner may. A running job stops at its next step. */
  cancel(client: string, jobId: string): CancelOutcome {
    const job = this.jobs.get(jobId);
    if (!job) return 'unknown';
    if (job.client !== client) return 'not-owner';
    this.stop(job);
    return 'cancelled';
  }

  private stop(job: QueuedJob): void {
    if (job.worker) return job.worker.cancel(job.id);
    const q = this.queues.get(job.client);
    const i = q?.indexOf(job) ?? -1;
    if (i >= 0) q!.splice(i, 1);
    this.end(job, { type: 'cancelled', jobId: job.id });
  }

  /** Cancel every job of a client (it went away, or started a job that replaces them). */
  cancelClient(client: string): void {
    for (const job of [...this.jobs.values()]) if (job.client === client) this.stop(job);
  }

  /** Cancel everything and wait until every job has ended. */
  async cancelAll(): Promise<void> {
    this.cancelWarmups();
    const all = [...this.jobs.values()];
    for (const job of all) this.stop(job);
    await Promise.all(all.map((j) => j.done));
  }

  get active(): number {
    return this.jobs.size;
  }

  /** Workers running a job (or a warm-up) now: what takes their cores. */
  get running(): number {
    return this.workers.filter((w) => w.jobId !== null).length;
  }

  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    await this.cancelAll();
    await Promise.all(this.workers.map((w) => w.terminate()));
  }

  private end(job: QueuedJob, e: WorkerJobEventT): void {
    if (!this.jobs.delete(job.id)) return;
    try {
      job.onEvent(e);
    } finally {
      job.finish();
    }
  }

  /** The next job, round-robin across clients: the first client in rotation with work moves to the back. */
  private next(): QueuedJob | null {
    for (let i = 0; i < this.rotation.length; i++) {
      const client = this.rotation[i]!;
      const q = this.queues.get(client);
      if (!q?.length) continue;
      this.rotation.splice(i, 1);
      this.rotation.push(client);
      const job = q.shift()!;
      if (!q.length) this.queues.delete(client);
      return job;
    }
    return null;
  }

  private pump(): void {
    if (this.disposed) return;
    const broken = this.workers.find((w) => w.broken)?.broken;
    if (broken && this.workers.every((w) => w.broken)) {
      // No worker can run anything: end what waits instead of letting it wait for ever.
      for (let job = this.next(); job; job = this.next()) this.end(job, { type: 'error', jobId: job.id, message: broken, fatal: true });
      return;
    }
    for (const w of this.workers) {
      if (w.busy) continue;
      const job = this.next();
      if (!job) {
        this.warmUp(w);
        continue;
      }
      job.worker = w;
      w.run(job.message, (e) => {
        if (e.type === 'frame') return; // job workers run no frames
        if (e.type === 'progress') {
          if (this.jobs.has(job.id)) job.onEvent(e);
          return;
        }
        this.end(job, e);
      });
    }
    // Clients with nothing queued leave the rotation (it stays as long as the set of clients).
    for (let i = this.rotation.length - 1; i >= 0; i--) if (!this.queues.has(this.rotation[i]!)) this.rotation.splice(i, 1);
    // A job waits while a worker warms up: the warm-up gives way at its next step.
    if (this.queues.size) for (const [w, id] of this.warming) w.cancel(id);
  }

  /** Run the worker's next warm-up, if it has one; its events go nowhere, its end frees the worker. */
  private warmUp(w: JobWorker): void {
    const m = this.warmups.get(w)?.shift();
    if (!m) return;
    if (!this.warmups.get(w)!.length) this.warmups.delete(w);
    this.warming.set(w, m.jobId);
    w.run(m, (e) => {
      if (e.type === 'progress' || e.type === 'frame') return;
      if (this.warming.get(w) === m.jobId) this.warming.delete(w);
      if (e.type === 'error' && !this.disposed) this.opts.log?.(`${w.name}: warming up for ${m.modelId} failed: ${e.message}`);
    });
  }
}

/**
 * Run synthesis batches (an atlas's) on the pool: the same signature as synthesising in this
 * thread, so a caller hands batches to as many workers as the pool has.
 */
export function poolBatchRunner(pool: JobScheduler, client: string, modelId: string, preprocess: PreprocessName | null = null) {
  return (batch: Omit<WorkerBatchSpecT, 'settings'> & { settings: object }, signal: AbortSignal | undefined, onProgress: (p: SynthProgress) => void): Promise<SynthResult> =>
    new Promise<SynthResult>((resolve, reject) => {
      const spec: WorkerBatchSpecT = { ...batch, settings: { ...batch.settings } };
      const id = pool.submit(client, { type: 'batch', modelId, preprocess, spec }, (e) => {
        if (e.type === 'progress') onProgress(e.progress);
        else if (e.type === 'done') resolve(e.result);
        else if (e.type === 'cancelled') resolve({ images: [], iterations: 0, seconds: 0, secondsToTarget: null, cancelled: true, stopReason: 'cancelled' });
        else reject(new Error(e.type === 'error' ? e.message : `the worker answered an atlas batch with ${e.type}`));
      });
      signal?.addEventListener('abort', () => pool.cancel(client, id), { once: true });
    });
}

/**
 * Score top-k index batches on the pool (deepvis index --workers): the BatchScorer of
 * engine/topk/batches.ts, one job per batch; a cancelled batch answers null.
 */
export function poolIndexScorer(pool: JobScheduler, client: string, modelId: string, preprocess: PreprocessName | null = null): BatchScorer {
  return (files, k, signal, floors) =>
    new Promise<IndexShard | null>((resolve, reject) => {
      const id = pool.submit(client, { type: 'index', modelId, preprocess, spec: { files: files.map((f) => ({ path: f.path, size: f.size, mtimeMs: f.mtimeMs })), k, floors } }, (e) => {
        if (e.type === 'indexDone') resolve(e.shard);
        else if (e.type === 'cancelled') resolve(null);
        else if (e.type === 'error') reject(new Error(e.message));
      });
      signal.addEventListener('abort', () => pool.cancel(client, id), { once: true });
    });
}
