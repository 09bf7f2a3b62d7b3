// The live view's priority over background work in the host's own thread (a top-k patch's
// back-projection): such a step starts only when no frame is computing or waiting and none has
// started for a short quiet gap; a live view that never pauses would starve it, so after
// `maxDeferMs` it takes the next moment between two frames (that frame then waits for one step).
// Driven by the engine's events (idle, frameStart): nothing polls.

/** What the live view tells about itself. */
export interface LiveSignals {
  /** Resolves when no frame is computing or waiting. */
  idle(): Promise<void>;
  /** What is computing or waiting now (EngineSession.state()). */
  state(): { computing: number | null; waiting: number | null; loadsQueued: number };
  on(event: 'frameStart', listener: () => void): unknown;
  off(event: 'frameStart', listener: () => void): unknown;
}

export class LivePriority {
  constructor(private readonly live: LiveSignals) {}

  /** Resolve when the live view leaves room (see the module comment). */
  async yieldToLive(gapMs: number, maxDeferMs = Infinity): Promise<void> {
    const t0 = performance.now();
    for (;;) {
      await this.live.idle();
      if (performance.now() - t0 >= maxDeferMs) return;
      // A frame queued in the gap but not started yet counts as a frame.
      if ((await this.quietFor(gapMs)) && this.nothingWaiting()) return;
    }
  }

  private nothingWaiting(): boolean {
    const s = this.live.state();
    return s.computing === null && s.waiting === null && s.loadsQueued === 0;
  }

  /** true after `ms` (0: the next macrotask) without a frame starting; false as soon as one starts. */
  private quietFor(ms: number): Promise<boolean> {
    return new Promise<boolean>((resolve) => {
      const onFrame = () => {
        clear();
        resolve(false);
      };
      const timer = ms > 0 ? setTimeout(() => (clear(), resolve(true)), ms) : null;
      const immediate = ms > 0 ? null : setImmediate(() => (clear(), resolve(true)));
      const clear = () => {
        if (timer) clearTimeout(timer);
        if (immediate) clearImmediate(immediate);
        this.live.off('frameStart', onFrame);
      };
      this.live.on('frameStart', onFrame);
    });
  }
}
