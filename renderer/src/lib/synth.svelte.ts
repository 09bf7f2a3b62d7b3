// Synthesis in the app: the selected unit's preferred image, optimised by the engine while the live
// view keeps running (the engine interleaves the job's steps with frames), and pattern mode (key s):
// the grid shows every unit's cached image from the layer's atlas (`deepvis atlas`).
//
// The presets, which θ each of them uses and the limits come from contract/synthesis.ts: the
// sliders start at the preset's values, only the preset's own θ are shown, and only those the user
// moved are sent as overrides; the full settings the job runs with come back in synthStarted and go
// into the exported JSON.
import type { AppEvent, Reply, Request } from '../../../contract/messages';
import { DEFAULT_PRESET, PRESETS, SYNTH_LIMITS, THETAS, type PresetName, type SynthEventT, type SynthFrame, type SynthSettings, type Theta } from '../../../contract/synthesis';
import type { GridView } from './views';

export type SynthPreset = PresetName;
export { THETAS, type Theta };

/** The slider values of a preset. */
export function presetTheta(p: SynthPreset): Record<Theta, number> {
  const s = PRESETS[p].settings;
  return Object.fromEntries(THETAS.map((k) => [k, s[k]])) as Record<Theta, number>;
}

/** The θ a preset offers (the pane shows only these). */
export function presetThetas(p: SynthPreset): readonly Theta[] {
  return PRESETS[p].thetas;
}

/** Slider ranges (within the contract's limits). */
export const THETA_UI: Record<Theta, { label: string; min: number; max: number; step: number; hint: string }> = {
  decay: { label: 'L2 decay', min: 0, max: 0.5, step: 0.0001, hint: 'θ_decay: x ← (1 − θ)·x after each step' },
  blurWidth: { label: 'blur width', min: 0, max: 3, step: 0.1, hint: 'θ_b_width: Gaussian σ in pixels (0 = off)' },
  blurEvery: { label: 'blur every', min: 0, max: 20, step: 1, hint: 'θ_b_every: blur every k steps (0 = never)' },
  normPct: { label: 'norm %', min: 0, max: 99, step: 1, hint: 'θ_n_pct: zero pixels whose RGB norm is below this percentile' },
  contribPct: { label: 'contribution %', min: 0, max: 99, step: 1, hint: 'θ_c_pct: zero pixels whose |Σ x·g| is below this percentile' },
  jitter: { label: 'jitter px', min: 0, max: 64, step: 1, hint: 'random shift of up to this many pixels before each gradient (not in the paper)' },
  closeness: { label: 'closeness', min: 0, max: 0.5, step: 0.01, hint: 'pull toward your frame after each step: x ← x − θ·(x − frame)' },
  timeBudgetS: { label: 'time budget s', min: 0, max: 60, step: 1, hint: 'stop after this many seconds (0 = when the class is recognised)' },
};

export type SynthPhase = 'idle' | 'starting' | 'running' | 'done' | 'cancelled' | 'error';

export interface RgbImage {
  width: number;
  height: number;
  rgb: Uint8Array;
}

type SynthResult = NonNullable<SynthEventT['result']>;

/** A layer's atlas, decoded for drawing. */
export interface LoadedAtlas {
  layer: string;
  found: boolean;
  hint: string | null;
  preset: string | null;
  tile: number;
  cols: number;
  /** unit → tile index in the sprite. */
  slot: Map<number, number>;
  sprite: ImageBitmap | null;
}

/** What the synthesis controller needs from the app (kept narrow so the two stay loosely coupled). */
export interface SynthHost {
  readonly transport: { request(msg: Request): Promise<Reply> };
  readonly model: { id: string; logitsLayer: string; inputSize: [number, number] | number[] } | null;
  readonly layer: { name: string; display: string; units: number } | null;
  readonly cursor: number;
  /** The frame the input pane shows (camera or image), as RGBA, for "from this frame"; null when none. */
  currentFrame?(): SynthFrame | null;
}

const GREY = 'rgb(96,96,104)';

export class SynthController {
  // ---------------------------------------------------------------- settings (the pane's controls)
  preset = $state<SynthPreset>(DEFAULT_PRESET);
  theta = $state<Record<Theta, number>>(presetTheta(DEFAULT_PRESET));
  /** θ the user changed since picking the preset: only these are sent as overrides. */
  touched = $state<Theta[]>([]);
  seeds = $state(2);
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

  // ---------------------------------------------------------------- pattern mode / atlas
  pattern = $state(false);
  atlas = $state.raw<LoadedAtlas | null>(null);
  atlasLoading = $state(false);

  private pending: SynthEventT[] = [];
  private atlasCache = new Map<string, LoadedAtlas>();
  private atlasWant = '';
  private startToken = 0;

  constructor(
    private readonly host: SynthHost,
    private readonly grid: () => GridView | null,
  ) {}

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

  /** Top-1 of the selected result image (class units). */
  get top1(): string | null {
    const im = this.result?.images[this.selected];
    return im?.top5?.[0]?.name ?? null;
  }

  // ---------------------------------------------------------------- export

  /** Save the selected seed's best image as PNG plus a JSON sidecar (browser download). */
  async exportResult(): Promise<void> {
    const r = this.result;
    const im = r?.images[this.selected];
    if (!r || !im) return;
    const base = `${this.host.model?.id ?? 'model'}_${this.label.replace(/[^A-Za-z0-9_.-]+/g, '_')}_seed${im.seed}`;
    const canvas = document.createElement('canvas');
    canvas.width = im.width;
    canvas.height = im.height;
    canvas.getContext('2d')!.putImageData(rgbToImageData(im.rgb, im.width, im.height), 0, 0);
    const png = await new Promise<Blob | null>((res) => canvas.toBlob(res, 'image/png'));
    if (png) download(png, `${base}.png`);
    const sidecar = {
      model: this.host.model?.id ?? null,
      layer: this.jobLayer,
      unit: this.jobUnit,
      label: r.label,
      preset: this.preset,
      settings: r.settings,
      seed: im.seed,
      width: im.width,
      height: im.height,
      objective_start: im.objectiveStart,
      objective_best: im.objectiveBest,
      best_iteration: im.bestIteration,
      target_prob: im.targetProb,
      top5: im.top5,
      seconds: r.seconds,
      seconds_to_target: r.secondsToTarget,
      objective_curve: Array.from(im.curve),
    };
    // Two downloads in a row: give the first a moment (some browsers drop the second otherwise).
    await new Promise((res) => setTimeout(res, 100));
    download(new Blob([JSON.stringify(sidecar, null, 2)], { type: 'application/json' }), `${base}.json`);
  }

  // ---------------------------------------------------------------- atlas / pattern mode

  /** `s`: the grid shows the layer's synthesized images ↔ its activations. */
  togglePattern(): void {
    this.pattern = !this.pattern;
    this.refreshGrid();
  }

  /** Load the atlas of the current layer (cached per model and layer); called when the layer changes. */
  async ensureAtlas(modelId: string, layer: string): Promise<void> {
    const key = `${modelId}\u0000${layer}`;
    this.atlasWant = key;
    const cached = this.atlasCache.get(key);
    if (cached) {
      this.atlas = cached;
      this.refreshGrid();
      return;
    }
    this.atlas = null;
    this.atlasLoading = true;
    this.refreshGrid();
    const reply = await this.host.transport.request({ type: 'atlas', layer });
    let loaded: LoadedAtlas;
    if (reply.type === 'atlas' && reply.found && reply.sprite) {
      let sprite: ImageBitmap | null = null;
      try {
        sprite = await createImageBitmap(new Blob([reply.sprite as BlobPart], { type: 'image/png' }));
      } catch {
        sprite = null;
      }
      const slot = new Map<number, number>();
      (reply.units ?? []).forEach((u, i) => slot.set(u, i));
      loaded = sprite
        ? { layer, found: true, hint: null, preset: reply.preset ?? null, tile: reply.tile ?? 64, cols: reply.cols ?? 1, slot, sprite }
        : { layer, found: false, hint: 'the atlas sprite could not be decoded', preset: null, tile: 0, cols: 0, slot, sprite: null };
    } else {
      const hint = reply.type === 'atlas' ? (reply.hint ?? 'no atlas for this layer') : reply.type === 'error' ? reply.message : 'no atlas';
      loaded = { layer, found: false, hint, preset: null, tile: 0, cols: 0, slot: new Map(), sprite: null };
    }
    // Errors (e.g. no model yet) are not cached; a missing atlas is (until the page reloads).
    if (reply.type === 'atlas') this.atlasCache.set(key, loaded);
    if (this.atlasWant !== key) return;
    this.atlas = loaded;
    this.atlasLoading = false;
    this.refreshGrid();
  }

  /** Forget cached atlases (e.g. after building one); the current layer's is fetched again. */
  reloadAtlas(): void {
    this.atlasCache.clear();
    const m = this.host.model;
    const l = this.host.layer;
    if (m && l) void this.ensureAtlas(m.id, l.name);
  }

  /** The atlas of the current layer when it has one. */
  get layerAtlas(): LoadedAtlas | null {
    const a = this.atlas;
    return a && a.found && a.layer === this.host.layer?.name ? a : null;
  }

  /** Pattern mode and no atlas for this layer: what to tell the user. */
  get patternHint(): string | null {
    if (!this.pattern) return null;
    const a = this.atlas;
    if (!a || a.layer !== this.host.layer?.name) return this.atlasLoading ? 'loading the atlas…' : null;
    return a.found ? null : a.hint;
  }

  /** Draw unit `unit`'s cached image into a canvas context rectangle; false when the atlas lacks it. */
  drawAtlasTile(ctx: CanvasRenderingContext2D, unit: number, x: number, y: number, w: number, h: number): boolean {
    const a = this.layerAtlas;
    const i = a?.slot.get(unit);
    if (!a?.sprite || i === undefined) return false;
    const smooth = ctx.imageSmoothingEnabled;
    ctx.imageSmoothingEnabled = w < a.tile;
    ctx.drawImage(a.sprite, (i % a.cols) * a.tile, Math.floor(i / a.cols) * a.tile, a.tile, a.tile, x, y, w, h);
    ctx.imageSmoothingEnabled = smooth;
    return true;
  }

  /** GridView cell painter: in pattern mode, atlas tiles (grey where missing) instead of activations. */
  private readonly paintCell = (ctx: CanvasRenderingContext2D, i: number, x: number, y: number, w: number, h: number): boolean => {
    if (!this.pattern) return false;
    const a = this.atlas;
    if (!a || a.layer !== this.host.layer?.name) return false; // still loading: activations meanwhile
    if (this.drawAtlasTile(ctx, i, x, y, w, h)) return true;
    ctx.fillStyle = GREY;
    ctx.fillRect(x, y, w, h);
    return true;
  };

  /** Re-present the grid with (or without) the pattern tiles. */
  refreshGrid(): void {
    const g = this.grid();
    if (!g) return;
    g.cellPainter = this.paintCell;
    g.refresh();
  }
}

export function rgbToImageData(rgb: Uint8Array, width: number, height: number): ImageData {
  const out = new ImageData(width, height);
  const d = out.data;
  for (let i = 0, j = 0; i < width * height; i++, j += 3) {
    d[i * 4] = rgb[j]!;
    d[i * 4 + 1] = rgb[j + 1]!;
    d[i * 4 + 2] = rgb[j + 2]!;
    d[i * 4 + 3] = 255;
  }
  return out;
}

function download(blob: Blob, name: string): void {
  const url = URL.createObjectURL(blob);
  const a = document.createElement('a');
  a.href = url;
  a.download = name;
  a.style.display = 'none';
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}
