// Reads the Keras model topology of a TF.js LayersModel (model.json) into a flat, topologically
// ordered list of layers with their input layer names: the only view of Keras the compiler needs.

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

interface RawLayer {
  class_name: string;
  name?: string;
  config: Record<string, unknown> & { name?: string };
  inbound_nodes?: unknown[];
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

export function parseKerasTopology(modelTopology: unknown): KerasGraph {
  const topo = modelTopology as { model_config?: unknown; config?: unknown; class_name?: string };
  const modelConfig = (topo.model_config ?? topo) as { class_name: string; config: unknown };
  const cfg = modelConfig.config as { layers?: RawLayer[]; output_layers?: unknown[] } | RawLayer[];
  const rawLayers: RawLayer[] = Array.isArray(cfg) ? cfg : (cfg.layers ?? []);
  if (rawLayers.length === 0) throw new Error('model.json has no layers in modelTopology');
  const sequential = modelConfig.class_name === 'Sequential';
  const layers: KerasLayer[] = [];
  let inputShape: (number | null)[] | null = null;
  let prev: string | null = null;
  for (const raw of rawLayers) {
    const name = String(raw.config.name ?? raw.name);
    const bis = (raw.config.batch_input_shape ?? raw.config.batch_shape) as (number | null)[] | undefined;
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
  if (!inputShape) throw new Error('model.json gives no input shape (batch_input_shape)');
  let outputs: string[];
  if (!Array.isArray(cfg) && Array.isArray(cfg.output_layers)) {
    outputs = (cfg.output_layers as unknown[][]).map((o) => String(o[0]));
  } else {
    outputs = [layers[layers.length - 1]!.name];
  }
  return { layers, inputShape, outputs };
}
