// Finds models on disk (models/<id>/deepvis.json + a TF.js LayersModel beside it), checks their
// files against SHA256SUMS and loads them into compiled networks.
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs-core';
import { compileKeras } from './compile.js';
import { parseDescriptor, type ModelDescriptor } from './descriptor.js';
import { parseKerasTopology } from './keras-topology.js';
import { Model, type ClassInfo } from './model.js';

export const DEFAULT_MODELS_DIR = resolve(dirname(fileURLToPath(import.meta.url)), '../../models');
export const DEFAULT_MODEL_ID = 'mobilenet-v1-0.75';

export function modelsDir(): string {
  return process.env.DEEPVIS_MODELS_DIR ? resolve(process.env.DEEPVIS_MODELS_DIR) : DEFAULT_MODELS_DIR;
}

export interface ModelEntry {
  id: string;
  dir: string;
  descriptor: ModelDescriptor | null;
  /** Why the model cannot be loaded, or null when its files are present. */
  problem: string | null;
}

const FIX = 'run `npm run fetch-models` (or set DEEPVIS_MODEL_MIRROR to a folder holding <id>/)';

export function listModels(dir = modelsDir()): ModelEntry[] {
  if (!existsSync(dir)) return [];
  const out: ModelEntry[] = [];
  for (const id of readdirSync(dir).sort()) {
    const mdir = join(dir, id);
    const dpath = join(mdir, 'deepvis.json');
    if (!existsSync(dpath)) continue;
    try {
      const descriptor = parseDescriptor(JSON.parse(readFileSync(dpath, 'utf8')), dpath);
      const mj = join(mdir, descriptor.weights.modelJson);
      out.push({ id: descriptor.id, dir: mdir, descriptor, problem: existsSync(mj) ? null : `${mj} is missing — ${FIX.replace('<id>', descriptor.id)}` });
    } catch (e) {
      out.push({ id, dir: mdir, descriptor: null, problem: (e as Error).message });
    }
  }
  return out;
}

function readJson(path: string): unknown {
  try {
    return JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new Error(`${path}: ${(e as Error).message}`);
  }
}

/** Verify the files listed in SHA256SUMS; returns a digest of the list (the model's identity). */
function verifyChecksums(mdir: string, sumsFile: string | undefined, id: string): string {
  const sumsPath = sumsFile ? join(mdir, sumsFile) : null;
  if (!sumsPath || !existsSync(sumsPath)) {
    // A user's own model without checksums: identify it by its model.json.
    return createHash('sha256').update(readFileSync(join(mdir, 'model.json'))).digest('hex');
  }
  const text = readFileSync(sumsPath, 'utf8');
  for (const line of text.split('\n')) {
    const m = line.trim().match(/^([0-9a-f]{64})\s+\*?(.+)$/i);
    if (!m) continue;
    const file = join(mdir, m[2]!);
    if (!existsSync(file)) throw new Error(`model ${id}: ${file} is missing — ${FIX.replace('<id>', id)}`);
    const actual = createHash('sha256').update(readFileSync(file)).digest('hex');
    if (actual !== m[1]!.toLowerCase()) {
      throw new Error(`model ${id}: ${file} is corrupt (sha256 ${actual.slice(0, 12)}…, expected ${m[1]!.slice(0, 12)}…) — ${FIX.replace('<id>', id)}`);
    }
  }
  return createHash('sha256').update(text).digest('hex');
}

function readWeights(mdir: string, manifest: tf.io.WeightsManifestConfig): tf.NamedTensorMap {
  const specs: tf.io.WeightsManifestEntry[] = [];
  const buffers: Buffer[] = [];
  for (const group of manifest) {
    for (const p of group.paths) {
      const file = join(mdir, p);
      if (!existsSync(file)) throw new Error(`weight file ${file} listed in model.json is missing — ${FIX}`);
      buffers.push(readFileSync(file));
    }
    specs.push(...group.weights);
  }
  const all = Buffer.concat(buffers);
  const ab = all.buffer.slice(all.byteOffset, all.byteOffset + all.byteLength) as ArrayBuffer;
  return tf.io.decodeWeights(ab, specs);
}

/** A model's classes in its own order, from its class files alone (no weights needed). */
export function readClasses(mdir: string, d: ModelDescriptor): ClassInfo[] {
  const names = readJson(join(mdir, d.classes.names)) as string[];
  const wnids = d.classes.wnids ? (readJson(join(mdir, d.classes.wnids)) as string[]) : null;
  if (!Array.isArray(names)) throw new Error(`${d.classes.names}: expected a JSON array of class names`);
  if (wnids && wnids.length !== names.length) throw new Error(`${d.classes.wnids}: ${wnids.length} WordNet ids for ${names.length} class names`);
  return names.map((name, index) => ({ index, name: String(name), wnid: wnids ? String(wnids[index]) : null }));
}

export async function loadModel(id: string, dir = modelsDir()): Promise<Model> {
  const entry = listModels(dir).find((m) => m.id === id);
  if (!entry) {
    const have = listModels(dir).map((m) => m.id);
    throw new Error(`unknown model "${id}" (models here: ${have.join(', ') || 'none'} in ${dir})`);
  }
  if (!entry.descriptor || entry.problem) throw new Error(`model ${id} cannot be loaded: ${entry.problem}`);
  const d = entry.descriptor;
  const checksum = verifyChecksums(entry.dir, d.weights.checksums, id);
  const modelJson = readJson(join(entry.dir, d.weights.modelJson)) as {
    modelTopology: unknown;
    weightsManifest: tf.io.WeightsManifestConfig;
  };
  const graph = parseKerasTopology(modelJson.modelTopology);
  const classes = readClasses(entry.dir, d);
  const weights = readWeights(entry.dir, modelJson.weightsManifest);
  try {
    const keep = new Set(d.layers.map((l) => l.name));
    const compiled = compileKeras(graph, weights, keep, d.logits);
    for (const l of d.layers) compiled.net.nodeIndex(l.name);
    return new Model(d, entry.dir, checksum, compiled, classes);
  } finally {
    tf.dispose(Object.values(weights));
  }
}
