// The network on ONNX Runtime: forward with taps and backward passes of the compiled GraphNet,
// from sessions over exported graphs cached per model checksum, input shape, provider and what
// the graph computes (taps, objective node, seed kind, rule). Each pass has two entry points:
// on tfjs tensors (nativeForward, nativeBackward), for callers whose work around the network
// (preprocessing, regularisers, display filters) is tfjs ops — the copy across costs ~0.1 ms per
// MB, against a forward pass of 5–50 ms —, and on plain Float32Arrays (nativeForwardData,
// nativeBackwardData), for callers that build the input and read the outputs in typed-array
// passes of their own (the live frame, the synthesis step): no tensor is made, the outputs are
// ONNX Runtime's own buffers.
import * as tf from '@tensorflow/tfjs-core';
import type { CompiledModel } from '../compile.js';
import { exportGraph, nodeShapes, onnxUnsupported, type BackwardSpec } from './export.js';
import { OrtSession, type OrtProvider } from './runtime.js';

/** The parts of a loaded model the native engine runs (model.ts runs through here, so no Model type). */
export interface NativeModel {
  readonly id: string;
  readonly checksum: string;
  readonly compiled: CompiledModel;
}

export interface NativeConfig {
  provider: OrtProvider;
  threads: number;
}

let config: NativeConfig | null = null;

/** Switched on by backend selection when an onnx backend is chosen, off for every other one. */
export function setNativeEngine(c: NativeConfig | null): void {
  config = c;
}

const unsupportedBy = new WeakMap<object, string | null>();

/**
 * The onnx engine when one is selected and can run this model; null otherwise. A model with a node
 * the exporter does not write yet (a user model's swish or multiply) runs on tfjs instead — slower,
 * never wrong.
 */
export function nativeEngine(model?: Pick<NativeModel, 'compiled'>): NativeConfig | null {
  if (!config || !model) return config;
  const net = model.compiled.net;
  let why = unsupportedBy.get(net);
  if (why === undefined) {
    why = onnxUnsupported(net);
    unsupportedBy.set(net, why);
  }
  return why ? null : config;
}

interface Entry {
  session: OrtSession;
  shapes: number[][];
}

/** Enough for a live frame's views and a synthesis at two sizes; each session holds its weights. */
const MAX_SESSIONS = 24;
const sessions = new Map<string, Entry>();
let stats = { built: 0, hits: 0, evicted: 0 };

function entryFor(model: NativeModel, inputShape: [number, number, number], taps: number[], backward: BackwardSpec | undefined, c: NativeConfig): Entry {
  const key = [model.checksum, model.id, c.provider, c.threads, inputShape.join('x'), taps.join(','), backward ? JSON.stringify(backward) : '-'].join('|');
  const hit = sessions.get(key);
  if (hit) {
    // Most recently used last, so eviction below drops the oldest.
    sessions.delete(key);
    sessions.set(key, hit);
    stats.hits++;
    return hit;
  }
  const g = exportGraph(model.compiled.net, { inputShape, taps, backward });
  const entry = { session: new OrtSession(g.bytes, c), shapes: g.shapes };
  sessions.set(key, entry);
  stats.built++;
  while (sessions.size > MAX_SESSIONS) {
    const [oldest, e] = sessions.entries().next().value as [string, Entry];
    e.session.dispose();
    sessions.delete(oldest);
    stats.evicted++;
  }
  return entry;
}

export function nativeSessionStats(): { sessions: number; built: number; hits: number; evicted: number } {
  return { sessions: sessions.size, ...stats };
}

/** Close every session (a model unloaded, the backend switched, a test's teardown). */
export function clearNativeSessions(): void {
  for (const e of sessions.values()) e.session.dispose();
  sessions.clear();
  stats = { built: 0, hits: 0, evicted: 0 };
}

const shapeCache = new Map<string, number[][]>();

/** Every node's output shape (NHWC, no batch axis) for an input of [H, W, C]: seeds are built from these. */
export function nativeNodeShapes(model: NativeModel, inputShape: [number, number, number]): number[][] {
  const key = `${model.checksum}|${model.id}|${inputShape.join('x')}`;
  let s = shapeCache.get(key);
  if (!s) {
    s = nodeShapes(model.compiled.net, inputShape, model.compiled.net.nodes.length - 1);
    if (shapeCache.size > 64) shapeCache.clear();
    shapeCache.set(key, s);
  }
  return s;
}

export function inputShapeOf(x: tf.Tensor4D): [number, number, number] {
  return [x.shape[1], x.shape[2], x.shape[3]];
}

function feed(t: tf.Tensor): { data: Float32Array; dims: number[] } {
  // A copy, not a view of the wasm heap: a view is detached or overwritten by any tfjs allocation
  // before ORT reads it (seen as a live frame's grid differing between two identical frames).
  const data = t.dataSync();
  return { data: data instanceof Float32Array ? data : Float32Array.from(data), dims: t.shape };
}

function active(): NativeConfig {
  if (!config) throw new Error('the ONNX Runtime engine is not selected (choose the onnx backend)');
  return config;
}

/** The outputs of nodes `taps` (NHWC, batch first), as tfjs tensors the caller owns. */
export function nativeForward(model: NativeModel, x: tf.Tensor4D, taps: number[]): tf.Tensor[] {
  const out = nativeForwardData(model, inputShapeOf(x), feed(x).data, taps);
  return taps.map((_, k) => tf.tensor(out[k]!.data, [x.shape[0], ...out[k]!.shape]));
}

/**
 * The same from and to plain arrays: `x` is the NHWC input (batch = its length over one image's),
 * each tap ORT's own output buffer (NHWC, batch first) with its shape without the batch axis. For
 * callers whose work around the network is typed-array passes (the live frame): no tensor is made.
 */
export function nativeForwardData(model: NativeModel, inputShape: [number, number, number], x: Float32Array, taps: number[]): { data: Float32Array; shape: number[] }[] {
  const c = active();
  const e = entryFor(model, inputShape, taps, undefined, c);
  const n = x.length / (inputShape[0] * inputShape[1] * inputShape[2]);
  if (!Number.isInteger(n)) throw new Error(`network input has ${x.length} values, not a whole number of ${inputShape.join('×')} images`);
  const out = e.session.run({ x: { data: x, dims: [n, ...inputShape] } }, taps.map((_, k) => `tap${k}`));
  return taps.map((t, k) => ({ data: out[`tap${k}`]!.data as Float32Array, shape: e.shapes[t]! }));
}

export interface NativeBackwardResult {
  /** The signal at node `to` (NHWC, batch first). */
  grad: tf.Tensor;
  /** Σ y·seed per batch item ([N]); null for "self" seeds. */
  value: tf.Tensor1D | null;
  /** The forward outputs of the requested taps. */
  taps: tf.Tensor[];
}

/**
 * One forward and backward pass in a single ONNX Runtime run. `seed` is shaped like node `from`'s
 * output for the "given" kind, [N, C] otherwise.
 */
export function nativeBackward(model: NativeModel, x: tf.Tensor4D, spec: BackwardSpec, seed: Float32Array, taps: number[] = []): NativeBackwardResult {
  const { data, dims } = feed(x);
  const r = nativeBackwardData(model, data, dims as Dims4, spec, seed, taps);
  const n = x.shape[0];
  return {
    grad: tf.tensor(r.grad, [n, ...r.shapes[spec.to]!]),
    value: r.value ? tf.tensor1d(r.value) : null,
    taps: taps.map((t, k) => tf.tensor(r.taps[k]!, [n, ...r.shapes[t]!])),
  };
}

type Dims4 = [number, number, number, number];

/**
 * nativeBackward on plain arrays (NHWC, batch first, `dims` of the input): for a caller that
 * builds the input and uses the outputs in its own loops (the synthesis step), with no tensor
 * in between. `shapes` are the nodes' output shapes without the batch axis.
 */
export function nativeBackwardData(
  model: NativeModel,
  x: Float32Array,
  dims: Dims4,
  spec: BackwardSpec,
  seed: Float32Array,
  taps: number[] = [],
): { grad: Float32Array; value: Float32Array | null; taps: Float32Array[]; shapes: number[][] } {
  const c = active();
  const e = entryFor(model, [dims[1], dims[2], dims[3]], taps, spec, c);
  const n = dims[0];
  const fromShape = e.shapes[spec.from]!;
  const seedDims = spec.seed === 'given' ? [n, ...fromShape] : [n, fromShape[fromShape.length - 1]!];
  const expected = seedDims.reduce((a, b) => a * b, 1);
  if (seed.length !== expected) throw new Error(`backward seed has ${seed.length} values, the ${spec.seed} seed of node ${spec.from} needs ${expected}`);
  const names = ['grad', ...(spec.seed === 'self' ? [] : ['value']), ...taps.map((_, k) => `tap${k}`)];
  const out = e.session.run({ x: { data: x, dims }, seed: { data: seed, dims: seedDims } }, names);
  return {
    grad: out.grad!.data as Float32Array,
    value: spec.seed === 'self' ? null : (out.value!.data as Float32Array),
    taps: taps.map((_, k) => out[`tap${k}`]!.data as Float32Array),
    shapes: e.shapes,
  };
}

/**
 * A per-item channel seed ([N, C]) for node `from`: `weight` on channel `unit` of every batch item.
 * `weight` sees the node's shape (NHWC, no batch), e.g. to divide by its spatial size.
 */
export function channelSeed(model: NativeModel, x: tf.Tensor4D, from: number, unit: number, weight: (shape: number[]) => number): Float32Array {
  const shape = nativeNodeShapes(model, inputShapeOf(x))[from]!;
  const c = shape[shape.length - 1]!;
  if (!Number.isInteger(unit) || unit < 0 || unit >= c) throw new Error(`unit ${unit} is out of range (0…${c - 1})`);
  const n = x.shape[0];
  const w = weight(shape);
  const mask = new Float32Array(n * c);
  for (let i = 0; i < n; i++) mask[i * c + unit] = w;
  return mask;
}
