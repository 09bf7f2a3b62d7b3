// Pattern mode (key s): the grid shows every unit's cached synthesized image from the layer's atlas
// instead of its activation, grey where the atlas lacks a unit. The atlas of the selected layer is
// fetched when the layer changes (the unit pane shows its tile too) and cached per model and layer.
import type { Reply, Request } from '../../../contract/messages';
import type { GridView } from './views';

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
  /** The decoded sprite, or the canvas a build running in the window draws its tiles into. */
  sprite: ImageBitmap | HTMLCanvasElement | null;
}

/** What pattern mode needs from the app. */
export interface AtlasHost {
  readonly transport: { request(message: Request): Promise<Reply> };
  readonly model: { id: string } | null;
  readonly layer: { name: string } | null;
  /** The grid the tiles are painted into (null before it mounts). */
  readonly grid: GridView | null;
}

const GREY = 'rgb(96,96,104)';

export class AtlasController {
  pattern = $state(false);
  atlas = $state.raw<LoadedAtlas | null>(null);
  atlasLoading = $state(false);

  private cache = new Map<string, LoadedAtlas>();
  private want = '';

  constructor(private readonly host: AtlasHost) {}

  /** `s`: the grid shows the layer's synthesized images ↔ its activations. */
  toggle(): void {
    this.pattern = !this.pattern;
    this.refreshGrid();
  }

  /** Load the atlas of the current layer (cached per model and layer); called when the layer changes. */
  async ensureAtlas(modelId: string, layer: string): Promise<void> {
    const key = `${modelId}\u0000${layer}`;
    this.want = key;
    const cached = this.cache.get(key);
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
    if (reply.type === 'atlas') this.cache.set(key, loaded);
    if (this.want !== key) return;
    this.atlas = loaded;
    this.atlasLoading = false;
    this.refreshGrid();
  }

  /** A build's tiles so far (the sprite fills in as they come): shown now, and again whenever its layer is. */
  showBuilding(modelId: string, atlas: LoadedAtlas): void {
    this.cache.set(`${modelId}\u0000${atlas.layer}`, atlas);
    if (atlas.layer !== this.host.layer?.name) return;
    this.atlas = atlas;
    this.atlasLoading = false;
    this.refreshGrid();
  }

  /** Forget cached atlases (e.g. after building one); the current layer's is fetched again. */
  reloadAtlas(): void {
    this.cache.clear();
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
    const g = this.host.grid;
    if (!g) return;
    g.cellPainter = this.paintCell;
    g.refresh();
  }
}
