// Top-k image patches, used by contract/messages.ts: indexing a folder on the engine host
// in the background (progress as `index` events), a unit's top-k patches from the folder index and
// from this session's camera frames, and opening an indexed image as the static input.
import { z } from 'zod';

const Bytes = z.instanceof(Uint8Array);
const Seq = z.number().int().nonnegative().optional();

/** Largest k a `topk` request may ask for. */
export const TOPK_MAX_K = 50;

/**
 * Index image folders on the ENGINE host's disk (web mode: the server machine) for the loaded
 * model, in the background; absolute paths (or ~/…) of existing folders only. Replies indexStart
 * at once; progress and the outcome arrive as `index` events. One indexing job at a time.
 */
export const IndexStartRequest = z.object({
  type: z.literal('indexStart'),
  dirs: z.array(z.string().min(1).max(4096)).min(1).max(32),
  seq: Seq,
});

/** Stop indexing after the current image (what was indexed is saved). */
export const IndexStopRequest = z.object({ type: z.literal('indexStop'), seq: Seq });

/** A unit's top-k patches: folder index and session memory (camera frames of this session). */
export const TopKRequest = z.object({
  type: z.literal('topk'),
  layer: z.string().min(1).max(200),
  unit: z.number().int().nonnegative(),
  k: z.number().int().min(1).max(TOPK_MAX_K).optional(),
  /** Back-projection under each folder patch (default deconv, DVT's choice). */
  back: z.enum(['deconv', 'guided', 'backprop']).optional(),
  seq: Seq,
});

/** The bytes of an image that is in the current model's index (and of no other file). */
export const OpenIndexedImageRequest = z.object({ type: z.literal('openIndexedImage'), path: z.string().min(1).max(4096), seq: Seq });

export const BoxSchema = z.object({ x: z.number().int(), y: z.number().int(), w: z.number().int(), h: z.number().int() });

/**
 * A patch from the folder index: the unit's receptive field at its arg-max position, cropped from
 * the image (padded with what the network sees as zero where it crosses the border), and the
 * back-projection of that unit (seeded with its activation map) over the same region: packed RGB,
 * width × height each. Named `deconv` after DVT's; the mode is the request's `back`, else deconv
 * where the network has max-pools and guided backprop where it has none (engine/topk/patches.ts).
 */
export const FolderPatchSchema = z.object({
  source: z.literal('folder'),
  rank: z.number().int(),
  /** Absolute path on the engine host. */
  image: z.string(),
  imageWidth: z.number().int(),
  imageHeight: z.number().int(),
  /** Receptive field in the original image's pixels, clipped to the image. */
  box: BoxSchema,
  activation: z.number(),
  width: z.number().int(),
  height: z.number().int(),
  crop: Bytes,
  /** Null when it could not be computed (e.g. the file changed since it was indexed). */
  deconv: Bytes.nullable(),
  /** Why the patch is incomplete, if it is. */
  problem: z.string().optional(),
});

/** A patch from this session's camera frames (only the crop is kept). */
export const SessionPatchSchema = z.object({
  source: z.literal('session'),
  rank: z.number().int(),
  activation: z.number(),
  frameId: z.number().int(),
  /** When the frame was seen (ms since the epoch). */
  time: z.number(),
  width: z.number().int(),
  height: z.number().int(),
  crop: Bytes,
});

export const IndexInfoSchema = z.object({
  /** The index file on the engine host. */
  path: z.string(),
  /** Images in the index. */
  images: z.number().int(),
  k: z.number().int(),
  /** An indexing job is running now. */
  indexing: z.boolean(),
});

export const TopKReply = z.object({
  type: z.literal('topk'),
  modelId: z.string(),
  layer: z.string(),
  unit: z.number().int(),
  folder: z.array(FolderPatchSchema),
  session: z.array(SessionPatchSchema),
  index: IndexInfoSchema.nullable(),
  /** Frames offered to the session memory that entered some unit's top-k, and the memory's layer. */
  sessionFrames: z.number().int(),
  sessionLayer: z.string().nullable(),
  seq: Seq,
});

export const IndexStartReply = z.object({
  type: z.literal('indexStart'),
  modelId: z.string(),
  dirs: z.array(z.string()),
  index: IndexInfoSchema,
  seq: Seq,
});

export const IndexStopReply = z.object({ type: z.literal('indexStop'), stopped: z.boolean(), seq: Seq });

export const OpenIndexedImageReply = z.object({ type: z.literal('openIndexedImage'), path: z.string(), name: z.string(), bytes: Bytes, seq: Seq });

/** Indexing progress and outcome (engine → the client that started it). */
export const IndexEvent = z.object({
  type: z.literal('index'),
  phase: z.enum(['progress', 'done', 'error', 'stopped']),
  modelId: z.string(),
  /** Images handled in this run and to handle (files already indexed are skipped, see `skipped`). */
  done: z.number().int(),
  total: z.number().int(),
  skipped: z.number().int().optional(),
  /** Images in the index after this run (done/stopped). */
  images: z.number().int().optional(),
  file: z.string().optional(),
  imagesPerSecond: z.number().optional(),
  etaMs: z.number().nullable().optional(),
  elapsedMs: z.number().optional(),
  /** Files that could not be read (done/stopped; at most 100 listed). */
  unreadable: z.array(z.object({ path: z.string(), error: z.string() })).optional(),
  unreadableCount: z.number().int().optional(),
  message: z.string().optional(),
});

export type IndexEventT = z.infer<typeof IndexEvent>;
export type TopKReplyT = z.infer<typeof TopKReply>;
export type FolderPatchT = z.infer<typeof FolderPatchSchema>;
export type SessionPatchT = z.infer<typeof SessionPatchSchema>;
export type IndexInfoT = z.infer<typeof IndexInfoSchema>;
