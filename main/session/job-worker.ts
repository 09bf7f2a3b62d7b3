// The host's handle on one engine worker thread (engine-worker.ts), a job worker or the live
// worker: starts it, sends it one request (job or frame) at a time, routes its events back, and
// when the thread throws, traps or exits, ends that request with an error naming what happened
// and starts a fresh thread (which builds the model again from the bytes it was handed).
import { EventEmitter } from 'node:events';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { parseFromWorker, type LiveFrameT, type ToWorkerT, type WorkerEventT, type WorkerFootprintT, type WorkerInitT, type WorkerModelFilesT } from '../../contract/worker.js';
import { oneLine } from '../engine/errors.js';
import { relaxHeapGrowth } from './heap-growth.js';
import type { PreprocessName } from '../../contract/user-models.js';

/** Where the worker's code is: the TypeScript entry through tsx in development, the bundle in the app. */
function workerEntry(): { file: string | URL; entry?: string } {
  const here = fileURLToPath(import.meta.url);
  if (here.endsWith('.ts')) return { file: new URL('./worker-boot.mjs', import.meta.url), entry: pathToFileURL(join(dirname(here), 'engine-worker.ts')).href };
  // esbuild bundles this module into dist/main/electron-main.cjs; the worker is its sibling bundle.
  const bundled = join(dirname(here), 'engine-worker.cjs');
  if (!existsSync(bundled)) throw new Error(`the engine worker bundle ${bundled} is missing — run \`npm run build:electron\``);
  return { file: bundled };
}

export type JobMessage = Extract<ToWorkerT, { type: 'synth' | 'batch' | 'index' }>;

interface Current {
  jobId: string;
  onEvent: (e: WorkerEventT) => void;
}

export interface JobWorkerEvents {
  /** The thread died and a new one is starting (`why`: one line). */
  restart: [why: string];
  /** The worker finished its job and can take another. */
  free: [];
}

export class JobWorker extends EventEmitter<JobWorkerEvents> {
  private worker!: Worker;
  private current: Current | null = null;
  private modelId: string | null = null;
  private preprocess: PreprocessName | null = null;
  /** The bytes of the model it runs (a restarted thread gets them again instead of reading files). */
  private files: WorkerModelFilesT | null = null;
  private stopping = false;
  /** Why this worker cannot run jobs (its backend did not start), or null. */
  broken: string | null = null;
  /** Resolves with the backend name once the thread's backend started. */
  ready!: Promise<string>;
  /** What the thread runs, in one line (describeBackend), once it started. */
  description: string | null = null;
  /** The thread's tensors as it last reported them (after a model load or a frame). */
  tensors = { numTensors: 0, numBytes: 0 };
  /** Why the host ended the thread (kill(why)), for the message its request ends with. */
  private killedFor: string | null = null;
  /** Who waits for a model load to end, per model id. */
  private loadWaiters = new Map<string, (() => void)[]>();
  /** Who waits for a footprint measurement, per model id. */
  private footprintWaiters = new Map<string, { ok: (f: WorkerFootprintT) => void; fail: (e: Error) => void }[]>();
  restarts = 0;

  constructor(private readonly init: WorkerInitT) {
    super();
    this.spawn();
  }

  get name(): string {
    return this.init.name;
  }

  get busy(): boolean {
    return this.current !== null || this.broken !== null;
  }

  get jobId(): string | null {
    return this.current?.jobId ?? null;
  }

  /** The thread id (for tests and logs). */
  get threadId(): number {
    return this.worker.threadId;
  }

  private spawn(): void {
    const { file, entry } = workerEntry();
    relaxHeapGrowth();
    const w = new Worker(file, { workerData: { init: this.init, entry } });
    this.worker = w;
    let settle: { ok: (b: string) => void; fail: (e: Error) => void };
    this.ready = new Promise<string>((ok, fail) => (settle = { ok, fail }));
    this.ready.catch(() => {}); // a failed start is reported to the job that waits for it
    let lastError: string | null = null;
    let started = false;
    w.on('message', (raw: unknown) => {
      const parsed = parseFromWorker(raw);
      if (!parsed.ok) return;
      const m = parsed.msg;
      if (m.type === 'ready') {
        started = true;
        this.description = m.description;
        return settle.ok(m.backend);
      }
      if (m.type === 'fatal') {
        lastError = m.message;
        return settle.fail(new Error(m.message));
      }
      if (m.type === 'loaded' || m.type === 'loadFailed') {
        if (m.type === 'loaded' && m.tensors) this.tensors = m.tensors;
        const waiting = this.loadWaiters.get(m.modelId) ?? [];
        this.loadWaiters.delete(m.modelId);
        for (const done of waiting) done();
        return;
      }
      if (m.type === 'footprint' || m.type === 'footprintFailed') {
        const waiting = this.footprintWaiters.get(m.modelId) ?? [];
        this.footprintWaiters.delete(m.modelId);
        for (const w of waiting) if (m.type === 'footprint') w.ok(m.footprint);
        else w.fail(new Error(`memory estimate of ${m.modelId} on the ${this.init.name}: ${m.message}`));
        return;
      }
      if (m.type === 'frame') this.tensors = m.tensors;
      if (m.type === 'error' && m.fatal) lastError = m.message;
      const cur = this.current;
      if (!cur || m.jobId !== cur.jobId) return;
      const final = m.type !== 'progress';
      if (final) this.current = null;
      cur.onEvent(m);
      // Its engine is unusable and the thread is about to exit: replace it now, so the next
      // request goes to the new thread, not to one that is ending.
      if (final && m.type === 'error' && m.fatal) return this.replace(w, `stopped: ${m.message}`);
      if (final) this.emit('free');
    });
    w.on('error', (e) => {
      lastError = `${(e as Error).name ?? 'Error'}: ${oneLine(e)}`;
    });
    w.on('exit', (code) => {
      if (this.worker !== w) return;
      const why = this.killedFor ?? (lastError ? `stopped: ${lastError}` : `exited (code ${code})`);
      this.killedFor = null;
      settle.fail(new Error(`${this.init.name} ${why}`));
      if (this.stopping) return this.forgetThread();
      if (!started) {
        // Its backend never started: a new thread would fail the same way, so stop here.
        const cur = this.forgetThread();
        this.broken = `${this.init.name} could not start: ${lastError ?? `exited (code ${code})`}`;
        cur?.onEvent({ type: 'error', jobId: cur.jobId, message: this.broken, fatal: true });
        this.emit('restart', this.broken);
        this.emit('free');
        return;
      }
      this.replace(w, why);
    });
  }

  /** Drop what belonged to the thread that ended; returns the request it was running. */
  private forgetThread(): Current | null {
    this.tensors = { numTensors: 0, numBytes: 0 };
    // A load the thread will never answer: whoever waits for it goes on (a new thread loads again).
    const waiting = [...this.loadWaiters.values()].flat();
    this.loadWaiters.clear();
    for (const done of waiting) done();
    // A measurement it will never answer fails: the next job asks again (on the new thread).
    const measuring = [...this.footprintWaiters.values()].flat();
    this.footprintWaiters.clear();
    for (const w of measuring) w.fail(new Error(`the ${this.init.name} ended before it measured the model's memory`));
    const cur = this.current;
    this.current = null;
    return cur;
  }

  /** Replace thread `w` (it ended, or its engine trapped): its request errors saying why, a new thread loads the model. */
  private replace(w: Worker, why: string): void {
    if (this.worker !== w || this.stopping) return;
    const cur = this.forgetThread();
    cur?.onEvent({ type: 'error', jobId: cur.jobId, message: `the ${this.init.name} ${why} — it was restarted`, fatal: true });
    this.restarts++;
    this.spawn();
    if (this.modelId) void this.preload(this.modelId, this.preprocess, this.files?.id === this.modelId ? this.files : undefined);
    this.emit('restart', `${this.init.name} ${why}; restarted`);
    this.emit('free');
    void w.terminate(); // it was ending anyway; its exit is no longer this worker's
  }

  /**
   * Load this model in the background (jobs for it then start at once), from the host's bytes when
   * given: shared memory is not copied, so every worker decodes the one copy the host read.
   */
  preload(modelId: string, preprocess: PreprocessName | null = null, files?: WorkerModelFilesT): Promise<void> {
    this.modelId = modelId;
    this.preprocess = preprocess;
    this.files = files ?? null;
    const loaded = new Promise<void>((resolve) => {
      const list = this.loadWaiters.get(modelId) ?? [];
      list.push(resolve);
      this.loadWaiters.set(modelId, list);
    });
    this.worker.postMessage({ type: 'load', modelId, preprocess, ...(files ? { files } : {}) } satisfies ToWorkerT);
    return loaded;
  }

  /**
   * Measure a model's memory footprint on this thread's backend (loading the model first, as a job
   * would). Beside jobs, not one of them: it runs between a job's steps, or before the first.
   */
  footprint(modelId: string, preprocess: PreprocessName | null = null): Promise<WorkerFootprintT> {
    if (this.broken) return Promise.reject(new Error(this.broken));
    return new Promise<WorkerFootprintT>((ok, fail) => {
      const list = this.footprintWaiters.get(modelId) ?? [];
      list.push({ ok, fail });
      this.footprintWaiters.set(modelId, list);
      this.worker.postMessage({ type: 'footprint', modelId, preprocess } satisfies ToWorkerT);
    });
  }

  /**
   * Run a job or a live frame; its events (progress…, then one final: done / cancelled / error /
   * frame) go to onEvent. `transfer`: buffers that move to the worker instead of being copied.
   */
  run(job: JobMessage | LiveFrameT, onEvent: (e: WorkerEventT) => void, transfer: ArrayBuffer[] = []): void {
    if (this.current) throw new Error(`${this.init.name} is busy`);
    this.current = { jobId: job.jobId, onEvent };
    this.modelId = job.modelId;
    this.preprocess = job.preprocess ?? null;
    this.worker.postMessage(job satisfies ToWorkerT, transfer);
  }

  cancel(jobId: string): void {
    if (this.current?.jobId === jobId) this.worker.postMessage({ type: 'cancel', jobId } satisfies ToWorkerT);
  }

  /** Stop the thread for good (its job, if any, ends with an error). */
  async terminate(): Promise<void> {
    this.stopping = true;
    const cur = this.current;
    this.current = null;
    cur?.onEvent({ type: 'error', jobId: cur.jobId, message: 'the engine is shutting down', fatal: false });
    await this.worker.terminate();
  }

  /** Kill the thread as a crash would (tests; a stuck worker): the job errors and a new thread starts. */
  async kill(why?: string): Promise<void> {
    if (why) this.killedFor = why;
    await this.worker.terminate();
  }
}
