// An engine worker (a worker_threads thread): it selects its own backend (the host's --backend
// choice), keeps one loaded model (built from the bytes the host read, when it sent them) and runs
// one request at a time — on a job worker a synthesis or one atlas batch, on the live worker a
// frame (live-frame.ts) — posting progress, the result, or an error. Every wasm kernel and ONNX Runtime's session.run()
// block their thread; here they block only this worker, never the host's event loop.
// Cancellation is a message: the job's loop yields to the event loop after every step, so it is
// seen within one step.
import { parentPort, workerData } from 'node:worker_threads';
import * as tf from '@tensorflow/tfjs-core';
import { parseToWorker, WorkerInit, type FromWorkerT, type ToWorkerT, type WorkerModelFilesT } from '../../contract/worker.js';
import { describeBackend, loadModel, modelFilesFrom, modelFromFiles, selectBackend, type Model } from '../engine/index.js';
import { computeFrame, frameBuffers } from './live-frame.js';
import { oneLine } from '../engine/errors.js';
import { SynthSettingsSchema, synthesize, type SynthResult } from '../engine/synthesis/index.js';
import { prepareSynthJob, runSynthJob } from '../engine/synthesis/jobs.js';
import type { UnitObjective } from '../engine/objectives.js';
import type { PreprocessName } from '../../contract/user-models.js';
import { scoreFiles } from '../engine/topk/batches.js';
import { measureFootprint } from '../engine/memory-budget.js';

/** Errors after which a wasm (or native) engine cannot be trusted: the worker exits and is replaced. */
const ENGINE_TRAP = /RuntimeError|memory access out of bounds|unreachable|out of memory|Aborted\(|Array buffer allocation failed/i;

const port = parentPort;
if (!port) throw new Error('engine-worker.ts runs only as a worker thread');
const init = WorkerInit.parse((workerData as { init: unknown }).init);

/** Buffers that belong to these bytes alone move to the host instead of being copied. */
function movable(arrays: ArrayBufferView[]): ArrayBuffer[] {
  return [...new Set(arrays.filter((a) => a.byteOffset === 0 && a.byteLength === a.buffer.byteLength && a.buffer instanceof ArrayBuffer).map((a) => a.buffer as ArrayBuffer))];
}

const post = (m: FromWorkerT, transfer?: ArrayBuffer[]) => {
  const bytes: ArrayBufferView[] =
    m.type === 'progress' ? (m.progress.preview?.images ?? []) : m.type === 'done' ? m.result.images.map((im) => im.rgb) : m.type === 'indexDone' ? m.shard.layers.flatMap((l) => [l.act, l.mean, l.image, l.pos]) : [];
  port.postMessage(m, transfer ?? movable(bytes));
};

let model: Model | null = null;
let loading: Promise<Model> | null = null;
let loadedPreprocess: PreprocessName | null = null;
const aborts = new Map<string, AbortController>();
/** The files the host handed over for the model it runs (one model: the host runs one at a time). */
let handed: WorkerModelFilesT | null = null;
/**
 * Requests still running on a model. A model switch loads the new model at once, but a job (or
 * a cancelled warm-up finishing its step) keeps the model it started on; that model is disposed
 * when its last request ends, not under it.
 */
const inUse = new Map<Model, number>();

function retire(m: Model | null): void {
  if (m && !inUse.has(m)) m.dispose();
}

/** Run `fn` on the model `id`, which stays loaded until `fn` ends even if another is loaded meanwhile. */
async function withModel<T>(id: string, preprocess: PreprocessName | null, fn: (m: Model) => Promise<T>): Promise<T> {
  const m = await modelFor(id, preprocess);
  inUse.set(m, (inUse.get(m) ?? 0) + 1);
  try {
    return await fn(m);
  } finally {
    const n = inUse.get(m)! - 1;
    if (n > 0) inUse.set(m, n);
    else {
      inUse.delete(m);
      if (m !== model) m.dispose();
    }
  }
}

async function modelFor(id: string, preprocess: PreprocessName | null = null): Promise<Model> {
  // Loads are serialised: a job and a preload of the same model share one load.
  while (loading) await loading.catch(() => {});
  if (model?.id === id && loadedPreprocess === preprocess) return model;
  loading = (async () => {
    const old = model;
    model = null;
    retire(old);
    // The host's bytes when it sent them for this model and convention (read and checked once
    // there); otherwise (the CLI's pool, another convention) the worker reads the folder itself.
    const h = handed?.id === id && (handed.preprocessInfo.chosen ? handed.preprocessInfo.preset : null) === preprocess ? handed : null;
    model = h ? modelFromFiles(modelFilesFrom(h)) : await loadModel(id, init.modelsDir, { preprocess });
    loadedPreprocess = preprocess;
    return model;
  })();
  try {
    return await loading;
  } finally {
    loading = null;
  }
}

/** Result without the class-specific fields a structured clone would carry as undefined. */
function plain(r: SynthResult): SynthResult {
  return { ...r, images: r.images.map((im) => ({ ...im, curve: [...im.curve] })) };
}

async function runJob(msg: Extract<ToWorkerT, { type: 'synth' | 'batch' | 'index' }>): Promise<void> {
  const abort = new AbortController();
  aborts.set(msg.jobId, abort);
  try {
    await withModel(msg.modelId, msg.preprocess ?? null, (m) => job(m, msg, abort.signal));
  } catch (e) {
    fail(msg.jobId, e);
  } finally {
    aborts.delete(msg.jobId);
  }
}

/**
 * A batch (an atlas's units, its steps ~10 ms apart) reports for a progress bar: at most ten times
 * a second, which halved the host thread's CPU in a two-worker atlas (each message is validated
 * on arrival). Its end is the done message.
 */
const BATCH_PROGRESS_MS = 100;

function atMostEvery<T>(ms: number, f: (v: T) => void): (v: T) => void {
  let last = -Infinity;
  return (v) => {
    const now = performance.now();
    if (now - last < ms) return;
    last = now;
    f(v);
  };
}

async function job(m: Model, msg: Extract<ToWorkerT, { type: 'synth' | 'batch' | 'index' }>, signal: AbortSignal): Promise<void> {
  if (msg.type === 'index') {
    const shard = await scoreFiles(m, msg.spec.files, msg.spec.k, signal, msg.spec.floors);
    post(shard ? { type: 'indexDone', jobId: msg.jobId, shard } : { type: 'cancelled', jobId: msg.jobId });
    return;
  }
  const onProgress = (progress: Parameters<NonNullable<Parameters<typeof synthesize>[0]['onProgress']>>[0]) => post({ type: 'progress', jobId: msg.jobId, progress });
  let result: SynthResult;
  if (msg.type === 'synth') {
    const prepared = prepareSynthJob(m, msg.spec);
    result = await runSynthJob(m, msg.spec, prepared, signal, onProgress);
  } else {
    const s = msg.spec;
    result = await synthesize({
      model: m,
      objective: s.objectives as UnitObjective[],
      settings: SynthSettingsSchema.parse(s.settings),
      seeds: s.seeds,
      size: s.size,
      signal,
      previewEveryMs: 0,
      onProgress: atMostEvery(BATCH_PROGRESS_MS, onProgress),
    });
  }
  if (result.cancelled) post({ type: 'cancelled', jobId: msg.jobId });
  else post({ type: 'done', jobId: msg.jobId, result: plain(result) });
}

/** A live frame: its reply (buffers moved, not copied) or an error naming what failed. */
async function runFrame(msg: Extract<ToWorkerT, { type: 'frame' }>): Promise<void> {
  try {
    const r = await withModel(msg.modelId, msg.preprocess ?? null, (m) => computeFrame(m, msg.req, { tap: msg.tap }));
    const mem = tf.memory();
    post({ type: 'frame', jobId: msg.jobId, reply: r.reply, tap: r.tap, tensors: { numTensors: mem.numTensors, numBytes: mem.numBytes } }, frameBuffers(r));
  } catch (e) {
    fail(msg.jobId, e);
  }
}

/** Report a failed request; after an engine trap the thread ends (the host starts a new one). */
function fail(jobId: string, e: unknown): void {
  // A wasm trap's message alone ("unreachable") does not say it was a trap: keep its name.
  const name = (e as Error)?.name;
  const message = name === 'RuntimeError' ? `RuntimeError: ${oneLine(e)}` : oneLine(e);
  const fatal = ENGINE_TRAP.test(message);
  post({ type: 'error', jobId, message, fatal });
  // The engine's memory may be corrupt after a trap: end the thread; the host starts a new one.
  if (fatal) setImmediate(() => process.exit(70));
}

async function main(): Promise<void> {
  try {
    const report = await selectBackend(init.backend, { ortThreads: init.ortThreads });
    post({ type: 'ready', backend: report.backend, description: describeBackend(report) });
  } catch (e) {
    post({ type: 'fatal', message: `${init.name}: ${oneLine(e)}` });
    process.exit(1);
  }
  port!.on('message', (raw: unknown) => {
    const parsed = parseToWorker(raw);
    if (!parsed.ok) return; // the host sends only valid messages; anything else is ignored
    const msg = parsed.msg;
    switch (msg.type) {
      case 'load':
        if (msg.files) handed = msg.files;
        modelFor(msg.modelId, msg.preprocess ?? null).then(
          () => {
            const mem = tf.memory();
            post({ type: 'loaded', modelId: msg.modelId, tensors: { numTensors: mem.numTensors, numBytes: mem.numBytes } });
          },
          (e: unknown) => post({ type: 'loadFailed', modelId: msg.modelId, message: oneLine(e) }),
        );
        return;
      case 'footprint':
        withModel(msg.modelId, msg.preprocess ?? null, async (m) => measureFootprint(m)).then(
            (footprint) => post({ type: 'footprint', modelId: msg.modelId, footprint }),
            (e: unknown) => {
              const message = oneLine(e);
              post({ type: 'footprintFailed', modelId: msg.modelId, message });
              // As after a job's trap: this engine cannot be trusted any more.
              if (ENGINE_TRAP.test(message)) setImmediate(() => process.exit(70));
            },
          );
        return;
      case 'cancel':
        aborts.get(msg.jobId)?.abort();
        return;
      case 'synth':
      case 'batch':
      case 'index':
        void runJob(msg);
        return;
      case 'frame':
        void runFrame(msg);
        return;
    }
  });
}

void main();
