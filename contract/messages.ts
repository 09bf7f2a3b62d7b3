// The one contract between the renderer and the engine host (Electron main or web mode): every
// request, reply and event that crosses a process boundary, with zod schemas that both sides use to
// validate what arrives. Imported by main/, preload/, main/web/ and renderer/ — keep it free of Node
// and DOM imports.
import { z } from 'zod';

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
});

export const ModelInfoSchema = z.object({
  id: z.string(),
  title: z.string(),
  inputSize: z.tuple([z.number().int(), z.number().int()]),
  layers: z.array(LayerInfoSchema),
  defaultLayer: z.string(),
  logitsLayer: z.string(),
  classCount: z.number().int(),
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

// ---------------------------------------------------------------- requests (renderer → engine)

export const HelloRequest = z.object({ type: z.literal('hello') });

export const LoadModelRequest = z.object({ type: z.literal('loadModel'), id: z.string().min(1).max(200) });

export const FrameRequest = z.object({
  type: z.literal('frame'),
  /** Renderer's frame counter, echoed in the result (latency is measured from the grab). */
  frameId: z.number().int().nonnegative(),
  width: z.number().int().min(1).max(4096),
  height: z.number().int().min(1).max(4096),
  /** width × height × 4 RGBA bytes, already mirrored/cropped as the user sees them. */
  rgba: Bytes,
  layer: z.string().min(1),
  unit: z.number().int().nonnegative(),
});

export const RequestSchema = z.discriminatedUnion('type', [HelloRequest, LoadModelRequest, FrameRequest]);
export type Request = z.infer<typeof RequestSchema>;

// ---------------------------------------------------------------- replies (engine → renderer)

export const HelloReply = z.object({
  type: z.literal('hello'),
  version: z.literal(CONTRACT_VERSION),
  backend: BackendInfoSchema,
  models: z.array(ModelSummarySchema),
  model: ModelInfoSchema.nullable(),
});

export const LoadModelReply = z.object({ type: z.literal('loadModel'), model: ModelInfoSchema });

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
  engineMs: z.number(),
});

export const ErrorReply = z.object({ type: z.literal('error'), message: z.string(), request: z.string().optional() });

export const ReplySchema = z.discriminatedUnion('type', [HelloReply, LoadModelReply, FrameReply, ErrorReply]);
export type Reply = z.infer<typeof ReplySchema>;

export type HelloReplyT = z.infer<typeof HelloReply>;
export type FrameReplyT = z.infer<typeof FrameReply>;
export type ModelInfo = z.infer<typeof ModelInfoSchema>;
export type ModelSummary = z.infer<typeof ModelSummarySchema>;
export type LayerInfoT = z.infer<typeof LayerInfoSchema>;

/** Validate an incoming request; never throws — returns an error message instead. */
export function parseRequest(value: unknown): { ok: true; request: Request } | { ok: false; error: string } {
  const r = RequestSchema.safeParse(value);
  if (r.success) return { ok: true, request: r.data };
  return { ok: false, error: r.error.issues.map((i) => `${i.path.join('.') || '(message)'}: ${i.message}`).join('; ') };
}

export function parseReply(value: unknown): { ok: true; reply: Reply } | { ok: false; error: string } {
  const r = ReplySchema.safeParse(value);
  if (r.success) return { ok: true, reply: r.data };
  return { ok: false, error: r.error.issues.map((i) => `${i.path.join('.') || '(message)'}: ${i.message}`).join('; ') };
}

/** Electron IPC channel names (one request channel; the preload exposes nothing else). */
export const IPC_REQUEST = 'deepvis:request';
