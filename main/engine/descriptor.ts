// The per-model descriptor (models/<id>/deepvis.json): everything the app needs to know about a
// model beyond its Keras topology. Validated with zod so a hand-written descriptor of a user's own
// model fails with a message naming the field.
import { z } from 'zod';
import { MAX_FRAME_SIDE } from '../../contract/messages.js';

/**
 * The largest input side a model may declare: the largest frame a window sends, and synthesis's
 * largest size (SYNTH_LIMITS.maxSize). A hard cap rather than the memory budget
 * (memory-budget.ts), because it must be checked from the descriptor alone when a folder is
 * listed — the budget is measured by running the model, and at 6000 px that run alone can exhaust
 * wasm's 4 GiB heap. What a given job fits within the cap is still the budget's to say.
 */
export const MAX_INPUT_SIDE = MAX_FRAME_SIDE;

export const DescriptorSchema = z.object({
  id: z.string().regex(/^[a-z0-9][a-z0-9._-]*$/i, 'ids are letters, digits, ".", "_" and "-"'),
  title: z.string().min(1),
  inputSize: z.tuple([z.number().int().positive(), z.number().int().positive()]),
  preprocess: z.object({
    channelOrder: z.enum(['RGB', 'BGR']).default('RGB'),
    /** input = pixel (0..255) × scale + offset, per channel when arrays are given. */
    scale: z.union([z.number(), z.tuple([z.number(), z.number(), z.number()])]),
    offset: z.union([z.number(), z.tuple([z.number(), z.number(), z.number()])]),
    /**
     * How the model's input channels are made from R, G, B (after scale and offset): one
     * [r, g, b] weight row per input channel. Default: none for 3-channel models, luminance
     * (0.299, 0.587, 0.114) for 1-channel ones; required for any other channel count.
     */
    channelMix: z.array(z.tuple([z.number(), z.number(), z.number()])).min(1).optional(),
  }),
  /** Class names: a JSON array or a text file of one name per line. Absent: "class 0", "class 1"… */
  classes: z
    .object({
      names: z.string(),
      wnids: z.string().optional(),
      order: z.string().optional(),
    })
    .optional(),
  logits: z.string().optional(),
  /**
   * What the head ends in. `softmax: false`: the logits are the model's outputs and the
   * probabilities shown are a softmax DeepVis applies (the window and CLI say so). Absent: read
   * from the model (a softmax layer or activation at its end). Inference writes it down.
   */
  head: z.object({ softmax: z.boolean() }).optional(),
  defaultLayer: z.string().optional(),
  layers: z.array(z.object({ name: z.string(), display: z.string() })).min(1),
  weights: z
    .object({ modelJson: z.string().default('model.json'), checksums: z.string().optional(), url: z.string().optional() })
    .default({ modelJson: 'model.json' }),
  source: z.object({ origin: z.string().optional(), licence: z.string().optional(), details: z.string().optional() }).optional(),
});

export type ModelDescriptor = z.infer<typeof DescriptorSchema>;

export function parseDescriptor(json: unknown, where: string): ModelDescriptor {
  const r = DescriptorSchema.safeParse(json);
  if (!r.success) {
    const issues = r.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ');
    throw new Error(`${where}: invalid model descriptor — ${issues}`);
  }
  const [h, w] = r.data.inputSize;
  if (h > MAX_INPUT_SIDE || w > MAX_INPUT_SIDE) {
    throw new Error(
      `${where}: the model's input is ${h}×${w} px, larger than the ${MAX_INPUT_SIDE} px per side the engine runs (the largest frame and synthesis size) — export the model with an input of at most ${MAX_INPUT_SIDE}×${MAX_INPUT_SIDE}`,
    );
  }
  return r.data;
}
