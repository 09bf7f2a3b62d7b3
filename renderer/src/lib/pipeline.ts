// Latest-frame-wins. A new camera frame that arrives while the pipeline is full only sets a flag;
// when there is room the *newest* frame is grabbed then. Frames in between are dropped, never
// queued, so latency stays bounded however slow the engine is.
//
// depth 1: one frame at a time: send, wait for the reply, send the newest frame.
// depth 2: as depth 1, but the next frame may leave `lead()` ms after the previous one was sent —
//          timed to reach the host just as the engine finishes (lead ≈ engine time − grab time), so
//          the engine does not sit idle during the round trip and drawing, while the frame hardly
//          waits. At most one frame is in the engine and at most one waits at the host (which
//          answers a waiting frame that a newer one replaces with `dropped`).

export interface Grabbed {
  frameId: number;
  /** performance.now() when the pixels were taken (latency is measured from here). */
  grabbedAt: number;
}

export interface PipelineClock {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
}

const realClock: PipelineClock = {
  now: () => performance.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
};

export class LatestFramePipeline<F extends Grabbed> {
  private inFlight = 0;
  private wanted = false;
  private stopped = false;
  private lastSentAt = -Infinity;
  private timer = false;
  /** Frames that were superseded while the pipeline was full (never sent). */
  dropped = 0;
  sent = 0;
  /** Most frames that were ever out at once. */
  maxInFlight = 0;

  constructor(
    /** Take the newest pixels now, or null when there is nothing to send (no camera, paused…). */
    private readonly grab: () => F | null,
    /** Send one frame and handle its reply; resolves when the reply has been handled. */
    private readonly process: (frame: F) => Promise<void>,
    /** Frames allowed out at once (1 or 2, see above). */
    public depth = 1,
    /** depth 2: ms after a send before the next frame may follow (Infinity: wait for the reply). */
    private readonly lead: () => number = () => Infinity,
    private readonly clock: PipelineClock = realClock,
  ) {}

  get busy(): boolean {
    return this.inFlight > 0;
  }

  get pending(): number {
    return this.inFlight;
  }

  /** Something new to show (camera frame, image, layer/unit change): send it now or when there is room. */
  kick(): void {
    if (this.stopped) return;
    const depth = Math.max(1, Math.min(2, this.depth));
    let room = this.inFlight < depth;
    if (room && this.inFlight === 1) {
      // A second frame only goes out once the first is nearly through the engine.
      const wait = this.lastSentAt + this.lead() - this.clock.now();
      if (wait > 0) {
        room = false;
        if (Number.isFinite(wait) && !this.timer) {
          this.timer = true;
          this.clock.setTimeout(() => {
            this.timer = false;
            if (this.wanted) {
              this.wanted = false;
              this.kick();
            }
          }, wait);
        }
      }
    }
    if (!room) {
      if (this.wanted) this.dropped++;
      this.wanted = true;
      return;
    }
    const frame = this.grab();
    if (!frame) return;
    this.inFlight++;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    this.lastSentAt = this.clock.now();
    this.wanted = false;
    this.sent++;
    this.process(frame)
      .catch((e) => console.error(e))
      .finally(() => {
        this.inFlight--;
        if (this.wanted) {
          this.wanted = false;
          this.kick();
        }
      });
  }

  stop(): void {
    this.stopped = true;
    this.wanted = false;
  }

  start(): void {
    this.stopped = false;
  }
}
