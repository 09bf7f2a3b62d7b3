// A model folder a user breaks (or a download left broken): a missing shard, a shard with one byte
// flipped, a truncated model.json, a model.json of the wrong shape, a layer type we cannot compile.
// Each is met where a user meets it — the model list, loading, the running session (web mode and
// Electron share it) and the command line — and must give one line naming the model and the file
// or layer, while the good model keeps loading and serving. The broken folders are temp copies of
// the real mobilenet-v1-0.25; models/ is never written.
import { createHash } from 'node:crypto';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { listModels, loadModel, rgbaToModelPixels, selectBackend } from '../main/engine/index.js';
import { EngineSession } from '../main/session/engine-session.js';
import { runDeepvis } from './support/cli.js';
import { copyModel as copyFixtureModel, linkedModelsDir, REPO, photo } from './support/fixtures.js';
import { validReply as expectValid } from './support/replies.js';

const GOOD = 'mobilenet-v1-0.25';
const SLED_DOG = /dogsled|malamute|husky|eskimo dog/i;
const SHARD = 'group5-shard1of1';

/**
 * Each broken model: what was done to it, the kind of fault, and what its one-line message must
 * say (the model id is checked separately).
 */
const BROKEN: Record<string, { fault: string; why: RegExp }> = {
  'missing-shard': { fault: 'missing', why: new RegExp(`${SHARD} is missing .*fetch-models`) },
  'wrong-checksum': { fault: 'corrupt', why: new RegExp(`${SHARD} is corrupt \\(sha256 [0-9a-f]{12}…, expected [0-9a-f]{12}…\\)`) },
  'truncated-json': { fault: 'invalid', why: /model\.json is not valid JSON \(.+\)/ },
  'wrong-structure': { fault: 'invalid', why: /model\.json is not a TF\.js LayersModel: weightsManifest: .*expected array/ },
  'wrong-layer-config': { fault: 'invalid', why: /model\.json is not a usable Keras model: modelTopology\.model_config\.config\.layers\.3\.config: .*expected object/ },
  'unsupported-layer': { fault: 'unsupported', why: /model\.json: layer "conv_dw_1" is a LSTM layer, which DeepVis cannot compile \(supported: Conv2D, DepthwiseConv2D, .*\)/ },
  'short-shard-no-sums': { fault: 'corrupt', why: /group29-shard1of1 holds 1000 bytes but .*model\.json describes 1028000/ },
};

/** A fault no file check sees (the files agree with each other), met when the model is compiled. */
const LATE = 'weights-not-in-manifest';
const LATE_WHY = /^model weights-not-in-manifest: .*model\.json: weights for conv_pw_13_bn\/\w+ are missing from the model's weight files$/;

let work: string;
let dogRgba: Uint8Array;

/** A full copy of the good model under another id. */
function copyModel(id: string): string {
  return copyFixtureModel(work, id, GOOD);
}

/** Re-write model.json's line in SHA256SUMS, as a user editing their own model would: the parser, not the checksum, must catch it. */
function resum(dir: string): void {
  const hash = createHash('sha256').update(readFileSync(join(dir, 'model.json'))).digest('hex');
  const lines = readFileSync(join(dir, 'SHA256SUMS'), 'utf8').split('\n').map((l) => (/\s\*?model\.json$/.test(l) ? `${hash}  model.json` : l));
  writeFileSync(join(dir, 'SHA256SUMS'), lines.join('\n'));
}

function editModelJson(dir: string, edit: (m: { modelTopology: { model_config: { config: { layers: { class_name: string; config: unknown }[] } } }; weightsManifest: unknown }) => void): void {
  const m = JSON.parse(readFileSync(join(dir, 'model.json'), 'utf8'));
  edit(m);
  writeFileSync(join(dir, 'model.json'), JSON.stringify(m));
  resum(dir);
}

beforeAll(async () => {
  work = linkedModelsDir('deepvis-bad-models-', [GOOD]);

  rmSync(join(copyModel('missing-shard'), SHARD));
  {
    const file = join(copyModel('wrong-checksum'), SHARD);
    const bytes = readFileSync(file);
    bytes[bytes.length >> 1]! ^= 0x01; // same size, one bit of one float
    writeFileSync(file, bytes);
  }
  {
    const dir = copyModel('truncated-json');
    const text = readFileSync(join(dir, 'model.json'), 'utf8');
    writeFileSync(join(dir, 'model.json'), text.slice(0, Math.floor(text.length / 2)));
    resum(dir);
  }
  editModelJson(copyModel('wrong-structure'), (m) => {
    m.weightsManifest = { groups: m.weightsManifest }; // valid JSON, not the shape TF.js writes
  });
  editModelJson(copyModel('wrong-layer-config'), (m) => {
    m.modelTopology.model_config.config.layers[3]!.config = null;
  });
  editModelJson(copyModel('unsupported-layer'), (m) => {
    const layer = m.modelTopology.model_config.config.layers[4]!;
    expect((layer.config as { name: string }).name).toBe('conv_dw_1');
    layer.class_name = 'LSTM';
  });
  {
    // A user's own model without SHA256SUMS whose biggest shard was cut short.
    const dir = copyModel('short-shard-no-sums');
    rmSync(join(dir, 'SHA256SUMS'));
    writeFileSync(join(dir, 'group29-shard1of1'), readFileSync(join(dir, 'group29-shard1of1')).subarray(0, 1000));
  }

  {
    // Found only when compiling: model.json's manifest (and files) lack a batch-norm's weights.
    const dir = copyModel(LATE);
    rmSync(join(dir, 'SHA256SUMS'));
    const m = JSON.parse(readFileSync(join(dir, 'model.json'), 'utf8')) as { weightsManifest: { paths: string[]; weights: { name: string }[] }[] };
    const group = m.weightsManifest.find((g) => g.weights.some((w) => w.name === 'conv_pw_13_bn/gamma'))!;
    m.weightsManifest = m.weightsManifest.filter((g) => g !== group);
    for (const p of group.paths) rmSync(join(dir, p));
    writeFileSync(join(dir, 'model.json'), JSON.stringify(m));
  }

  const { data } = await sharp(photo('dog')).resize(224, 224, { fit: 'cover' }).ensureAlpha().raw().toBuffer({ resolveWithObject: true });
  dogRgba = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  await selectBackend(process.env.DEEPVIS_BACKEND ?? 'wasm');
});

afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

describe('broken model folders', () => {
  it('are listed with their problem (one line naming the file or layer); the good model is listed as fine', async () => {
    const entries = new Map((await listModels(work)).map((e) => [e.id, e]));
    expect([...entries.keys()].sort()).toEqual([GOOD, LATE, ...Object.keys(BROKEN)].sort());
    expect(entries.get(GOOD)).toMatchObject({ problem: null });
    for (const [id, { fault, why }] of Object.entries(BROKEN)) {
      const e = entries.get(id)!;
      expect(e.problem, id).toMatch(why);
      expect(e.problem, id).toContain(join(work, id)); // the path of the file, so a user can find it
      expect(e.problem, id).not.toContain('\n');
      expect(e.fault, id).toBe(fault);
    }
    // The originals were never touched.
    expect((await listModels(join(REPO, 'models'))).find((e) => e.id === GOOD)?.problem).toBeNull();
  });

  it('fail to load with an error naming the model and the file or layer, leaking no tensors; the good model still loads', async () => {
    const before = tf.memory().numTensors;
    for (const [id, { why }] of Object.entries(BROKEN)) {
      const err = await loadModel(id, work).then(
        () => null,
        (e: Error) => e,
      );
      expect(err, id).toBeInstanceOf(Error);
      expect(err!.message, id).toMatch(new RegExp(`^model ${id}: `));
      expect(err!.message, id).toMatch(why);
      expect(err!.message, id).not.toContain('\n');
    }
    expect(tf.memory().numTensors).toBe(before);
    const good = await loadModel(GOOD, work);
    try {
      const pixels = rgbaToModelPixels(dogRgba, 224, 224, good.inputSize);
      const top = await good.classify(pixels).finally(() => pixels.dispose());
      expect(top[0]![0]!.name).toMatch(SLED_DOG);
    } finally {
      good.dispose();
    }
  });

  it('a model that fails while compiling names the weight, and leaves no tensors behind', async () => {
    const before = tf.memory().numTensors;
    await expect(loadModel(LATE, work)).rejects.toThrow(LATE_WHY);
    expect(tf.memory().numTensors).toBe(before);
    const r = await runDeepvis(['--models-dir', work, 'classify', '--model', LATE, photo('dog')]);
    expect(r.code, r.stderr.slice(0, 500)).toBe(1);
    expect(r.stderr.split('\n').filter((l) => l.trim())).toEqual([expect.stringMatching(/^deepvis: model weights-not-in-manifest: .*conv_pw_13_bn/)]);
  });

  it('a session refuses to switch to them, says why, and keeps serving frames with the previous model', { timeout: 120_000 }, async () => {
    const session = await EngineSession.create({ backend: process.env.DEEPVIS_BACKEND ?? 'wasm', model: GOOD, modelsDir: work });
    try {
      const list = expectValid(await session.handle({ type: 'listModels' }));
      if (list.type !== 'models') throw new Error(list.type);
      for (const m of list.models) {
        expect(m.installed, m.id).toBe(m.id === GOOD || m.id === LATE);
        if (BROKEN[m.id]) expect(m.problem, m.id).toMatch(BROKEN[m.id]!.why);
      }
      const tensors = session.stats().numTensors;
      let frameId = 0;
      for (const [id, why] of [...Object.entries(BROKEN).map(([id, b]) => [id, b.why] as const), [LATE, new RegExp(LATE_WHY.source.replace(/^\^|\$$/g, ''))] as const]) {
        const r = expectValid(await session.handle({ type: 'loadModel', id, seq: 7 }));
        if (r.type !== 'error') throw new Error(`loading ${id} should fail, got ${r.type}`);
        expect(r).toMatchObject({ request: 'loadModel', seq: 7 });
        expect(r.message).toContain(`model ${id}`);
        expect(r.message).toMatch(why);
        expect(r.message).toMatch(new RegExp(`still running ${GOOD}$`));
        const f = expectValid(await session.handle({ type: 'frame', frameId: ++frameId, width: 224, height: 224, rgba: dogRgba, layer: 'pw5', unit: 3 }));
        if (f.type !== 'frame') throw new Error(`frame after a failed switch to ${id}: ${JSON.stringify(f).slice(0, 300)}`);
        expect(f.modelId).toBe(GOOD);
        expect(f.top5[0]!.name).toMatch(SLED_DOG);
        expect(await session.handle({ type: 'hello' })).toMatchObject({ type: 'hello', model: { id: GOOD } });
      }
      expect(session.stats().numTensors).toBe(tensors);
    } finally {
      await session.dispose();
    }
  });

  it('a session started on a broken model refuses to start with that one line; started on the default it skips them', { timeout: 60_000 }, async () => {
    const err = await EngineSession.create({ backend: process.env.DEEPVIS_BACKEND ?? 'wasm', model: 'unsupported-layer', modelsDir: work }).then(
      () => null,
      (e: Error) => e,
    );
    expect(err?.message).toMatch(BROKEN['unsupported-layer']!.why);
    // No model asked for: the default (mobilenet-v1-0.75) is absent here, the broken ones are skipped, the good one runs.
    const session = await EngineSession.create({ backend: process.env.DEEPVIS_BACKEND ?? 'wasm', modelsDir: work });
    try {
      expect(session.model?.id).toBe(GOOD);
    } finally {
      await session.dispose();
    }
  });

  it('`deepvis classify --model <broken>` exits 1 with one line, no stack trace', { timeout: 180_000 }, async () => {
    for (const [id, { fault, why }] of Object.entries(BROKEN)) {
      const r = await runDeepvis(['--models-dir', work, 'classify', '--model', id, photo('dog')]);
      const lines = r.stderr.split('\n').filter((l) => l.trim());
      expect(r.code, `${id}: ${r.stderr.slice(0, 500)}`).toBe(1);
      expect(lines, id).toHaveLength(1);
      expect(lines[0], id).toMatch(new RegExp(`^deepvis: model ${id} ${fault === 'missing' ? 'is not installed' : 'cannot be loaded'}: `));
      expect(lines[0], id).toMatch(why);
      expect(r.stdout).toBe('');
    }
    // The good model beside them still classifies.
    const ok = await runDeepvis(['--models-dir', work, 'classify', '--model', GOOD, '--json', photo('dog')]);
    expect(ok.code, ok.stderr.slice(0, 500)).toBe(0);
    expect((JSON.parse(ok.stdout) as { results: { top5: { name: string }[] }[] }).results[0]!.top5[0]!.name).toMatch(SLED_DOG);
  });

  it('`deepvis models --json` lists every broken model as not installed, with its problem', { timeout: 120_000 }, async () => {
    const r = await runDeepvis(['--models-dir', work, 'models', '--json']);
    expect(r.code, r.stderr.slice(0, 500)).toBe(0);
    const models = (JSON.parse(r.stdout) as { models: { id: string; installed: boolean; problem: string | null }[] }).models;
    for (const m of models) {
      // --models-dir adds to the bundled models: those are listed too, and installed.
      if (m.id !== GOOD && m.id !== LATE && !BROKEN[m.id]) expect(m, m.id).toMatchObject({ installed: true, problem: null });
      else if (m.id === GOOD) expect(m).toMatchObject({ installed: true, problem: null });
      else if (m.id === LATE) expect(m).toMatchObject({ installed: false, problem: expect.stringMatching(/conv_pw_13_bn/) });
      else {
        expect(m.installed, m.id).toBe(false);
        expect(m.problem, m.id).toMatch(BROKEN[m.id]!.why);
      }
    }
  });
});
