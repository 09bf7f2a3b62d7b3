// Messages between the engine host (main thread) and its engine workers (worker_threads): a worker
// owns one backend and one loaded model and answers job requests — the job workers synthesis and
// atlas batches, the live worker frames. Both sides validate what arrives (a worker that
// misbehaves must not corrupt the host's state). Pixel and tile buffers are transferred, weights
// shared; nothing here depends on which backend the worker runs.
import { z } from 'zod';
import { FrameReply, FrameRequest } from './messages.js';
import { SYNTH_LIMITS, SYNTH_PRESETS, STOP_REASONS, SynthFrameSchema, SynthImageSchema, SynthOverridesSchema } from './synthesis.js';
import { PREPROCESS_NAMES, PreprocessInfoSchema } from './user-models.js';

const Bytes = z.custom<Uint8Array>((v) => v instanceof Uint8Array, 'expected bytes');
const JobId = z.string().min(1).max(100);

/** What a worker is told when it starts (worker_threads workerData). */
export const WorkerInit = z.object({
  /** Backend to select (tensorflow-gpu, tensorflow, wasm, cpu, …); null: the first that starts. */
  backend: z.string().nullable(),
  modelsDir: z.string().min(1),
  /** A name for messages ("job worker 2"). */
  name: z.string().min(1).max(60),
  /** ONNX Runtime threads (the host's setting: workers read no environment); default 1. */
  ortThreads: z.union([z.number(), z.nan()]).optional(),
});
export type WorkerInitT = z.infer<typeof WorkerInit>;

/** A synthesis job: the same spec as the synthStart request (resolved again inside the worker). */
export const WorkerSynthSpec = z.object({
  layer: z.string().min(1).max(200),
  unit: z.union([z.number().int().min(0), z.string().min(1).max(200)]),
  preset: z.enum(SYNTH_PRESETS),
  overrides: SynthOverridesSchema.optional(),
  seeds: z.number().int().min(1).max(SYNTH_LIMITS.maxSeeds),
  seedBase: z.number().int().optional(),
  size: z.number().int().min(SYNTH_LIMITS.minSize).max(SYNTH_LIMITS.maxSize).optional(),
  iterations: z.number().int().min(1).max(SYNTH_LIMITS.maxIterations).optional(),
  previewEveryMs: z.number().min(0).optional(),
  frame: SynthFrameSchema.optional(),
});
export type WorkerSynthSpecT = z.infer<typeof WorkerSynthSpec>;

const Objective = z.union([
  z.object({ kind: z.literal('class'), index: z.number().int().min(0) }),
  z.object({ kind: z.literal('channel'), layer: z.string().min(1), channel: z.number().int().min(0) }),
]);

/** One batch of an atlas: one objective per item, one seed per item, settings already resolved. */
export const WorkerBatchSpec = z.object({
  objectives: z.array(Objective).min(1),
  seeds: z.array(z.number().int()).min(1),
  settings: z.record(z.string(), z.unknown()),
  size: z.tuple([z.number().int(), z.number().int()]),
});
export type WorkerBatchSpecT = z.infer<typeof WorkerBatchSpec>;

/** The input convention the user picked for the model (absent: its own): a job runs the model the window runs. */
const Preprocess = z.enum(PREPROCESS_NAMES).nullable().optional();

const FileStat = z.object({ path: z.string().min(1), size: z.number(), mtimeMs: z.number() });

const Floats = z.custom<Float32Array>((v) => v instanceof Float32Array, 'expected a Float32Array');
const Ints = z.custom<Int32Array>((v) => v instanceof Int32Array, 'expected an Int32Array');

/** A batch of a top-k index run: score these files into a fresh index of this k. */
export const WorkerIndexSpec = z.object({
  files: z.array(FileStat).min(1).max(1000),
  k: z.number().int().min(1).max(1000),
  /** Per displayed layer, what each unit's image must beat to be kept: the host index's thresholds when the batch was sent. */
  floors: z.array(z.object({ act: Floats, mean: Floats })).optional(),
});
export type WorkerIndexSpecT = z.infer<typeof WorkerIndexSpec>;

/** A scored batch: per displayed layer its [units × k] tables, and its files in id order. */
export const WorkerIndexShard = z.object({
  layers: z.array(z.object({ act: Floats, mean: Floats, image: Ints, pos: Ints })),
  files: z.array(FileStat.extend({ width: z.number().int(), height: z.number().int() })),
  unreadable: z.array(FileStat.extend({ error: z.string() })),
});

const WeightBytes = z.custom<ArrayBuffer | SharedArrayBuffer>(
  (v) => v instanceof ArrayBuffer || (typeof SharedArrayBuffer === 'function' && v instanceof SharedArrayBuffer),
  'expected the weight bytes as an ArrayBuffer or SharedArrayBuffer',
);

/**
 * A model's files as the host read and checked them (the engine's ModelFiles is this, with its
 * parsed descriptor): the worker builds its model from these instead of reading the folder again. The weights are one SharedArrayBuffer,
 * so every worker decodes the same memory.
 */
export const WorkerModelFiles = z.object({
  id: z.string().min(1),
  dir: z.string().min(1),
  checksum: z.string().min(1),
  descriptor: z.custom<object>((v) => !!v && typeof v === 'object', 'expected a model descriptor'),
  // Loose: a graph model's signature and metadata travel with it.
  modelJson: z.looseObject({ modelTopology: z.unknown(), weightsManifest: z.array(z.unknown()) }),
  classes: z.array(z.object({ index: z.number().int(), wnid: z.string().nullable(), name: z.string() })),
  weights: WeightBytes,
  preprocessInfo: PreprocessInfoSchema,
});

/**
 * A model's memory in one synthesis step of one image at its input size, as a job worker measured
 * it on its own backend (engine/memory-budget.ts): the host judges every job against it.
 */
export const WorkerFootprint = z.object({
  /** Bytes one image at the model's input size adds during a synthesis step. */
  perImage: z.number().positive(),
  /** Tensor bytes resident before the step (the model's weights and what else is loaded). */
  resident: z.number().min(0),
});
export type WorkerFootprintT = z.infer<typeof WorkerFootprint>;

/** A live frame: the frame request as the host validated it, and whether to return the raw tap. */
const LiveFrame = z.object({
  type: z.literal('frame'),
  jobId: JobId,
  modelId: z.string().min(1),
  preprocess: Preprocess,
  req: FrameRequest,
  /** Also return the layer's activations ([H,W,C] floats): the host's session memory reads them. */
  tap: z.boolean(),
});

export const ToWorker = z.discriminatedUnion('type', [
  /** Load (or keep) this model now, so the first job does not wait for it; from these files when given. */
  z.object({ type: z.literal('load'), modelId: z.string().min(1), preprocess: Preprocess, files: WorkerModelFiles.optional() }),
  /** Measure the model's memory footprint (after loading it, as a job would); answered `footprint` or `footprintFailed`. */
  z.object({ type: z.literal('footprint'), modelId: z.string().min(1), preprocess: Preprocess }),
  LiveFrame,
  z.object({ type: z.literal('synth'), jobId: JobId, modelId: z.string().min(1), preprocess: Preprocess, spec: WorkerSynthSpec }),
  z.object({ type: z.literal('batch'), jobId: JobId, modelId: z.string().min(1), preprocess: Preprocess, spec: WorkerBatchSpec }),
  z.object({ type: z.literal('index'), jobId: JobId, modelId: z.string().min(1), preprocess: Preprocess, spec: WorkerIndexSpec }),
  /** Stop the job at its next step (it answers `cancelled`). */
  z.object({ type: z.literal('cancel'), jobId: JobId }),
]);
export type ToWorkerT = z.infer<typeof ToWorker>;

const Progress = z.object({
  iteration: z.number().int(),
  iterations: z.number().int(),
  objective: z.array(z.number()),
  targetProb: z.array(z.number()).nullable(),
  recognised: z.boolean(),
  elapsedMs: z.number(),
  preview: z.object({ width: z.number().int(), height: z.number().int(), images: z.array(Bytes) }).optional(),
});

/** A result image as the engine makes it: bytes of any buffer, the curve a plain array. */
const Image = SynthImageSchema.extend({ rgb: Bytes, curve: z.array(z.number()) });

export const WorkerResult = z.object({
  images: z.array(Image),
  iterations: z.number().int(),
  seconds: z.number(),
  secondsToTarget: z.number().nullable(),
  cancelled: z.boolean(),
  stopReason: z.enum(STOP_REASONS),
});
export type WorkerResultT = z.infer<typeof WorkerResult>;

export const FromWorker = z.discriminatedUnion('type', [
  /** The backend started (once, before anything else). */
  z.object({ type: z.literal('ready'), backend: z.string(), description: z.string() }),
  /** The backend could not start: the worker exits after this. */
  z.object({ type: z.literal('fatal'), message: z.string() }),
  /** The model is built; `tensors`: the worker's tensors then (the host's stats show them). */
  z.object({ type: z.literal('loaded'), modelId: z.string(), tensors: z.object({ numTensors: z.number().int(), numBytes: z.number() }).optional() }),
  z.object({ type: z.literal('loadFailed'), modelId: z.string(), message: z.string() }),
  z.object({ type: z.literal('footprint'), modelId: z.string(), footprint: WorkerFootprint }),
  z.object({ type: z.literal('footprintFailed'), modelId: z.string(), message: z.string() }),
  z.object({ type: z.literal('progress'), jobId: JobId, progress: Progress }),
  z.object({ type: z.literal('done'), jobId: JobId, result: WorkerResult }),
  z.object({ type: z.literal('cancelled'), jobId: JobId }),
  /** An index batch's result (its job's last message, as done is a synthesis's). */
  z.object({ type: z.literal('indexDone'), jobId: JobId, shard: WorkerIndexShard }),
  /** The job failed; `fatal`: the worker's engine is unusable (a wasm trap) and the worker exits. */
  z.object({ type: z.literal('error'), jobId: JobId, message: z.string(), fatal: z.boolean() }),
  /** A live frame's reply (the contract's frame reply, as the renderer gets it). */
  z.object({
    type: z.literal('frame'),
    jobId: JobId,
    reply: FrameReply,
    /** The layer's activations [H,W,C] when asked for. */
    tap: z.instanceof(Float32Array).nullable(),
    /** The worker's tensors after the frame (the host's stats show them: a leak shows there). */
    tensors: z.object({ numTensors: z.number().int(), numBytes: z.number() }),
  }),
]);
export type FromWorkerT = z.infer<typeof FromWorker>;
/** Everything a worker sends about one request (job or frame). */
export type WorkerEventT = Extract<FromWorkerT, { jobId: string }>;
/** The messages that belong to one job. */
export type WorkerJobEventT = Exclude<WorkerEventT, { type: 'frame' }>;
/** A live frame's outcome: its reply, or an error. */
export type WorkerFrameEventT = Extract<WorkerEventT, { type: 'frame' | 'error' }>;
export type WorkerModelFilesT = z.infer<typeof WorkerModelFiles>;
export type LiveFrameT = z.infer<typeof LiveFrame>;

function issues(e: z.ZodError): string {
  return e.issues.map((i) => `${i.path.join('.') || '(message)'}: ${i.message}`).join('; ');
}

export function parseToWorker(v: unknown): { ok: true; msg: ToWorkerT } | { ok: false; error: string } {
  const r = ToWorker.safeParse(v);
  return r.success ? { ok: true, msg: r.data } : { ok: false, error: issues(r.error) };
}

export function parseFromWorker(v: unknown): { ok: true; msg: FromWorkerT } | { ok: false; error: string } {
  const r = FromWorker.safeParse(v);
  return r.success ? { ok: true, msg: r.data } : { ok: false, error: issues(r.error) };
}
