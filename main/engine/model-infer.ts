// A bare model folder (model.json + weight files, perhaps labels.txt) read as a model: the
// descriptor a user would otherwise write by hand, inferred from the Keras topology, with one
// note per guess so `deepvis models` can say what was assumed and `deepvis init` can write it down.
import { basename, join } from 'node:path';
import { findHead, type InputMix } from './compile.js';
import { parseDescriptor, type ModelDescriptor } from './descriptor.js';
import { oneLine } from './errors.js';
import { parseKerasTopology, type KerasGraph, type KerasLayer } from './keras-topology.js';
import { graphInputRange } from './graph-model/input-scaling.js';
import { graphModelStructure, type GraphModelJson } from './graph-model/read.js';
import { exists, FILE_CAPS, folderSignature, readRegularFile } from './model-files.js';
import type { PreprocessName } from '../../contract/user-models.js';

/** The common input conventions, by the names `deepvis init --preprocess` takes. */
export const PREPROCESS_PRESETS = {
  /** pixel / 255: most models trained from tutorials (tf.browser.fromPixels().div(255)). */
  '0-1': { channelOrder: 'RGB', scale: 1 / 255, offset: 0 },
  /** pixel / 127.5 − 1: Keras applications' MobileNet, Inception, Xception, NASNet. */
  '-1-1': { channelOrder: 'RGB', scale: 1 / 127.5, offset: -1 },
  /** BGR minus the ImageNet mean: Caffe and Keras applications' VGG and ResNet50. */
  caffe: { channelOrder: 'BGR', scale: 1, offset: [-103.939, -116.779, -123.68] },
  /** Pixels as they are (0…255): models that rescale their own input (a Rescaling layer). */
  raw: { channelOrder: 'RGB', scale: 1, offset: 0 },
} as const satisfies Record<string, ModelDescriptor['preprocess']>;
export type PreprocessPreset = keyof typeof PREPROCESS_PRESETS;
export const PREPROCESS_PRESET_NAMES = Object.keys(PREPROCESS_PRESETS) as PreprocessPreset[];
// The window offers the same names (contract/user-models.ts): one list, checked here at compile time.
const _sameNames: Record<PreprocessName, unknown> = PREPROCESS_PRESETS;
void _sameNames;

/** The named convention a descriptor's preprocessing is, or null for numbers of its own. */
export function preprocessPresetOf(p: ModelDescriptor['preprocess']): PreprocessPreset | null {
  const same = (a: number | readonly number[], b: number | readonly number[]) => JSON.stringify(a) === JSON.stringify(b);
  for (const name of PREPROCESS_PRESET_NAMES) {
    const q = PREPROCESS_PRESETS[name];
    if (q.channelOrder === p.channelOrder && same(q.scale, p.scale) && same(q.offset, p.offset)) return name;
  }
  return null;
}

/** Rec. 601 luma, as image libraries (sharp, PIL "L") turn RGB into grey. */
export const LUMINANCE: [number, number, number] = [0.299, 0.587, 0.114];

/** The input size used when a model leaves its height and width open (None). */
export const OPEN_INPUT_SIZE = 224;

/** Most layers listed for a bare folder: more is a grid nobody scrolls through. */
const MAX_LAYERS = 40;

export interface Inferred {
  descriptor: ModelDescriptor;
  /** What was guessed rather than read, one sentence each. */
  notes: string[];
}

const RECTIFIED_ACTIVATIONS = new Set(['relu', 'relu6', 'elu', 'selu', 'swish', 'silu', 'hardswish', 'hardsilu', 'gelu', 'gelunew', 'mish', 'tanh', 'sigmoid', 'hardsigmoid', 'softplus', 'softsign', 'leakyrelu']);
const isNonlinear = (a: unknown) => typeof a === 'string' && RECTIFIED_ACTIVATIONS.has(a.toLowerCase().replace(/_/g, ''));

/** Is the layer's output a nonlinearity's (what DVT shows: activations, not pre-activations)? */
function isActivationOutput(l: KerasLayer): boolean {
  switch (l.className) {
    case 'ReLU':
    case 'LeakyReLU':
    case 'ELU':
    case 'PReLU':
      return true;
    case 'Activation':
    case 'Conv2D':
    case 'DepthwiseConv2D':
    case 'SeparableConv2D':
      return isNonlinear(l.config.activation);
    default:
      return false;
  }
}

const FLATTENING = new Set(['Flatten', 'Dense', 'GlobalAveragePooling2D', 'GlobalMaxPooling2D']);

/**
 * Layers on the trunk: every path from input to output passes through them (the outputs of
 * residual blocks and Inception modules, every layer of a plain chain). Found in topological
 * order: layer i is on the trunk when it is the only layer up to i read by a later layer.
 */
function trunkLayers(graph: KerasGraph): Set<string> {
  const lastUse = new Map<string, number>();
  graph.layers.forEach((l, i) => l.inputs.forEach((n) => lastUse.set(n, Math.max(lastUse.get(n) ?? -1, i))));
  const trunk = new Set<string>();
  // Layers up to i that a layer after i still reads.
  const open = new Set<string>();
  graph.layers.forEach((l, i) => {
    for (const n of l.inputs) if ((lastUse.get(n) ?? -1) <= i) open.delete(n);
    if ((lastUse.get(l.name) ?? -1) > i) open.add(l.name);
    if (open.size === 1 && open.has(l.name)) trunk.add(l.name);
  });
  return trunk;
}

/** Spatial layers worth showing, in model order, by the model's own names. */
export function layersToShow(graph: KerasGraph): string[] {
  const byName = new Map(graph.layers.map((l) => [l.name, l]));
  const flat = new Set<string>();
  for (const l of graph.layers) {
    // A reshape back to [h, w, c] (a squeeze-and-excitation gate) is spatial again, even of 1×1.
    if (l.className === 'Reshape') {
      if ((l.config.target_shape as unknown[] | undefined)?.length !== 3) flat.add(l.name);
      continue;
    }
    const globalFlat = l.className.startsWith('Global') && l.config.keepdims !== true;
    const joinsSpatial = ['Multiply', 'Add'].includes(l.className) && l.inputs.some((n) => !flat.has(n));
    if ((FLATTENING.has(l.className) && !l.className.startsWith('Global')) || globalFlat || (!joinsSpatial && l.inputs.some((n) => flat.has(n)))) flat.add(l.name);
  }
  const spatial = graph.layers.filter((l) => !flat.has(l.name) && l.className !== 'InputLayer');
  const rectified = new Set<string>();
  for (const l of spatial) {
    const from = (n: string) => rectified.has(n) || isActivationOutput(byName.get(n)!);
    // A pool or a gate (Multiply) of rectified maps is rectified; a sum or concatenation when all its parts are.
    const passes = ['MaxPooling2D', 'AveragePooling2D', 'Multiply', 'Dropout', 'SpatialDropout2D'].includes(l.className) && l.inputs.some(from);
    const joins = ['Add', 'Concatenate'].includes(l.className) && l.inputs.length > 0 && l.inputs.every(from);
    if (isActivationOutput(l) || passes || joins) rectified.add(l.name);
  }
  const trunk = trunkLayers(graph);
  const all = spatial.filter((l) => rectified.has(l.name) && !l.className.includes('Dropout')).map((l) => l.name);
  const onTrunk = all.filter((n) => trunk.has(n));
  // Branchy models (Inception, ResNet): the trunk's layers are the ones with a meaning of their
  // own. A model whose trunk is linear (MobileNetV2's bottlenecks) shows its rectified layers.
  let pick = all.length > MAX_LAYERS && onTrunk.length >= 4 ? onTrunk : all;
  if (pick.length === 0) pick = spatial.filter((l) => !['Dropout', 'SpatialDropout2D', 'ZeroPadding2D'].includes(l.className)).map((l) => l.name);
  if (pick.length > MAX_LAYERS) {
    const step = (pick.length - 1) / (MAX_LAYERS - 1);
    pick = Array.from({ length: MAX_LAYERS }, (_, i) => pick[Math.round(i * step)]!);
  }
  return pick;
}

/**
 * Display names: the layers' own names less the path every one of them starts with (a converted
 * SavedModel's nodes all sit under "StatefulPartitionedCall/…/predict/MobilenetV2/").
 */
export function displayNames(names: readonly string[]): string[] {
  const parts = names.map((n) => n.split('/'));
  let common = 0;
  while (parts.every((p) => p.length > common + 1 && p[common] === parts[0]![common])) common++;
  return parts.map((p) => p.slice(common).join('/'));
}

/** Class names from a labels.txt (one per line) or classes.json (array, or {"0": name…}) file. */
export async function readClassFile(path: string, roots: readonly string[]): Promise<string[]> {
  const text = (await readRegularFile(path, roots, FILE_CAPS.classes)).toString('utf8');
  if (/\.txt$/i.test(path)) {
    const lines = text.split(/\r?\n/);
    while (lines.length && !lines[lines.length - 1]!.trim()) lines.pop();
    return lines.map((l) => l.trim());
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new Error(`${path}: not valid JSON (${oneLine(e)}) — class names are a JSON array or a labels.txt with one name per line`);
  }
  if (Array.isArray(json)) return json.map(String);
  if (json && typeof json === 'object') {
    const entries = Object.entries(json as Record<string, unknown>);
    if (entries.every(([k]) => /^\d+$/.test(k))) {
      const out: string[] = [];
      for (const [k, v] of entries) out[Number(k)] = Array.isArray(v) ? String(v[v.length - 1]) : String(v);
      if (out.length === entries.length) return out;
    }
  }
  throw new Error(`${path}: expected a JSON array of class names (or {"0": "name", …})`);
}

const CLASS_FILES = ['labels.txt', 'classes.json', 'class_names.json', 'labels.json'];

/** A model id from a folder name (ids are letters, digits, ".", "_" and "-"). */
export function idFromFolder(dir: string): string {
  const id = basename(dir).replace(/[^a-z0-9._-]+/gi, '-').replace(/^[^a-z0-9]+/i, '');
  return id || 'model';
}

/** Whether model.json is a TF.js graph model (a frozen TensorFlow graph, not a Keras model). */
export function isGraphModel(json: unknown): boolean {
  if (!json || typeof json !== 'object') return false;
  const j = json as { format?: unknown; modelTopology?: { node?: unknown } };
  return j.format === 'graph-model' || Array.isArray(j.modelTopology?.node);
}

/** The layer list of a graph model's model.json, or a one-line refusal naming the file and the node. */
function graphModelLayers(mjPath: string, json: unknown): KerasGraph {
  const j = json as Partial<GraphModelJson>;
  if (!Array.isArray(j.weightsManifest)) throw new Error(`${mjPath} (a TF.js graph model) has no weightsManifest — write it again with tensorflowjs_converter`);
  try {
    return graphModelStructure(j as GraphModelJson);
  } catch (e) {
    throw new Error(`${mjPath} (a TF.js graph model): ${oneLine(e)}`);
  }
}

/**
 * How the model's input channels are made from RGB: none for 3 channels, luminance for 1, the
 * descriptor's channelMix otherwise. Throws a one-line refusal naming the file and the field to set.
 */
export function inputMixFor(d: ModelDescriptor, graph: KerasGraph, where: string): InputMix | null {
  const channels = graph.inputShape[graph.inputShape.length - 1] ?? 3;
  const mix = d.preprocess.channelMix;
  if (mix) {
    if (mix.length !== channels) throw new Error(`${where}: preprocess.channelMix has ${mix.length} rows but the model's input has ${channels} channels — give one [r, g, b] row per input channel`);
    return mix;
  }
  if (channels === 3) return null;
  if (channels === 1) return [LUMINANCE];
  throw new Error(
    `${where}: the model's input has ${channels} channels and DeepVis feeds RGB — set "preprocess.channelMix" in deepvis.json to one [r, g, b] row per channel (e.g. [[1,0,0],[0,1,0],[0,0,1],[0,0,0]] for RGB plus an empty 4th); \`deepvis init\` writes a descriptor to start from`,
  );
}

/** The descriptor a bare folder implies. Throws a one-line message naming model.json and what is wrong. */
export interface InferOptions {
  preprocess?: PreprocessPreset;
  /**
   * For `deepvis init`: give a model of another channel count than 1 or 3 a channelMix to edit
   * (R, G, B, then empty channels). A listing never guesses it: such a model is refused until
   * its descriptor says how to fill its channels.
   */
  fillChannels?: boolean;
  /** What a model that scales its own input expects (read from a graph model's constants). */
  selfScaling?: { preset: 'raw' | '0-1'; node: string } | null;
}

export async function inferDescriptor(mdir: string, opts: InferOptions = {}): Promise<Inferred> {
  const mjPath = join(mdir, 'model.json');
  const bytes = await readRegularFile(mjPath, [mdir], FILE_CAPS.modelJson);
  let json: unknown;
  try {
    json = JSON.parse(bytes.toString('utf8'));
  } catch (e) {
    throw new Error(`${mjPath} is not valid JSON (${oneLine(e)}) — the file is damaged; write it again (model.save() or tensorflowjs_converter)`);
  }
  if (isGraphModel(json)) {
    const layers = graphModelLayers(mjPath, json);
    let selfScaling: InferOptions['selfScaling'] = null;
    try {
      selfScaling = await graphInputRange(mjPath, mdir, json as GraphModelJson);
    } catch {
      // Unreadable shards are the loader's to report; here the default guess stands.
    }
    const inferred = await inferFromGraph(mdir, layers, { ...opts, selfScaling });
    inferred.notes.unshift('a TF.js graph model: compiled from its TensorFlow ops, layers named by their nodes');
    return inferred;
  }
  let graph: KerasGraph;
  try {
    graph = parseKerasTopology((json as { modelTopology?: unknown }).modelTopology);
  } catch (e) {
    throw new Error(`${mjPath} is not a usable Keras model: ${oneLine(e)}`);
  }
  return inferFromGraph(mdir, graph, opts);
}

export async function inferFromGraph(mdir: string, graph: KerasGraph, opts: InferOptions = {}): Promise<Inferred> {
  const preprocess = opts.preprocess;
  const notes: string[] = [];
  const id = idFromFolder(mdir);
  const [h, w, c] = graph.inputShape;
  let inputSize: [number, number];
  if (h && w) inputSize = [h, w];
  else {
    inputSize = [h ?? OPEN_INPUT_SIZE, w ?? OPEN_INPUT_SIZE];
    notes.push(`the model leaves its input size open; using ${inputSize[0]}×${inputSize[1]} (set "inputSize")`);
  }
  if (c === 1) notes.push('1-channel input: images and frames are converted to luminance');
  let channelMix: [number, number, number][] | undefined;
  if (c && c !== 1 && c !== 3 && opts.fillChannels) {
    channelMix = Array.from({ length: c }, (_, i) => [0, 1, 2].map((j) => (i === j ? 1 : 0)) as [number, number, number]);
    notes.push(`${c}-channel input: "preprocess.channelMix" fills channels 1–3 with R, G, B and the rest with 0 — edit it to what the model was trained on`);
  }

  const firstReal = graph.layers.find((l) => l.className !== 'InputLayer');
  const known = opts.selfScaling;
  const selfScaling = !!known || (opts.selfScaling === undefined && !!firstReal && ['Rescaling', 'Normalization'].includes(firstReal.className));
  const presetName: PreprocessPreset = preprocess ?? (known ? known.preset : selfScaling ? 'raw' : '0-1');
  if (!preprocess) {
    notes.push(
      known?.preset === '0-1'
        ? `the model scales its own input (${known.node}) from 0…1: pixels go in as pixel/255`
        : selfScaling
          ? `the model rescales its own input (${known?.node ?? firstReal!.name}): pixels go in as 0…255`
          : 'preprocessing assumed to be pixel/255 (0…1); for −1…1 or Caffe BGR-mean models run `deepvis init DIR --preprocess -1-1|caffe`',
    );
  }

  const head = findHead(graph);
  const fusedName = head.fused;
  const logits = fusedName ?? head.logits;
  notes.push(
    head.softmax
      ? `softmax head split off: objectives use the logits of ${logits}`
      : `the head has no softmax: ${logits}'s outputs are treated as logits and probabilities shown are their softmax`,
  );

  const layers = layersToShow(graph);
  if (!layers.length) throw new Error(`${join(mdir, 'model.json')}: no layer of the model has a spatial output to show — is this an image model?`);

  let classes: ModelDescriptor['classes'];
  let classFile: string | undefined;
  for (const f of CLASS_FILES) if (!classFile && (await exists(join(mdir, f)))) classFile = f;
  if (classFile) classes = { names: classFile };
  else notes.push('no labels.txt or classes.json beside model.json: classes are named "class 0", "class 1"…');

  const raw = {
    id,
    title: basename(mdir),
    inputSize,
    preprocess: { ...PREPROCESS_PRESETS[presetName], ...(channelMix ? { channelMix } : {}) },
    ...(classes ? { classes } : {}),
    logits,
    head: { softmax: head.softmax },
    defaultLayer: layers[layers.length - 1],
    layers: ((shown) => layers.map((name, i) => ({ name, display: shown[i]! })))(displayNames(layers)),
    weights: { modelJson: 'model.json' },
    source: { details: 'inferred by DeepVis from model.json (no deepvis.json)' },
  };
  return { descriptor: parseDescriptor(raw, join(mdir, 'model.json')), notes };
}

/** Inferred descriptors by folder, valid while model.json and the folder's class files do not change. */
const cache = new Map<string, { signature: string; result: Inferred | Error }>();

/** inferDescriptor, cached: listing models on every hello re-parses nothing that did not change. */
export async function inferCached(mdir: string): Promise<Inferred> {
  const sig = await folderSignature([join(mdir, 'model.json'), ...CLASS_FILES.map((f) => join(mdir, f))]);
  const hit = cache.get(mdir);
  let result: Inferred | Error;
  if (hit && hit.signature === sig) result = hit.result;
  else {
    try {
      result = await inferDescriptor(mdir);
    } catch (e) {
      result = e instanceof Error ? e : new Error(String(e));
    }
    cache.set(mdir, { signature: sig, result });
  }
  if (result instanceof Error) throw result;
  return result;
}
