// The session a user comes back to, used by contract/messages.ts: what the renderer
// keeps across restarts (model, layer, unit, boosts, back-projection, synthesis preset, a few pane
// toggles) and the two requests that read and save it. The engine host writes it to disk
// (main/persist/app-state.ts) together with the desktop window's bounds, which never cross this
// boundary. Every field is bounded: a renderer could send anything.
import { z } from 'zod';
import { BACK_FILTERS, BACK_MODES, BACK_PERCENTILE_MIN, GRID_SHOWS } from './backprojection.js';
import { SYNTH_PRESETS as PRESETS } from './synthesis.js';

const Seq = z.number().int().nonnegative().optional();


const Name = z.string().min(1).max(200);

/**
 * The renderer's part of the saved state. Boosts are stored as values (γ, b), not as positions in
 * the settings' cycles, so a changed cycle still finds them (or falls back to the first entry).
 */
export const ViewStateSchema = z.object({
  model: Name.nullable(),
  layer: Name.nullable(),
  unit: z.number().int().min(0).max(1_000_000),
  gamma: z.number().min(0).max(10),
  channelBoost: z.number().min(0).max(10),
  /** Back-projection mode and filter; null: off. */
  back: z.object({ mode: z.enum(BACK_MODES), filter: z.enum(BACK_FILTERS) }).nullable(),
  /** The back-projection's full-contrast percentile (100: the largest value); absent in older files. */
  backPercentile: z.number().min(BACK_PERCENTILE_MIN).max(100).optional(),
  grid: z.enum(GRID_SHOWS),
  gradcam: z.boolean(),
  gradcamOpacity: z.number().min(0).max(1),
  showLabels: z.boolean(),
  synthPreset: z.enum(PRESETS),
});
export type ViewState = z.infer<typeof ViewStateSchema>;

/** The saved view state (read once at start-up, after the model list). */
export const GetAppStateRequest = z.object({ type: z.literal('getAppState'), seq: Seq });

/** Save the view state (the host coalesces bursts into one write and writes atomically). */
export const SaveAppStateRequest = z.object({ type: z.literal('saveAppState'), view: ViewStateSchema, seq: Seq });

export const AppStateReply = z.object({
  type: z.literal('appState'),
  /** null: nothing saved yet (first start, or persistence off). */
  view: ViewStateSchema.nullable(),
  /** Whether this host keeps state at all (web mode can be started without a state folder). */
  persisted: z.boolean(),
  /** The saved file could not be used (it was kept aside); one line. */
  warning: z.string().optional(),
  seq: Seq,
});

export const AppStateSavedReply = z.object({ type: z.literal('appStateSaved'), persisted: z.boolean(), seq: Seq });

export type AppStateReplyT = z.infer<typeof AppStateReply>;
