// The live loop: latest frame wins (pipeline.ts) from the input to the engine and back. Each reply
// of the current model, layer and input is handed to the views; the loop measures what
// window.__deepvisStats reports (latency and where it goes, fps) and, at pipeline depth 2, steers
// how soon after a send the next camera frame may leave.
import type { FrameReplyT, LayerInfoT, ModelInfo, Reply, Request } from '../../../contract/messages';
import type { Settings } from '../settings';
import type { BackController } from './back.svelte';
import { LatestFramePipeline, type Grabbed } from './pipeline';
import type { DeepVisStats } from './stats';

declare global {
  interface Window {
    __deepvisStats?: DeepVisStats;
  }
}

interface OutFrame extends Grabbed {
  /** performance.now() when the pixels were ready to send. */
  grabbedBy: number;
  rgba: Uint8Array<ArrayBuffer>;
  width: number;
  height: number;
  layer: string;
  unit: number;
  modelId: string;
}

/** What the loop needs from the app. */
export interface LiveLoopHost {
  readonly transport: { request(message: Request): Promise<Reply> };
  readonly settings: Pick<Settings, 'pipelineDepth' | 'pipelineTargetWaitMs' | 'stats'>;
  readonly model: ModelInfo | null;
  readonly layer: LayerInfoT | null;
  readonly cursor: number;
  /** False while a model loads or the engine is not connected: nothing is sent. */
  readonly canSend: boolean;
  readonly input: {
    readonly isLiveCamera: boolean;
    pixels(): { rgba: Uint8Array<ArrayBuffer>; width: number; height: number } | null;
    isStale(rgba: Uint8Array): boolean;
  };
  /** Back-projection and Grad-CAM fields for a frame request of this layer and unit. */
  backFields(layer: string, unit: number): ReturnType<BackController['requestFields']>;
  /** A reply of the selected layer arrived: draw it. */
  drawReply(reply: FrameReplyT): void;
}

export class LiveLoop {
  top5 = $state.raw<FrameReplyT['top5']>([]);
  fps = $state(0);
  latencyMs = $state<number | null>(null);
  engineMs = $state<number | null>(null);
  engineError = $state<string | null>(null);
  /** The last reply drawn (null before one, after a model change or an unreadable input). */
  lastReply: FrameReplyT | null = null;

  readonly stats: DeepVisStats = { framesDrawn: 0, lastFrameId: -1, lastLayer: null, latencies: [], engineMs: [], grabMs: [], roundTripMs: [], drawMs: [], cameraFrames: 0, framesSkipped: 0, leadMs: null, framesDropped: 0, errors: 0 };
  private readonly pipeline: LatestFramePipeline<OutFrame>;
  private frameCounter = 0;
  private drawTimes: number[] = [];
  private fpsTimer: ReturnType<typeof setInterval> | null = null;
  /** Pipeline depth 2: the send lead (see leadMs) and recent (round trip − engine time) samples. */
  private lead: number | null = null;
  private overheads: number[] = [];

  constructor(private readonly host: LiveLoopHost) {
    this.pipeline = new LatestFramePipeline<OutFrame>(
      () => this.grab(),
      (f) => this.process(f),
      Math.max(1, Math.min(2, Math.round(host.settings.pipelineDepth))),
      () => this.leadMs(),
    );
    if (typeof window !== 'undefined') window.__deepvisStats = this.stats;
  }

  start(): void {
    this.fpsTimer = setInterval(() => this.updateFps(), 250);
  }

  stop(): void {
    this.pipeline.stop();
    if (this.fpsTimer) clearInterval(this.fpsTimer);
    this.fpsTimer = null;
  }

  /** Send a frame as soon as there is room (a new input, layer, unit or setting). */
  kick(): void {
    this.pipeline.kick();
  }

  /** The camera delivered a frame: count it and send the newest when there is room. */
  cameraFrame(): void {
    this.stats.cameraFrames++;
    this.pipeline.kick();
    this.stats.framesSkipped = this.pipeline.dropped;
  }

  /** Drop the last result (a new model, an input that could not be read). */
  forget(): void {
    this.lastReply = null;
    this.top5 = [];
  }

  /** A new model: its engine time differs, so the send lead is estimated afresh. */
  modelChanged(): void {
    this.forget();
    this.lead = null;
    this.overheads = [];
  }

  private grab(): OutFrame | null {
    const h = this.host;
    const m = h.model;
    const l = h.layer;
    if (!m || !l || !h.canSend) return null;
    const grabbedAt = performance.now();
    const px = h.input.pixels();
    if (!px) return null;
    return { frameId: ++this.frameCounter, grabbedAt, grabbedBy: performance.now(), ...px, layer: l.name, unit: Math.min(h.cursor, l.units - 1), modelId: m.id };
  }

  private async process(f: OutFrame): Promise<void> {
    const h = this.host;
    const req: Request = { type: 'frame', frameId: f.frameId, width: f.width, height: f.height, rgba: f.rgba, layer: f.layer, unit: f.unit, ...h.backFields(f.layer, f.unit) };
    const reply: Reply = await h.transport.request(req);
    const replied = performance.now();
    if (reply.type === 'frame') {
      this.engineError = null;
      if (reply.modelId !== h.model?.id) return;
      // A reply for an input no longer shown (a camera frame, or the previous static image) is stale.
      if (h.input.isStale(f.rgba)) return;
      this.top5 = reply.top5;
      if (reply.layer !== h.layer?.name) return; // the user changed layer meanwhile; the next frame has it
      this.lastReply = reply;
      h.drawReply(reply);
      const now = performance.now();
      const s = this.stats;
      s.framesDrawn++;
      s.lastFrameId = reply.frameId;
      s.lastLayer = reply.layer;
      const keep = h.settings.stats.keep;
      const push = (a: number[], v: number) => {
        a.push(v);
        if (a.length > keep) a.splice(0, a.length - keep);
      };
      push(s.latencies, now - f.grabbedAt);
      push(s.engineMs, reply.engineMs);
      push(s.grabMs, f.grabbedBy - f.grabbedAt);
      push(s.roundTripMs, replied - f.grabbedBy);
      push(s.drawMs, now - replied);
      if (h.input.isLiveCamera) this.steerLead(replied - f.grabbedBy, reply.engineMs);
      this.drawTimes.push(now);
      this.latencyMs = now - f.grabbedAt;
      this.engineMs = reply.engineMs;
      this.updateFps(now);
    } else if (reply.type === 'dropped') {
      this.stats.framesDropped++;
    } else if (reply.type === 'error') {
      this.stats.errors++;
      this.engineError = reply.message;
      // Don't spin on a failing engine: wait a little before the next frame.
      await new Promise((r) => setTimeout(r, 250));
    }
  }

  /**
   * Depth 2: how long after a send the next frame may leave. The aim is that it reaches the host
   * just before the engine frees up: early enough that the engine never idles, late enough that it
   * hardly waits. Starts at (engine time − grab time) and is then steered by how long frames waited
   * at the host: each frame's round trip minus its engine time, minus the smallest such overhead seen
   * (a frame that did not wait). Infinity (wait for the reply) until there are measurements, and for
   * a frozen frame or a static image, which are sent once per change.
   */
  private leadMs(): number {
    if (this.lead === null || !this.host.input.isLiveCamera) return Infinity;
    return this.lead;
  }

  private steerLead(roundTrip: number, engine: number): void {
    const over = roundTrip - engine;
    this.overheads.push(over);
    if (this.overheads.length > 300) this.overheads.shift();
    const s = this.stats;
    if (s.engineMs.length < 5) return;
    const median = (a: number[]) => {
      const x = a.slice(-9).sort((p, q) => p - q);
      return x[x.length >> 1] ?? 0;
    };
    const E = median(s.engineMs);
    const floor = Math.min(...this.overheads);
    if (this.lead === null) this.lead = Math.max(0, E - median(s.grabMs));
    const waited = over - floor;
    const target = this.host.settings.pipelineTargetWaitMs;
    this.lead = Math.max(0, Math.min(E + floor, this.lead + 0.25 * (waited - target)));
    s.leadMs = Math.round(this.lead * 10) / 10;
  }

  private updateFps(now = performance.now()): void {
    const win = this.host.settings.stats.fpsWindowMs;
    const t = this.drawTimes;
    let i = 0;
    while (i < t.length && t[i]! < now - win) i++;
    if (i) t.splice(0, i);
    this.fps = (t.length * 1000) / win;
  }
}
