// Reads the Keras model topology of a TF.js LayersModel (model.json) into a flat, topologically
// ordered list of layers with their input layer names: the only view of Keras the compiler needs.
import { z } from 'zod';

export interface KerasLayer {
  className: string;
  name: string;
  config: Record<string, unknown>;
  inputs: string[];
}

export interface KerasGraph {
  layers: KerasLayer[];
  inputShape: (number | null)[];
  outputs: string[];
}

// The parts of model.json's topology we read, checked before use so a damaged or foreign file
// fails with the path of the offending field instead of a TypeError deep in the compiler.
const RawLayerSchema = z.object({
  class_name: z.string().min(1),
  name: z.string().optional(),
  config: z.looseObject({
    name: z.string().min(1).optional(),
    batch_input_shape: z.array(z.number().int().positive().nullable()).optional(),
    batch_shape: z.array(z.number().int().positive().nullable()).optional(),
  }),
  inbound_nodes: z.array(z.unknown()).optional(),
});
type RawLayer = z.infer<typeof RawLayerSchema>;

const ModelConfigSchema = z.looseObject({ class_name: z.string(), config: z.unknown() });
const LayersSchema = z.array(RawLayerSchema);
const OutputLayersSchema = z.array(z.array(z.unknown()).min(1)).optional();

function check<T>(schema: z.ZodType<T>, value: unknown, at: string): T {
  const r = schema.safeParse(value);
  if (r.success) return r.data;
  const first = r.error.issues[0]!;
  const more = r.error.issues.length > 1 ? ` (and ${r.error.issues.length - 1} more problems)` : '';
  throw new Error(`${[at, ...first.path.map(String)].join('.')}: ${first.message}${more}`);
}

function inboundNames(nodes: unknown[] | undefined): string[] {
  if (!nodes || nodes.length === 0) return [];
  if (nodes.length > 1) throw new Error('shared layers (a layer called more than once) are not supported');
  const node = nodes[0];
  if (Array.isArray(node)) return node.map((entry) => String((entry as unknown[])[0]));
  // Keras 3 style: {args: [{config: {keras_history: [name, …]}}]}
  const args = (node as { args?: unknown[] }).args ?? [];
  const names: string[] = [];
  const visit = (a: unknown): void => {
    if (Array.isArray(a)) a.forEach(visit);
    else if (a && typeof a === 'object') {
      const hist = (a as { config?: { keras_history?: unknown[] } }).config?.keras_history;
      if (hist) names.push(String(hist[0]));
    }
  };
  visit(args);
  return names;
}

/** Throws a one-line message naming the field (e.g. "modelTopology.model_config.config.layers.3.config: …"). */
export function parseKerasTopology(modelTopology: unknown): KerasGraph {
  if (!modelTopology || typeof modelTopology !== 'object' || Array.isArray(modelTopology)) {
    throw new Error('modelTopology: expected an object (the Keras model configuration)');
  }
  const topo = modelTopology as { model_config?: unknown };
  const at = topo.model_config !== undefined ? 'modelTopology.model_config' : 'modelTopology';
  const modelConfig = check(ModelConfigSchema, topo.model_config ?? topo, at);
  const cfg = modelConfig.config;
  const layersAt = Array.isArray(cfg) ? `${at}.config` : `${at}.config.layers`;
  if (!Array.isArray(cfg) && (!cfg || typeof cfg !== 'object')) throw new Error(`${at}.config: expected an object with "layers"`);
  const rawLayers: RawLayer[] = check(LayersSchema, Array.isArray(cfg) ? cfg : ((cfg as { layers?: unknown }).layers ?? []), layersAt);
  if (rawLayers.length === 0) throw new Error(`${layersAt}: the model has no layers`);
  const outputLayers = Array.isArray(cfg) ? undefined : check(OutputLayersSchema, (cfg as { output_layers?: unknown }).output_layers, `${at}.config.output_layers`);
  const sequential = modelConfig.class_name === 'Sequential';
  const layers: KerasLayer[] = [];
  let inputShape: (number | null)[] | null = null;
  let prev: string | null = null;
  for (const [i, raw] of rawLayers.entries()) {
    const name = raw.config.name ?? raw.name;
    if (!name) throw new Error(`${layersAt}.${i}: a ${raw.class_name} layer without a name`);
    const bis = raw.config.batch_input_shape ?? raw.config.batch_shape;
    if (bis && !inputShape) inputShape = bis.slice(1);
    let inputs = sequential ? (prev ? [prev] : []) : inboundNames(raw.inbound_nodes);
    if (sequential && !prev && raw.class_name !== 'InputLayer') {
      // A Sequential model without an explicit InputLayer: synthesise one.
      layers.push({ className: 'InputLayer', name: '__input__', config: {}, inputs: [] });
      inputs = ['__input__'];
    }
    layers.push({ className: raw.class_name, name, config: raw.config, inputs });
    prev = name;
  }
  if (!inputShape) throw new Error(`${layersAt}: no layer gives the input shape (batch_input_shape)`);
  let outputs: string[];
  if (outputLayers) {
    outputs = outputLayers.map((o) => String(o[0]));
  } else {
    outputs = [layers[layers.length - 1]!.name];
  }
  return { layers, inputShape, outputs };
}
