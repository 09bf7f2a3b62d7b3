// Reads the GraphDef of a TF.js graph model (model.json with format "graph-model", as
// tensorflowjs_converter writes it for SavedModels and TF Hub models): its nodes in topological
// order with their attributes decoded, its one input and its output. The JSON form is protobuf's
// (int64s as strings, strings base64), as tfjs-converter's own loader reads it.
import { z } from 'zod';

/** One attribute value as the converter writes it (only the members image CNNs use). */
const AttrSchema = z.looseObject({
  s: z.string().optional(),
  i: z.union([z.string(), z.number()]).optional(),
  f: z.number().optional(),
  b: z.boolean().optional(),
  type: z.union([z.string(), z.number()]).optional(),
  shape: z.looseObject({ dim: z.array(z.looseObject({ size: z.union([z.string(), z.number()]).optional() })).optional(), unknownRank: z.boolean().optional() }).optional(),
  list: z
    .looseObject({
      s: z.array(z.string()).optional(),
      i: z.array(z.union([z.string(), z.number()])).optional(),
      f: z.array(z.number()).optional(),
    })
    .optional(),
});
type Attr = z.infer<typeof AttrSchema>;

const NodeSchema = z.object({
  name: z.string().min(1),
  op: z.string().min(1),
  input: z.array(z.string()).optional(),
  attr: z.record(z.string(), AttrSchema).optional(),
});

const TopologySchema = z.looseObject({ node: z.array(NodeSchema).min(1) });

export interface TfNode {
  name: string;
  op: string;
  /** Data inputs by node name (control inputs dropped; only output 0 of a node is read). */
  inputs: string[];
  attr: Record<string, Attr>;
}

export interface TfGraph {
  /** Topologically ordered. */
  nodes: TfNode[];
  /** The Placeholder the image goes into. */
  input: TfNode;
  /** The node whose output is the model's output. */
  output: string;
}

function decodeString(s: string): string {
  return Buffer.from(s, 'base64').toString('utf8');
}

export const attrs = {
  str(n: TfNode, key: string, def = ''): string {
    const a = n.attr[key];
    return a?.s !== undefined ? decodeString(a.s) : def;
  },
  int(n: TfNode, key: string, def = 0): number {
    const a = n.attr[key];
    return a?.i !== undefined ? Number(a.i) : def;
  },
  float(n: TfNode, key: string, def = 0): number {
    const a = n.attr[key];
    return a?.f !== undefined ? a.f : a?.i !== undefined ? Number(a.i) : def;
  },
  bool(n: TfNode, key: string, def = false): boolean {
    return n.attr[key]?.b ?? def;
  },
  ints(n: TfNode, key: string): number[] | null {
    const l = n.attr[key]?.list;
    if (!l) return null;
    return (l.i ?? []).map(Number);
  },
  strs(n: TfNode, key: string): string[] {
    return (n.attr[key]?.list?.s ?? []).map(decodeString);
  },
  /** A shape attribute, -1 (unknown) as null; null when absent or of unknown rank. */
  shape(n: TfNode, key: string): (number | null)[] | null {
    const s = n.attr[key]?.shape;
    if (!s || s.unknownRank || !s.dim) return null;
    return s.dim.map((d) => {
      const v = Number(d.size ?? -1);
      return v < 0 ? null : v;
    });
  },
};

function check<T>(schema: z.ZodType<T>, value: unknown, at: string): T {
  const r = schema.safeParse(value);
  if (r.success) return r.data;
  const first = r.error.issues[0]!;
  throw new Error(`${[at, ...first.path.map(String)].join('.')}: ${first.message}`);
}

/** The output named by the model's signature ("Identity:0" → "Identity"), when it names one. */
function signatureOutput(signature: unknown): string | null {
  const outs = (signature as { outputs?: Record<string, { name?: unknown }> } | undefined)?.outputs;
  if (!outs || typeof outs !== 'object') return null;
  const first = Object.values(outs)[0];
  const name = typeof first?.name === 'string' ? first.name : Object.keys(outs)[0];
  return name ? name.replace(/:\d+$/, '') : null;
}

/** Throws a one-line message naming the field or the node (e.g. "modelTopology.node.3.op: …"). */
export function parseGraphDef(modelTopology: unknown, signature?: unknown): TfGraph {
  const topo = check(TopologySchema, modelTopology, 'modelTopology');
  const byName = new Map<string, TfNode>();
  for (const raw of topo.node) {
    if (byName.has(raw.name)) throw new Error(`modelTopology.node: two nodes are named "${raw.name}"`);
    const inputs: string[] = [];
    for (const ref of raw.input ?? []) {
      if (ref.startsWith('^')) continue;
      const m = ref.match(/^(.*?)(?::(\d+))?$/)!;
      if (m[2] && m[2] !== '0') throw new Error(`node "${raw.name}" (${raw.op}) reads output ${m[2]} of node "${m[1]}" — multi-output ops are not supported yet`);
      inputs.push(m[1]!);
    }
    byName.set(raw.name, { name: raw.name, op: raw.op, inputs, attr: raw.attr ?? {} });
  }
  // Depth-first topological order (the converter writes nodes in no promised order).
  const order: TfNode[] = [];
  const state = new Map<string, 'open' | 'done'>();
  const visit = (start: TfNode): void => {
    const stack: [TfNode, number][] = [[start, 0]];
    state.set(start.name, 'open');
    while (stack.length) {
      const top = stack[stack.length - 1]!;
      const [n, k] = top;
      if (k < n.inputs.length) {
        top[1]++;
        const dep = byName.get(n.inputs[k]!);
        if (!dep) throw new Error(`node "${n.name}" (${n.op}) reads "${n.inputs[k]}", which is not a node of the graph`);
        const s = state.get(dep.name);
        if (s === 'open') throw new Error(`node "${dep.name}" is part of a cycle — control flow (loops) is not supported yet`);
        if (!s) {
          state.set(dep.name, 'open');
          stack.push([dep, 0]);
        }
      } else {
        state.set(n.name, 'done');
        order.push(n);
        stack.pop();
      }
    }
  };
  for (const n of byName.values()) if (!state.has(n.name)) visit(n);

  const read = new Set(order.flatMap((n) => n.inputs));
  let output = signatureOutput(signature);
  if (!output || !byName.has(output)) {
    const sinks = order.filter((n) => !read.has(n.name) && n.op !== 'Const' && n.op !== 'NoOp' && !n.op.startsWith('Placeholder'));
    if (sinks.length === 0) throw new Error('modelTopology.node: the graph has no output node');
    output = sinks[sinks.length - 1]!.name;
  }
  // Only what the output depends on (a converted SavedModel may carry other signatures' nodes).
  const needed = new Set<string>([output]);
  for (let i = order.length - 1; i >= 0; i--) if (needed.has(order[i]!.name)) order[i]!.inputs.forEach((n) => needed.add(n));
  const nodes = order.filter((n) => needed.has(n.name));
  const placeholders = nodes.filter((n) => n.op === 'Placeholder' || n.op === 'PlaceholderWithDefault');
  if (placeholders.length === 0) throw new Error(`modelTopology.node: the output "${output}" depends on no Placeholder (input) node`);
  if (placeholders.length > 1) throw new Error(`the graph has ${placeholders.length} inputs (${placeholders.map((p) => p.name).join(', ')}); DeepVis runs models with one image input — not supported yet`);

  return { nodes, input: placeholders[0]!, output };
}
