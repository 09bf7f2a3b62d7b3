// The one contract between the renderer and the engine host (Electron main or web mode): every
// request, reply and event that crosses a process boundary, with zod schemas that both sides use to
// validate what arrives. Imported by main/, preload/, main/web/ and renderer/ — keep it free of Node
// and DOM imports.
import { z } from 'zod';
import { FrameBackDiffsReply, FrameBackReply, FrameBackRequest, FrameGradCamReply, FrameGradCamRequest, GRID_SHOWS } from './backprojection.js';
import { IndexEvent, IndexStartReply, IndexStartRequest, IndexStopReply, IndexStopRequest, OpenIndexedImageReply, OpenIndexedImageRequest, TopKReply, TopKRequest } from './topk.js';
import { AppStateReply, AppStateSavedReply, GetAppStateRequest, SaveAppStateRequest } from './app-state.js';
import { ListedImageReply, ListedImageRequest, OpenImagesMenuEvent } from './images.js';
import { SynthCancelReply, SynthCancelRequest, SynthEvent, SynthStartedReply, SynthStartRequest } from './synthesis.js';
import { AtlasBuildEvent, AtlasBuildRequest, AtlasBuildStartedReply, AtlasCancelReply, AtlasCancelRequest } from './atlas.js';
import {
  ModelAddedReply,
  ModelUploadChunkReply,
  ModelUploadChunkRequest,
  ModelUploadFinishRequest,
  ModelUploadStartedReply,
  ModelUploadStartRequest,
  OpenModelFolderRequest,
  PreprocessInfoSchema,
  PreprocessSetReply,
  SetPreprocessRequest,
} from './user-models.js';

export { SYNTH_PRESETS, SynthOverridesSchema, SynthEvent, type SynthEventT } from './synthesis.js';

export const CONTRACT_VERSION = 1;

// ---------------------------------------------------------------- shared shapes

export const LayerInfoSchema = z.object({
  name: z.string(),
  display: z.string(),
  shape: z.tuple([z.number().int(), z.number().int(), z.number().int()]),
  units: z.number().int(),
});

export const ModelSummarySchema = z.object({
  id: z.string(),
  title: z.string(),
  installed: z.boolean(),
  problem: z.string().nullable(),
  /** Why it cannot be used: files missing (not installed), damaged, unreadable, or not supported yet. */
  fault: z.enum(['missing', 'corrupt', 'invalid', 'unsupported']).optional(),
});

export const ModelInfoSchema = z.object({
  id: z.string(),
  title: z.string(),
  inputSize: z.tuple([z.number().int(), z.number().int()]),
  layers: z.array(LayerInfoSchema),
  defaultLayer: z.string(),
  logitsLayer: z.string(),
  classCount: z.number().int(),
  /** False when the model's head has no softmax: probabilities shown are a softmax DeepVis applies. */
  softmaxHead: z.boolean().optional(),
  /** The model's own input channels (1: it sees the luminance of the RGB input). */
  inputChannels: z.number().int().positive().optional(),
  /** The logits' class names and WordNet ids in the model's own order (the window searches and labels units by them). */
  classes: z.array(z.object({ name: z.string(), wnid: z.string().nullable() })).max(100_000).default([]),
  /** The input convention in use (contract/user-models.ts). */
  preprocess: PreprocessInfoSchema.optional(),
});

export const TopKSchema = z.object({
  index: z.number().int(),
  wnid: z.string().nullable(),
  name: z.string(),
  prob: z.number(),
});

export const BackendInfoSchema = z.object({
  backend: z.string(),
  choice: z.string(),
  description: z.string(),
});

const Bytes = z.instanceof(Uint8Array);

/**
 * Optional request number chosen by the sender and echoed in the reply (`seq`), so a transport
 * without call/return pairing (the WebSocket) can match replies to requests. Electron's invoke
 * pairs them already; sending it there is harmless.
 */
const Seq = z.number().int().nonnegative().optional();

// ---------------------------------------------------------------- requests (renderer → engine)

export const HelloRequest = z.object({ type: z.literal('hello'), seq: Seq });

/** Switch the model. On failure the previous model keeps running and the reply is an error naming the model. */
export const LoadModelRequest = z.object({ type: z.literal('loadModel'), id: z.string().min(1).max(200), seq: Seq });

/** The installed models (re-scanned on each call: a model dropped into models/ shows up). */
export const ListModelsRequest = z.object({ type: z.literal('listModels'), seq: Seq });

/** Engine counters for soak tests and the status line. */
export const StatsRequest = z.object({ type: z.literal('stats'), seq: Seq });

/**
 * Largest frame side. The renderer sends frames at the model's input size (224 for the bundled
 * models; the engine resizes anything else), so 1024 leaves room for large-input models while a
 * frame stays ≤ 4 MB — the web server's message limit follows from it (main/web/server.ts).
 */
export const MAX_FRAME_SIDE = 1024;

export const FrameRequest = z.object({
  type: z.literal('frame'),
  /** Renderer's frame counter, echoed in the result (latency is measured from the grab). */
  frameId: z.number().int().nonnegative(),
  width: z.number().int().min(1).max(MAX_FRAME_SIDE),
  height: z.number().int().min(1).max(MAX_FRAME_SIDE),
  /** width × height × 4 RGBA bytes, already mirrored/cropped as the user sees them. */
  rgba: Bytes,
  /** Layer name or display name (the reply carries the layer name). */
  layer: z.string().min(1).max(200),
  unit: z.number().int().nonnegative(),
  /** Back-projection of a source unit onto the input (contract/backprojection.ts). */
  back: FrameBackRequest.optional(),
  /** Grad-CAM heat for a class (default top-1). */
  gradcam: FrameGradCamRequest.optional(),
  /** What the grid shows; 'backDiffs' adds `backDiffs` tiles to the reply. Default activations. */
  grid: z.enum(GRID_SHOWS).optional(),
  seq: Seq,
});

// ---------------------------------------------------------------- synthesis (preferred images)

// The synthesis messages live in contract/synthesis.ts (with the presets they name).

/** The cached atlas of a layer (pattern mode, key s): built by `deepvis atlas`. */
export const AtlasRequest = z.object({ type: z.literal('atlas'), layer: z.string().min(1).max(200), seq: Seq });

export const RequestSchema = z.discriminatedUnion('type', [
  HelloRequest,
  LoadModelRequest,
  ListModelsRequest,
  StatsRequest,
  FrameRequest,
  SynthStartRequest,
  SynthCancelRequest,
  AtlasRequest,
  // Building a layer's atlas from the window (contract/atlas.ts).
  AtlasBuildRequest,
  AtlasCancelRequest,
  // A user's own model folder and its input convention (contract/user-models.ts).
  ModelUploadStartRequest,
  ModelUploadChunkRequest,
  ModelUploadFinishRequest,
  OpenModelFolderRequest,
  SetPreprocessRequest,
  // Top-k image patches (contract/topk.ts).
  IndexStartRequest,
  IndexStopRequest,
  TopKRequest,
  OpenIndexedImageRequest,
  // Images opened in the desktop app, read one at a time (contract/images.ts).
  ListedImageRequest,
  // The session a user comes back to (contract/app-state.ts).
  GetAppStateRequest,
  SaveAppStateRequest,
]);
export type Request = z.infer<typeof RequestSchema>;

// ---------------------------------------------------------------- replies (engine → renderer)

export const HelloReply = z.object({
  type: z.literal('hello'),
  version: z.literal(CONTRACT_VERSION),
  backend: BackendInfoSchema,
  models: z.array(ModelSummarySchema),
  model: ModelInfoSchema.nullable(),
  /** Why no model is loaded (when `model` is null), e.g. the start-up model's load error. */
  modelError: z.string().nullable().optional(),
  seq: Seq,
});

export const LoadModelReply = z.object({ type: z.literal('loadModel'), model: ModelInfoSchema, seq: Seq });

export const ModelsReply = z.object({ type: z.literal('models'), models: z.array(ModelSummarySchema), seq: Seq });

export const StatsReply = z.object({
  type: z.literal('stats'),
  /** tf.memory().numTensors / numBytes of the engine process. */
  numTensors: z.number().int(),
  numBytes: z.number(),
  /** Resident set size of the engine process, bytes. */
  rssBytes: z.number(),
  framesProcessed: z.number().int(),
  framesDropped: z.number().int(),
  modelId: z.string().nullable(),
  backend: z.string(),
  seq: Seq,
});

/**
 * A frame that never reached the engine: a newer frame arrived while it was waiting (latest
 * wins, never a queue). Count these as drops.
 */
export const DroppedReply = z.object({
  type: z.literal('dropped'),
  frameId: z.number().int(),
  supersededBy: z.number().int(),
  seq: Seq,
});

export const FrameReply = z.object({
  type: z.literal('frame'),
  frameId: z.number().int(),
  modelId: z.string(),
  top5: z.array(TopKSchema),
  layer: z.string(),
  /**
   * Every channel of the layer as 8-bit tiles, row-major, channel c at data[c*h*w …]: value v is
   * drawn as round(255 · max(v, 0) / scale) where scale is the layer-wide max of this frame.
   * channelMax (per channel, same units as scale) lets the renderer apply the per-channel boost.
   */
  tiles: z.object({
    count: z.number().int(),
    h: z.number().int(),
    w: z.number().int(),
    scale: z.number(),
    channelMax: z.instanceof(Float32Array),
    data: Bytes,
  }),
  /** The selected unit's map as floats (enlarged view, boosts applied in the renderer). */
  unit: z.object({ index: z.number().int(), h: z.number().int(), w: z.number().int(), max: z.number(), data: z.instanceof(Float32Array) }),
  /** Present when the request had `back` / `gradcam` / grid 'backDiffs' (contract/backprojection.ts). */
  back: FrameBackReply.optional(),
  gradcam: FrameGradCamReply.optional(),
  backDiffs: FrameBackDiffsReply.optional(),
  engineMs: z.number(),
  seq: Seq,
});

export const ErrorReply = z.object({
  type: z.literal('error'),
  message: z.string(),
  /** The type of the request that failed, when it could be read. */
  request: z.string().optional(),
  /** Set when a frame failed, so the renderer can free its in-flight slot. */
  frameId: z.number().int().optional(),
  seq: Seq,
});


/**
 * A layer's atlas, when one was built: a PNG sprite of `tile`×`tile` images, `cols` per row, the
 * i-th tile showing unit units[i] (first seed). found=false says how to build one.
 */
export const AtlasReply = z.object({
  type: z.literal('atlas'),
  layer: z.string(),
  found: z.boolean(),
  hint: z.string().optional(),
  preset: z.string().optional(),
  unitCount: z.number().int().optional(),
  tile: z.number().int().optional(),
  cols: z.number().int().optional(),
  units: z.array(z.number().int()).optional(),
  sprite: Bytes.optional(),
  seq: Seq,
});

export const ReplySchema = z.discriminatedUnion('type', [
  AtlasReply,
  AtlasBuildStartedReply,
  AtlasCancelReply,
  ModelUploadStartedReply,
  ModelUploadChunkReply,
  ModelAddedReply,
  PreprocessSetReply,
  SynthStartedReply,
  SynthCancelReply,
  HelloReply,
  LoadModelReply,
  ModelsReply,
  StatsReply,
  FrameReply,
  DroppedReply,
  ErrorReply,
  // Top-k image patches (contract/topk.ts).
  IndexStartReply,
  IndexStopReply,
  TopKReply,
  OpenIndexedImageReply,
  // Images opened in the desktop app, read one at a time (contract/images.ts).
  ListedImageReply,
  // The session a user comes back to (contract/app-state.ts).
  AppStateReply,
  AppStateSavedReply,
]);
export type Reply = z.infer<typeof ReplySchema>;

export type HelloReplyT = z.infer<typeof HelloReply>;
export type FrameReplyT = z.infer<typeof FrameReply>;
export type FrameRequestT = z.infer<typeof FrameRequest>;
export type DroppedReplyT = z.infer<typeof DroppedReply>;
export type ErrorReplyT = z.infer<typeof ErrorReply>;
export type StatsReplyT = z.infer<typeof StatsReply>;
export type ModelInfo = z.infer<typeof ModelInfoSchema>;
export type ModelSummary = z.infer<typeof ModelSummarySchema>;
export type LayerInfoT = z.infer<typeof LayerInfoSchema>;

/** The request's seq, to echo in its reply (replies are matched to requests by it). */
export function seqOf(req: { seq?: number | undefined }): { seq?: number } {
  return req.seq === undefined ? {} : { seq: req.seq };
}

/**
 * Zod issues as one line: the first few only, since an array of wrong-typed elements yields an
 * issue per element (and a request wrong everywhere one per field); the error reply stays small.
 */
function describeIssues(issues: readonly z.core.$ZodIssue[], max = 3): string {
  const shown = issues.slice(0, max).map((i) => `${i.path.join('.').slice(0, 100) || '(message)'}: ${i.message.slice(0, 200)}`);
  return shown.join('; ') + (issues.length > max ? `; and ${issues.length - max} more` : '');
}

/** Validate an incoming request; never throws — returns an error message instead. */
export function parseRequest(value: unknown): { ok: true; request: Request } | { ok: false; error: string } {
  const r = RequestSchema.safeParse(value);
  if (r.success) return { ok: true, request: r.data };
  return { ok: false, error: describeIssues(r.error.issues) };
}

export function parseReply(value: unknown): { ok: true; reply: Reply } | { ok: false; error: string } {
  const r = ReplySchema.safeParse(value);
  if (r.success) return { ok: true, reply: r.data };
  return { ok: false, error: r.error.issues.map((i) => `${i.path.join('.') || '(message)'}: ${i.message}`).join('; ') };
}

// ---------------------------------------------------------------- events (Electron main → renderer)

/**
 * Application-menu actions, pushed by Electron main to the renderer (window.deepvis.onEvent).
 * Web mode has no menu and sends none. The renderer reacts as if the user had pressed the key:
 * `selectModel` → send a loadModel request; `openImages` → static-image mode with these images.
 */
export const MenuEvent = z.discriminatedUnion('action', [
  OpenImagesMenuEvent, // names only; the bytes come one image at a time (contract/images.ts)
  z.object({ type: z.literal('menu'), action: z.literal('exportPng') }),
  z.object({ type: z.literal('menu'), action: z.literal('toggleCamera') }),
  z.object({ type: z.literal('menu'), action: z.literal('help') }),
  z.object({ type: z.literal('menu'), action: z.literal('selectModel'), modelId: z.string().min(1) }),
  // The window asks for the folder (openModelFolder), so the model it holds is listed and loaded there.
  z.object({ type: z.literal('menu'), action: z.literal('openModelFolder') }),
]);

/**
 * A one-line notice from the engine host (a worker that failed and was restarted, a job refused):
 * the window shows it in its status area until the next one.
 */
export const NoticeEvent = z.object({
  type: z.literal('notice'),
  level: z.enum(['info', 'warning', 'error']),
  message: z.string().max(500),
});
export type NoticeEventT = z.infer<typeof NoticeEvent>;

export const EventSchema = z.union([MenuEvent, SynthEvent, IndexEvent, AtlasBuildEvent, NoticeEvent]);
export type AppEvent = z.infer<typeof EventSchema>;
export type MenuAction = z.infer<typeof MenuEvent>['action'];

export function parseEvent(value: unknown): { ok: true; event: AppEvent } | { ok: false; error: string } {
  const r = EventSchema.safeParse(value);
  if (r.success) return { ok: true, event: r.data };
  return { ok: false, error: r.error.issues.map((i) => `${i.path.join('.') || '(message)'}: ${i.message}`).join('; ') };
}

/**
 * What the Electron preload exposes as `window.deepvis` — exactly these two members. The renderer
 * declares `window.deepvis` with this type.
 */
export interface DeepVisBridge {
  /** One request, one reply (validate it with parseReply). */
  request(message: Request): Promise<Reply>;
  /** Subscribe to events (menu actions, synthesis progress); returns the unsubscribe function. */
  onEvent(callback: (event: AppEvent) => void): () => void;
}

/** Electron IPC channel names (one request channel, one event channel; the preload exposes nothing else). */
export const IPC_REQUEST = 'deepvis:request';
export const IPC_EVENT = 'deepvis:event';
