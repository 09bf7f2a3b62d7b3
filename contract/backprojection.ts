// Back-projection and Grad-CAM parts of the frame request and reply, used by
// contract/messages.ts. Every field is optional there, so older clients keep working.
import { z } from 'zod';

export const BACK_MODES = ['backprop', 'deconv', 'guided'] as const;
export const BACK_FILTERS = ['raw', 'gray', 'norm', 'normblur'] as const;
export const GRID_SHOWS = ['activations', 'backDiffs'] as const;

/**
 * The window's display scale for back-projections: the 99.5th percentile of |value| (raw, gray) or
 * of the pixel norm (norm, normblur) is full contrast and the brightest 0.5 % clip. Scaling by the
 * single largest value (100, DVT's choice) lets a few extreme pixels leave everything else grey.
 */
export const BACK_PERCENTILE_DEFAULT = 99.5;
export const BACK_PERCENTILE_MIN = 50;

/**
 * Back-project a source unit onto the input in the same frame job. The source may differ from the
 * frame's layer/unit (frozen with `d`). On the logits layer the unit is a class (one-hot seed);
 * elsewhere a channel seeded with its own activation map (DVT).
 */
export const FrameBackRequest = z.object({
  mode: z.enum(BACK_MODES),
  filter: z.enum(BACK_FILTERS),
  layer: z.string().min(1).max(200),
  unit: z.number().int().nonnegative(),
  /** Full contrast at this percentile (see BACK_PERCENTILE_DEFAULT); absent or 100: the largest value. */
  percentile: z.number().min(BACK_PERCENTILE_MIN).max(100).optional(),
});

/** Grad-CAM of a class (default: the frame's top-1) at the model's default Grad-CAM layer. */
export const FrameGradCamRequest = z.object({
  class: z.number().int().nonnegative().optional(),
  /** Overlay opacity 0…1; the renderer blends (the host returns the heat only). */
  opacity: z.number().min(0).max(1).optional(),
});

/** The back-projection, display-filtered, at the model's input size: packed RGB bytes. */
export const FrameBackReply = z.object({
  width: z.number().int(),
  height: z.number().int(),
  rgb: z.instanceof(Uint8Array),
  mode: z.enum(BACK_MODES),
  filter: z.enum(BACK_FILTERS),
  /** The percentile drawn at full contrast (100: the largest value). */
  percentile: z.number().optional(),
  /** The source, as "layer display:unit" (or "class N name"). */
  source: z.string(),
});

/** Grad-CAM heat at the model's input size, 0..255 (min–max per frame), for the class named. */
export const FrameGradCamReply = z.object({
  width: z.number().int(),
  height: z.number().int(),
  heat: z.instanceof(Uint8Array),
  classIndex: z.number().int(),
  className: z.string(),
  /** The layer whose maps were weighted (Keras name). */
  layer: z.string(),
});

/**
 * grid 'backDiffs': the back-propagated signal from the back source arriving at the frame's layer,
 * in the activation tile format (8-bit, channel c at data[c·h·w …], scaled by the layer-wide max).
 * The tiles hold the magnitude |diff| (DVT draws the sign as red/green; here boosts apply as for
 * activations). All zero when no back source is set or the layer comes after the source.
 */
export const FrameBackDiffsReply = z.object({
  count: z.number().int(),
  h: z.number().int(),
  w: z.number().int(),
  scale: z.number(),
  channelMax: z.instanceof(Float32Array),
  data: z.instanceof(Uint8Array),
});

export type FrameBackRequestT = z.infer<typeof FrameBackRequest>;
export type FrameGradCamRequestT = z.infer<typeof FrameGradCamRequest>;
export type FrameBackReplyT = z.infer<typeof FrameBackReply>;
export type FrameGradCamReplyT = z.infer<typeof FrameGradCamReply>;
export type FrameBackDiffsReplyT = z.infer<typeof FrameBackDiffsReply>;
export type BackModeT = (typeof BACK_MODES)[number];
export type BackFilterT = (typeof BACK_FILTERS)[number];
export type GridShowT = (typeof GRID_SHOWS)[number];
