// Top-k patches through the engine host (topk-host.ts): index the fixture photos with indexStart on
// an EngineSession (temp index dir), progress/done events, the unit's patches (crop + deconv, boxes
// inside the images), openIndexedImage only for indexed files, frames answered while indexing, and
// the session memory filling from frames. Real model, real photos, no mocks.
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseEvent, parseReply, type AppEvent, type Reply } from '../contract/messages.js';
import type { IndexEventT } from '../contract/topk.js';
import { EngineSession, type SessionClient } from '../main/session/engine-session.js';
import { PHOTOS, PHOTOS_DIR, REPO, photo } from './support/fixtures.js';
import { pearson } from './support/numeric.js';

const MODEL = 'mobilenet-v1-0.25';
const LAYER = 'conv_pw_5_relu';

let work: string;
let session: EngineSession;
const events: AppEvent[] = [];
const client: SessionClient = {
  id: 'test',
  emit: (e) => {
    const p = parseEvent(e);
    if (!p.ok) throw new Error(`event does not match the contract: ${p.error}`);
    events.push(e);
  },
};
const frames = new Map<string, Uint8Array>();

async function rgba(file: string): Promise<Uint8Array> {
  const { data } = await sharp(file).resize(224, 224, { fit: 'cover' }).ensureAlpha().raw().toBuffer({ resolveWithObject: true });
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

async function ask(msg: unknown): Promise<Reply> {
  const r = await session.handle(msg, client);
  const p = parseReply(r);
  if (!p.ok) throw new Error(`reply does not match the contract: ${p.error}`);
  return r;
}

function indexEvents(): IndexEventT[] {
  return events.filter((e): e is IndexEventT => e.type === 'index');
}

async function waitForEnd(timeoutMs = 240_000): Promise<IndexEventT> {
  const t0 = Date.now();
  for (;;) {
    const end = indexEvents().find((e) => e.phase !== 'progress');
    if (end) return end;
    if (Date.now() - t0 > timeoutMs) throw new Error('indexing did not finish');
    await new Promise((r) => setTimeout(r, 50));
  }
}

let frameId = 0;
function frame(pixels: Uint8Array, layer = LAYER, unit = 0) {
  return { type: 'frame', frameId: ++frameId, width: 224, height: 224, rgba: pixels, layer, unit } as const;
}

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'deepvis-topk-host-'));
  session = await EngineSession.create({ model: MODEL, modelsDir: join(REPO, 'models'), topk: { indexDir: join(work, 'index') } });
  for (const p of PHOTOS) frames.set(p, await rgba(photo(p)));
});

afterAll(async () => {
  await session?.dispose();
  if (work) rmSync(work, { recursive: true, force: true });
});

describe('indexStart validation', () => {
  it('refuses relative paths, missing folders and files, with clear errors', async () => {
    for (const [dirs, want] of [
      [['photos'], /not an absolute path/],
      [[join(work, 'nope')], /does not exist/],
      [[photo('dog')], /is not a folder/],
      [[], /dirs/],
    ] as const) {
      const r = await ask({ type: 'indexStart', dirs });
      expect(r.type).toBe('error');
      if (r.type === 'error') expect(r.message).toMatch(want);
    }
    expect(session.topk.indexing).toBe(false);
  });

  it('indexStop with nothing running says so', async () => {
    expect(await ask({ type: 'indexStop' })).toMatchObject({ type: 'indexStop', stopped: false });
  });

  it('topk before any index: no folder patches, no error', async () => {
    const r = await ask({ type: 'topk', layer: LAYER, unit: 3 });
    expect(r).toMatchObject({ type: 'topk', folder: [], index: { images: 0, indexing: false } });
  });
});

describe('indexing the fixture photos in the background', () => {
  let answeredWhileIndexing = 0;
  let end: IndexEventT;

  it('indexes through indexStart, with progress and done events, while frames are still answered', async () => {
    const t0 = performance.now();
    const r = await ask({ type: 'indexStart', dirs: [PHOTOS_DIR] });
    expect(r).toMatchObject({ type: 'indexStart', modelId: MODEL, index: { indexing: true } });
    expect(await ask({ type: 'indexStart', dirs: [PHOTOS_DIR] })).toMatchObject({ type: 'error', message: /already indexing/ });
    // A live view: one frame after another until indexing ends. Every frame is answered.
    const photos = [...frames.values()];
    let i = 0;
    while (!indexEvents().some((e) => e.phase !== 'progress')) {
      const reply = await ask(frame(photos[i++ % photos.length]!));
      expect(reply.type).toBe('frame');
      if (session.topk.indexing) answeredWhileIndexing++;
      if (performance.now() - t0 > 240_000) throw new Error('indexing did not finish');
    }
    end = await waitForEnd();
    console.log(`indexed ${end.done} photos in ${(performance.now() - t0).toFixed(0)} ms; ${answeredWhileIndexing} frames answered meanwhile`);
    expect(end.phase).toBe('done');
    expect(end.done).toBe(PHOTOS.length);
    expect(end.total).toBe(PHOTOS.length);
    expect(end.images).toBe(PHOTOS.length);
    expect(end.unreadableCount).toBe(0);
    expect(answeredWhileIndexing).toBeGreaterThan(0);
    const progress = indexEvents().filter((e) => e.phase === 'progress');
    expect(progress.length).toBeGreaterThan(0);
    expect(progress.at(-1)!.done).toBe(PHOTOS.length);
    expect(existsSync(join(work, 'index', `${MODEL}.topk.json`))).toBe(true);
    expect(session.topk.indexing).toBe(false);
  });

  it('topk returns ≤ k folder patches with crops and deconvs of the right size, boxes inside the images', async () => {
    const k = 5;
    for (const [layer, unit] of [
      [LAYER, 7],
      ['conv_pw_1_relu', 2],
      ['conv_pw_13_relu', 11],
    ] as const) {
      const r = await ask({ type: 'topk', layer, unit, k });
      expect(r.type).toBe('topk');
      if (r.type !== 'topk') return;
      expect(r.index).toMatchObject({ images: PHOTOS.length, k: 9, indexing: false });
      expect(r.folder.length).toBeGreaterThan(0);
      expect(r.folder.length).toBeLessThanOrEqual(k);
      let last = Infinity;
      for (const p of r.folder) {
        expect(p.activation).toBeLessThanOrEqual(last);
        last = p.activation;
        expect(Math.max(p.width, p.height)).toBe(64);
        expect(p.crop.length).toBe(p.width * p.height * 3);
        expect(p.deconv?.length).toBe(p.width * p.height * 3);
        expect(p.problem).toBeUndefined();
        expect(p.image.startsWith(PHOTOS_DIR)).toBe(true);
        expect(p.box.x).toBeGreaterThanOrEqual(0);
        expect(p.box.y).toBeGreaterThanOrEqual(0);
        expect(p.box.w).toBeGreaterThan(0);
        expect(p.box.h).toBeGreaterThan(0);
        expect(p.box.x + p.box.w).toBeLessThanOrEqual(p.imageWidth);
        expect(p.box.y + p.box.h).toBeLessThanOrEqual(p.imageHeight);
        // A real crop and a real deconv: not one flat colour.
        expect(new Set(p.crop).size).toBeGreaterThan(10);
        expect(new Set(p.deconv!).size).toBeGreaterThan(10);
        // At the back-projection pane's scale (p99.5), not by the largest value: the strongest half
        // percent or so of the values clips to 0 or 255 (by the max: one value).
        const clipped = p.deconv!.reduce((n, v) => n + (v === 0 || v === 255 ? 1 : 0), 0) / p.deconv!.length;
        expect(clipped, `patch ${p.rank} of ${layer}:${unit}`).toBeGreaterThan(0.004);
      }
    }
  });

  it('a class’s top patches on a MobileNet (no max-pools) show each image’s own back-projection, not one picture for all', async () => {
    const unit = 340; // zebra
    // Each patch's back-projection as 16×16 grey, so patches of images of other shapes compare.
    const small = (p: { deconv: Uint8Array | null; width: number; height: number }) =>
      sharp(Buffer.from(p.deconv!), { raw: { width: p.width, height: p.height, channels: 3 } }).resize(16, 16, { fit: 'fill' }).greyscale().raw().toBuffer();
    const likeness = async (back?: 'deconv') => {
      const r = await ask({ type: 'topk', layer: 'logits', unit, k: 4, ...(back ? { back } : {}) });
      if (r.type !== 'topk') throw new Error(r.type);
      expect(r.folder.length).toBeGreaterThanOrEqual(3);
      const g = await Promise.all(r.folder.map(small));
      return g.slice(1).map((x) => pearson(g[0]!, x));
    };
    // By default (guided here: the forward pass's masks), each image's own picture.
    for (const c of await likeness()) expect(c).toBeLessThan(0.9);
    // DVT's deconv, asked for by name: without pool switches it never reads the image, so every
    // patch of a class (its field is the whole image) is the same picture (measured: correlation 1).
    for (const c of await likeness('deconv')) expect(c).toBeGreaterThan(0.99);
  });

  it('openIndexedImage returns an indexed image and refuses every other path', async () => {
    const t = await ask({ type: 'topk', layer: LAYER, unit: 7, k: 1 });
    if (t.type !== 'topk') throw new Error(t.type);
    const path = t.folder[0]!.image;
    const r = await ask({ type: 'openIndexedImage', path });
    expect(r).toMatchObject({ type: 'openIndexedImage', path });
    if (r.type === 'openIndexedImage') expect(Buffer.from(r.bytes).equals(readFileSync(path))).toBe(true);
    for (const bad of ['/etc/passwd', `${PHOTOS_DIR}/../photos/SOURCE.md`, join(PHOTOS_DIR, 'SOURCE.md'), 'dog.jpg', `${path}/..`]) {
      const e = await ask({ type: 'openIndexedImage', path: bad });
      expect(e.type, bad).toBe('error');
      if (e.type === 'error') expect(e.message).toMatch(/not an image of the mobilenet-v1-0.25 index/);
    }
  });

  it('a second run skips what is indexed', async () => {
    events.length = 0;
    expect((await ask({ type: 'indexStart', dirs: [PHOTOS_DIR + '/'] })).type).toBe('indexStart');
    const e = await waitForEnd();
    expect(e).toMatchObject({ phase: 'done', done: 0, total: 0, skipped: PHOTOS.length, images: PHOTOS.length });
  });
});

describe('session memory', () => {
  it('fills from frames of the selected layer, crops bounded, identical frames once', async () => {
    const L = 'conv_pw_4_relu';
    for (const p of PHOTOS) {
      // The same frame twice (a frozen frame): remembered once.
      expect((await ask(frame(frames.get(p)!, L, 7))).type).toBe('frame');
      expect((await ask(frame(frames.get(p)!, L, 7))).type).toBe('frame');
      await new Promise((r) => setImmediate(r));
      await session.idle();
      await new Promise((r) => setTimeout(r, 20));
    }
    const mem = session.topk.sessionMemory!;
    expect(mem.field.layer).toBe(L);
    expect(mem.frames).toBeGreaterThan(0);
    expect(mem.frames).toBeLessThanOrEqual(PHOTOS.length);
    expect(mem.bytes).toBeLessThanOrEqual(mem.maxBytes);
    const r = await ask({ type: 'topk', layer: L, unit: 7 });
    if (r.type !== 'topk') throw new Error(r.type);
    expect(r.sessionLayer).toBe(L);
    expect(r.session.length).toBeGreaterThan(0);
    expect(r.session.length).toBeLessThanOrEqual(9);
    const ids = new Set(r.session.map((s) => s.frameId));
    expect(ids.size).toBe(r.session.length);
    for (const s of r.session) expect(s.crop.length).toBe(s.width * s.height * 3);
    // Frames of another layer start that layer's memory.
    await ask(frame(frames.get('dog')!, 'conv_pw_3_relu', 1));
    await new Promise((r) => setTimeout(r, 50));
    const r2 = await ask({ type: 'topk', layer: 'conv_pw_3_relu', unit: 1 });
    if (r2.type !== 'topk') throw new Error(r2.type);
    expect(r2.sessionLayer).toBe('conv_pw_3_relu');
    expect(r2.session.length).toBe(1);
  });
});

describe('patch geometry and model switch', () => {
  it('cropField pads what lies outside the part of the image the model saw', async () => {
    const { cropField } = await import('../main/engine/topk/patches.js');
    const { cropGeometry } = await import('../main/engine/images.js');
    // A 300×200 white image: the model (224×224) sees its centre 200×200 crop (x 50…250).
    const img = { width: 300, height: 200, data: new Uint8Array(300 * 200 * 3).fill(255) };
    const g = cropGeometry(300, 200, [224, 224]);
    // A field hanging 56 px (a quarter) off the left edge of the model input.
    const out = cropField(img, g, { x: -56, y: 0, w: 224, h: 224 }, 64, 64, [1, 2, 3]);
    expect([...out.slice(0, 3)]).toEqual([1, 2, 3]); // top-left: padding, not the image's margin
    expect([...out.slice((63 * 64 + 63) * 3, (63 * 64 + 63) * 3 + 3)]).toEqual([255, 255, 255]);
    const padded = Array.from({ length: 64 }, (_, x) => out[x * 3]).filter((v) => v === 1).length;
    expect(padded).toBe(16);
  });

  it('a model switch stops indexing and resets the index and the session memory', async () => {
    events.length = 0;
    rmSync(join(work, 'index', `${MODEL}.topk.json`), { force: true });
    // Start over on a fresh file (the in-memory index is re-read when the file changes).
    expect((await ask({ type: 'indexStart', dirs: [PHOTOS_DIR] })).type).toBe('indexStart');
    const load = await ask({ type: 'loadModel', id: 'darknet-tiny' });
    expect(load.type).toBe('loadModel');
    const end = await waitForEnd();
    expect(['stopped', 'done']).toContain(end.phase);
    if (end.phase === 'stopped') expect(end.message).toMatch(/model was switched/);
    expect(session.topk.indexing).toBe(false);
    const r = await ask({ type: 'topk', layer: session.model!.layers[2]!.name, unit: 0 });
    expect(r).toMatchObject({ type: 'topk', modelId: 'darknet-tiny', folder: [], session: [], sessionLayer: null, index: { images: 0 } });
    expect((await ask({ type: 'openIndexedImage', path: photo('dog') })).type).toBe('error');
  });
});
