// What range a graph model expects its pixels in, when it scales its own input by constants (a
// TF Hub image model's x·2 − 1 expects 0…1; a Keras Rescaling(1/127.5, −1) exported as a graph
// expects 0…255). Reads only those few constants' bytes from the weight shards holding them.
import { dirname } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { FILE_CAPS, pathInside, readRegularFile } from '../model-files.js';
import { parseGraphDef } from './graphdef.js';
import type { GraphModelJson } from './read.js';

interface Entry {
  name: string;
  shape: number[];
  dtype: string;
  quantization?: { dtype: string };
}

function entryBytes(w: Entry): number {
  const n = w.shape.reduce((a, b) => a * b, 1);
  const per = w.quantization ? ({ uint8: 1, uint16: 2, float16: 2 } as Record<string, number>)[w.quantization.dtype]! : ({ float32: 4, int32: 4, bool: 1 } as Record<string, number>)[w.dtype]!;
  return n * per;
}

/** Values of the named (small) constants, reading only the shards that hold them. */
async function readConstants(mjPath: string, mdir: string, json: GraphModelJson, names: Set<string>): Promise<Map<string, number[]>> {
  const out = new Map<string, number[]>();
  for (const group of json.weightsManifest as unknown as { paths: string[]; weights: Entry[] }[]) {
    let at = 0;
    const wanted: { w: Entry; at: number; len: number }[] = [];
    for (const w of group.weights) {
      const len = entryBytes(w);
      if (!Number.isFinite(len)) break;
      if (names.has(w.name)) wanted.push({ w, at, len });
      at += len;
    }
    if (!wanted.length) continue;
    // Shard sizes are known only by reading; read shards in order until the last wanted byte.
    const end = Math.max(...wanted.map((x) => x.at + x.len));
    const parts: Buffer[] = [];
    let have = 0;
    for (const p of group.paths) {
      if (have >= end) break;
      const buf = await readRegularFile(pathInside(dirname(mjPath), p, [mdir]), [mdir], FILE_CAPS.weightShard);
      parts.push(buf);
      have += buf.length;
    }
    const all = Buffer.concat(parts);
    for (const { w, at: start, len } of wanted) {
      if (start + len > all.length) continue;
      const bytes = all.subarray(start, start + len);
      const ab = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
      const t = tf.io.decodeWeights(ab, [w as tf.io.WeightsManifestEntry])[w.name]!;
      out.set(w.name, Array.from(t.dataSync() as ArrayLike<number>));
      t.dispose();
    }
  }
  return out;
}

const SCALING_OPS = new Set(['Mul', 'RealDiv', 'Sub', 'Add', 'AddV2']);

/**
 * The preprocessing a graph model that scales its own input expects: "raw" when its constants map
 * 0…255 into a small range (about ±3), "0-1" when they do that to 0…1. Null when the first ops are
 * not a scaling by scalar constants, or neither range fits.
 */
export async function graphInputRange(mjPath: string, mdir: string, json: GraphModelJson): Promise<{ preset: 'raw' | '0-1'; node: string } | null> {
  const g = parseGraphDef(json.modelTopology);
  const consumers = new Map<string, string[]>();
  for (const n of g.nodes) for (const i of n.inputs) consumers.set(i, [...(consumers.get(i) ?? []), n.name]);
  const byName = new Map(g.nodes.map((n) => [n.name, n]));
  const isConst = (name: string) => byName.get(name)?.op === 'Const';
  // Follow the input through scalings by one constant each, as long as nothing else reads it.
  const chain: { op: string; c: string; constFirst: boolean; name: string }[] = [];
  let cur = g.input.name;
  for (;;) {
    const next = consumers.get(cur) ?? [];
    if (next.length !== 1) break;
    const n = byName.get(next[0]!)!;
    if (!SCALING_OPS.has(n.op) || n.inputs.length !== 2) break;
    const k = n.inputs.findIndex(isConst);
    if (k < 0 || n.inputs[1 - k] !== cur) break;
    chain.push({ op: n.op, c: n.inputs[k]!, constFirst: k === 0, name: n.name });
    cur = n.name;
  }
  if (!chain.length) return null;
  const values = await readConstants(mjPath, mdir, json, new Set(chain.map((s) => s.c)));
  // The chain as one affine map a·x + b.
  let a = 1;
  let b = 0;
  for (const s of chain) {
    const v = values.get(s.c);
    if (!v || v.length !== 1) return null;
    const c = v[0]!;
    if (s.op === 'Mul') [a, b] = [a * c, b * c];
    else if (s.op === 'RealDiv') {
      if (s.constFirst) return null;
      [a, b] = [a / c, b / c];
    } else if (s.op === 'Sub') [a, b] = s.constFirst ? [-a, c - b] : [a, b - c];
    else b += c;
  }
  const fits = (hi: number) => Math.max(Math.abs(b), Math.abs(a * hi + b)) <= 3;
  const node = chain[0]!.name;
  if (fits(255)) return { preset: 'raw', node };
  if (fits(1)) return { preset: '0-1', node };
  return null;
}
