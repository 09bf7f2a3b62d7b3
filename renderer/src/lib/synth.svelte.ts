// Synthesis in the app: the selected unit's preferred image, optimised by the engine while the live
// view keeps running (the engine interleaves the job's steps with frames). Pattern mode is in
// atlas.svelte.ts, the slider table in synth-presets.ts.
//
// The presets, which θ each of them uses and the limits come from contract/synthesis.ts: the
// sliders start at the preset's values, only the preset's own θ are shown, and only those the user
// moved are sent as overrides; the full settings the job runs with come back in synthStarted and go
// into the exported JSON.
import type { AppEvent, Reply, Request } from '../../../contract/messages';
import { DEFAULT_PRESET, DEFAULT_SEEDS, PRESETS, SYNTH_LIMITS, type SynthEventT, type SynthFrame, type SynthSettings } from '../../../contract/synthesis';
import type { RgbImage } from './pixels';
import { presetTheta, presetThetas, type SynthPreset, type Theta } from './synth-presets';

export type SynthPhase = 'idle' | 'starting' | 'running' | 'done' | 'cancelled' | 'error';

export type SynthResult = NonNullable<SynthEventT['result']>;

/** What the synthesis controller needs from the app (kept narrow so the two stay loosely coupled). */
export interface SynthHost {
  readonly transport: { request(msg: Request): Promise<Reply> };
  readonly model: { id: string; logitsLayer: string; inputSize: [number, number] | number[] } | null;
  readonly layer: { name: string; display: string; units: number } | null;
  readonly cursor: number;
  /** The frame the input pane shows (camera or image), as RGBA, for "from this frame"; null when none. */
  currentFrame?(): SynthFrame | null;
}

export class SynthController {
  // ---------------------------------------------------------------- settings (the pane's controls)
  preset = $state<SynthPreset>(DEFAULT_PRESET);
  theta = $state<Record<Theta, number>>(presetTheta(DEFAULT_PRESET));
  /** θ the user changed since picking the preset: only these are sent as overrides. */
  touched = $state<Theta[]>([]);
  seeds = $state(DEFAULT_SEEDS);
  size = $state(224);
  iterations = $state<number>(PRESETS[DEFAULT_PRESET].settings.iterations);

  // ---------------------------------------------------------------- the job
  phase = $state<SynthPhase>('idle');
  jobId = $state<string | null>(null);
  label = $state('');
  /** What the job was asked for (for export). */
  jobLayer = $state('');
  jobUnit = $state(0);
  jobSettings = $state.raw<SynthSettings | null>(null);
  iteration = $state(0);
  totalIterations = $state(0);
  elapsedMs = $state(0);
  objectiveNow = $state<number | null>(null);
  /** Best seed's target-class probability (class units), else null. */
  targetProb = $state<number | null>(null);
  /** The target class has passed its threshold in some seed (class units). */
  recognised = $state(false);
  /** Why the finished run stopped. */
  stopReason = $state<string | null>(null);
  message = $state<string | null>(null);
  /** Preview images during the run, the best images when done (one per seed). */
  images = $state.raw<RgbImage[]>([]);
  result = $state.raw<SynthResult | null>(null);
  /** Index into result.images of the image Export saves. */
  selected = $state(0);
  /** Bumped when the objective curve grows (the curve itself is a plain array). */
  curveVersion = $state(0);
  curve: number[] = [];

  private pending: SynthEventT[] = [];
  private startToken = 0;

  constructor(private readonly host: SynthHost) {}

  get running(): boolean {
    return this.phase === 'starting' || this.phase === 'running';
  }

  get isClassUnit(): boolean {
    const m = this.host.model;
    const l = this.host.layer;
    return !!m && !!l && l.name === m.logitsLayer;
  }

  // ---------------------------------------------------------------- controls

  setPreset(p: SynthPreset): void {
    this.preset = p;
    this.theta = presetTheta(p);
    this.iterations = PRESETS[p].settings.iterations;
    this.touched = [];
  }

  setTheta(k: Theta, v: number): void {
    this.theta = { ...this.theta, [k]: v };
    if (!this.touched.includes(k)) this.touched = [...this.touched, k];
  }

  // ---------------------------------------------------------------- start / cancel

  /** `y`: start a job for the selected unit, or cancel the running one. */
  async toggle(): Promise<void> {
    if (this.running) return this.cancel();
    return this.start();
  }

  async start(): Promise<void> {
    const l = this.host.layer;
    if (!l || !this.host.model) return;
    const token = ++this.startToken;
    const unit = this.host.cursor;
    const overrides: Partial<Record<Theta, number>> = {};
    for (const k of this.touched) if (presetThetas(this.preset).includes(k)) overrides[k] = this.theta[k];
    let frame: SynthFrame | undefined;
    if (PRESETS[this.preset].kind === 'frame') {
      frame = this.host.currentFrame?.() ?? undefined;
      if (!frame) {
        this.phase = 'error';
        this.message = 'no frame to start from: turn the camera on or open an image first';
        return;
      }
    }
    this.phase = 'starting';
    this.jobId = null;
    this.pending = [];
    this.message = null;
    this.result = null;
    this.images = [];
    this.selected = 0;
    this.curve = [];
    this.curveVersion++;
    this.iteration = 0;
    this.totalIterations = this.iterations;
    this.elapsedMs = 0;
    this.objectiveNow = null;
    this.targetProb = null;
    this.recognised = false;
    this.stopReason = null;
    this.label = `${l.display}:${unit}`;
    this.jobLayer = l.name;
    this.jobUnit = unit;
    const reply = await this.host.transport.request({
      type: 'synthStart',
      layer: l.name,
      unit,
      preset: this.preset,
      ...(Object.keys(overrides).length ? { overrides } : {}),
      seeds: Math.max(1, Math.min(SYNTH_LIMITS.maxSeeds, Math.round(this.seeds))),
      size: Math.max(SYNTH_LIMITS.minRequestSize, Math.min(SYNTH_LIMITS.maxRequestSize, Math.round(this.size))),
      iterations: Math.max(1, Math.min(SYNTH_LIMITS.maxRequestIterations, Math.round(this.iterations))),
      ...(frame ? { frame } : {}),
    });
    if (token !== this.startToken) return; // superseded by a newer start
    if (reply.type !== 'synthStarted') {
      this.phase = 'error';
      this.message = reply.type === 'error' ? reply.message : `unexpected reply "${reply.type}" to synthStart`;
      return;
    }
    this.jobId = reply.jobId;
    this.label = reply.label;
    this.jobLayer = reply.layer;
    this.jobUnit = reply.unit;
    this.jobSettings = reply.settings;
    this.totalIterations = reply.settings.iterations;
    this.phase = 'running';
    // Events that overtook the reply.
    const early = this.pending.filter((e) => e.jobId === reply.jobId);
    this.pending = [];
    for (const e of early) this.onEvent(e);
  }

  async cancel(): Promise<void> {
    if (!this.running) return;
    const id = this.jobId;
    if (!id) {
      // Not started yet: forget it; its events are ignored and a late start reply is discarded.
      this.startToken++;
      this.phase = 'cancelled';
      return;
    }
    const r = await this.host.transport.request({ type: 'synthCancel', jobId: id });
    if (r.type === 'synthCancel' && !r.cancelled && this.jobId === id && this.running) {
      // Already finished or unknown to the engine: say so rather than hang in "running".
      this.phase = 'cancelled';
    }
  }

  // ---------------------------------------------------------------- engine events

  onEvent(e: AppEvent): void {
    if (e.type !== 'synth') return;
    if (this.phase === 'starting' && !this.jobId) {
      this.pending.push(e);
      return;
    }
    if (e.jobId !== this.jobId) return;
    switch (e.phase) {
      case 'progress': {
        if (e.iteration !== undefined) this.iteration = e.iteration;
        if (e.iterations !== undefined) this.totalIterations = e.iterations;
        if (e.elapsedMs !== undefined) this.elapsedMs = e.elapsedMs;
        if (e.objective?.length) {
          let best = 0;
          for (let i = 1; i < e.objective.length; i++) if (e.objective[i]! > e.objective[best]!) best = i;
          this.objectiveNow = e.objective[best]!;
          this.curve.push(this.objectiveNow);
          this.curveVersion++;
          this.targetProb = e.targetProb ? (e.targetProb[best] ?? null) : null;
        }
        if (e.recognised) this.recognised = true;
        if (e.preview) {
          const { width, height } = e.preview;
          this.images = e.preview.images.map((rgb) => ({ width, height, rgb }));
        }
        return;
      }
      case 'done': {
        const r = e.result!;
        this.result = r;
        this.phase = 'done';
        this.label = r.label;
        this.jobSettings = r.settings;
        this.elapsedMs = r.seconds * 1000;
        this.iteration = r.iterations;
        this.totalIterations = r.iterations;
        this.stopReason = r.stopReason;
        this.images = r.images.map((im) => ({ width: im.width, height: im.height, rgb: im.rgb }));
        let best = 0;
        r.images.forEach((im, i) => {
          if (im.objectiveBest > r.images[best]!.objectiveBest) best = i;
        });
        this.selected = best;
        const b = r.images[best];
        if (b) {
          this.curve = Array.from(b.curve);
          this.curveVersion++;
          this.objectiveNow = b.objectiveBest;
          this.targetProb = b.targetProb;
        }
        return;
      }
      case 'cancelled':
        this.phase = 'cancelled';
        return;
      case 'error':
        this.phase = 'error';
        this.message = e.message ?? 'synthesis failed';
        return;
    }
  }

  /** A new model: the last job's images are of the previous model, so the pane starts empty (a running job is cancelled). */
  modelChanged(): void {
    if (this.running) void this.cancel();
    this.startToken++;
    this.phase = 'idle';
    this.jobId = null;
    this.pending = [];
    this.message = null;
    this.result = null;
    this.images = [];
    this.curve = [];
    this.curveVersion++;
    this.iteration = 0;
    this.objectiveNow = null;
    this.targetProb = null;
  }

  /** Top-1 of the selected result image (class units). */
  get top1(): string | null {
    const im = this.result?.images[this.selected];
    return im?.top5?.[0]?.name ?? null;
  }
}
