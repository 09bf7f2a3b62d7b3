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
}

function manifestShapes(json: GraphModelJson): Map<string, number[]> {
  return new Map(json.weightsManifest.flatMap((g) => g.weights.map((w) => [w.name, w.shape] as const)));
}

/** The layer list from model.json alone (constants' values unread). Throws one line naming the node. */
export function graphModelStructure(json: GraphModelJson): KerasGraph {
  const shapes = manifestShapes(json);
  return graphToLayers(parseGraphDef(json.modelTopology, json.signature), { shape: (n) => shapes.get(n), value: () => null }).graph;
}

/** The layer list and the weights by "<layer>/<param>" (new tensors: dispose them after compiling). */
export function graphModelWithWeights(json: GraphModelJson, weights: tf.NamedTensorMap): Translated {
  const shapes = manifestShapes(json);
  return graphToLayers(parseGraphDef(json.modelTopology, json.signature), { shape: (n) => shapes.get(n), value: (n) => weights[n] ?? null });
}
