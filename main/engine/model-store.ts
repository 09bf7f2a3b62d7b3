// Finds models on disk (models/<id>/deepvis.json + a TF.js LayersModel beside it), checks their
// files against SHA256SUMS and loads them into compiled networks.
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { delimiter, dirname, isAbsolute, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs-core';
import { z } from 'zod';
import { checkSupportedLayers, compileKeras } from './compile.js';
import { parseDescriptor, type ModelDescriptor } from './descriptor.js';
import { oneLine } from './errors.js';
import { parseKerasTopology, type KerasGraph } from './keras-topology.js';
import { Model, type ClassInfo } from './model.js';
import { graphModelMessage, inferCached, inputMixFor, isGraphModel, readClassFile } from './model-infer.js';

export const DEFAULT_MODELS_DIR = resolve(dirname(fileURLToPath(import.meta.url)), '../../models');
export const DEFAULT_MODEL_ID = 'mobilenet-v1-0.75';

/**
 * The model folders, as one PATH-style string (folders joined by path.delimiter):
 * $DEEPVIS_MODELS_DIR when set, else the bundled models/. Every function here that takes a
 * `dir` takes such a list; a later folder's model shadows an earlier one of the same id.
 */
export function modelsDir(): string {
  return process.env.DEEPVIS_MODELS_DIR ? splitRoots(process.env.DEEPVIS_MODELS_DIR).join(delimiter) : DEFAULT_MODELS_DIR;
}

/** The model folders plus `extra` (a user's --models-dir): it adds to them, never replaces them. */
export function withModelsDir(extra: string | undefined, base = modelsDir()): string {
  return extra ? [...new Set([...splitRoots(base), resolve(extra)])].join(delimiter) : base;
}

function splitRoots(dir: string): string[] {
  return [...new Set(dir.split(delimiter).filter(Boolean).map((d) => resolve(d)))];
}

/** What is wrong with a model folder: files absent, files damaged, a file we cannot read, a layer we cannot run. */
export type ModelFault = 'missing' | 'corrupt' | 'invalid' | 'unsupported';

export interface ModelEntry {
  id: string;
  dir: string;
  descriptor: ModelDescriptor | null;
  /** Why the model cannot be loaded (one line naming the file or layer and the fix), or null. */
  problem: string | null;
  /** The kind of problem, when there is one. */
  fault?: ModelFault;
  /** For a folder without deepvis.json: what was inferred rather than read, one note each. */
  inferred?: string[];
}

const FIX = 'run `npm run fetch-models` (or set DEEPVIS_MODEL_MIRROR to a folder holding <id>/)';
const fixFor = (id: string) => FIX.replace('<id>', id);

class ModelProblem extends Error {
  constructor(
    readonly fault: ModelFault,
    message: string,
  ) {
    super(message);
  }
}

/** Weight shard paths in model.json are relative to it; anything that escapes the folder is refused. */
const WeightPath = z.string().min(1).refine((p) => !isAbsolute(p) && !p.split(/[\\/]/).includes('..'), 'must be a path inside the model folder');

/** The parts of a TF.js LayersModel's model.json that the loader reads (the topology is checked by keras-topology.ts). */
const ModelJsonSchema = z.object({
  modelTopology: z.unknown(),
  weightsManifest: z.array(
    z.object({
      paths: z.array(WeightPath).min(1),
      weights: z.array(
        z.looseObject({
          name: z.string().min(1),
          shape: z.array(z.number().int().nonnegative()),
          dtype: z.enum(['float32', 'int32', 'bool', 'string', 'complex64']),
          quantization: z.looseObject({ dtype: z.enum(['uint8', 'uint16', 'float16']) }).optional(),
        }),
      ),
    }),
  ),
});
type ModelJson = z.infer<typeof ModelJsonSchema>;

function firstIssue(e: z.ZodError): string {
  const i = e.issues[0]!;
  const more = e.issues.length > 1 ? ` (and ${e.issues.length - 1} more problems)` : '';
  return `${i.path.map(String).join('.')}: ${i.message}${more}`;
}

/** Bytes a weight takes in its shard, or null when it cannot be known without decoding (strings). */
function weightBytes(w: ModelJson['weightsManifest'][number]['weights'][number]): number | null {
  if (w.dtype === 'string') return null;
  const n = w.shape.reduce((a, b) => a * b, 1);
  const per = w.quantization ? { uint8: 1, uint16: 2, float16: 2 }[w.quantization.dtype] : { float32: 4, int32: 4, bool: 1, complex64: 8 }[w.dtype];
  return n * per;
}

interface Checked {
  /** Digest of SHA256SUMS (or of model.json without one): the model's identity for caches. */
  checksum: string;
  modelJson: ModelJson;
  graph: KerasGraph;
  classes: ClassInfo[];
  /** File contents read while checking (only when asked to keep them). */
  files: Map<string, Buffer>;
}

/**
 * Everything that can be wrong with a model folder short of running it: files listed in the
 * checksum list present and intact, model.json readable and shaped like a LayersModel, every layer
 * type one the compiler has, the descriptor's layers present, weight files present and as long as
 * the manifest says, class files readable. Throws a ModelProblem naming the file or layer.
 */
function checkModel(mdir: string, d: ModelDescriptor, keepFiles: boolean): Checked {
  const id = d.id;
  const mjPath = join(mdir, d.weights.modelJson);
  const files = new Map<string, Buffer>();
  // model.json is both hashed and parsed: read it once even when the shards are not kept.
  const read = (file: string): Buffer => {
    const have = files.get(file);
    if (have) return have;
    const buf = readFileSync(file);
    if (keepFiles || file === mjPath) files.set(file, buf);
    return buf;
  };
  if (!existsSync(mjPath)) throw new ModelProblem('missing', `${mjPath} is missing — ${fixFor(id)}`);

  let checksum: string;
  const sumsPath = d.weights.checksums ? join(mdir, d.weights.checksums) : null;
  if (sumsPath && existsSync(sumsPath)) {
    const text = readFileSync(sumsPath, 'utf8');
    for (const [n, line] of text.split('\n').entries()) {
      if (!line.trim() || line.trim().startsWith('#')) continue;
      const m = line.trim().match(/^([0-9a-f]{64})\s+\*?(.+)$/i);
      if (!m) throw new ModelProblem('invalid', `${sumsPath}:${n + 1}: expected "<sha256>  <file>" — ${fixFor(id)}`);
      const file = join(mdir, m[2]!);
      if (!existsSync(file)) throw new ModelProblem('missing', `${file} is missing — ${fixFor(id)}`);
      const actual = createHash('sha256').update(read(file)).digest('hex');
      if (actual !== m[1]!.toLowerCase()) {
        throw new ModelProblem('corrupt', `${file} is corrupt (sha256 ${actual.slice(0, 12)}…, expected ${m[1]!.slice(0, 12)}…) — ${fixFor(id)}`);
      }
    }
    checksum = createHash('sha256').update(text).digest('hex');
  } else {
    // A user's own model without checksums: identify it by its model.json.
    checksum = createHash('sha256').update(read(mjPath)).digest('hex');
  }

  let json: unknown;
  try {
    json = JSON.parse(read(mjPath).toString('utf8'));
  } catch (e) {
    throw new ModelProblem('invalid', `${mjPath} is not valid JSON (${oneLine(e)}) — the file is damaged; ${fixFor(id)}`);
  }
  if (isGraphModel(json)) throw new ModelProblem('unsupported', graphModelMessage(mjPath));
  const parsed = ModelJsonSchema.safeParse(json);
  if (!parsed.success) {
    const what = parsed.error.issues[0]!.path.length ? firstIssue(parsed.error) : 'expected an object with modelTopology and weightsManifest';
    throw new ModelProblem('invalid', `${mjPath} is not a TF.js LayersModel: ${what}`);
  }
  const modelJson = parsed.data;
  let graph: KerasGraph;
  try {
    graph = parseKerasTopology(modelJson.modelTopology);
  } catch (e) {
    throw new ModelProblem('invalid', `${mjPath} is not a usable Keras model: ${oneLine(e)}`);
  }
  try {
    checkSupportedLayers(graph);
  } catch (e) {
    throw new ModelProblem('unsupported', `${mjPath}: ${oneLine(e)}`);
  }
  try {
    inputMixFor(d, graph, mjPath);
  } catch (e) {
    throw new ModelProblem('unsupported', oneLine(e));
  }
  const names = new Set(graph.layers.map((l) => l.name));
  for (const l of [...d.layers.map((x) => x.name), ...(d.logits ? [d.logits] : [])]) {
    if (!names.has(l)) throw new ModelProblem('invalid', `${join(mdir, 'deepvis.json')}: layer "${l}" is not in ${mjPath}`);
  }

  for (const group of modelJson.weightsManifest) {
    let have = 0;
    const groupFiles = group.paths.map((p) => join(mdir, p));
    for (const file of groupFiles) {
      if (!existsSync(file)) throw new ModelProblem('missing', `weight file ${file} listed in ${mjPath} is missing — ${fixFor(id)}`);
      have += statSync(file).size;
    }
    const sizes = group.weights.map(weightBytes);
    if (sizes.every((b): b is number => b !== null)) {
      const want = sizes.reduce((a, b) => a + b, 0);
      if (have !== want) {
        const which = groupFiles.length === 1 ? groupFiles[0]! : `${groupFiles[0]} (+${groupFiles.length - 1} more)`;
        throw new ModelProblem('corrupt', `${which} holds ${have} bytes but ${mjPath} describes ${want} (weights ${group.weights[0]?.name ?? '?'}…) — the file is truncated or belongs to another model; ${fixFor(id)}`);
      }
    }
  }

  let classes: ClassInfo[];
  try {
    classes = readClasses(mdir, d);
  } catch (e) {
    throw new ModelProblem('invalid', oneLine(e));
  }
  return { checksum, modelJson, graph, classes, files };
}

/**
 * Results of checkModel per folder, valid while no file in it (nor its class files) changes:
 * listing models hashes each one once, not on every hello.
 */
const checkCache = new Map<string, { signature: string; problem: ModelProblem | null }>();

function signature(mdir: string, d: ModelDescriptor): string {
  const parts = [JSON.stringify(d)];
  const paths = [
    ...readdirSync(mdir).sort().map((f) => join(mdir, f)),
    ...(d.classes ? [join(mdir, d.classes.names)] : []),
    ...(d.classes?.wnids ? [join(mdir, d.classes.wnids)] : []),
  ];
  for (const p of paths) {
    try {
      const st = statSync(p);
      parts.push(`${p}:${st.size}:${st.mtimeMs}:${st.ino}`);
    } catch {
      parts.push(`${p}:-`);
    }
  }
  return parts.join('\n');
}

function cachedProblem(mdir: string, d: ModelDescriptor): ModelProblem | null {
  const sig = signature(mdir, d);
  const hit = checkCache.get(mdir);
  if (hit && hit.signature === sig) return hit.problem;
  let problem: ModelProblem | null = null;
  try {
    checkModel(mdir, d, false);
  } catch (e) {
    problem = e instanceof ModelProblem ? e : new ModelProblem('invalid', oneLine(e));
  }
  checkCache.set(mdir, { signature: sig, problem });
  return problem;
}

interface Found {
  id: string;
  dir: string;
  descriptor: ModelDescriptor | null;
  descriptorError: string | null;
  inferred?: string[];
}

/**
 * Model folders of every root: those with a deepvis.json, and bare folders holding a model.json
 * (their descriptor inferred). A later root's model shadows an earlier one with the same id.
 */
function scan(dir: string): Found[] {
  const byId = new Map<string, Found>();
  for (const root of splitRoots(dir)) for (const f of scanRoot(root)) byId.set(f.id, f);
  return [...byId.values()];
}

function scanRoot(dir: string): Found[] {
  if (!existsSync(dir)) return [];
  const out: Found[] = [];
  for (const name of readdirSync(dir).sort()) {
    const mdir = join(dir, name);
    const dpath = join(mdir, 'deepvis.json');
    if (!existsSync(dpath)) {
      const bare = inferBare(mdir);
      if (bare) out.push(bare);
      continue;
    }
    try {
      const descriptor = parseDescriptor(JSON.parse(readFileSync(dpath, 'utf8')), dpath);
      out.push({ id: descriptor.id, dir: mdir, descriptor, descriptorError: null });
    } catch (e) {
      const msg = oneLine(e);
      out.push({ id: name, dir: mdir, descriptor: null, descriptorError: msg.startsWith(dpath) ? msg : `${dpath}: ${msg}` });
    }
  }
  return out;
}

/** A folder without deepvis.json but with a model.json: a model whose descriptor is inferred. */
function inferBare(mdir: string): Found | null {
  if (!existsSync(join(mdir, 'model.json'))) return null;
  try {
    const { descriptor, notes } = inferCached(mdir);
    return { id: descriptor.id, dir: mdir, descriptor, descriptorError: null, inferred: notes };
  } catch (e) {
    return { id: basenameOf(mdir), dir: mdir, descriptor: null, descriptorError: oneLine(e) };
  }
}

const basenameOf = (p: string) => p.split(/[\\/]/).filter(Boolean).pop() ?? p;

/**
 * The models in a folder, each with the problem that would stop it loading (checked once per
 * change of its files: see checkModel). A broken model never hides the others.
 */
export function listModels(dir = modelsDir()): ModelEntry[] {
  return scan(dir).map((f) => {
    const inferred = f.inferred ? { inferred: f.inferred } : {};
    if (!f.descriptor) {
      const fault: ModelFault = /graph model|not supported yet/.test(f.descriptorError ?? '') ? 'unsupported' : 'invalid';
      return { id: f.id, dir: f.dir, descriptor: null, problem: f.descriptorError, fault };
    }
    const p = cachedProblem(f.dir, f.descriptor);
    return p
      ? { id: f.id, dir: f.dir, descriptor: f.descriptor, problem: p.message, fault: p.fault, ...inferred }
      : { id: f.id, dir: f.dir, descriptor: f.descriptor, problem: null, ...inferred };
  });
}

function readJson(path: string): unknown {
  try {
    return JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new Error(`${path}: ${(e as Error).message}`);
  }
}

function readWeights(mdir: string, manifest: tf.io.WeightsManifestConfig, files: Map<string, Buffer>): tf.NamedTensorMap {
  const specs: tf.io.WeightsManifestEntry[] = [];
  const buffers: Buffer[] = [];
  for (const group of manifest) {
    for (const p of group.paths) {
      const file = join(mdir, p);
      buffers.push(files.get(file) ?? readFileSync(file));
    }
    specs.push(...group.weights);
  }
  const all = Buffer.concat(buffers);
  const ab = all.buffer.slice(all.byteOffset, all.byteOffset + all.byteLength) as ArrayBuffer;
  return tf.io.decodeWeights(ab, specs);
}

/** A model's classes in its own order, from its class files alone (no weights needed). */
export function readClasses(mdir: string, d: ModelDescriptor): ClassInfo[] {
  if (!d.classes) return [];
  if (!/\.json$/i.test(d.classes.names) || !d.classes.wnids) {
    return readClassFile(join(mdir, d.classes.names)).map((name, index) => ({ index, name, wnid: null }));
  }
  const names = readJson(join(mdir, d.classes.names)) as string[];
  const wnids = d.classes.wnids ? (readJson(join(mdir, d.classes.wnids)) as string[]) : null;
  if (!Array.isArray(names)) throw new Error(`${d.classes.names}: expected a JSON array of class names`);
  if (wnids && wnids.length !== names.length) throw new Error(`${d.classes.wnids}: ${wnids.length} WordNet ids for ${names.length} class names`);
  return names.map((name, index) => ({ index, name: String(name), wnid: wnids ? String(wnids[index]) : null }));
}

/**
 * Load a model into a compiled network. Every file is re-checked (checksums included) whatever the
 * listing said; a failure throws one line starting "model <id>:" that names the file or layer.
 */
export async function loadModel(id: string, dir = modelsDir()): Promise<Model> {
  const found = scan(dir);
  const entry = found.find((m) => m.id === id);
  if (!entry) {
    throw new Error(`unknown model "${id}" (models here: ${found.map((m) => m.id).join(', ') || 'none'} in ${splitRoots(dir).join(', ')})`);
  }
  if (!entry.descriptor) throw new Error(`model ${id} cannot be loaded: ${entry.descriptorError}`);
  const d = entry.descriptor;
  let checked: Checked;
  try {
    checked = checkModel(entry.dir, d, true);
    checkCache.set(entry.dir, { signature: signature(entry.dir, d), problem: null });
  } catch (e) {
    const problem = e instanceof ModelProblem ? e : new ModelProblem('invalid', oneLine(e));
    checkCache.set(entry.dir, { signature: signature(entry.dir, d), problem });
    throw new Error(`model ${id}: ${problem.message}`);
  }
  const { graph, classes, modelJson, files, checksum } = checked;
  let weights: tf.NamedTensorMap;
  try {
    weights = readWeights(entry.dir, modelJson.weightsManifest as tf.io.WeightsManifestConfig, files);
  } catch (e) {
    throw new Error(`model ${id}: the weight files do not match ${join(entry.dir, d.weights.modelJson)} (${oneLine(e)}) — ${fixFor(id)}`);
  } finally {
    files.clear();
  }
  try {
    const keep = new Set(d.layers.map((l) => l.name));
    let compiled;
    try {
      compiled = compileKeras(graph, weights, keep, { logitsHint: d.logits, inputMix: inputMixFor(d, graph, join(entry.dir, d.weights.modelJson)) });
      for (const l of d.layers) compiled.net.nodeIndex(l.name);
    } catch (e) {
      throw new Error(`model ${id}: ${join(entry.dir, d.weights.modelJson)}: ${oneLine(e)}`);
    }
    return new Model(d, entry.dir, checksum, compiled, classes);
  } finally {
    tf.dispose(Object.values(weights));
  }
}
