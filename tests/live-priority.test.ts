// The live view goes first: background work in the host's thread (a top-k patch's back-projection)
// waits while frames keep coming, and takes a moment between two frames only once it has waited
// its longest. Real session, real model, frames streamed back to back as a camera would.
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EngineSession } from '../main/session/engine-session.js';
import { REPO, photo } from './support/fixtures.js';
import { join } from 'node:path';

const MODEL = 'mobilenet-v1-0.25';
let session: EngineSession;
let rgba: Uint8Array;
let frameId = 0;

beforeAll(async () => {
  session = await EngineSession.create({ backend: 'wasm', model: MODEL, modelsDir: join(REPO, 'models'), topk: { session: { enabled: false } } });
  const { data } = await sharp(photo('dog')).resize(224, 224, { fit: 'cover' }).ensureAlpha().raw().toBuffer({ resolveWithObject: true });
  rgba = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}, 120_000);

afterAll(async () => {
  await session?.dispose();
});

/** Stream `n` frames back to back; `answered` counts the replies. */
function stream(n: number) {
  const state = { answered: 0, running: true };
  const done = (async () => {
    for (let i = 0; i < n; i++) {
      const r = await session.handle({ type: 'frame', frameId: ++frameId, width: 224, height: 224, rgba, layer: 'conv_pw_5_relu', unit: 0 });
      expect(r.type).toBe('frame');
      state.answered++;
    }
    state.running = false;
  })();
  return { state, done };
}

describe('yieldToLive', () => {
  it('waits while frames keep coming, and resolves once they stop', { timeout: 120_000 }, async () => {
    const s = stream(12);
    await new Promise((r) => session.once('frameStart', r));
    let seen: { answered: number; running: boolean } | null = null;
    await session.topk.yieldToLive(50).then(() => (seen = { ...s.state }));
    await s.done;
    expect(seen).toEqual({ answered: 12, running: false });
  });

  it('with a longest wait, takes a moment between two frames while they still come', { timeout: 120_000 }, async () => {
    const s = stream(12);
    await new Promise((r) => session.once('frameStart', r));
    let seen: { answered: number; running: boolean } | null = null;
    await session.topk.yieldToLive(50, 0).then(() => (seen = { ...s.state }));
    await s.done;
    expect(seen!.running).toBe(true);
    expect(seen!.answered).toBeLessThan(12);
  });
});
