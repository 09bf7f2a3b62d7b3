// A user's own model opened in the window, and the input convention chosen for it. Used by
// contract/messages.ts.
//  - Web mode: the browser uploads the folder's files (a folder input or a drop) in chunks over
//    the WebSocket: start (names and sizes, checked before a byte is sent), chunks, finish.
//  - Desktop app: the window asks Electron main to open a folder (a dialog, or the path of a
//    dropped folder); main reads it from disk.
// Either way the host copies only a model folder's own kinds of file into a per-run user models
// folder and lists the model; a refused folder's reply says which file and what to do.
import { z } from 'zod';

const Seq = z.number().int().nonnegative().optional();
const Bytes = z.instanceof(Uint8Array);
const UploadId = z.string().min(1).max(100);

/** The input conventions a window may pick for a model without a descriptor (engine: model-infer.ts). */
export const PREPROCESS_NAMES = ['0-1', '-1-1', 'caffe', 'raw'] as const;
export type PreprocessName = (typeof PREPROCESS_NAMES)[number];
/** Short names (a toolbar select) and what each does. */
export const PREPROCESS_LABELS: Record<PreprocessName, { short: string; long: string }> = {
  '0-1': { short: '0…1', long: 'pixel / 255 (0…1): most models trained from tutorials' },
  '-1-1': { short: '−1…1', long: 'pixel / 127.5 − 1 (−1…1): Keras MobileNet, Inception, Xception' },
  caffe: { short: 'Caffe BGR', long: 'BGR minus the ImageNet mean (Caffe): Keras VGG, ResNet50' },
  raw: { short: '0…255', long: 'raw pixels (0…255): models that rescale their own input' },
};

/** How the loaded model maps pixels to its input, and whether the window may change it. */
export const PreprocessInfoSchema = z.object({
  /** The convention in use; null: the descriptor's own numbers, none of the named ones. */
  preset: z.enum(PREPROCESS_NAMES).nullable(),
  /** Only a model without deepvis.json may be switched (a descriptor says what the model wants). */
  selectable: z.boolean(),
  /** The user picked it (remembered per model), rather than it being inferred. */
  chosen: z.boolean(),
});
export type PreprocessInfo = z.infer<typeof PreprocessInfoSchema>;

/** Pick (or with 'auto', forget) the input convention of a model; the host remembers it per model. */
export const SetPreprocessRequest = z.object({
  type: z.literal('setPreprocess'),
  model: z.string().min(1).max(200),
  preset: z.union([z.enum(PREPROCESS_NAMES), z.literal('auto')]),
  seq: Seq,
});

export const PreprocessSetReply = z.object({ type: z.literal('preprocessSet'), model: z.string(), preprocess: PreprocessInfoSchema, seq: Seq });

// ---------------------------------------------------------------- what a model folder may hold

/** Limits of one folder: file count, each file (model.json and weight shards as the engine reads them), the whole. */
export const UPLOAD_LIMITS = {
  maxFiles: 64,
  maxModelJsonBytes: 64 << 20,
  maxShardBytes: 512 << 20,
  maxSmallFileBytes: 1 << 20,
  maxTotalBytes: 1 << 30,
  /** Bytes per chunk message: well under web mode's message limit. */
  chunkBytes: 1 << 20,
} as const;

export type ModelFileKind = 'modelJson' | 'weights' | 'classes' | 'descriptor';

/** The kind of a file a model folder may hold, by its name; null for anything else. */
export function modelFileKind(name: string): ModelFileKind | null {
  if (name === 'model.json') return 'modelJson';
  if (name === 'labels.txt' || name === 'classes.json') return 'classes';
  if (name === 'deepvis.json') return 'descriptor';
  if (/^[A-Za-z0-9][A-Za-z0-9._-]*\.bin$/.test(name) || /^group\d+-shard\d+of\d+(\.bin)?$/.test(name)) return 'weights';
  return null;
}

export function modelFileCap(kind: ModelFileKind): number {
  return kind === 'modelJson' ? UPLOAD_LIMITS.maxModelJsonBytes : kind === 'weights' ? UPLOAD_LIMITS.maxShardBytes : UPLOAD_LIMITS.maxSmallFileBytes;
}

const FileName = z.string().min(1).max(255);

// ---------------------------------------------------------------- web mode: upload

export const ModelUploadStartRequest = z.object({
  type: z.literal('modelUploadStart'),
  /** The folder's name (the model's id when it has no descriptor). */
  folder: z.string().min(1).max(100),
  files: z.array(z.object({ name: FileName, size: z.number().int().nonnegative() })).min(1).max(UPLOAD_LIMITS.maxFiles),
  seq: Seq,
});
export type ModelUploadStartRequestT = z.infer<typeof ModelUploadStartRequest>;

export const ModelUploadChunkRequest = z.object({
  type: z.literal('modelUploadChunk'),
  uploadId: UploadId,
  name: FileName,
  offset: z.number().int().nonnegative(),
  bytes: Bytes.refine((b) => b.length <= UPLOAD_LIMITS.chunkBytes, `at most ${UPLOAD_LIMITS.chunkBytes} bytes per chunk`),
  seq: Seq,
});

/** All files sent: check the folder as a model and list it. */
export const ModelUploadFinishRequest = z.object({ type: z.literal('modelUploadFinish'), uploadId: UploadId, seq: Seq });

export const ModelUploadStartedReply = z.object({ type: z.literal('modelUploadStarted'), uploadId: z.string(), chunkBytes: z.number().int().positive(), seq: Seq });
export const ModelUploadChunkReply = z.object({ type: z.literal('modelUploadChunk'), uploadId: z.string(), received: z.number().int(), seq: Seq });

// ---------------------------------------------------------------- desktop app: a folder on disk

/**
 * Open a model folder: `path` is a dropped folder's (the preload turns a dropped File into it);
 * absent, Electron main shows a folder dialog.
 */
export const OpenModelFolderRequest = z.object({ type: z.literal('openModelFolder'), path: z.string().min(1).max(4096).optional(), seq: Seq });

/**
 * The folder was added: the model's id in the list and, when it cannot be used, why (naming the
 * file or layer and the next step). `cancelled`: the user closed the dialog.
 */
export const ModelAddedReply = z.object({
  type: z.literal('modelAdded'),
  id: z.string().nullable(),
  problem: z.string().nullable(),
  cancelled: z.boolean().optional(),
  seq: Seq,
});
export type ModelAddedReplyT = z.infer<typeof ModelAddedReply>;
