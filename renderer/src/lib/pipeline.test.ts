import { describe, expect, it } from 'vitest';
import { LatestFramePipeline } from './pipeline';

function deferred() {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

describe('LatestFramePipeline', () => {
  it('keeps at most one frame in flight and sends the newest one next (drops, never queues)', async () => {
    let camera = 0; // the newest camera frame number
    const sent: number[] = [];
    const inFlight: ReturnType<typeof deferred>[] = [];
    let maxConcurrent = 0;
    let concurrent = 0;
    const p = new LatestFramePipeline(
      () => ({ frameId: camera, grabbedAt: 0 }),
      async (f) => {
        sent.push(f.frameId);
        concurrent++;
        maxConcurrent = Math.max(maxConcurrent, concurrent);
        const d = deferred();
        inFlight.push(d);
        await d.promise;
        concurrent--;
      },
    );
    camera = 1;
    p.kick(); // sent at once
    for (camera = 2; camera <= 9; camera++) p.kick(); // the engine is slow: 8 camera frames arrive
    camera = 9;
    expect(sent).toEqual([1]);
    inFlight.shift()!.resolve();
    await new Promise((r) => setTimeout(r, 0));
    expect(sent).toEqual([1, 9]); // the newest, not 2
    inFlight.shift()!.resolve();
    await new Promise((r) => setTimeout(r, 0));
    expect(sent).toEqual([1, 9]); // nothing new arrived: nothing sent
    expect(maxConcurrent).toBe(1);
    expect(p.dropped).toBe(7);
  });

  it('sends nothing when there is nothing to grab, and stops', async () => {
    let n = 0;
    const p = new LatestFramePipeline(
      () => null,
      async () => {
        n++;
      },
    );
    p.kick();
    expect(n).toBe(0);
    const q = new LatestFramePipeline(
      () => ({ frameId: 1, grabbedAt: 0 }),
      async () => {
        n++;
      },
    );
    q.stop();
    q.kick();
    expect(n).toBe(0);
  });

  it('recovers from a failing send', async () => {
    let calls = 0;
    const p = new LatestFramePipeline(
      () => ({ frameId: calls, grabbedAt: 0 }),
      async () => {
        calls++;
        throw new Error('boom');
      },
    );
    const err = console.error;
    console.error = () => {};
    p.kick();
    await new Promise((r) => setTimeout(r, 0));
    p.kick();
    await new Promise((r) => setTimeout(r, 0));
    console.error = err;
    expect(calls).toBe(2);
    expect(p.busy).toBe(false);
  });
});

describe('LatestFramePipeline, depth 2', () => {
  it('sends the next frame one engine pass after the previous one, never more than two out', async () => {
    let t = 0;
    const timers: { at: number; fn: () => void }[] = [];
    const clock = { now: () => t, setTimeout: (fn: () => void, ms: number) => timers.push({ at: t + ms, fn }) };
    const advance = (to: number) => {
      t = to;
      for (const tm of timers.splice(0)) (tm.at <= t ? tm.fn : () => timers.push(tm))();
    };
    let camera = 0;
    const sent: { id: number; at: number }[] = [];
    const replies: (() => void)[] = [];
    const p = new LatestFramePipeline(
      () => ({ frameId: camera, grabbedAt: t }),
      (f) =>
        new Promise<void>((r) => {
          sent.push({ id: f.frameId, at: t });
          replies.push(r);
        }),
      2,
      () => 40, // engine ≈ 40 ms
      clock,
    );
    camera = 1;
    p.kick(); // t=0: sent
    advance(10);
    camera = 2;
    p.kick(); // too early: waits for t=40
    advance(20);
    camera = 3;
    p.kick();
    expect(sent.map((s) => s.id)).toEqual([1]);
    advance(40); // the timer fires: the newest frame (3) goes out while 1 is still out
    expect(sent).toEqual([
      { id: 1, at: 0 },
      { id: 3, at: 40 },
    ]);
    camera = 4;
    p.kick(); // two out: wait
    camera = 5;
    p.kick();
    expect(sent).toHaveLength(2);
    expect(p.maxInFlight).toBe(2);
    advance(60);
    replies.shift()!(); // frame 1 answered at t=60; frame 3 sent at 40 → 5 may go at 80
    await new Promise((r) => setTimeout(r, 0));
    expect(sent).toHaveLength(2);
    advance(80);
    expect(sent.map((s) => s.id)).toEqual([1, 3, 5]);
    expect(p.dropped).toBe(2); // 2 and 4 were never sent
  });

  it('behaves like depth 1 while there is no estimate', async () => {
    let camera = 0;
    const sent: number[] = [];
    const replies: (() => void)[] = [];
    const p = new LatestFramePipeline(
      () => ({ frameId: camera, grabbedAt: 0 }),
      (f) =>
        new Promise<void>((r) => {
          sent.push(f.frameId);
          replies.push(r);
        }),
      2,
    );
    camera = 1;
    p.kick();
    camera = 2;
    p.kick();
    expect(sent).toEqual([1]);
    replies.shift()!();
    await new Promise((r) => setTimeout(r, 0));
    expect(sent).toEqual([1, 2]);
  });
});
