// Building a layer's atlas from the window (pattern mode): the request that starts a build on the
// job pool, its cancel, and the events that fill the grid in as units finish. The build belongs to
// the window that started it (only it may cancel) and is resumable: units already on disk are
// skipped, so starting the same build again continues it. Used by contract/messages.ts.
import { z } from 'zod';
import { PRESETS, SYNTH_LIMITS, SYNTH_PRESETS, type PresetName } from './synthesis.js';

const Seq = z.number().int().nonnegative().optional();
const Bytes = z.instanceof(Uint8Array);
const BuildId = z.string().min(1).max(100);

/** Presets an atlas can use: every one that starts from noise (a frame belongs to one image). */
export const ATLAS_PRESETS = SYNTH_PRESETS.filter((p) => PRESETS[p].kind !== 'frame') as [PresetName, ...PresetName[]];

/** Most seeds per unit a window may ask for (the grid shows the first; the rest are for export). */
export const ATLAS_MAX_SEEDS = 4;

export const AtlasBuildRequest = z
  .object({
    type: z.literal('atlasBuild'),
    /** Layer name or display name. */
    layer: z.string().min(1).max(200),
    preset: z.enum(ATLAS_PRESETS),
    seeds: z.number().int().min(1).max(ATLAS_MAX_SEEDS).default(1),
    /** Image side (square); default the model's input. */
    size: z.number().int().min(SYNTH_LIMITS.minSize).max(SYNTH_LIMITS.maxRequestSize).optional(),
    iterations: z.number().int().min(1).max(SYNTH_LIMITS.maxRequestIterations).optional(),
    /** Inclusive unit range; default every unit of the layer. */
    units: z.tuple([z.number().int().nonnegative(), z.number().int().nonnegative()]).optional(),
    seq: Seq,
  })
  .superRefine((r, ctx) => {
    if (r.units && r.units[1] < r.units[0]) ctx.addIssue({ code: 'custom', path: ['units'], message: 'the range must go upwards, like [0, 63]' });
  });
export type AtlasBuildRequestT = z.infer<typeof AtlasBuildRequest>;

/** Stop a build after the batches in flight (what is finished stays on disk). Only its owner may. */
export const AtlasCancelRequest = z.object({ type: z.literal('atlasCancel'), buildId: BuildId, seq: Seq });

export const AtlasBuildStartedReply = z.object({
  type: z.literal('atlasBuildStarted'),
  buildId: z.string(),
  layer: z.string(),
  display: z.string(),
  preset: z.string(),
  /** Units in the requested range, and how many of them were already on disk (skipped). */
  total: z.number().int(),
  skipped: z.number().int(),
  seq: Seq,
});

export const AtlasCancelReply = z.object({ type: z.literal('atlasCancel'), buildId: z.string(), cancelled: z.boolean(), seq: Seq });

/** A finished unit's image, ATLAS tile-sized PNG (the first seed). */
export const AtlasTileSchema = z.object({ unit: z.number().int().nonnegative(), png: Bytes });

/**
 * A build's progress: `tiles` are the units finished since the last event (the first event carries
 * those already on disk). `done`/`total` count units of the range; `etaSeconds` (from this run's
 * pace, steps of the batches in flight included) is null until there is a pace to go by.
 */
export const AtlasBuildEvent = z.object({
  type: z.literal('atlasBuild'),
  buildId: z.string(),
  layer: z.string(),
  phase: z.enum(['progress', 'done', 'cancelled', 'error']),
  done: z.number().int(),
  total: z.number().int(),
  etaSeconds: z.number().nonnegative().nullable(),
  tiles: z.array(AtlasTileSchema).max(100_000),
  /** Size of a tile in pixels. */
  tile: z.number().int().positive(),
  message: z.string().max(500).optional(),
});
export type AtlasBuildEventT = z.infer<typeof AtlasBuildEvent>;
