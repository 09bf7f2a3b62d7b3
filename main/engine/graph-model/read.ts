// A TF.js graph model (model.json of format "graph-model") as the compiler's layer list: from
// model.json alone when a folder is listed, with its weights when it is loaded.
import type * as tf from '@tensorflow/tfjs-core';
import type { KerasGraph } from '../keras-topology.js';
import { parseGraphDef } from './graphdef.js';
import { graphToLayers, type Translated } from './to-layers.js';

export interface GraphModelJson {
  modelTopology: unknown;
  weightsManifest: { weights: { name: string; shape: number[] }[] }[];
  signature?: unknown;
  /** Where newer converters put the signature. */
  userDefinedMetadata?: unknown;
}

const signatureOf = (json: GraphModelJson): unknown => json.signature ?? (json.userDefinedMetadata as { signature?: unknown } | undefined)?.signature;

function manifestShapes(json: GraphModelJson): Map<string, number[]> {
  return new Map(json.weightsManifest.flatMap((g) => g.weights.map((w) => [w.name, w.shape] as const)));
}

/** The layer list from model.json alone (constants' values unread). Throws one line naming the node. */
export function graphModelStructure(json: GraphModelJson): KerasGraph {
  const shapes = manifestShapes(json);
  return graphToLayers(parseGraphDef(json.modelTopology, signatureOf(json)), { shape: (n) => shapes.get(n), value: () => null }).graph;
}

/** The layer list and the weights by "<layer>/<param>" (new tensors: dispose them after compiling). */
export function graphModelWithWeights(json: GraphModelJson, weights: tf.NamedTensorMap): Translated {
  const shapes = manifestShapes(json);
  const value = (n: string): tf.Tensor => {
    const t = weights[n];
    // Never read as "unknown": a structure-only default (an axis, a padding) would be used silently.
    if (!t) throw new Error(`the constant "${n}" is not in the weight files — write the model again with tensorflowjs_converter`);
    return t;
  };
  return graphToLayers(parseGraphDef(json.modelTopology, signatureOf(json)), { shape: (n) => shapes.get(n), value });
}
