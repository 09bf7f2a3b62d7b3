// The live view's line of work in the host: frames latest-wins per client, the clients' frames
// taken in turn, model loads in their place. One item runs at a time (the live worker answers one
// frame at a time, and a load must not race the frames around it).
//
// While jobs leave the live view too little CPU (jobsContend), frames enter the engine at most
// JOB_LIVE_FPS times a second. Each live frame costs CPU well beyond the live worker — the host's
// WebSocket and session memory, and in the browser grabbing, scaling, sending and drawing —, about
// three times the worker's own share, and on a machine of two cores that is what a job loses: at the
// camera's 30 fps a four-seed synthesis took twice as long beside the live view. Held at the
// ceiling, the waiting frame is replaced by a newer one of the same client (latest wins), and a
// window keeps at most two frames in flight, so the whole chain, browser included, runs at the
// ceiling; the view stays fluid and a frame waits at most one gap. Where the cores hold both the
// running jobs and the live view at the camera's pace (one synthesis on four cores), nothing is held.
import { seqOf, type FrameRequestT, type Reply, type Request } from '../../contract/messages.js';

export type QueuedFrame = { kind: 'frame'; req: FrameRequestT; client: string };
export type QueuedLoad = { kind: 'load'; req: Extract<Request, { type: 'loadModel' }>; reload?: boolean };
export type QueuedWork = QueuedFrame | QueuedLoad;
type Entry = QueuedWork & { resolve: (r: Reply) => void };

/** The live view's frame-rate ceiling while jobs contend with it (see the module comment). */
export const JOB_LIVE_FPS = 20;

/**
 * Cores the live view takes at the camera's 30 fps, its whole chain (live worker, host thread, the
 * window's processes): `npm run bench:live` measured 26–47 ms of CPU a frame on the bundled
 * models (cpu_ms_per_frame.live_total), 0.8–1.4 cores; rounded up.
 */
export const LIVE_VIEW_CORES = 1.5;

/** Whether `runningJobs` (jobs on workers now) leave the live view less than LIVE_VIEW_CORES of `cores`. */
export function jobsContend(runningJobs: number, cores: number): boolean {
  return runningJobs > 0 && runningJobs + LIVE_VIEW_CORES > cores;
}

export class FrameQueue {
  private queue: Entry[] = [];
  private running = false;
  private idleWaiters: (() => void)[] = [];
  /** When each client's frame last entered the engine (a counter): the one served longest ago goes next. */
  private readonly servedAt = new Map<string, number>();
  private served = 0;
  /** Frames answered "dropped" because a newer one of the same client replaced them. */
  dropped = 0;
  /** performance.now() when the last frame entered the engine. */
  private lastFrameAt = -Infinity;

  /**
   * `run` answers one item; it never throws (the session turns failures into error replies).
   * `contended`: whether jobs contend with the live view now (jobsContend), which puts frames under the JOB_LIVE_FPS ceiling.
   */
  constructor(
    private readonly run: (work: QueuedWork) => Promise<Reply>,
    private readonly contended: () => boolean = () => false,
    private readonly jobFps = JOB_LIVE_FPS,
  ) {}

  /**
   * Latest wins per client: its frame still waiting is answered "dropped" and replaced; never a
   * queue. Each client has its own waiting slot and a new frame goes to the back.
   */
  pushFrame(req: FrameRequestT, client: string): Promise<Reply> {
    const i = this.queue.findIndex((j) => j.kind === 'frame' && j.client === client);
    if (i >= 0) {
      const old = this.queue.splice(i, 1)[0] as Entry & QueuedFrame;
      this.dropped++;
      old.resolve({ type: 'dropped', frameId: old.req.frameId, supersededBy: req.frameId, ...seqOf(old.req) });
    }
    return this.push({ kind: 'frame', req, client });
  }

  push(work: QueuedWork): Promise<Reply> {
    return new Promise<Reply>((resolve) => {
      this.queue.push({ ...work, resolve });
      if (!this.running) {
        this.running = true;
        // Start on the next turn so a burst of messages read together is collapsed first.
        setImmediate(() => void this.pump());
      }
    });
  }

  /** A client went away: its waiting frame has no one to go to. */
  forget(client: string): void {
    this.servedAt.delete(client);
    const i = this.queue.findIndex((j) => j.kind === 'frame' && j.client === client);
    if (i >= 0) {
      const [old] = this.queue.splice(i, 1) as (Entry & QueuedFrame)[];
      old!.resolve({ type: 'dropped', frameId: old!.req.frameId, supersededBy: old!.req.frameId, ...seqOf(old!.req) });
    }
  }

  /** Answer everything still waiting with `reply` (shutting down); the running item finishes. */
  drain(reply: (work: QueuedWork) => Reply): void {
    for (const e of this.queue.splice(0)) e.resolve(reply(e));
  }

  /** The first waiting frame's id, and how many loads wait. */
  waiting(): { frame: number | null; loads: number } {
    const f = this.queue.find((j) => j.kind === 'frame') as (Entry & QueuedFrame) | undefined;
    return { frame: f?.req.frameId ?? null, loads: this.queue.filter((j) => j.kind === 'load').length };
  }

  /** Resolves when nothing runs or waits. */
  async idle(): Promise<void> {
    if (this.running || this.queue.length > 0) await new Promise<void>((r) => this.idleWaiters.push(r));
  }

  private async pump(): Promise<void> {
    try {
      for (;;) {
        const wait = this.paceMs();
        if (wait > 0) await new Promise((r) => setTimeout(r, wait));
        const e = this.takeNext();
        if (!e) break;
        if (e.kind === 'frame') this.lastFrameAt = performance.now();
        e.resolve(await this.run(e));
      }
    } finally {
      this.running = false;
      for (const w of this.idleWaiters.splice(0)) w();
    }
  }

  /** How long the next frame must still wait for the ceiling; 0 for a load or when no job contends. */
  private paceMs(): number {
    if (this.queue[0]?.kind !== 'frame' || !this.contended()) return 0;
    return Math.max(0, this.lastFrameAt + 1000 / this.jobFps - performance.now());
  }

  /**
   * The next item: a load in its place; among the frames before it, the one whose client was
   * served longest ago. Arrival order alone is not enough: a client's replaced frame goes to the
   * back, so two clients sending at the same pace would otherwise let the one that sends first win
   * each time.
   */
  private takeNext(): Entry | undefined {
    let pick = -1;
    let oldest = Infinity;
    for (let i = 0; i < this.queue.length; i++) {
      const j = this.queue[i]!;
      if (j.kind !== 'frame') {
        if (pick < 0) pick = i;
        break;
      }
      const at = this.servedAt.get(j.client) ?? -1;
      if (at < oldest) [oldest, pick] = [at, i];
    }
    if (pick < 0) return undefined;
    const [e] = this.queue.splice(pick, 1);
    if (e!.kind === 'frame') this.servedAt.set(e!.client, ++this.served);
    return e;
  }
}
