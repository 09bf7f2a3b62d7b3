// A small ONNX graph builder: unique value names, initializers from typed arrays, typed attribute
// helpers. The exporter speaks in these terms; proto.ts turns the result into bytes.
import { AttrType, DataType, encodeModel, type AttrMsg, type NodeMsg, type TensorMsg, type ValueInfoMsg } from './proto.js';

export const attr = {
  int: (name: string, i: number): AttrMsg => ({ name, type: AttrType.INT, i }),
  ints: (name: string, ints: number[]): AttrMsg => ({ name, type: AttrType.INTS, ints }),
  float: (name: string, f: number): AttrMsg => ({ name, type: AttrType.FLOAT, f }),
  str: (name: string, s: string): AttrMsg => ({ name, type: AttrType.STRING, s: new TextEncoder().encode(s) }),
};

/** A float tensor input or output whose first axis (the batch) is dynamic. */
function valueInfo(name: string, dims: Array<number | string>): ValueInfoMsg {
  return {
    name,
    type: { tensorType: { elemType: DataType.FLOAT, shape: { dim: dims.map((d) => (typeof d === 'string' ? { dimParam: d } : { dimValue: d })) } } },
  };
}

export class GraphBuilder {
  private readonly nodes: NodeMsg[] = [];
  private readonly inits: TensorMsg[] = [];
  private readonly inputs: ValueInfoMsg[] = [];
  private readonly outputs: ValueInfoMsg[] = [];
  private readonly constCache = new Map<string, string>();
  private count = 0;

  fresh(prefix: string): string {
    return `${prefix}_${this.count++}`;
  }

  input(name: string, dims: Array<number | string>): string {
    this.inputs.push(valueInfo(name, dims));
    return name;
  }

  /** Route a value to a named graph output (through Identity, so one value can feed several outputs). */
  output(name: string, value: string, dims: Array<number | string>): void {
    this.op('Identity', [value], [], name);
    this.outputs.push(valueInfo(name, dims));
  }

  /** One node with one output; returns the output's name. */
  op(type: string, inputs: string[], attrs: AttrMsg[] = [], out?: string): string {
    return this.opN(type, inputs, 1, attrs, out ? [out] : undefined)[0]!;
  }

  opN(type: string, inputs: string[], n: number, attrs: AttrMsg[] = [], outs?: string[]): string[] {
    const output = outs ?? Array.from({ length: n }, () => this.fresh(type.toLowerCase()));
    this.nodes.push({ opType: type, input: inputs, output, name: this.fresh(`n_${type}`), attribute: attrs });
    return output;
  }

  floats(data: Float32Array, dims: number[], prefix = 'w'): string {
    const name = this.fresh(prefix);
    const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    this.inits.push({ name, dims, dataType: DataType.FLOAT, rawData: bytes.slice() });
    return name;
  }

  /** A float scalar constant, shared between nodes (an unused initializer makes ORT warn). */
  scalar(v: number): string {
    const key = `f${v}`;
    const hit = this.constCache.get(key);
    if (hit) return hit;
    const name = this.floats(new Float32Array([v]), [], 'c');
    this.constCache.set(key, name);
    return name;
  }

  /** A constant int64 vector (shapes, axes, pads), shared between nodes that use the same one. */
  int64(values: number[]): string {
    const key = `i${values.join(',')}`;
    const hit = this.constCache.get(key);
    if (hit) return hit;
    const name = this.fresh('i');
    const data = new BigInt64Array(values.map((v) => BigInt(v)));
    this.inits.push({ name, dims: [values.length], dataType: DataType.INT64, rawData: new Uint8Array(data.buffer).slice() });
    this.constCache.set(key, name);
    return name;
  }

  encode(name: string): Uint8Array {
    return encodeModel({ name, node: this.nodes, initializer: this.inits, input: this.inputs, output: this.outputs });
  }
}
