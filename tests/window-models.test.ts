// A user's own model opened in the window: the upload's checks (names that are paths, files of
// other kinds, sizes over the caps, chunks past what was announced) refuse with a message naming
// the file and what to do, and write nothing outside the run's folder; a real bare folder (built
// with tfjs-layers as users build them) uploaded through the real session is listed and runs; the
// input convention picked for it changes the top-5 and is remembered across a restart.
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AppEvent, Reply, SynthEventT } from '../contract/messages.js';
import { UPLOAD_LIMITS } from '../contract/user-models.js';
import { AppStateStore } from '../main/persist/app-state.js';
import { EngineSession } from '../main/session/engine-session.js';
import { checkModelFiles, UserModelsHost } from '../main/session/user-models-host.js';
import { photo } from './support/fixtures.js';
import { plainLogitsModel, saveBareFolder } from './support/user-models.js';

const BACKEND = process.env.DEEPVIS_BACKEND ?? 'wasm';
const SIDE = 112;

let work: string;
let bare: string;
let dog: Uint8Array;

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'deepvis-window-models-'));
  // Outside any models folder: the window is the only way this model reaches the engine.
  bare = await saveBareFolder(plainLogitsModel(), join(work, 'source', 'my-scores'), ['cat', 'dog', 'bird', 'fish']);
  const { data } = await sharp(photo('dog')).resize(SIDE, SIDE, { fit: 'cover' }).ensureAlpha().raw().toBuffer({ resolveWithObject: true });
  dog = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}, 120_000);

afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

function filesOf(dir: string): { name: string; bytes: Uint8Array }[] {
  return readdirSync(dir).map((name) => ({ name, bytes: new Uint8Array(readFileSync(join(dir, name))) }));
}

/** Upload a folder the way the window does: announce, send in chunks, finish. Returns the last reply. */
async function upload(session: EngineSession, folder: string, files: { name: string; bytes: Uint8Array }[], client = { id: 'tab-1', emit: () => {} }): Promise<Reply> {
  const start = await session.handle({ type: 'modelUploadStart', folder, files: files.map((f) => ({ name: f.name, size: f.bytes.length })) }, client);
  if (start.type !== 'modelUploadStarted') return start;
  for (const f of files) {
    for (let at = 0; at < f.bytes.length || at === 0; at += start.chunkBytes) {
      const r = await session.handle({ type: 'modelUploadChunk', uploadId: start.uploadId, name: f.name, offset: at, bytes: f.bytes.subarray(at, at + start.chunkBytes) }, client);
      if (r.type !== 'modelUploadChunk') return r;
      if (!f.bytes.length) break;
    }
  }
  return session.handle({ type: 'modelUploadFinish', uploadId: start.uploadId }, client);
}

function frame(frameId: number, layer: string): Record<string, unknown> {
  return { type: 'frame', frameId, width: SIDE, height: SIDE, rgba: dog, layer, unit: 0 };
}

describe('a model folder upload is checked before anything is written', () => {
  const ok = { name: 'model.json', size: 1000 };

  it('refuses names that are paths, hidden files and a folder name that climbs out, naming the file', () => {
    expect(() => checkModelFiles('my-model', [ok, { name: '../model.json', size: 10 }])).toThrow(/my-model\/\.\.\/model\.json: a path, not a file name — send only the files of the model folder itself/);
    expect(() => checkModelFiles('my-model', [ok, { name: 'sub/group1-shard1of1.bin', size: 10 }])).toThrow(/a path, not a file name/);
    expect(() => checkModelFiles('my-model', [ok, { name: 'a\\b.bin', size: 10 }])).toThrow(/a path, not a file name/);
    expect(() => checkModelFiles('my-model', [ok, { name: '.bin', size: 10 }])).toThrow(/a path, not a file name/);
    expect(() => checkModelFiles('..', [ok])).toThrow(/"\.\." is not a folder name — open the folder that holds model\.json/);
    expect(() => checkModelFiles('../../etc', [ok])).toThrow(/is not a folder name/);
  });

  it('refuses files of other kinds, saying what a model folder may hold', () => {
    expect(() => checkModelFiles('my-model', [ok, { name: 'notes.md', size: 10 }])).toThrow(
      /my-model\/notes\.md is not a model file — a model folder holds only model\.json, its weight files \(\*\.bin, group\*-shard\*\), labels\.txt, classes\.json and deepvis\.json/,
    );
    expect(() => checkModelFiles('my-model', [ok, { name: 'model.h5', size: 10 }])).toThrow(/model\.h5 is not a model file/);
    expect(() => checkModelFiles('my-model', [{ name: 'labels.txt', size: 10 }])).toThrow(/my-model has no model\.json — open the folder that model\.save\(\) or tensorflowjs_converter wrote/);
    // What converters write is accepted, with or without the .bin ending.
    expect(checkModelFiles('My Model!', [ok, { name: 'group1-shard1of2', size: 10 }, { name: 'group1-shard2of2.bin', size: 10 }, { name: 'weights.bin', size: 5 }, { name: 'labels.txt', size: 5 }, { name: 'deepvis.json', size: 5 }])).toBe('My-Model-');
  });

  it('refuses a file over its cap and a folder over the total, with the sizes', () => {
    expect(() => checkModelFiles('big', [{ name: 'model.json', size: UPLOAD_LIMITS.maxModelJsonBytes + 1 }])).toThrow(/big\/model\.json is 64 MiB, more than the 64 MiB a model\.json may be/);
    expect(() => checkModelFiles('big', [ok, { name: 'labels.txt', size: 5 << 20 }])).toThrow(/labels\.txt is 5 MiB, more than the 1 MiB a class or descriptor file may be/);
    const shards = Array.from({ length: 3 }, (_, i) => ({ name: `group1-shard${i + 1}of3.bin`, size: 400 << 20 }));
    expect(() => checkModelFiles('big', [ok, ...shards])).toThrow(/big: 1200 MiB in all, more than the 1024 MiB one model folder may hold/);
  });

  it('refuses chunks past the announced size or out of order, and another client\'s upload; nothing lands outside the run folder', async () => {
    const root = join(work, 'run-a');
    const host = new UserModelsHost(root);
    const id = await host.start({ type: 'modelUploadStart', folder: 'x', files: [{ name: 'model.json', size: 4 }] }, 'c1');
    await expect(host.chunk({ uploadId: id, name: 'model.json', offset: 0, bytes: new Uint8Array(2) }, 'c2')).rejects.toThrow(/unknown upload .* — start the upload again/);
    await expect(host.chunk({ uploadId: id, name: 'model.json', offset: 2, bytes: new Uint8Array(2) }, 'c1')).rejects.toThrow(/chunk at byte 2, expected 0/);
    await expect(host.chunk({ uploadId: id, name: 'weights.bin', offset: 0, bytes: new Uint8Array(2) }, 'c1')).rejects.toThrow(/x\/weights\.bin was not announced/);
    await expect(host.finish(id, 'c1')).rejects.toThrow(/x\/model\.json: 0 of 4 bytes arrived/);
    await expect(host.chunk({ uploadId: id, name: 'model.json', offset: 0, bytes: new Uint8Array(5) }, 'c1')).rejects.toThrow(/more bytes than the 4 announced — the upload was discarded/);
    await expect(host.finish(id, 'c1')).rejects.toThrow(/unknown upload/);
    expect(readdirSync(join(root, 'models'))).toEqual([]);
    expect(readdirSync(join(root, 'incoming'))).toEqual([]);
    expect(existsSync(join(work, 'x'))).toBe(false);
    await host.dispose();
    expect(existsSync(root)).toBe(false);
  });
});

describe('a model folder on disk (the desktop app) is copied by the same rules', () => {
  it('copies the folder\'s own files, and refuses a file, a link and another kind of file, naming it', async () => {
    const host = new UserModelsHost(join(work, 'run-disk'));
    const dir = await host.importFolder(bare);
    expect(dir).toBe(join(work, 'run-disk', 'models', 'my-scores'));
    expect(readdirSync(dir).sort()).toEqual(readdirSync(bare).sort());
    await expect(host.importFolder(join(bare, 'model.json'))).rejects.toThrow(/model\.json is not a folder — open the folder that holds model\.json/);
    const linked = join(work, 'linked');
    mkdirSync(linked);
    symlinkSync(join(bare, 'model.json'), join(linked, 'model.json'));
    await expect(host.importFolder(linked)).rejects.toThrow(/linked\/model\.json is not a regular file \(a link, device or pipe\)/);
    const noted = join(work, 'noted');
    cpSync(bare, noted, { recursive: true });
    writeFileSync(join(noted, 'notes.md'), 'x');
    await expect(host.importFolder(noted)).rejects.toThrow(/noted\/notes\.md is not a model file/);
    await host.dispose();
  });
});

describe('the run folders of user models', () => {
  it('a new run removes the folders of runs whose process is gone, and keeps live ones', async () => {
    const parent = join(work, 'user-models');
    const dead = spawnSync(process.execPath, ['-e', '0']).pid;
    for (const name of [`run-a-${dead}`, `run-b-${process.pid}`, 'notes']) mkdirSync(join(parent, name, 'models'), { recursive: true });
    const host = new UserModelsHost(join(parent, `run-c-${process.pid}`));
    await host.ready();
    expect(await host.sweepStale()).toEqual([join(parent, `run-a-${dead}`)]);
    expect(readdirSync(parent).sort()).toEqual(['notes', `run-b-${process.pid}`, `run-c-${process.pid}`]);
    await host.dispose();
  });
});

describe('a bare folder opened in the window', () => {
  it('is uploaded, listed and classifies; a refused folder says why; its input convention changes the top-5 and is remembered', async () => {
    const statePath = join(work, 'state', 'state.json');
    const store = AppStateStore.open(statePath, { debounceMs: 10 });
    const session = await EngineSession.create({ backend: BACKEND, workers: 1, modelsDir: join(work, 'no-models'), userModelsDir: join(work, 'run-1'), appState: store });
    let afterTop: number[] = [];
    try {
      // A refusal from the web contract itself: a wrong kind of file among the folder's.
      const refused = await upload(session, 'my-scores', [...filesOf(bare), { name: 'README.md', bytes: new Uint8Array(3) }]);
      expect(refused.type).toBe('error');
      expect(refused.type === 'error' && refused.message).toMatch(/my-scores\/README\.md is not a model file/);

      const added = await upload(session, 'my-scores', filesOf(bare));
      expect(added).toMatchObject({ type: 'modelAdded', id: 'my-scores', problem: null });
      const listed = await session.handle({ type: 'listModels' });
      expect(listed.type === 'models' && listed.models.find((m) => m.id === 'my-scores')).toMatchObject({ installed: true, problem: null });

      const loaded = await session.handle({ type: 'loadModel', id: 'my-scores' });
      expect(loaded.type).toBe('loadModel');
      if (loaded.type !== 'loadModel') throw new Error('not loaded');
      // Inferred: 0…1 pixels, and the window may choose another convention.
      expect(loaded.model.preprocess).toEqual({ preset: '0-1', selectable: true, chosen: false });
      const layer = loaded.model.defaultLayer;
      const before = await session.handle(frame(1, layer));
      if (before.type !== 'frame') throw new Error(JSON.stringify(before).slice(0, 300));
      expect(before.top5.map((t) => t.name).sort()).toEqual(['bird', 'cat', 'dog', 'fish']);

      const set = await session.handle({ type: 'setPreprocess', model: 'my-scores', preset: 'caffe' });
      expect(set).toMatchObject({ type: 'preprocessSet', model: 'my-scores', preprocess: { preset: 'caffe', selectable: true, chosen: true } });
      const after = await session.handle(frame(2, layer));
      if (after.type !== 'frame') throw new Error(JSON.stringify(after).slice(0, 300));
      const probs = (r: typeof after) => [...r.top5].sort((a, b) => a.index - b.index).map((t) => t.prob);
      // BGR minus the mean instead of 0…1: another input, another answer.
      const moved = probs(after).reduce((m, p, i) => Math.max(m, Math.abs(p - probs(before)[i]!)), 0);
      expect(moved).toBeGreaterThan(0.01);
      afterTop = probs(after);

      // A synthesis job runs in a worker on the model as the window runs it: its result's top-5,
      // computed there, is what the window's own frame of that image answers.
      const events: SynthEventT[] = [];
      const tab = { id: 'tab-1', emit: (e: AppEvent) => void (e.type === 'synth' && events.push(e)) };
      const job = await session.handle({ type: 'synthStart', layer: loaded.model.logitsLayer, unit: 1, preset: 'fast', seeds: 1, size: SIDE, iterations: 3 }, tab);
      expect(job.type, JSON.stringify(job).slice(0, 300)).toBe('synthStarted');
      const end = Date.now() + 60_000;
      while (!events.some((e) => e.phase !== 'progress') && Date.now() < end) await new Promise((r) => setTimeout(r, 100));
      const result = events.find((e) => e.phase === 'done')?.result;
      expect(result, JSON.stringify(events.at(-1)).slice(0, 300)).toBeTruthy();
      const im = result!.images[0]!;
      const rgbaOf = new Uint8Array(im.width * im.height * 4).fill(255);
      for (let i = 0; i < im.width * im.height; i++) rgbaOf.set(im.rgb.subarray(i * 3, i * 3 + 3), i * 4);
      const seen = await session.handle({ ...frame(9, layer), rgba: rgbaOf });
      if (seen.type !== 'frame') throw new Error(JSON.stringify(seen).slice(0, 300));
      for (const t of im.top5!) expect(seen.top5.find((s) => s.index === t.index)!.prob).toBeCloseTo(t.prob, 3);

      // A model with a descriptor keeps its own numbers.
      const refuse = await session.handle({ type: 'setPreprocess', model: 'nope', preset: '-1-1' });
      expect(refuse.type === 'error' && refuse.message).toMatch(/unknown model "nope"/);
      await store.flush();
      expect(JSON.parse(readFileSync(statePath, 'utf8')).preprocess).toEqual({ 'my-scores': 'caffe' });
    } finally {
      await session.dispose();
      await store.close();
    }
    // The run's folder goes with the session.
    expect(existsSync(join(work, 'run-1'))).toBe(false);

    // Next run: the same folder opened again finds its convention remembered.
    const store2 = AppStateStore.open(statePath);
    const again = await EngineSession.create({ backend: BACKEND, workers: 1, modelsDir: join(work, 'no-models'), userModelsDir: join(work, 'run-2'), appState: store2 });
    try {
      expect(await upload(again, 'my-scores', filesOf(bare))).toMatchObject({ type: 'modelAdded', id: 'my-scores', problem: null });
      const loaded = await again.handle({ type: 'loadModel', id: 'my-scores' });
      if (loaded.type !== 'loadModel') throw new Error(JSON.stringify(loaded));
      expect(loaded.model.preprocess).toEqual({ preset: 'caffe', selectable: true, chosen: true });
      const r = await again.handle(frame(3, loaded.model.defaultLayer));
      if (r.type !== 'frame') throw new Error('no frame');
      const probs = [...r.top5].sort((a, b) => a.index - b.index).map((t) => t.prob);
      probs.forEach((p, i) => expect(p).toBeCloseTo(afterTop[i]!, 5));
      // Back to the inferred convention: forgotten.
      const auto = await again.handle({ type: 'setPreprocess', model: 'my-scores', preset: 'auto' });
      expect(auto).toMatchObject({ type: 'preprocessSet', preprocess: { preset: '0-1', chosen: false } });
      expect(store2.preprocessFor('my-scores')).toBeNull();
    } finally {
      await again.dispose();
      await store2.close();
    }
    expect(statSync(join(work, 'state')).isDirectory()).toBe(true);
  }, 240_000);
});
