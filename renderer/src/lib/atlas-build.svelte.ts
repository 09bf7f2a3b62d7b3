// "Build this layer's atlas" from the window: the layer's units are synthesised on the host's job
// pool while the live view runs; every finished batch comes back as tiles that fill the pattern-mode
// grid in at once, with progress and an ETA. Cancel keeps what is finished; building again resumes
// (the host skips the units on disk). Only this window can cancel its build.
import type { AppEvent, LayerInfoT, ModelInfo, Reply, Request } from '../../../contract/messages';
import { ATLAS_PRESETS, type AtlasBuildEventT } from '../../../contract/atlas';
import { SYNTH_LIMITS, type PresetName } from '../../../contract/synthesis';
import type { AtlasController } from './atlas.svelte';

export type AtlasBuildPhase = 'idle' | 'starting' | 'running' | 'done' | 'cancelled' | 'error';

/** A build's tiles as pattern mode draws them: the unit's slot in a sprite canvas. */
export interface BuildingAtlas {
  layer: string;
  found: true;
  hint: null;
  preset: string;
  tile: number;
  cols: number;
  slot: Map<number, number>;
  sprite: HTMLCanvasElement;
}

/** What a build needs from the app: the transport (its events too), the model and layer shown, and pattern mode. */
export interface AtlasBuildHost {
  readonly transport: { request(msg: Request): Promise<Reply>; onEvent(cb: (e: AppEvent) => void): () => void };
  readonly model: ModelInfo | null;
  readonly layer: LayerInfoT | null;
  readonly atlas: Pick<AtlasController, 'pattern' | 'toggle' | 'showBuilding' | 'reloadAtlas'>;
}

export function formatEta(seconds: number | null): string {
  if (seconds === null) return 'estimating…';
  if (seconds < 1) return 'almost done';
  if (seconds < 60) return `about ${Math.ceil(seconds)} s left`;
  const m = Math.floor(seconds / 60);
  const s = Math.round(seconds % 60);
  return m >= 60 ? `about ${Math.floor(m / 60)} h ${m % 60} min left` : `about ${m} min ${s} s left`;
}

export class AtlasBuildController {
  phase = $state<AtlasBuildPhase>('idle');
  /** The layer being (or last) built, its display name. */
  layer = $state<string | null>(null);
  display = $state<string | null>(null);
  done = $state(0);
  total = $state(0);
  etaSeconds = $state<number | null>(null);
  message = $state<string | null>(null);
  // Build options (the panel's inputs).
  preset = $state<PresetName>('fast');
  firstUnit = $state(0);
  /** Last unit of the range; null: the layer's last. */
  lastUnit = $state<number | null>(null);
  /** Image side; null: the model's input size (capped to what a window may ask). */
  size = $state<number | null>(null);
  /** Steps per unit; null: the preset's. */
  iterations = $state<number | null>(null);

  private buildId: string | null = null;
  private modelId: string | null = null;
  private building: BuildingAtlas | null = null;
  /** Tiles are decoded in order, one event after another. */
  private drawing: Promise<void> = Promise.resolve();
  private early: AtlasBuildEventT[] = [];

  constructor(private readonly host: AtlasBuildHost) {
    host.transport.onEvent((e) => this.onEvent(e));
  }

  static readonly presets = ATLAS_PRESETS;

  get running(): boolean {
    return this.phase === 'starting' || this.phase === 'running';
  }

  /** The build in view belongs to the layer shown. */
  get forShownLayer(): boolean {
    return !!this.layer && this.layer === this.host.layer?.name && this.modelId === this.host.model?.id;
  }

  get statusText(): string {
    const d = this.display ?? this.layer ?? '';
    switch (this.phase) {
      case 'idle':
        return '';
      case 'starting':
        return `starting the atlas of ${d}…`;
      case 'running':
        return `${d}: ${this.done}/${this.total} units · ${formatEta(this.etaSeconds)}`;
      case 'done':
        return `${d}: atlas done, ${this.done}/${this.total} units`;
      case 'cancelled':
        return `${d}: stopped at ${this.done}/${this.total} units — Resume continues from there`;
      case 'error':
        return `${d}: ${this.message ?? 'the build failed'}`;
    }
  }

  /** Build (or resume) the shown layer's atlas. */
  async start(): Promise<void> {
    const m = this.host.model;
    const l = this.host.layer;
    if (!m || !l || this.running) return;
    const last = Math.min(l.units - 1, this.lastUnit ?? l.units - 1);
    const first = Math.max(0, Math.min(this.firstUnit, last));
    const side = this.size ?? Math.max(SYNTH_LIMITS.minSize, Math.min(SYNTH_LIMITS.maxRequestSize, m.inputSize[0]));
    this.phase = 'starting';
    this.message = null;
    this.layer = l.name;
    this.display = l.display;
    this.modelId = m.id;
    this.etaSeconds = null;
    const reply = await this.host.transport.request({
      type: 'atlasBuild',
      layer: l.name,
      preset: this.preset,
      seeds: 1,
      size: side,
      units: [first, last],
      ...(this.iterations ? { iterations: this.iterations } : {}),
    });
    const early = this.early.splice(0);
    if (reply.type !== 'atlasBuildStarted') {
      this.phase = 'error';
      this.message = reply.type === 'error' ? reply.message : `unexpected reply "${reply.type}"`;
      return;
    }
    this.buildId = reply.buildId;
    this.total = reply.total;
    this.done = reply.skipped;
    this.phase = 'running';
    this.building = this.newSprite(l, reply.preset);
    if (!this.host.atlas.pattern) this.host.atlas.toggle();
    this.host.atlas.showBuilding(m.id, this.building);
    for (const e of early) this.onEvent(e);
  }

  async cancel(): Promise<void> {
    if (!this.buildId || !this.running) return;
    const r = await this.host.transport.request({ type: 'atlasCancel', buildId: this.buildId });
    if (r.type === 'error') this.message = r.message;
  }

  onEvent(e: AppEvent): void {
    if (e.type !== 'atlasBuild') return;
    // Electron sends events on another channel than replies: one may overtake the reply naming its build.
    if (this.phase === 'starting') return void this.early.push(e);
    if (e.buildId !== this.buildId) return;
    const ev = e as AtlasBuildEventT;
    this.drawing = this.drawing.then(() => this.apply(ev));
  }

  private async apply(e: AtlasBuildEventT): Promise<void> {
    const b = this.building;
    if (b && e.tiles.length) {
      const ctx = b.sprite.getContext('2d')!;
      for (const t of e.tiles) {
        const slot = b.slot.get(t.unit) ?? t.unit;
        try {
          const bmp = await createImageBitmap(new Blob([t.png as BlobPart], { type: 'image/png' }));
          ctx.drawImage(bmp, (slot % b.cols) * b.tile, Math.floor(slot / b.cols) * b.tile, b.tile, b.tile);
          bmp.close();
          b.slot.set(t.unit, slot);
        } catch {
          /* a tile that cannot be decoded stays grey; the atlas on disk is whole */
        }
      }
      this.host.atlas.showBuilding(this.modelId!, b);
    }
    this.done = e.done;
    this.total = e.total;
    this.etaSeconds = e.etaSeconds;
    if (e.phase === 'progress') return;
    this.phase = e.phase;
    if (e.message) this.message = e.message;
    this.buildId = null;
    this.building = null;
    if (this.forShownLayer) this.host.atlas.reloadAtlas();
  }

  /** A sprite canvas with a slot per unit of the layer (the unit's own index). */
  private newSprite(l: LayerInfoT, preset: string): BuildingAtlas {
    const tile = 64;
    const cols = Math.ceil(Math.sqrt(l.units));
    const sprite = document.createElement('canvas');
    sprite.width = cols * tile;
    sprite.height = Math.ceil(l.units / cols) * tile;
    return { layer: l.name, found: true, hint: null, preset, tile, cols, slot: new Map(), sprite };
  }
}
