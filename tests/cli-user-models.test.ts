// The command line on a user's own model folders, as a user meets them: a bare folder
// (model.json + weights) is listed beside the bundled models with what was inferred, classifies
// and synthesises at its own size (1 channel, non-square, below 32 px); `deepvis init` writes the
// inferred descriptor; a TF.js graph model is listed, classifies and synthesises too, one with an
// op DeepVis lacks is refused naming it; a 4-channel model is refused with the next step, and
// works once its descriptor says how to fill the channels.
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { selectBackend } from '../main/engine/index.js';
import { runDeepvis } from './support/cli.js';
import { photo } from './support/fixtures.js';
import { GRAPH_INPUT, writeGraphModel } from './support/graph-model.js';
import { saveBareFolder } from './support/user-models.js';

const root = mkdtempSync(join(tmpdir(), 'deepvis-cli-user-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

/** A small sequential classifier of `channels`-channel 20×24 images, softmax fused into Dense. */
function small(channels: number): tf.LayersModel {
  return tf.sequential({
    layers: [
      tf.layers.conv2d({ inputShape: [20, 24, channels], filters: 6, kernelSize: 3, activation: 'relu', name: 'conv', kernelInitializer: tf.initializers.glorotNormal({ seed: 1 }) }),
      tf.layers.maxPooling2d({ poolSize: 2, name: 'pool' }),
      tf.layers.flatten({ name: 'flat' }),
      tf.layers.dense({ units: 3, activation: 'softmax', name: 'out', kernelInitializer: tf.initializers.glorotNormal({ seed: 2 }) }),
    ],
  });
}

interface Listed {
  id: string;
  installed: boolean;
  problem: string | null;
  fault: string | null;
  inferred: string[] | null;
  softmaxHead: boolean | null;
  inputSize: [number, number] | null;
  classes: { name: string }[];
}
const list = async () => (JSON.parse((await runDeepvis(['--models-dir', root, 'models', '--json'], 120_000)).stdout) as { models: Listed[] }).models;

beforeAll(async () => {
  await selectBackend('cpu');
  await saveBareFolder(small(1), join(root, 'grey'), ['circle', 'square', 'line']);
  await saveBareFolder(small(4), join(root, 'rgba'));
  // A graph model, as tensorflowjs_converter writes one for a SavedModel; and one using an op
  // DeepVis lacks.
  writeGraphModel(join(root, 'graph'));
  writeGraphModel(join(root, 'graph-erf'));
  const mj = JSON.parse(readFileSync(join(root, 'graph-erf', 'model.json'), 'utf8')) as { modelTopology: { node: { name: string; op: string }[] } };
  mj.modelTopology.node.find((n) => n.name === 'block2/sigmoid')!.op = 'Erf';
  writeFileSync(join(root, 'graph-erf', 'model.json'), JSON.stringify(mj));
}, 60_000);

describe('deepvis on bare model folders', () => {
  it('lists them beside the bundled models: what was inferred, or why one cannot be used and what to do', { timeout: 120_000 }, async () => {
    const models = await list();
    expect(models.map((m) => m.id)).toEqual(expect.arrayContaining(['mobilenet-v1-0.75', 'grey', 'rgba', 'graph']));
    const grey = models.find((m) => m.id === 'grey')!;
    expect(grey).toMatchObject({ installed: true, problem: null, inputSize: [20, 24], softmaxHead: true });
    expect(grey.classes.map((c) => c.name)).toEqual(['circle', 'square', 'line']);
    expect(grey.inferred!.join('\n')).toMatch(/luminance/);
    const rgba = models.find((m) => m.id === 'rgba')!;
    expect(rgba).toMatchObject({ installed: false, fault: 'unsupported' });
    expect(rgba.problem).toMatch(/rgba[\\/]model\.json: the model's input has 4 channels .*"preprocess\.channelMix"/);
    const graph = models.find((m) => m.id === 'graph')!;
    expect(graph).toMatchObject({ installed: true, problem: null, inputSize: GRAPH_INPUT, softmaxHead: true });
    expect(graph.inferred!.join('\n')).toMatch(/graph model/);
    const erf = models.find((m) => m.id === 'graph-erf')!;
    expect(erf).toMatchObject({ installed: false, fault: 'unsupported' });
    expect(erf.problem).toMatch(/graph-erf[\\/]model\.json \(a TF\.js graph model\): node "block2\/sigmoid" uses the op Erf.*not supported yet/);
    const text = await runDeepvis(['--models-dir', root, 'models'], 120_000);
    expect(text.stdout).toMatch(/rgba — rgba\n {2}NOT SUPPORTED: /);
    expect(text.stdout).toMatch(/no deepvis\.json — inferred/);
  });

  it('classifies a photo with the 1-channel, 20×24 model (finite probabilities, exit 0)', { timeout: 60_000 }, async () => {
    const r = await runDeepvis(['--models-dir', root, 'classify', '--model', 'grey', '--json', photo('dog')]);
    expect(r.code, r.stderr).toBe(0);
    const o = JSON.parse(r.stdout) as { softmaxHead: boolean; results: { top5: { name: string; prob: number }[] }[] };
    const top = o.results[0]!.top5;
    expect(top).toHaveLength(3);
    for (const t of top) expect(Number.isFinite(t.prob) && t.prob > 0).toBe(true);
    expect(top.reduce((a, t) => a + t.prob, 0)).toBeCloseTo(1, 4);
  });

  it('classifies with the graph model and synthesises a class image at its own 40×48 size', { timeout: 120_000 }, async () => {
    const r = await runDeepvis(['--models-dir', root, 'classify', '--model', 'graph', '--json', photo('dog')]);
    expect(r.code, r.stderr).toBe(0);
    const top = (JSON.parse(r.stdout) as { results: { top5: { prob: number }[] }[] }).results[0]!.top5;
    expect(top).toHaveLength(5);
    expect(top.reduce((a, t) => a + t.prob, 0)).toBeCloseTo(1, 4);
    const out = join(root, 'synth-graph');
    const s = await runDeepvis(['--models-dir', root, 'synth', '--model', 'graph', '--layer', 'logits', '--unit', '2', '--preset', 'fast', '-i', '20', '-o', out, '--json']);
    expect(s.code, s.stderr).toBe(0);
    const o = JSON.parse(s.stdout) as { images: { path: string; objective_start: number; objective_best: number }[] };
    expect(await sharp(o.images[0]!.path).metadata()).toMatchObject({ width: GRAPH_INPUT[1], height: GRAPH_INPUT[0] });
    expect(o.images[0]!.objective_best).toBeGreaterThan(o.images[0]!.objective_start);
  });

  it('synthesises a class image at the model’s own 20×24 size', { timeout: 120_000 }, async () => {
    const out = join(root, 'synth-out');
    const r = await runDeepvis(['--models-dir', root, 'synth', '--model', 'grey', '--layer', 'logits', '--unit', '1', '--preset', 'fast', '-i', '30', '-o', out, '--json']);
    expect(r.code, r.stderr).toBe(0);
    const o = JSON.parse(r.stdout) as { images: { path: string; objective_start: number; objective_best: number }[] };
    expect(await sharp(o.images[0]!.path).metadata()).toMatchObject({ width: 24, height: 20 });
    expect(o.images[0]!.objective_best).toBeGreaterThan(o.images[0]!.objective_start);
  });

  it('`deepvis init` writes the inferred descriptor, refuses to overwrite it, and --preprocess is remembered', { timeout: 120_000 }, async () => {
    const dir = join(root, 'grey');
    const r = await runDeepvis(['init', dir]);
    expect(r.code, r.stderr).toBe(0);
    const d = JSON.parse(readFileSync(join(dir, 'deepvis.json'), 'utf8')) as { id: string; inputSize: number[]; logits: string; preprocess: { scale: number } };
    expect(d).toMatchObject({ id: 'grey', inputSize: [20, 24], logits: 'out' });
    expect(r.stderr).toMatch(/inferred: /);
    const again = await runDeepvis(['init', dir]);
    expect(again.code).toBe(2);
    expect(again.stderr).toMatch(/deepvis\.json already exists — edit it, or pass --force/);
    const forced = await runDeepvis(['init', dir, '--force', '--preprocess', '-1-1']);
    expect(forced.code, forced.stderr).toBe(0);
    expect(JSON.parse(readFileSync(join(dir, 'deepvis.json'), 'utf8')).preprocess).toMatchObject({ scale: 1 / 127.5, offset: -1 });
    // Now read from the descriptor: nothing is inferred any more.
    const grey = (await list()).find((m) => m.id === 'grey')!;
    expect(grey).toMatchObject({ installed: true, inferred: null });
    expect(existsSync(join(dir, 'deepvis.json.tmp'))).toBe(false);
    // What the head ends in is written down, and what a written descriptor states is what the
    // CLI says: a head declared without softmax gets the note though nothing was inferred.
    const written = JSON.parse(readFileSync(join(dir, 'deepvis.json'), 'utf8')) as { head?: { softmax: boolean } };
    expect(written.head).toEqual({ softmax: true });
    const quiet = await runDeepvis(['--models-dir', root, 'classify', '--model', 'grey', photo('dog')]);
    expect(quiet.code, quiet.stderr).toBe(0);
    expect(quiet.stderr).not.toMatch(/no softmax/);
    writeFileSync(join(dir, 'deepvis.json'), JSON.stringify({ ...written, head: { softmax: false } }));
    const noted = await runDeepvis(['--models-dir', root, 'classify', '--model', 'grey', '--json', photo('dog')]);
    expect(noted.code, noted.stderr).toBe(0);
    expect(noted.stderr).toMatch(/grey's head has no softmax — probabilities shown are a softmax of out:logits's outputs/);
    expect((JSON.parse(noted.stdout) as { softmaxHead: boolean }).softmaxHead).toBe(false);
  });

  it('a 4-channel model works once its descriptor says how each channel is made from RGB (init writes one to edit)', { timeout: 120_000 }, async () => {
    const dir = join(root, 'rgba');
    const init = await runDeepvis(['init', dir]);
    expect(init.code, init.stderr).toBe(0);
    expect(init.stderr).toMatch(/4-channel input: "preprocess\.channelMix" fills channels 1–3 with R, G, B/);
    const d = JSON.parse(readFileSync(join(dir, 'deepvis.json'), 'utf8')) as { preprocess: { channelMix: number[][] } };
    expect(d.preprocess.channelMix).toEqual([[1, 0, 0], [0, 1, 0], [0, 0, 1], [0, 0, 0]]);
    const r = await runDeepvis(['--models-dir', root, 'classify', '--model', 'rgba', '--json', photo('kite')]);
    expect(r.code, r.stderr).toBe(0);
    // The descriptor's layers must be the model's: a wrong one names the file and the layer.
    writeFileSync(join(dir, 'deepvis.json'), JSON.stringify({ ...d, layers: [{ name: 'conv9', display: 'c' }] }));
    const bad = await runDeepvis(['--models-dir', root, 'classify', '--model', 'rgba', photo('kite')]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/rgba[\\/]deepvis\.json: layer "conv9" is not in .*model\.json/);
  });
});
