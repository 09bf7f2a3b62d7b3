// Canvas views: the layer grid (all channels on one canvas), the enlarged unit, and the input frame.
import type { Settings } from '../settings';
import { gridLayout, renderTiles, renderUnit, gammaLut, type Boost, type GridLayout, type TilesLike } from './tiles';

/**
 * The selected layer's channels: tiled at their own resolution into an off-screen canvas
 * (putImageData, boosts applied), then each tile scaled onto the visible canvas without smoothing,
 * into equal cells with even gaps, and the cursor outlined.
 */
export class GridView {
  /** Tiling at the maps' own resolution (no padding): tile i is at (i % cols)·w, ⌊i / cols⌋·h. */
  layout: GridLayout | null = null;
  /** Paints cell i itself instead of the tile (pattern mode: the unit's synthesized image); false = draw the tile. */
  cellPainter: ((ctx: CanvasRenderingContext2D, i: number, x: number, y: number, w: number, h: number) => boolean) | null = null;
  private tiles: TilesLike | null = null;
  private boost: Boost = { gamma: 1, channel: 0 };
  private cursor = 0;
  private readonly tileCanvas: HTMLCanvasElement;
  private readonly tileCtx: CanvasRenderingContext2D;
  private readonly ctx: CanvasRenderingContext2D;
  private img: ImageData | null = null;
  private paneW = 300;
  private paneH = 300;
  private dpr = 1;
  /** Display geometry in canvas (device) pixels. */
  private cell = { w: 1, h: 1, gap: 1 };
  private lut: { gamma: number; lut: Uint8Array } = { gamma: 1, lut: gammaLut(1) };

  constructor(
    private readonly canvas: HTMLCanvasElement,
    private readonly opts: Settings['grid'],
  ) {
    this.tileCanvas = document.createElement('canvas');
    const tctx = this.tileCanvas.getContext('2d', { alpha: false });
    const ctx = canvas.getContext('2d', { alpha: false });
    if (!tctx || !ctx) throw new Error('no 2D canvas context');
    this.tileCtx = tctx;
    this.ctx = ctx;
  }

  setPane(width: number, height: number, dpr: number): void {
    if (width === this.paneW && height === this.paneH && dpr === this.dpr) return;
    this.paneW = Math.max(1, width);
    this.paneH = Math.max(1, height);
    this.dpr = dpr || 1;
    if (this.tiles) {
      this.relayout(this.tiles);
      this.render();
    }
  }

  private relayout(t: TilesLike): void {
    const gap = Math.max(1, Math.round(this.opts.gap * this.dpr));
    const W = this.paneW * this.dpr;
    const H = this.paneH * this.dpr;
    // Columns chosen so the cells come out largest in this pane (gaps included, approximately).
    const l = gridLayout(t.count, t.h + gap / 4, t.w + gap / 4, 0, W, H);
    this.layout = { ...l, h: t.h, w: t.w, width: l.cols * t.w, height: l.rows * t.h };
    let fit = Math.min(((W - gap) / l.cols - gap) / t.w, ((H - gap) / l.rows - gap) / t.h);
    // Whole-number magnification keeps every map pixel the same size, when it costs little room.
    if (fit >= 1 && Math.floor(fit) / fit >= 0.85) fit = Math.floor(fit);
    this.cell = { w: Math.max(1, Math.floor(t.w * fit)), h: Math.max(1, Math.floor(t.h * fit)), gap };
    this.tileCanvas.width = this.layout.width;
    this.tileCanvas.height = this.layout.height;
    this.img = this.tileCtx.createImageData(this.layout.width, this.layout.height);
  }

  /** New tiles from the engine (or new boosts): re-tile and present. */
  draw(tiles: TilesLike, boost: Boost, cursor: number): void {
    const l = this.layout;
    if (!l || l.count !== tiles.count || l.h !== tiles.h || l.w !== tiles.w) this.relayout(tiles);
    this.tiles = tiles;
    this.boost = boost;
    this.cursor = cursor;
    this.render();
  }

  setBoost(boost: Boost): void {
    this.boost = boost;
    if (this.tiles) this.render();
  }

  /** Present again with the current tiles (e.g. the cell painter changed). */
  refresh(): void {
    this.present();
  }

  setCursor(cursor: number): void {
    this.cursor = cursor;
    this.present();
  }

  /** Forget the tiles (model change): the canvas shows nothing until the next draw. */
  clear(): void {
    this.tiles = null;
    this.layout = null;
    this.canvas.width = this.canvas.height = 0;
    this.canvas.style.width = this.canvas.style.height = '0px';
    delete this.canvas.dataset.count;
    delete this.canvas.dataset.cols;
    delete this.canvas.dataset.rows;
  }

  private render(): void {
    if (!this.tiles || !this.layout || !this.img) return;
    if (this.lut.gamma !== this.boost.gamma) this.lut = { gamma: this.boost.gamma, lut: gammaLut(this.boost.gamma) };
    renderTiles(this.tiles, this.layout, this.boost, this.img.data, this.opts.background, this.lut);
    this.tileCtx.putImageData(this.img, 0, 0);
    this.present();
  }

  /** Top-left of cell i on the canvas, in canvas pixels. */
  private cellOrigin(i: number): { x: number; y: number } {
    const l = this.layout!;
    const { w, h, gap } = this.cell;
    return { x: gap + (i % l.cols) * (w + gap), y: gap + Math.floor(i / l.cols) * (h + gap) };
  }

  private present(): void {
    const l = this.layout;
    if (!l) return;
    const { w: cw, h: ch, gap } = this.cell;
    const W = l.cols * (cw + gap) + gap;
    const H = l.rows * (ch + gap) + gap;
    if (this.canvas.width !== W || this.canvas.height !== H) {
      this.canvas.width = W;
      this.canvas.height = H;
      this.canvas.style.width = `${W / this.dpr}px`;
      this.canvas.style.height = `${H / this.dpr}px`;
    }
    // Test hooks: the tiling, so a test can click tile i without knowing the pane size.
    const ds = this.canvas.dataset;
    if (ds.count !== String(l.count) || ds.cols !== String(l.cols)) {
      ds.count = String(l.count);
      ds.cols = String(l.cols);
      ds.rows = String(l.rows);
    }
    const ctx = this.ctx;
    ctx.fillStyle = `rgb(${this.opts.background.join(',')})`;
    ctx.fillRect(0, 0, W, H);
    ctx.imageSmoothingEnabled = cw < l.w;
    for (let i = 0; i < l.count; i++) {
      const { x, y } = this.cellOrigin(i);
      if (this.cellPainter?.(ctx, i, x, y, cw, ch)) continue;
      ctx.drawImage(this.tileCanvas, (i % l.cols) * l.w, Math.floor(i / l.cols) * l.h, l.w, l.h, x, y, cw, ch);
    }
    if (this.cursor >= 0 && this.cursor < l.count) {
      const { x, y } = this.cellOrigin(this.cursor);
      const lw = Math.max(gap, Math.round(this.opts.cursorWidth * this.dpr));
      ctx.strokeStyle = this.opts.cursorColor;
      ctx.lineWidth = lw;
      ctx.strokeRect(x - lw / 2, y - lw / 2, cw + lw, ch + lw);
    }
  }

  /** The tile under a pointer position given relative to the canvas' CSS box; -1 if none. */
  hit(offsetX: number, offsetY: number): number {
    const l = this.layout;
    if (!l) return -1;
    const k = this.canvas.width / Math.max(1, this.canvas.clientWidth || this.canvas.width / this.dpr);
    const { w, h, gap } = this.cell;
    const c = Math.floor((offsetX * k - gap / 2) / (w + gap));
    const r = Math.floor((offsetY * k - gap / 2) / (h + gap));
    if (c < 0 || r < 0 || c >= l.cols || r >= l.rows) return -1;
    const i = r * l.cols + c;
    return i < l.count ? i : -1;
  }

  /** Centre of tile i in CSS pixels relative to the canvas (tests and tooltips). */
  tileCentre(i: number): { x: number; y: number } | null {
    const l = this.layout;
    if (!l || i < 0 || i >= l.count) return null;
    const { x, y } = this.cellOrigin(i);
    return { x: (x + this.cell.w / 2) / this.dpr, y: (y + this.cell.h / 2) / this.dpr };
  }
}

/** The selected unit's map, enlarged with nearest neighbour. */
export class UnitView {
  private readonly ctx: CanvasRenderingContext2D;
  private readonly img: ImageData;

  constructor(
    private readonly canvas: HTMLCanvasElement,
    private readonly size: number,
  ) {
    canvas.width = canvas.height = size;
    const ctx = canvas.getContext('2d', { alpha: false });
    if (!ctx) throw new Error('no 2D canvas context');
    this.ctx = ctx;
    this.img = ctx.createImageData(size, size);
    this.clear();
  }

  draw(map: { h: number; w: number; data: ArrayLike<number> }, factor: number, gamma: number): void {
    renderUnit(map, factor, gamma, this.img.data, this.size);
    this.ctx.putImageData(this.img, 0, 0);
  }

  /**
   * A 1×1 unit (a class logit, a pooled feature) has no map to enlarge: its value over the last
   * frames as bars from the zero line (green above, red below), newest right, in the pane's lower
   * part (the value is written above it).
   */
  drawSeries(values: readonly number[], slots: number): void {
    const { ctx, size } = this;
    this.clear();
    if (!values.length) return;
    const lo = Math.min(0, ...values);
    const hi = Math.max(0, ...values);
    const span = hi - lo || 1;
    const top = size * 0.4;
    const bottom = size * 0.95;
    const y = (v: number) => bottom - ((v - lo) / span) * (bottom - top);
    const w = size / Math.max(slots, 1);
    const x0 = size - values.length * w;
    values.forEach((v, i) => {
      ctx.fillStyle = v >= 0 ? '#4ade80' : '#f87171';
      const a = y(Math.max(0, v));
      const b = y(Math.min(0, v));
      ctx.fillRect(x0 + i * w, a, Math.max(1, w - (w > 3 ? 1 : 0)), Math.max(1, b - a));
    });
    ctx.fillStyle = '#77777f';
    ctx.fillRect(0, y(0), size, Math.max(1, size / 224));
  }

  clear(): void {
    this.ctx.fillStyle = '#000';
    this.ctx.fillRect(0, 0, this.size, this.size);
  }
}

/** What was sent to the engine (frozen camera frame or static image), for the input pane. */
export class FrameView {
  private readonly ctx: CanvasRenderingContext2D;

  constructor(private readonly canvas: HTMLCanvasElement) {
    const ctx = canvas.getContext('2d', { alpha: false });
    if (!ctx) throw new Error('no 2D canvas context');
    this.ctx = ctx;
  }

  show(rgba: Uint8Array, width: number, height: number): void {
    if (this.canvas.width !== width || this.canvas.height !== height) {
      this.canvas.width = width;
      this.canvas.height = height;
    }
    const data = new Uint8ClampedArray(rgba.buffer as ArrayBuffer, rgba.byteOffset, rgba.byteLength);
    this.ctx.putImageData(new ImageData(data, width, height), 0, 0);
  }

  /** No input to show (an image that could not be read): a black pane, as the grid's background. */
  clear(): void {
    this.ctx.fillStyle = '#000';
    this.ctx.fillRect(0, 0, this.canvas.width, this.canvas.height);
  }
}
