// The live frame's back-projection part through the engine host: each mode returns a
// filtered map at the input size, Grad-CAM heat for the top-1 (or a chosen) class, back-diff tiles
// for the selected layer, replies that match the contract, and no tensor growth over 30 frames.
import { rmSync } from 'node:fs';
import * as tf from '@tensorflow/tfjs-core';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseRequest, type Reply } from '../contract/messages.js';
import { backproject } from '../main/engine/backprojection.js';
import { displayBytes, rgbBytes } from '../main/engine/display-filters.js';
import { gradCam } from '../main/engine/gradcam.js';
import { rgbaToModelPixels } from '../main/engine/index.js';
import { EngineSession } from '../main/session/engine-session.js';
import { linkedModelsDir, photo } from './support/fixtures.js';
import { validReply } from './support/replies.js';

const MODEL = 'mobilenet-v1-0.25';
let work: string;
let session: EngineSession;
let dog: Uint8Array;

async function rgba(file: string): Promise<Uint8Array> {
  const { data } = await sharp(file).resize(224, 224, { fit: 'cover' }).ensureAlpha().raw().toBuffer({ resolveWithObject: true });
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

function frame(frameId: number, extra: Record<string, unknown> = {}, layer = 'conv_pw_5_relu', unit = 0) {
  return { type: 'frame', frameId, width: 224, height: 224, rgba: dog, layer, unit, ...extra } as const;
}

async function frameReply(msg: unknown): Promise<Extract<Reply, { type: 'frame' }>> {
  const r = validReply(await session.handle(msg));
  if (r.type !== 'frame') throw new Error(`expected a frame, got ${JSON.stringify(r).slice(0, 300)}`);
  return r;
}

function distinct(a: Uint8Array): number {
  return new Set(a).size;
}

beforeAll(async () => {
  work = linkedModelsDir('deepvis-backframe-', [MODEL]);
  dog = await rgba(photo('dog'));
  session = await EngineSession.create({ backend: process.env.DEEPVIS_BACKEND ?? 'wasm', model: MODEL, modelsDir: work });
}, 120_000);

afterAll(async () => {
  await session?.dispose();
  if (work) rmSync(work, { recursive: true, force: true });
});

describe('frames with back-projection', () => {
  it('old clients: a frame without the new fields has none of them in the reply', async () => {
    const r = await frameReply(frame(1));
    expect(r.back).toBeUndefined();
    expect(r.gradcam).toBeUndefined();
    expect(r.backDiffs).toBeUndefined();
  });

  it('the contract accepts the new fields and refuses bad ones', () => {
    expect(parseRequest(frame(1, { back: { mode: 'guided', filter: 'norm', layer: 'pw5', unit: 3 }, gradcam: { opacity: 0.5 }, grid: 'backDiffs' })).ok).toBe(true);
    expect(parseRequest(frame(1, { back: { mode: 'sideways', filter: 'norm', layer: 'pw5', unit: 3 } })).ok).toBe(false);
    expect(parseRequest(frame(1, { gradcam: { opacity: 2 } })).ok).toBe(false);
    expect(parseRequest(frame(1, { grid: 'weights' })).ok).toBe(false);
  });

  for (const mode of ['backprop', 'deconv', 'guided'] as const) {
    for (const filter of ['raw', 'norm'] as const) {
      it(`${mode} ${filter}: a non-uniform map at the input size`, async () => {
        const r = await frameReply(frame(2, { back: { mode, filter, layer: 'conv_pw_5_relu', unit: 7 } }));
        expect(r.back).toBeDefined();
        const b = r.back!;
        expect([b.width, b.height]).toEqual([224, 224]);
        expect(b.rgb.length).toBe(224 * 224 * 3);
        expect(b.mode).toBe(mode);
        expect(b.source).toBe('pw5:7');
        expect(distinct(b.rgb)).toBeGreaterThan(20);
      });
    }
  }

  it('the shared forward gives the same maps as the engine on its own (backproject, gradCam)', async () => {
    const m = session.model!;
    const r = await frameReply(frame(20, { back: { mode: 'guided', filter: 'raw', layer: 'conv_pw_5_relu', unit: 7 }, gradcam: {} }));
    const x = tf.tidy(() => m.preprocess(rgbaToModelPixels(dog, 224, 224, m.inputSize)));
    const bytes = tf.tidy(() => displayBytes(backproject(m, x, { kind: 'channel', layer: 'conv_pw_5_relu', channel: 7 }, 'guided'), 'raw'));
    const [want] = await rgbBytes(bytes);
    const cam = gradCam(m, x, { kind: 'class', index: r.top5[0]!.index });
    const heat = tf.tidy(() => tf.round(tf.mul(cam.heat, 255)));
    const wantHeat = Uint8Array.from(await heat.data());
    tf.dispose([x, bytes, cam.heat, cam.coarse, heat]);
    let diff = 0;
    for (let i = 0; i < want!.length; i++) diff = Math.max(diff, Math.abs(want![i]! - r.back!.rgb[i]!));
    expect(diff).toBeLessThanOrEqual(1);
    let hd = 0;
    for (let i = 0; i < wantHeat.length; i++) hd = Math.max(hd, Math.abs(wantHeat[i]! - r.gradcam!.heat[i]!));
    expect(hd).toBeLessThanOrEqual(1);
  });

  it('a class source on the logits layer (one-hot), with a frozen source on another layer than the frame', async () => {
    const info = session.model!;
    const top = (await frameReply(frame(3))).top5[0]!;
    const r = await frameReply(frame(4, { back: { mode: 'guided', filter: 'norm', layer: info.logitsLayer, unit: top.index } }, 'conv_pw_3_relu', 2));
    expect(r.back!.source).toMatch(new RegExp(`^class ${top.index} `));
    expect(r.layer).toBe('conv_pw_3_relu');
    expect(distinct(r.back!.rgb)).toBeGreaterThan(20);
  });

  it('Grad-CAM heat for the top-1 class by default, or a chosen class', async () => {
    const r = await frameReply(frame(5, { gradcam: {} }));
    const g = r.gradcam!;
    expect([g.width, g.height]).toEqual([224, 224]);
    expect(g.heat.length).toBe(224 * 224);
    expect(g.classIndex).toBe(r.top5[0]!.index);
    expect(g.className).toBe(r.top5[0]!.name);
    expect(Math.max(...g.heat)).toBe(255);
    expect(distinct(g.heat)).toBeGreaterThan(20);
    const other = await frameReply(frame(6, { gradcam: { class: 21, opacity: 0.3 } }));
    expect(other.gradcam!.classIndex).toBe(21);
    expect(other.gradcam!.className).toBe(session.model!.classes[21]!.name);
  });

  it('grid backDiffs: one tile per unit of the selected layer, non-zero below the source, zero above it', async () => {
    const back = { mode: 'backprop', filter: 'raw', layer: 'conv_pw_7_relu', unit: 5 } as const;
    const r = await frameReply(frame(7, { back, grid: 'backDiffs' }, 'conv_pw_3_relu', 0));
    const d = r.backDiffs!;
    const l = session.model!.layer('conv_pw_3_relu');
    expect(d.count).toBe(l.units);
    expect([d.h, d.w]).toEqual([l.shape[0], l.shape[1]]);
    expect(d.data.length).toBe(l.units * d.h * d.w);
    expect(d.channelMax.length).toBe(l.units);
    expect(d.scale).toBeGreaterThan(0);
    expect(Math.max(...d.data)).toBe(255);
    // The activations are still there for the unit pane.
    expect(r.tiles.count).toBe(l.units);
    const above = await frameReply(frame(8, { back, grid: 'backDiffs' }, 'conv_pw_9_relu', 0));
    expect(above.backDiffs!.count).toBe(session.model!.layer('conv_pw_9_relu').units);
    expect(Math.max(...above.backDiffs!.data)).toBe(0);
  });

  it('a bad back source is an error reply naming the frame, and the session carries on', async () => {
    const r = await session.handle(frame(9, { back: { mode: 'backprop', filter: 'raw', layer: 'conv_pw_5_relu', unit: 100000 } }));
    expect(r.type).toBe('error');
    expect(r.type === 'error' && r.frameId).toBe(9);
    expect((await frameReply(frame(10))).type).toBe('frame');
  });

  it('30 frames with back-projection, back diffs and Grad-CAM on: numTensors stays flat', async () => {
    const req = (i: number) => frame(100 + i, { back: { mode: (['backprop', 'deconv', 'guided'] as const)[i % 3], filter: 'normblur', layer: 'conv_pw_5_relu', unit: i % 8 }, gradcam: {}, grid: 'backDiffs' }, 'conv_pw_4_relu', 1);
    await frameReply(req(0)); // warm-up (kernels, caches)
    // The live worker's tensors and this thread's (stats add them).
    await session.idle();
    const before = session.stats().numTensors;
    const t0 = performance.now();
    for (let i = 1; i <= 30; i++) await frameReply(req(i));
    const ms = (performance.now() - t0) / 30;
    await session.idle();
    expect(session.stats().numTensors).toBe(before);
    console.log(`back-projection frame (backprop/deconv/guided normblur + diffs + Grad-CAM), ${MODEL}: ${ms.toFixed(1)} ms/frame`);
  }, 120_000);
});
