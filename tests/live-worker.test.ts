// The live worker as the hosts use it (real worker threads, real models, wasm): frames run on their
// own thread, never behind a job; the live worker killed mid-frame is replaced (that frame errors
// naming what happened, every window gets a notice, the next frame answers the same as before);
// workers build their models from the bytes the host read once, so a restarted worker needs no
// model files; two windows' frames are taken in turn; frames are held at the ceiling only while a job
// takes the cores the live view needs.
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AppEvent, FrameReplyT, Reply, SynthEventT } from '../contract/messages.js';
import type { SessionClient } from '../main/session/client.js';
import { readModelFiles, loadModel, modelFromFiles } from '../main/engine/index.js';
import { EngineSession } from '../main/session/engine-session.js';
import { nativeEngine } from '../main/engine/onnx/native-net.js';
import { linkedModelsDir, photoRgba } from './support/fixtures.js';
import { collector } from './support/synth-events.js';
import { validReply } from './support/replies.js';
import * as tf from '@tensorflow/tfjs-core';
import { rgbaToModelPixels, selectBackend } from '../main/engine/index.js';

const MODEL = 'mobilenet-v1-0.25';

let session: EngineSession;
let rgba: Uint8Array;

const frame = (frameId: number, extra: object = {}) => ({ type: 'frame', frameId, width: 224, height: 224, rgba, layer: 'conv_pw_5_relu', unit: 3, ...extra }) as const;

async function frameReply(r: Promise<Reply>): Promise<FrameReplyT> {
  const reply = validReply(await r);
  if (reply.type !== 'frame') throw new Error(`expected a frame, got ${JSON.stringify(reply).slice(0, 300)}`);
  return reply;
}

beforeAll(async () => {
  session = await EngineSession.create({ backend: 'wasm', model: MODEL, workers: 1 });
  rgba = await photoRgba('dog');
});

afterAll(async () => {
  await session?.dispose();
});

/**
 * Run `body` while a long paper-3 synthesis runs on `s`'s job pool (past its second step), then
 * cancel it and wait for its end.
 */
async function whileSynthesizing(s: EngineSession, body: (job: { owner: SessionClient; jobId: string; events: SynthEventT[] }) => Promise<void>): Promise<void> {
  const c = collector();
  const owner = c.client('synth-owner');
  const started = await s.handle({ type: 'synthStart', layer: 'logits', unit: 'flamingo', preset: 'paper-3', seeds: 1, iterations: 500 }, owner);
  if (started.type !== 'synthStarted') throw new Error(JSON.stringify(started));
  try {
    await c.until((e) => e.jobId === started.jobId && e.phase === 'progress' && (e.iteration ?? 0) >= 2);
    await body({ owner, jobId: started.jobId, events: c.events });
  } finally {
    await s.handle({ type: 'synthCancel', jobId: started.jobId }, owner);
    await c.until((e) => e.jobId === started.jobId && e.phase !== 'progress');
  }
}

describe('the live worker', () => {
  it('computes frames on its own thread: the reply matches the model run here, and the caller keeps its pixels', async () => {
    const r = await frameReply(session.handle(frame(1, { back: { mode: 'guided', filter: 'raw', layer: 'conv_pw_5_relu', unit: 3 }, gradcam: {} })));
    expect(rgba.length).toBe(224 * 224 * 4); // moved as a copy: the caller's buffer is not detached
    const m = session.model!;
    const act = tf.tidy(() => m.forward(m.preprocess(rgbaToModelPixels(rgba, 224, 224, m.inputSize)), { taps: ['conv_pw_5_relu'] }).taps['conv_pw_5_relu']!);
    const hwc = (await act.data()) as Float32Array;
    act.dispose();
    const [h, w, c] = m.layer('conv_pw_5_relu').shape;
    for (let p = 0; p < h * w; p++) expect(r.unit.data[p]).toBeCloseTo(hwc[p * c + 3]!, 4);
    expect(r.top5[0]!.name).toMatch(/malamute|husky|eskimo dog|dogsled/i);
    expect(r.back!.rgb.length).toBe(224 * 224 * 3);
    expect(r.gradcam!.heat.length).toBe(224 * 224);
  });

  it('killed mid-frame: that frame errors naming what happened, every window gets a notice, the next frame answers on a new thread', async () => {
    const seen = { a: [] as AppEvent[], b: [] as AppEvent[] };
    const a = { id: 'live-a', emit: (e: AppEvent) => seen.a.push(e) };
    const b = { id: 'live-b', emit: (e: AppEvent) => seen.b.push(e) };
    const before = await frameReply(session.handle(frame(10), b)); // b is a window the session knows
    const live = session.liveWorker;
    const thread = live.threadId;
    const restarts = live.restarts;
    // The frame has left for the worker when frameStart fires: kill the thread under it.
    const started = new Promise<void>((resolve) => session.once('frameStart', () => resolve()));
    const pending = session.handle(frame(11, { back: { mode: 'backprop', filter: 'normblur', layer: 'conv_pw_5_relu', unit: 3 }, gradcam: {}, grid: 'backDiffs' }), a);
    await started;
    await live.kill();
    const r = validReply(await pending);
    expect(r).toMatchObject({ type: 'error', request: 'frame', frameId: 11, message: 'frame 11: the live worker exited (code 1) — it was restarted' });
    expect(live.restarts).toBe(restarts + 1);
    for (const events of [seen.a, seen.b]) {
      expect(events.filter((e) => e.type === 'notice')).toEqual([{ type: 'notice', level: 'warning', message: 'engine: live worker exited (code 1); restarted' }]);
    }
    const after = await frameReply(session.handle(frame(12), a));
    expect(live.threadId).not.toBe(thread);
    expect(after.frameId).toBe(12);
    expect(after.top5).toEqual(before.top5);
    expect(Array.from(after.tiles.data)).toEqual(Array.from(before.tiles.data));
  });

  it('answers frames while a synthesis runs on the job pool: frames never wait behind a job', async () => {
    await whileSynthesizing(session, async ({ owner, jobId, events }) => {
      for (let i = 0; i < 5; i++) expect((await frameReply(session.handle(frame(100 + i), owner))).frameId).toBe(100 + i);
      // All five were answered with the job still running on its own thread.
      expect(events.some((e) => e.jobId === jobId && e.phase !== 'progress')).toBe(false);
      expect(session.pool.workerOf(jobId)).not.toBeNull();
    });
  });

  it('holds frames at the ceiling while a job takes the cores the live view needs, and not where the cores hold both', { timeout: 120_000 }, async () => {
    // A ceiling of 1 fps: held frames enter the engine 1000 ms apart, free ones as soon as the last is answered.
    const gapsWith = async (cores: number): Promise<number[]> => {
      const s = await EngineSession.create({ backend: 'wasm', model: MODEL, workers: 1, jobLiveFps: 1, cores });
      const starts: number[] = [];
      s.on('frameStart', () => starts.push(performance.now()));
      try {
        await whileSynthesizing(s, async ({ owner, jobId }) => {
          starts.length = 0;
          for (let i = 0; i < 4; i++) expect((await frameReply(s.handle(frame(200 + i), owner))).frameId).toBe(200 + i);
          expect(s.pool.workerOf(jobId)).not.toBeNull(); // the job ran all along
        });
      } finally {
        await s.dispose();
      }
      return starts.slice(1).map((t, i) => t - starts[i]!);
    };
    // One job and the live view (1.5 cores) on 2 cores contend; on 16 they do not.
    const held = await gapsWith(2);
    const free = await gapsWith(16);
    expect(held).toHaveLength(3);
    for (const g of held) expect(g).toBeGreaterThanOrEqual(1000 - 2);
    expect(free).toHaveLength(3);
    for (const g of free) expect(g).toBeLessThan(900);
  });

  it('takes two windows’ frames in turn, each getting a fair share', async () => {
    const order: string[] = [];
    const pending: Promise<Reply>[] = [];
    // Both windows keep a frame waiting at all times: the session must alternate between them.
    for (let i = 0; i < 12; i++) {
      for (const id of ['left', 'right']) {
        pending.push(
          session.handle(frame(1000 + i * 2 + (id === 'left' ? 0 : 1)), { id, emit: () => {} }).then((r) => {
            if (r.type === 'frame') order.push(id);
            return r;
          }),
        );
      }
      await new Promise((r) => setTimeout(r, 5));
    }
    await Promise.all(pending);
    const left = order.filter((x) => x === 'left').length;
    const right = order.length - left;
    expect(Math.min(left, right)).toBeGreaterThanOrEqual(2);
    expect(Math.min(left, right) / order.length).toBeGreaterThanOrEqual(0.4);
    // Never the same window three times running while the other one was waiting.
    expect(order.join(',')).not.toMatch(/(left,left,left|right,right,right)/);
  });
});

// SwiftShader's software Vulkan (Debian's chromium ships it) stands in for a GPU, as in engine-onnx-webgpu.test.ts.
const SWIFTSHADER = '/usr/lib/chromium/vk_swiftshader_icd.json';
const icd = process.env.VK_ICD_FILENAMES || (existsSync(SWIFTSHADER) ? SWIFTSHADER : null);

describe.skipIf(!icd)(`a GPU backend (onnx-webgpu on ${icd ?? 'no Vulkan driver: skipped'})`, () => {
  it('the live worker owns the GPU; the job workers and the host thread run ONNX Runtime on the CPU', { timeout: 300_000 }, async () => {
    process.env.VK_ICD_FILENAMES = icd!;
    process.env.XDG_RUNTIME_DIR ??= mkdtempSync(join(tmpdir(), 'deepvis-xdg-'));
    const s = await EngineSession.create({ backend: 'onnx-webgpu', model: MODEL, workers: 1 });
    try {
      await Promise.all([s.liveWorker.ready, s.pool.workers[0]!.ready]);
      expect(s.liveWorker.description).toMatch(/^backend onnx-webgpu \(ONNX Runtime \(webgpu execution provider\)/);
      expect(s.pool.workers[0]!.description).toMatch(/^backend onnx \(ONNX Runtime \(CPU, 1 thread\)/);
      // This thread's own model stays off the GPU too (two threads starting WebGPU sessions at once crash the process).
      expect(nativeEngine()?.provider).toBe('cpu');
      const r = await frameReply(s.handle(frame(1)));
      expect(r.top5[0]!.name).toMatch(/malamute|husky|eskimo dog|dogsled/i);
    } finally {
      await s.dispose();
    }
  });
});

describe('a stuck live worker', () => {
  it('a frame not answered in time ends the worker: the frame errors saying so, a notice goes out, a new thread starts', async () => {
    // A limit no frame can meet stands in for an engine that hangs.
    const s = await EngineSession.create({ backend: 'wasm', model: MODEL, workers: 1, frameTimeoutMs: 1 });
    try {
      const notices: AppEvent[] = [];
      const client = { id: 'patient', emit: (e: AppEvent) => notices.push(e) };
      const thread = s.liveWorker.threadId;
      const r = validReply(await s.handle(frame(1), client));
      expect(r).toMatchObject({ type: 'error', frameId: 1, message: 'frame 1: the live worker did not answer frame 1 within 1 ms — it was restarted' });
      expect(notices).toContainEqual({ type: 'notice', level: 'warning', message: 'engine: live worker did not answer frame 1 within 1 ms; restarted' });
      expect(s.liveWorker.threadId).not.toBe(thread);
    } finally {
      await s.dispose();
    }
  });
});

describe('weights read once', () => {
  it('workers build the model from the host’s bytes: with its weight files gone, restarted workers still answer', async () => {
    const dir = linkedModelsDir('deepvis-live-bytes-', [MODEL]);
    const s = await EngineSession.create({ backend: 'wasm', model: MODEL, modelsDir: dir, workers: 1 });
    try {
      const before = await frameReply(s.handle(frame(1)));
      // Remove every weight shard (links in a temp folder; models/ is untouched).
      for (const f of readdirSync(join(dir, MODEL))) if (f.startsWith('group')) rmSync(join(dir, MODEL, f));
      await s.liveWorker.kill();
      const r = await frameReply(s.handle(frame(2)));
      expect(r.top5).toEqual(before.top5);
      // The job worker too: killed and restarted, it runs a synthesis without the files.
      const c = collector();
      const started = await s.handle({ type: 'synthStart', layer: 'logits', unit: 'flamingo', preset: 'fast', seeds: 1, iterations: 2 }, c.client('bytes'));
      if (started.type !== 'synthStarted') throw new Error(JSON.stringify(started));
      const end = await c.until((e) => e.jobId === started.jobId && e.phase !== 'progress');
      expect(end.phase).toBe('done');
      await s.pool.workers[0]!.kill();
      const again = await s.handle({ type: 'synthStart', layer: 'logits', unit: 'flamingo', preset: 'fast', seeds: 1, iterations: 2 }, c.client('bytes'));
      if (again.type !== 'synthStarted') throw new Error(JSON.stringify(again));
      const end2 = await c.until((e) => e.jobId === again.jobId && e.phase !== 'progress');
      expect(end2.phase, end2.message).toBe('done');
      // Loading from the folder now fails, as it should: nothing above read it.
      await expect(loadModel(MODEL, dir)).rejects.toThrow(/missing/);
    } finally {
      await s.dispose();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('the bytes are one shared buffer and build the same network as loading the folder', async () => {
    await selectBackend('wasm');
    const files = await readModelFiles(MODEL);
    expect(files.weights).toBeInstanceOf(SharedArrayBuffer);
    const a = modelFromFiles(files);
    const b = await loadModel(MODEL);
    try {
      const x = tf.tidy(() => a.preprocess(rgbaToModelPixels(rgba, 224, 224, a.inputSize)));
      const [la, lb] = [a, b].map((m) => tf.tidy(() => m.forward(x).logits!));
      expect(Array.from(await la!.data())).toEqual(Array.from(await lb!.data()));
      tf.dispose([x, la!, lb!]);
    } finally {
      a.dispose();
      b.dispose();
    }
  });
});
