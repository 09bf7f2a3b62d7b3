// Synthesis jobs through the engine host, as the app uses them: start → progress with previews →
// result; a new job from the same client cancels the old one; cancel; frames keep being answered
// while a job runs; events cross the real WebSocket and validate against the contract.
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { parseEvent, parseReply, type AppEvent, type Reply, type SynthEventT } from '../contract/messages.js';
import { decodeMessage, encodeMessage } from '../contract/wire.js';
import { EngineSession } from '../main/session/engine-session.js';
import { loadModel } from '../main/engine/index.js';
import { startWebServer, type WebServer } from '../main/web/server.js';
import { photo } from './support/fixtures.js';
import { collector } from './support/synth-events.js';

const MODEL = 'mobilenet-v1-0.25';

describe('synthesis jobs in the engine session', () => {
  let session: EngineSession;
  let rgba: Uint8Array;

  beforeAll(async () => {
    session = await EngineSession.create({ backend: 'wasm', model: MODEL });
    const { data } = await sharp(photo('dog')).resize(224, 224).ensureAlpha().raw().toBuffer({ resolveWithObject: true });
    rgba = new Uint8Array(data);
  });
  afterAll(async () => {
    await session.dispose();
  });

  it('runs a class job to a flamingo with previews, while frames are still answered', async () => {
    const c = collector();
    const started = await session.handle({ type: 'synthStart', layer: 'logits', unit: 'flamingo', preset: 'paper-3', seeds: 2, iterations: 40 }, c.client('a'));
    expect(started.type).toBe('synthStarted');
    if (started.type !== 'synthStarted') return;
    expect(started.label).toMatch(/flamingo/);
    expect(started.settings).toMatchObject({ decay: 0.0001, blurWidth: 1, iterations: 40 });
    // A frame during the job is answered (the live view keeps running).
    await c.until((e) => e.phase === 'progress' && (e.iteration ?? 0) >= 3);
    const frame = await session.handle({ type: 'frame', frameId: 1, width: 224, height: 224, rgba, layer: 'conv_pw_5_relu', unit: 0 }, c.client('a'));
    expect(frame.type).toBe('frame');
    const done = await c.until((e) => e.phase !== 'progress');
    expect(done.phase).toBe('done');
    // The start image's preview first, then one event per step.
    const first = c.events.find((e) => e.phase === 'progress')!;
    expect(first.objective).toEqual([]);
    expect(first.preview!.images).toHaveLength(2);
    const progress = c.events.filter((e) => e.phase === 'progress' && e.objective!.length > 0);
    expect(progress.length).toBe(40);
    expect(progress.some((e) => e.preview?.images.length === 2)).toBe(true);
    expect(progress.at(-1)!.objective![0]).toBeGreaterThan(progress[0]!.objective![0]!);
    const imgs = done.result!.images;
    expect(imgs).toHaveLength(2);
    for (const im of imgs) {
      expect(im.rgb.length).toBe(224 * 224 * 3);
      expect(im.curve.length).toBe(40);
      expect(im.top5![0]!.name).toMatch(/^flamingo/);
    }
  });

  it('"from this frame": the request carries the frame; the result is that photo, accentuated', async () => {
    const c = collector();
    const started = await session.handle({ type: 'synthStart', layer: 'logits', unit: 'flamingo', preset: 'frame', seeds: 1, size: 128, iterations: 20, frame: { width: 224, height: 224, rgba } }, c.client('f'));
    expect(started).toMatchObject({ type: 'synthStarted', settings: { start: 'frame', param: 'pixels' } });
    const done = await c.until((e) => e.phase !== 'progress');
    expect(done.phase).toBe('done');
    const im = done.result!.images[0]!;
    expect(im.objectiveBest).toBeGreaterThan(im.objectiveStart);
    // Still the dog photo: compare with the frame scaled the same way (224 → 128, nearest is enough here).
    let diff = 0;
    for (let y = 0; y < 128; y++) for (let x = 0; x < 128; x++) for (let k = 0; k < 3; k++) {
      const sy = Math.floor(((y + 0.5) * 224) / 128);
      const sx = Math.floor(((x + 0.5) * 224) / 128);
      diff += Math.abs(im.rgb[(y * 128 + x) * 3 + k]! - rgba[(sy * 224 + sx) * 4 + k]!);
    }
    expect(diff / (128 * 128 * 3)).toBeLessThan(25);
    const missing = await session.handle({ type: 'synthStart', layer: 'logits', unit: 'flamingo', preset: 'frame', seeds: 1 }, c.client('f'));
    expect((missing as { message: string }).message).toMatch(/starts from a frame/);
  });

  it('a new job from the same client cancels the old one; synthCancel stops a job', async () => {
    const c = collector();
    const first = (await session.handle({ type: 'synthStart', layer: 'conv_pw_9_relu', unit: 3, preset: 'paper-1', seeds: 1 }, c.client('b'))) as Extract<Reply, { type: 'synthStarted' }>;
    await c.until((e) => e.jobId === first.jobId && e.phase === 'progress');
    const second = (await session.handle({ type: 'synthStart', layer: 'pw9', unit: 4, preset: 'fast', seeds: 1 }, c.client('b'))) as Extract<Reply, { type: 'synthStarted' }>;
    expect((await c.until((e) => e.jobId === first.jobId && e.phase !== 'progress')).phase).toBe('cancelled');
    await c.until((e) => e.jobId === second.jobId && e.phase === 'progress');
    const cancel = await session.handle({ type: 'synthCancel', jobId: second.jobId }, c.client('b'));
    expect(cancel).toMatchObject({ type: 'synthCancel', cancelled: true });
    expect((await c.until((e) => e.jobId === second.jobId && e.phase !== 'progress')).phase).toBe('cancelled');
  });

  it('refuses bad jobs with one clear error and never starts them', async () => {
    const c = collector();
    const bad = await session.handle({ type: 'synthStart', layer: 'conv_pw_9_relu', unit: 9999, preset: 'paper-3', seeds: 1 }, c.client('c'));
    expect(bad).toMatchObject({ type: 'error' });
    expect((bad as { message: string }).message).toMatch(/not a channel of pw9/);
    const badClass = await session.handle({ type: 'synthStart', layer: 'logits', unit: 'no such class', preset: 'paper-3', seeds: 1 }, c.client('c'));
    expect((badClass as { message: string }).message).toMatch(/no class named/);
    const invalid = await session.handle({ type: 'synthStart', layer: 'logits', unit: 1, preset: 'paper-9', seeds: 1 }, c.client('c'));
    expect((invalid as { message: string }).message).toMatch(/invalid message/);
  });
});

describe('synthesis events over the WebSocket', () => {
  let server: WebServer;
  beforeAll(async () => {
    server = await startWebServer({ port: 0, backend: 'wasm', model: MODEL });
  });
  afterAll(async () => {
    await server.close();
  });

  it('streams validated progress and done events to the client that asked', async () => {
    const ws = new WebSocket(`ws://127.0.0.1:${server.port}/ws?token=${encodeURIComponent(server.token)}`, { origin: `http://127.0.0.1:${server.port}` });
    await new Promise((r, j) => (ws.once('open', r), ws.once('error', j)));
    const seen: unknown[] = [];
    const done = new Promise<void>((resolve) => {
      ws.on('message', (data: Buffer) => {
        const msg = decodeMessage(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
        seen.push(msg);
        if ((msg as { type: string }).type === 'synth' && (msg as { phase: string }).phase === 'done') resolve();
      });
    });
    ws.send(encodeMessage({ type: 'synthStart', layer: 'logits', unit: 'n02279972', preset: 'fast', seeds: 1, iterations: 15, size: 160, seq: 7 }));
    await done;
    const started = parseReply(seen[0]);
    expect(started.ok && started.reply.type === 'synthStarted' && started.reply.seq === 7).toBe(true);
    const events = seen.slice(1).map((m) => parseEvent(m));
    expect(events.every((e) => e.ok)).toBe(true);
    const last = seen.at(-1) as SynthEventT;
    expect(last.result!.images[0]!.width).toBe(160);
    ws.close();
  });
});

describe('one job worker: warm-ups, and a job that has to wait', () => {
  let session: EngineSession;
  beforeAll(async () => {
    session = await EngineSession.create({ backend: 'wasm', model: MODEL, workers: 1 });
  });
  afterAll(async () => {
    await session.dispose();
  });

  it('a chosen model warms the worker up in the background: a job started meanwhile runs at once, only its own events reach a client, no job is counted, the memory estimate is measured once', async () => {
    const c = collector();
    // Right after the load: the worker's warm-up (one step on the opening layer and on a class) may still run.
    const started = await session.handle({ type: 'synthStart', layer: 'conv_pw_5_relu', unit: 3, preset: 'fast', seeds: 1, iterations: 4 }, c.client('a'));
    expect(started.type, JSON.stringify(started)).toBe('synthStarted');
    if (started.type !== 'synthStarted') return;
    const done = await c.until((e) => e.phase !== 'progress');
    expect(done.phase).toBe('done');
    expect(done.result!.iterations).toBe(4);
    expect(c.events.every((e) => e.jobId === started.jobId)).toBe(true);
    await expect.poll(() => session.pool.warmingUp, { timeout: 60_000 }).toBe(false);
    expect(session.pool.active).toBe(0);
    expect(c.events.filter((e) => e.phase !== 'progress')).toHaveLength(1);
    // The estimate belongs to the model's weights: a second load of the same files shares it.
    const again = await loadModel(MODEL);
    try {
      expect(session.pool.footprint(again)).toBe(session.pool.footprint(session.model!));
    } finally {
      again.dispose();
    }
  }, 180_000);

  it('a job behind a busy worker gets its start image from the host at once: the one the worker then starts from', async () => {
    const busy = collector();
    const long = await session.handle({ type: 'synthStart', layer: 'logits', unit: 'flamingo', preset: 'paper-3', seeds: 1, iterations: 1000 }, busy.client('busy'));
    if (long.type !== 'synthStarted') throw new Error(JSON.stringify(long));
    await busy.until((e) => e.phase === 'progress' && (e.iteration ?? 0) >= 1);
    const c = collector();
    const started = await session.handle({ type: 'synthStart', layer: 'conv_pw_5_relu', unit: 5, preset: 'fast', seeds: 2, iterations: 3 }, c.client('waiting'));
    if (started.type !== 'synthStarted') throw new Error(JSON.stringify(started));
    const first = await c.until((e) => e.phase === 'progress');
    expect(first.objective).toEqual([]);
    expect(first.preview!.images).toHaveLength(2);
    // Still queued behind the long job: the picture came from the host, not from a worker.
    expect(session.pool.workerOf(started.jobId)).toBeNull();
    await session.handle({ type: 'synthCancel', jobId: long.jobId }, busy.client('busy'));
    expect((await c.until((e) => e.phase !== 'progress')).phase).toBe('done');
    const starts = c.events.filter((e) => e.phase === 'progress' && e.objective!.length === 0);
    expect(starts).toHaveLength(2);
    for (let i = 0; i < 2; i++) expect(Buffer.from(starts[0]!.preview!.images[i]!).equals(Buffer.from(starts[1]!.preview!.images[i]!)), `seed ${i}`).toBe(true);
  }, 180_000);
});
