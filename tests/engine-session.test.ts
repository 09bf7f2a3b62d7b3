// The engine host shared by Electron main and web mode: validation before the engine, latest frame
// wins, a failed model switch keeps the previous model, tiles match the layer, no tensor leaks.
// Real models, real photo, no mocks.
import { mkdirSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Reply } from '../contract/messages.js';
import { rgbaToModelPixels } from '../main/engine/index.js';
import { EngineSession } from '../main/session/engine-session.js';
import { copyModel, linkedModelsDir, photo } from './support/fixtures.js';
import { validReply as expectValid } from './support/replies.js';

const MODEL = 'mobilenet-v1-0.25';
const OTHER = 'darknet-tiny';

let work: string;
let session: EngineSession;
let dog: Uint8Array;
let eagle: Uint8Array;

async function rgba(file: string): Promise<Uint8Array> {
  const { data } = await sharp(file).resize(224, 224, { fit: 'cover' }).ensureAlpha().raw().toBuffer({ resolveWithObject: true });
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

function frame(frameId: number, layer = 'conv_pw_5_relu', unit = 0, pixels = dog) {
  return { type: 'frame', frameId, width: 224, height: 224, rgba: pixels, layer, unit } as const;
}

beforeAll(async () => {
  work = linkedModelsDir('deepvis-session-', [MODEL, OTHER]);
  // missing-weights: one shard gone (checksum list names it).
  const missing = copyModel(work, 'missing-weights');
  rmSync(join(missing, 'group29-shard1of1'));
  // corrupt-weights: a shard cut short.
  truncateSync(join(copyModel(work, 'corrupt-weights'), 'group29-shard1of1'), 1000);
  // bad-descriptor: not a valid descriptor at all.
  mkdirSync(join(work, 'bad-descriptor'));
  writeFileSync(join(work, 'bad-descriptor', 'deepvis.json'), '{"id": "bad-descriptor", "layers": []}');

  [dog, eagle] = await Promise.all([rgba(photo('dog')), rgba(photo('eagle'))]);
  session = await EngineSession.create({ backend: process.env.DEEPVIS_BACKEND ?? 'wasm', model: MODEL, modelsDir: work });
});

afterAll(async () => {
  await session?.dispose();
  if (work) rmSync(work, { recursive: true, force: true });
});

describe('engine session', () => {
  it('lists the models with their problems', async () => {
    const r = expectValid(await session.handle({ type: 'listModels', seq: 1 }));
    if (r.type !== 'models') throw new Error(r.type);
    expect(r.seq).toBe(1);
    const byId = new Map(r.models.map((m) => [m.id, m]));
    expect(byId.get(MODEL)?.installed).toBe(true);
    expect(byId.get(OTHER)?.installed).toBe(true);
    expect(byId.get('bad-descriptor')?.installed).toBe(false);
    expect(byId.get('bad-descriptor')?.problem).toMatch(/invalid model descriptor/);
  });

  it('rejects invalid messages before they reach the engine, without throwing', async () => {
    const before = session.stats().framesProcessed;
    const bad: unknown[] = [
      null,
      undefined,
      42,
      'hello',
      [],
      {},
      { type: 'bogus' },
      { type: 'frame', frameId: 1, width: -1, height: 224, rgba: dog, layer: 'conv1_relu', unit: 0 },
      { type: 'frame', frameId: 1, width: 224, height: 224, rgba: Array.from(dog.subarray(0, 16)), layer: 'conv1_relu', unit: 0 },
      { type: 'frame', frameId: 1.5, width: 224, height: 224, rgba: dog, layer: 'conv1_relu', unit: 0 },
      { type: 'loadModel', id: '' },
      { type: 'loadModel', id: 'x'.repeat(1000) },
      { type: 'hello', seq: -1 },
    ];
    for (const msg of bad) {
      const r = expectValid(await session.handle(msg));
      expect(r.type, JSON.stringify(msg)?.slice(0, 80)).toBe('error');
    }
    const r = await session.handle({ type: 'frame', frameId: 9, width: -1, height: 224, rgba: dog, layer: 'conv1_relu', unit: 0, seq: 5 });
    expect(r).toMatchObject({ type: 'error', request: 'frame', seq: 5 });
    expect(session.stats().framesProcessed).toBe(before);
  });

  it('reports frame problems the engine finds as errors carrying the frameId', async () => {
    expect(await session.handle(frame(1, 'no_such_layer'))).toMatchObject({ type: 'error', frameId: 1, message: expect.stringMatching(/no displayed layer/) });
    expect(await session.handle(frame(2, 'conv1_relu', 10_000))).toMatchObject({ type: 'error', frameId: 2, message: expect.stringMatching(/out of range/) });
    expect(await session.handle({ ...frame(3), width: 100 })).toMatchObject({ type: 'error', frameId: 3, message: expect.stringMatching(/bytes/) });
    expect((await session.handle(frame(4))).type).toBe('frame');
  });

  it('packs the layer as 8-bit tiles in [C,H,W] order with the layer-wide scale', async () => {
    const model = session.model!;
    for (const name of ['conv_pw_3_relu', 'conv_dw_2_relu', 'conv_preds']) {
      const layer = model.layer(name);
      const unit = Math.min(5, layer.units - 1);
      const r = expectValid(await session.handle(frame(10, name, unit)));
      if (r.type !== 'frame') throw new Error(JSON.stringify(r));
      const [h, w, c] = layer.shape;
      // The same activation computed directly, in [H,W,C] order.
      const act = tf.tidy(() => model.forward(model.preprocess(rgbaToModelPixels(dog, 224, 224, model.inputSize)), { taps: [name] }).taps[name]!);
      const hwc = (await act.data()) as Float32Array;
      act.dispose();
      let scale = 0;
      const cmax = new Float32Array(c);
      for (let i = 0; i < hwc.length; i++) {
        const v = Math.max(hwc[i]!, 0);
        if (v > cmax[i % c]!) cmax[i % c] = v;
        if (v > scale) scale = v;
      }
      expect(r.tiles.scale).toBeCloseTo(scale, 4);
      for (let ch = 0; ch < c; ch++) expect(r.tiles.channelMax[ch]).toBeCloseTo(cmax[ch]!, 4);
      let maxDiff = 0;
      for (let ch = 0; ch < c; ch++) {
        for (let p = 0; p < h * w; p++) {
          const want = scale > 0 ? Math.round((255 * Math.max(hwc[p * c + ch]!, 0)) / scale) : 0;
          maxDiff = Math.max(maxDiff, Math.abs(r.tiles.data[ch * h * w + p]! - want));
        }
      }
      expect(maxDiff, name).toBeLessThanOrEqual(1); // float rounding at .5
      for (let p = 0; p < h * w; p++) expect(r.unit.data[p]).toBeCloseTo(hwc[p * c + unit]!, 4);
      expect(r.unit.max).toBeCloseTo(Math.max(...Array.from({ length: h * w }, (_, p) => hwc[p * c + unit]!)), 4);
    }
  });

  it('keeps at most one frame computing and one waiting: the latest wins, the rest are dropped', async () => {
    const seen: { computing: number | null; waiting: number | null }[] = [];
    const extra: Promise<Reply>[] = [];
    const onStart = (id: number) => {
      if (id !== 101) return;
      // Frames 102…105 arrive while 101 is in the engine.
      for (let i = 102; i <= 105; i++) {
        extra.push(session.handle(frame(i)));
        const s = session.state();
        seen.push({ computing: s.computing, waiting: s.waiting });
      }
    };
    session.on('frameStart', onStart);
    const dropsBefore = session.stats().framesDropped;
    try {
      const first = await session.handle(frame(101));
      const rest = await Promise.all(extra);
      expect(first.type).toBe('frame');
      expect(rest.map((r) => [r.type, (r as { frameId?: number }).frameId, (r as { supersededBy?: number }).supersededBy])).toEqual([
        ['dropped', 102, 103],
        ['dropped', 103, 104],
        ['dropped', 104, 105],
        ['frame', 105, undefined],
      ]);
      for (const r of rest) expectValid(r);
      expect(seen).toEqual([102, 103, 104, 105].map((w) => ({ computing: 101, waiting: w })));
      expect(session.stats().framesDropped - dropsBefore).toBe(3);
    } finally {
      session.off('frameStart', onStart);
    }

    // Sent in one burst with nothing computing: all but the last are superseded before the engine starts.
    const burst = await Promise.all([1, 2, 3, 4, 5].map((i) => session.handle(frame(200 + i))));
    expect(burst.at(-1)!.type).toBe('frame');
    expect(burst.filter((r) => r.type === 'frame').length).toBeLessThanOrEqual(2);
    expect(burst.every((r) => r.type === 'frame' || r.type === 'dropped')).toBe(true);
  });

  it('keeps the previous model when a switch fails, naming the model and the reason', async () => {
    const cases: [string, RegExp][] = [
      ['missing-weights', /missing/],
      ['corrupt-weights', /corrupt|sha256/],
      ['bad-descriptor', /invalid model descriptor|cannot be loaded/],
      ['no-such-model', /unknown model/],
    ];
    for (const [id, why] of cases) {
      const r = expectValid(await session.handle({ type: 'loadModel', id }));
      if (r.type !== 'error') throw new Error(`loading ${id} should fail, got ${r.type}`);
      expect(r.message).toContain(id);
      expect(r.message).toMatch(why);
      expect(r.request).toBe('loadModel');
      const f = await session.handle(frame(300, 'conv_pw_5_relu', 1, eagle));
      expect(f).toMatchObject({ type: 'frame', modelId: MODEL });
      const hello = await session.handle({ type: 'hello' });
      expect(hello).toMatchObject({ type: 'hello', model: { id: MODEL } });
    }
  });

  it('switches models and back without leaking tensors', async () => {
    // This thread's tensors and the live worker's (stats add them; the worker reports after each frame).
    expect((await session.handle(frame(399))).type).toBe('frame');
    await session.idle();
    const before = session.stats().numTensors;
    const r = expectValid(await session.handle({ type: 'loadModel', id: OTHER, seq: 3 }));
    if (r.type !== 'loadModel') throw new Error(JSON.stringify(r));
    expect(r.seq).toBe(3);
    expect(r.model.id).toBe(OTHER);
    const f = await session.handle(frame(400, r.model.defaultLayer, 0));
    expect(f).toMatchObject({ type: 'frame', modelId: OTHER });
    if (f.type === 'frame') expect(f.top5.some((t) => /dogsled|malamute|husky|eskimo dog/i.test(t.name))).toBe(true);
    // A frame for the old model's layer now fails cleanly.
    expect((await session.handle(frame(401, 'conv_pw_5_relu'))).type).toBe('error');
    const back = await session.handle({ type: 'loadModel', id: MODEL });
    expect(back.type).toBe('loadModel');
    expect((await session.handle(frame(402))).type).toBe('frame');
    await session.idle();
    expect(session.stats().numTensors).toBe(before);
  });

  it('keeps the tensor count flat over 50 frames', async () => {
    const layers = ['conv1_relu', 'conv_dw_3_relu', 'conv_pw_5_relu', 'conv_pw_13_relu', 'conv_preds'];
    for (const l of layers) await session.handle(frame(500, l));
    await session.idle();
    const before = session.stats().numTensors;
    let processed = 0;
    for (let i = 0; i < 50; i++) {
      const r = await session.handle(frame(501 + i, layers[i % layers.length], i % 8, i % 2 ? dog : eagle));
      if (r.type === 'frame') processed++;
    }
    expect(processed).toBe(50);
    await session.idle(); // the session memory offer of the last frame runs after its reply
    expect(session.stats().numTensors).toBe(before);
  });
});
