// The frame queue's ceiling while a job runs: frames enter the engine at most so many times a second
// then (JOB_LIVE_FPS in the app), at the camera's pace otherwise; a frame held at the ceiling is
// replaced by a newer one of its client (latest wins), and model loads are never held. The ceiling
// here is 2 fps, so its 500 ms gaps stand far apart from the machine's own delays.
import { describe, expect, it } from 'vitest';
import type { FrameRequestT, Reply } from '../contract/messages.js';
import { FrameQueue, jobsContend, LIVE_VIEW_CORES, type QueuedWork } from '../main/session/frame-queue.js';

const FPS = 2;
const GAP = 1000 / FPS;
// Node's timers may fire up to a millisecond before performance.now() says the time has come.
const EARLY = 2;

const frame = (frameId: number): FrameRequestT => ({ type: 'frame', frameId, width: 1, height: 1, rgba: new Uint8Array(4), layer: 'l', unit: 0 });

/** A queue whose engine answers at once and records when each item entered it. */
function queue(job: { running: boolean }) {
  const started: { id: number | string; at: number }[] = [];
  const q = new FrameQueue(async (w: QueuedWork): Promise<Reply> => {
    started.push({ id: w.kind === 'frame' ? w.req.frameId : 'load', at: performance.now() });
    return w.kind === 'frame' ? ({ type: 'dropped', frameId: w.req.frameId, supersededBy: w.req.frameId } as Reply) : ({ type: 'error', message: 'x' } as Reply);
  }, () => job.running, FPS);
  return { q, started };
}

/** A client at pipeline depth 1: the next frame leaves when the last one's reply is back. */
async function stream(q: FrameQueue, frames: number, first = 1): Promise<void> {
  for (let i = 0; i < frames; i++) await q.pushFrame(frame(first + i), 'a');
}

describe('the frame queue while a job runs', () => {

  it('lets frames in at most its ceiling times a second, and at once again when the job ends', async () => {
    const job = { running: true };
    const { q, started } = queue(job);
    await stream(q, 4);
    const gaps = started.slice(1).map((s, i) => s.at - started[i]!.at);
    expect(gaps).toHaveLength(3);
    for (const g of gaps) expect(g).toBeGreaterThanOrEqual(GAP - EARLY);
    job.running = false;
    await stream(q, 3, 10);
    const free = started.slice(4);
    expect(free.map((s) => s.id)).toEqual([10, 11, 12]);
    // The first goes in without waiting out the gap since frame 4, nor does any after it.
    expect(free[0]!.at - started[3]!.at).toBeLessThan(GAP);
    for (let i = 1; i < free.length; i++) expect(free[i]!.at - free[i - 1]!.at).toBeLessThan(GAP);
  });

  it('replaces a frame held at the ceiling by its client\'s newer one, and never holds a load', async () => {
    const { q, started } = queue({ running: true });
    await q.pushFrame(frame(1), 'a');
    const held = q.pushFrame(frame(2), 'a');
    const load = q.push({ kind: 'load', req: { type: 'loadModel', id: 'm' } });
    const newer = q.pushFrame(frame(3), 'a');
    expect(await held).toMatchObject({ type: 'dropped', frameId: 2, supersededBy: 3 });
    await Promise.all([load, newer]);
    // The load waited for no gap; the newer frame went in one gap after frame 1.
    expect(started.map((s) => s.id)).toEqual([1, 'load', 3]);
    expect(started[1]!.at - started[0]!.at).toBeLessThan(GAP);
    expect(started[2]!.at - started[0]!.at).toBeGreaterThanOrEqual(GAP - EARLY);
  });
});

describe('when jobs contend with the live view', () => {
  it('is when the running jobs and the live view need more cores than there are', () => {
    expect(LIVE_VIEW_CORES).toBeGreaterThanOrEqual(1);
    expect(jobsContend(0, 2)).toBe(false); // no job: the camera's pace
    expect(jobsContend(1, 2)).toBe(true); // a synthesis on two cores
    expect(jobsContend(1, 4)).toBe(false); // a synthesis on four
    expect(jobsContend(3, 4)).toBe(true); // an atlas on a four-core machine's whole pool
    expect(jobsContend(2, 8)).toBe(false);
  });
});
