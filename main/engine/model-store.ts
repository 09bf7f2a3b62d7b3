// Finds models on disk (models/<id>/deepvis.json + a TF.js LayersModel beside it), checks their
// files against SHA256SUMS and loads them into compiled networks.
import { createHash } from 'node:crypto';
import { basename, delimiter, dirname, isAbsolute, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs-core';
import { z } from 'zod';
import { checkSupportedLayers, compileKeras } from './compile.js';
import { parseDescriptor, type ModelDescriptor } from './descriptor.js';
import { oneLine } from './errors.js';
import { graphModelStructure, graphModelWithWeights, type GraphModelJson } from './graph-model/read.js';
import { parseKerasTopology, type KerasGraph } from './keras-topology.js';
import { Model, type ClassInfo } from './model.js';
import type { PreprocessInfo } from '../../contract/user-models.js';
import type { WorkerModelFilesT } from '../../contract/worker.js';
import { inferCached, inputMixFor, isGraphModel, PREPROCESS_PRESETS, preprocessPresetOf, readClassFile, type PreprocessPreset } from './model-infer.js';
import { checkRegularFile, exists, FILE_CAPS, folderSignature, listFolder, ModelFileError, pathInside, readChecked, readRegularFile } from './model-files.js';

export const DEFAULT_MODELS_DIR = resolve(dirname(fileURLToPath(import.meta.url)), '../../models');
export const DEFAULT_MODEL_ID = 'mobilenet-v1-0.75';

/**
 * The model folders, as one PATH-style string (folders joined by path.delimiter): `list` (the
 * host's DEEPVIS_MODELS_DIR) when given, else the bundled models/. Every function here that takes
 * a `dir` takes such a list.
 */
export function modelsDir(list?: string | null): string {
  return list ? splitRoots(list).join(delimiter) : DEFAULT_MODELS_DIR;
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
  /** The folder of a model with the same id in an earlier models folder, which this one replaces. */
  overrides?: string;
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

/** The parts of a TF.js model.json that the loader reads (the topology is checked by keras-topology.ts or graph-model/). */
const ModelJsonSchema = z.object({
  modelTopology: z.unknown(),
  /** A graph model's inputs and outputs by tensor name (layers models have none). */
  signature: z.unknown().optional(),
  userDefinedMetadata: z.unknown().optional(),
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
  /** A TF.js graph model (its layer list is restated from the GraphDef; weights by node name). */
  graphModel: boolean;
  classes: ClassInfo[];
  /** File contents read while checking (only when asked to keep them). */
  files: Map<string, Buffer>;
}

/** A file fault as a model fault: a file we refuse to read is as unusable as a damaged one. */
function asProblem(e: unknown, id: string): ModelProblem {
  if (e instanceof ModelProblem) return e;
  if (e instanceof ModelFileError) {
    return new ModelProblem(e.fault === 'missing' ? 'missing' : 'invalid', e.fault === 'missing' ? `${e.message} — ${fixFor(id)}` : e.message);
  }
  return new ModelProblem('invalid', oneLine(e));
}

/**
 * Everything that can be wrong with a model folder short of running it: files listed in the
 * checksum list present and intact, model.json readable and shaped like a LayersModel, every layer
 * type one the compiler has, the descriptor's layers present, weight files present and as long as
 * the manifest says, class files readable. Every file named anywhere must be a regular file inside
 * the model folder (class files: inside it or the models folder) under its size cap. Throws a
 * ModelProblem naming the file or layer.
 */
async function checkModel(mdir: string, d: ModelDescriptor, keepFiles: boolean): Promise<Checked> {
  const id = d.id;
  const roots = [mdir];
  const files = new Map<string, Buffer>();
  const mjPath = pathInside(mdir, d.weights.modelJson);
  // model.json is both hashed and parsed: read it once even when the shards are not kept.
  const read = async (file: string, cap: number): Promise<Buffer> => {
    const have = files.get(file);
    if (have) return have;
    const buf = await readRegularFile(file, roots, cap);
    if (keepFiles || file === mjPath) files.set(file, buf);
    return buf;
  };
  if (!(await exists(mjPath))) throw new ModelProblem('missing', `${mjPath} is missing — ${fixFor(id)}`);

  let checksum: string;
  const sumsPath = d.weights.checksums ? pathInside(mdir, d.weights.checksums) : null;
  if (sumsPath && (await exists(sumsPath))) {
    const text = (await readRegularFile(sumsPath, roots, FILE_CAPS.checksums)).toString('utf8');
    for (const [n, line] of text.split('\n').entries()) {
      if (!line.trim() || line.trim().startsWith('#')) continue;
      const m = line.trim().match(/^([0-9a-f]{64})\s+\*?(.+)$/i);
      if (!m) throw new ModelProblem('invalid', `${sumsPath}:${n + 1}: expected "<sha256>  <file>" — ${fixFor(id)}`);
      let file: string;
      try {
        file = pathInside(mdir, m[2]!);
      } catch (e) {
        throw new ModelProblem('invalid', `${sumsPath}:${n + 1}: ${oneLine(e)}`);
      }
      const actual = createHash('sha256').update(await read(file, file === mjPath ? FILE_CAPS.modelJson : FILE_CAPS.weightShard)).digest('hex');
      if (actual !== m[1]!.toLowerCase()) {
        throw new ModelProblem('corrupt', `${file} is corrupt (sha256 ${actual.slice(0, 12)}…, expected ${m[1]!.slice(0, 12)}…) — ${fixFor(id)}`);
      }
    }
    checksum = createHash('sha256').update(text).digest('hex');
  } else {
    // A user's own model without checksums: identify it by its model.json.
    checksum = createHash('sha256').update(await read(mjPath, FILE_CAPS.modelJson)).digest('hex');
  }

  let json: unknown;
  try {
    json = JSON.parse((await read(mjPath, FILE_CAPS.modelJson)).toString('utf8'));
  } catch (e) {
    if (e instanceof ModelFileError) throw e;
    throw new ModelProblem('invalid', `${mjPath} is not valid JSON (${oneLine(e)}) — the file is damaged; ${fixFor(id)}`);
  }
  const graphModel = isGraphModel(json);
  const parsed = ModelJsonSchema.safeParse(json);
  if (!parsed.success) {
    const what = parsed.error.issues[0]!.path.length ? firstIssue(parsed.error) : 'expected an object with modelTopology and weightsManifest';
    throw new ModelProblem('invalid', `${mjPath} is not a TF.js ${graphModel ? 'graph model' : 'LayersModel'}: ${what}`);
  }
  const modelJson = parsed.data;
  let graph: KerasGraph;
  if (graphModel) {
    try {
      graph = graphModelStructure(modelJson);
    } catch (e) {
      const msg = oneLine(e);
      throw new ModelProblem(/not supported yet/.test(msg) ? 'unsupported' : 'invalid', `${mjPath} (a TF.js graph model): ${msg}`);
    }
  } else {
    try {
      graph = parseKerasTopology(modelJson.modelTopology);
    } catch (e) {
      throw new ModelProblem('invalid', `${mjPath} is not a usable Keras model: ${oneLine(e)}`);
    }
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

  // Shard paths are relative to model.json, which may sit in a subfolder of the model folder.
  const mjDir = dirname(mjPath);
  for (const group of modelJson.weightsManifest) {
    let have = 0;
    const groupFiles = group.paths.map((p) => pathInside(mjDir, p, roots));
    for (const file of groupFiles) {
      try {
        have += (await checkRegularFile(file, roots, FILE_CAPS.weightShard)).size;
      } catch (e) {
        if (e instanceof ModelFileError && e.fault === 'missing') throw new ModelProblem('missing', `weight file ${file} listed in ${mjPath} is missing — ${fixFor(id)}`);
        throw e;
      }
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
    classes = await readClasses(mdir, d);
  } catch (e) {
    throw new ModelProblem('invalid', oneLine(e));
  }
  return { checksum, modelJson, graph, graphModel, classes, files };
}

/**
 * Results of checkModel per folder, valid while no file in it (nor its class files) changes:
 * listing models hashes each one once, not on every hello.
 */
const checkCache = new Map<string, { signature: string; problem: ModelProblem | null }>();

async function signature(mdir: string, d: ModelDescriptor): Promise<string> {
  const classFiles = d.classes ? [d.classes.names, ...(d.classes.wnids ? [d.classes.wnids] : [])].map((f) => resolve(mdir, f)) : [];
  const paths = [...(await listFolder(mdir)).map((f) => join(mdir, f.name)), ...classFiles];
  return JSON.stringify(d) + '\n' + (await folderSignature(paths));
}

async function checkOnce(mdir: string, d: ModelDescriptor, keepFiles: boolean): Promise<Checked | ModelProblem> {
  const sig = await signature(mdir, d);
  try {
    const checked = await checkModel(mdir, d, keepFiles);
    checkCache.set(mdir, { signature: sig, problem: null });
    return checked;
  } catch (e) {
    const problem = asProblem(e, d.id);
    checkCache.set(mdir, { signature: sig, problem });
    return problem;
  }
}

async function cachedProblem(mdir: string, d: ModelDescriptor): Promise<ModelProblem | null> {
  const hit = checkCache.get(mdir);
  if (hit && hit.signature === (await signature(mdir, d))) return hit.problem;
  const r = await checkOnce(mdir, d, false);
  return r instanceof ModelProblem ? r : null;
}

interface Found {
  id: string;
  dir: string;
  descriptor: ModelDescriptor | null;
  descriptorError: string | null;
  inferred?: string[];
  overrides?: string;
}

/** A model folder's descriptor: deepvis.json, read the safe way and validated. */
async function readDescriptor(mdir: string): Promise<ModelDescriptor> {
  const dpath = join(mdir, 'deepvis.json');
  let text: string;
  try {
    text = (await readRegularFile(dpath, [mdir], FILE_CAPS.descriptor)).toString('utf8');
  } catch (e) {
    throw new Error(oneLine(e));
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new Error(`${dpath}: ${oneLine(e)}`);
  }
  return parseDescriptor(json, dpath);
}

/**
 * Model folders of every root: those with a deepvis.json, and bare folders holding a model.json
 * (their descriptor inferred); nothing else is read. An id claimed by two folders stays with the
 * folder named after it (else the first found); the other is listed under its folder's name with
 * the clash as its problem, so neither silently shadows.
 */
async function scan(dir: string): Promise<Found[]> {
  // Within one folder two claims of an id are a mistake, reported; across folders the later one
  // (a user's --models-dir after the bundled models) is the user's choice, and says whom it replaces.
  const byId = new Map<string, Found>();
  for (const root of splitRoots(dir)) {
    for (const f of resolveDuplicateIds(await scanRoot(root))) {
      const earlier = byId.get(f.id);
      byId.set(f.id, earlier ? { ...f, overrides: earlier.dir } : f);
    }
  }
  return [...byId.values()];
}

async function scanRoot(dir: string): Promise<Found[]> {
  const out: Found[] = [];
  for (const { name, isDir } of await listFolder(dir)) {
    if (!isDir) continue;
    const mdir = join(dir, name);
    const dpath = join(mdir, 'deepvis.json');
    if (!(await exists(dpath))) {
      const bare = await inferBare(mdir);
      if (bare) out.push(bare);
      continue;
    }
    try {
      const descriptor = await readDescriptor(mdir);
      out.push({ id: descriptor.id, dir: mdir, descriptor, descriptorError: null });
    } catch (e) {
      const msg = oneLine(e);
      out.push({ id: name, dir: mdir, descriptor: null, descriptorError: msg.startsWith(dpath) ? msg : `${dpath}: ${msg}` });
    }
  }
  return out;
}

/** A folder without deepvis.json but with a model.json: a model whose descriptor is inferred. */
async function inferBare(mdir: string): Promise<Found | null> {
  if (!(await exists(join(mdir, 'model.json')))) return null;
  try {
    const { descriptor, notes } = await inferCached(mdir);
    return { id: descriptor.id, dir: mdir, descriptor, descriptorError: null, inferred: notes };
  } catch (e) {
    return { id: basename(mdir), dir: mdir, descriptor: null, descriptorError: oneLine(e) };
  }
}

function resolveDuplicateIds(found: Found[]): Found[] {
  const byId = new Map<string, Found[]>();
  for (const f of found) byId.set(f.id, [...(byId.get(f.id) ?? []), f]);
  const taken = new Set(byId.keys());
  return found.map((f) => {
    const claimants = byId.get(f.id)!;
    if (claimants.length < 2) return f;
    const owner = claimants.find((c) => basename(c.dir) === c.id) ?? claimants[0]!;
    if (f === owner) return f;
    const folder = basename(f.dir);
    let alias = folder;
    for (let n = 2; taken.has(alias); n++) alias = `${folder}~${n}`;
    taken.add(alias);
    const problem = `${join(f.dir, 'deepvis.json')}: id "${f.id}" is already used by ${owner.dir} — give this model its own id`;
    return { id: alias, dir: f.dir, descriptor: null, descriptorError: problem };
  });
}

/**
 * The models in a folder, each with the problem that would stop it loading (checked once per
 * change of its files: see checkModel). A broken model never hides the others.
 */
export async function listModels(dir = modelsDir()): Promise<ModelEntry[]> {
  const out: ModelEntry[] = [];
  for (const f of await scan(dir)) {
    if (!f.descriptor) {
      const fault: ModelFault = /graph model|not supported yet/.test(f.descriptorError ?? '') ? 'unsupported' : 'invalid';
      out.push({ id: f.id, dir: f.dir, descriptor: null, problem: f.descriptorError, fault });
      continue;
    }
    const inferred = { ...(f.inferred ? { inferred: f.inferred } : {}), ...(f.overrides ? { overrides: f.overrides } : {}) };
    const p = await cachedProblem(f.dir, f.descriptor);
    out.push(
      p
        ? { id: f.id, dir: f.dir, descriptor: f.descriptor, problem: p.message, fault: p.fault, ...inferred }
        : { id: f.id, dir: f.dir, descriptor: f.descriptor, problem: null, ...inferred },
    );
  }
  return out;
}

async function readJson(mdir: string, name: string): Promise<unknown> {
  // Class files may be shared by the models of one folder (../imagenet-classes.json).
  const roots = [mdir, dirname(mdir)];
  const path = pathInside(mdir, name, roots);
  const bytes = await readRegularFile(path, roots, FILE_CAPS.classes);
  try {
    return JSON.parse(bytes.toString('utf8'));
  } catch (e) {
    throw new Error(`${path}: ${(e as Error).message}`);
  }
}

/**
 * A model's identity as loadModel computes it (sha256 of SHA256SUMS, else of model.json) without
 * verifying every file; null when neither can be read.
 */
export async function modelIdentity(mdir: string, d: ModelDescriptor): Promise<string | null> {
  try {
    const sums = d.weights.checksums ? pathInside(mdir, d.weights.checksums) : null;
    const file = sums && (await exists(sums)) ? sums : pathInside(mdir, d.weights.modelJson);
    const cap = file === sums ? FILE_CAPS.checksums : FILE_CAPS.modelJson;
    return createHash('sha256').update(await readRegularFile(file, [mdir], cap)).digest('hex');
  } catch {
    return null;
  }
}

/** The first weight holding NaN or ±Infinity: such a model answers every frame with NaN. */
function firstNonFinite(weights: tf.NamedTensorMap): { name: string; value: string } | null {
  for (const [name, t] of Object.entries(weights)) {
    if (t.dtype !== 'float32') continue;
    const v = t.dataSync() as Float32Array;
    for (let i = 0; i < v.length; i++) if (!Number.isFinite(v[i]!)) return { name, value: String(v[i]) };
  }
  return null;
}

/** A model's classes in its own order, from its class files alone (no weights needed). */
export async function readClasses(mdir: string, d: ModelDescriptor): Promise<ClassInfo[]> {
  if (!d.classes) return [];
  if (!/\.json$/i.test(d.classes.names) || !d.classes.wnids) {
    const roots = [mdir, dirname(mdir)];
    return (await readClassFile(pathInside(mdir, d.classes.names, roots), roots)).map((name, index) => ({ index, name, wnid: null }));
  }
  const names = (await readJson(mdir, d.classes.names)) as string[];
  const wnids = d.classes.wnids ? ((await readJson(mdir, d.classes.wnids)) as string[]) : null;
  if (!Array.isArray(names)) throw new Error(`${d.classes.names}: expected a JSON array of class names`);
  if (wnids && wnids.length !== names.length) throw new Error(`${d.classes.wnids}: ${wnids.length} WordNet ids for ${names.length} class names`);
  return names.map((name, index) => ({ index, name: String(name), wnid: wnids ? String(wnids[index]) : null }));
}

export interface LoadModelOptions {
  /**
   * The input convention the user picked for a model without deepvis.json (a descriptor's own
   * numbers always win); null or absent: the inferred one.
   */
  preprocess?: PreprocessPreset | null;
}

/** The descriptor with the user's input convention applied, for a folder whose descriptor was inferred. */
function withChosenPreprocess(d: ModelDescriptor, inferred: boolean, choice: PreprocessPreset | null | undefined): ModelDescriptor {
  if (!inferred || !choice) return d;
  const mix = d.preprocess.channelMix;
  return { ...d, preprocess: { ...PREPROCESS_PRESETS[choice], ...(mix ? { channelMix: mix } : {}) } as ModelDescriptor['preprocess'] };
}

/**
 * What the window shows of a model's input convention with `choice` applied: from the listing alone
 * (no weight file is read), the same as a load with that choice reports.
 */
export function preprocessInfoOf(d: ModelDescriptor, inferred: boolean, choice: PreprocessPreset | null | undefined): PreprocessInfo {
  return { preset: preprocessPresetOf(withChosenPreprocess(d, inferred, choice).preprocess), selectable: inferred, chosen: inferred && !!choice };
}

/**
 * A model's files as loadModel reads and checks them: the contract's WorkerModelFiles (the form
 * that crosses to worker threads: plain data and the weight shards concatenated into one buffer,
 * shared memory when the platform has it), with the descriptor as this engine parsed it — the
 * contract knows it only as an object.
 */
export type ModelFiles = Omit<WorkerModelFilesT, 'descriptor'> & { descriptor: ModelDescriptor };

/** Files that crossed from another thread as this engine's: their descriptor checked again here. */
export function modelFilesFrom(handed: WorkerModelFilesT): ModelFiles {
  return { ...handed, descriptor: parseDescriptor(handed.descriptor, `model ${handed.id} (${handed.dir})`) };
}

/**
 * Read and check a model's files once (checksums included, whatever the listing said); a failure
 * throws one line starting "model <id>:" that names the file or layer. modelFromFiles builds it.
 */
export async function readModelFiles(id: string, dir = modelsDir(), opts: LoadModelOptions = {}): Promise<ModelFiles> {
  const found = await scan(dir);
  const entry = found.find((m) => m.id === id);
  if (!entry) {
    throw new Error(`unknown model "${id}" (models here: ${found.map((m) => m.id).join(', ') || 'none'} in ${splitRoots(dir).join(', ')})`);
  }
  if (!entry.descriptor) throw new Error(`model ${id} cannot be loaded: ${entry.descriptorError}`);
  const inferred = !!entry.inferred;
  const d = withChosenPreprocess(entry.descriptor, inferred, opts.preprocess);
  const checked = await checkOnce(entry.dir, entry.descriptor, true);
  if (checked instanceof ModelProblem) throw new Error(`model ${id}: ${checked.message}`);
  const { classes, modelJson, files } = checked;
  // Caches built from the model (atlas, top-k index) hold what it computed from its inputs: another
  // input convention is another model for them.
  const chosen = d !== entry.descriptor && preprocessPresetOf(d.preprocess) !== preprocessPresetOf(entry.descriptor.preprocess);
  const checksum = chosen ? createHash('sha256').update(`${checked.checksum}\npreprocess ${opts.preprocess}`).digest('hex') : checked.checksum;
  const preprocessInfo = preprocessInfoOf(entry.descriptor, inferred, opts.preprocess);
  const mjPath = pathInside(entry.dir, d.weights.modelJson);
  try {
    const weights = await readWeightBytes(dirname(mjPath), entry.dir, modelJson.weightsManifest as tf.io.WeightsManifestConfig, files);
    return { id, dir: entry.dir, checksum, descriptor: d, modelJson: modelJson as ModelFiles['modelJson'], classes, weights, preprocessInfo };
  } catch (e) {
    throw new Error(`model ${id}: the weight files do not match ${mjPath} (${oneLine(e)}) — ${fixFor(id)}`);
  } finally {
    files.clear();
  }
}

/** The shards in manifest order, in one buffer: shared memory when available (workers read it in place). */
async function readWeightBytes(mjDir: string, mdir: string, manifest: tf.io.WeightsManifestConfig, files: Map<string, Buffer>): Promise<ArrayBuffer | SharedArrayBuffer> {
  const buffers: Buffer[] = [];
  for (const group of manifest) {
    for (const p of group.paths) {
      const file = pathInside(mjDir, p, [mdir]);
      buffers.push(files.get(file) ?? (await readChecked(await checkRegularFile(file, [mdir], FILE_CAPS.weightShard), FILE_CAPS.weightShard)));
    }
  }
  const total = buffers.reduce((a, b) => a + b.byteLength, 0);
  const out = typeof SharedArrayBuffer === 'function' ? new SharedArrayBuffer(total) : new ArrayBuffer(total);
  const view = new Uint8Array(out);
  let at = 0;
  for (const b of buffers) {
    view.set(b, at);
    at += b.byteLength;
  }
  return out;
}

/** Build a model from files read by readModelFiles (here or in another thread): no file is read again. */
export function modelFromFiles(f: ModelFiles): Model {
  const { id, descriptor: d } = f;
  const mjPath = pathInside(f.dir, d.weights.modelJson);
  const graphModel = isGraphModel(f.modelJson);
  // A graph model's layer list needs its constants' values: it is restated below, with the weights.
  let graph = graphModel ? null : parseKerasTopology(f.modelJson.modelTopology);
  const manifest = f.modelJson.weightsManifest as tf.io.WeightsManifestConfig;
  let weights: tf.NamedTensorMap;
  try {
    weights = tf.io.decodeWeights(f.weights as ArrayBuffer, manifest.flatMap((g) => g.weights));
  } catch (e) {
    throw new Error(`model ${id}: the weight files do not match ${mjPath} (${oneLine(e)}) — ${fixFor(id)}`);
  }
  try {
    const bad = firstNonFinite(weights);
    if (bad) throw new Error(`model ${id}: weight ${bad.name} in the files of ${mjPath} holds ${bad.value} — the weights are damaged; ${fixFor(id)}`);
    const keep = new Set(d.layers.map((l) => l.name));
    let compiled;
    let restated: tf.NamedTensorMap | null = null;
    try {
      let layerWeights = weights;
      if (graphModel) {
        // Now with the constants' values: axes, paddings and shapes are read, kernels laid out.
        const t = graphModelWithWeights(f.modelJson as unknown as GraphModelJson, weights);
        graph = t.graph;
        layerWeights = restated = t.weights;
      }
      if (!graph) throw new Error('no layer graph');
      compiled = compileKeras(graph, layerWeights, keep, { logitsHint: d.logits, inputMix: inputMixFor(d, graph, mjPath) });
      for (const l of d.layers) compiled.net.nodeIndex(l.name);
    } catch (e) {
      throw new Error(`model ${id}: ${mjPath}: ${oneLine(e)}`);
    } finally {
      // Restated weights are the loaded tensors or new ones; disposing either twice is harmless.
      if (restated) tf.dispose(Object.values(restated));
    }
    return new Model(d, f.dir, f.checksum, compiled, f.classes.map((c) => ({ ...c })), f.preprocessInfo);
  } finally {
    tf.dispose(Object.values(weights));
  }
}

/**
 * Load a model into a compiled network. Every file is re-checked (checksums included) whatever the
 * listing said; a failure throws one line starting "model <id>:" that names the file or layer.
 */
export async function loadModel(id: string, dir = modelsDir(), opts: LoadModelOptions = {}): Promise<Model> {
  return modelFromFiles(await readModelFiles(id, dir, opts));
}
