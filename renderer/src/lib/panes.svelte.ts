// The live views drawn from each frame reply: the channel grid (activations or back diffs) and the
// selected unit's map, with DVT's two boosts (gamma `g`, channel boost `k`) and the label toggle.
// Canvases are drawn imperatively so a reply is on screen the moment it arrives.
import type { FrameReplyT } from '../../../contract/messages';
import type { Settings } from '../settings';
import { tileAsMap, unitFactor, type Boost } from './tiles';
import { GridView, UnitView } from './views';

/** What the views need from the app. */
export interface PanesHost {
  readonly settings: Pick<Settings, 'boosts' | 'grid' | 'unitPane' | 'showLabels'>;
  readonly cursor: number;
  /** The reply to draw when a canvas mounts or a boost changes. */
  readonly lastReply: FrameReplyT | null;
  /** The tiles the grid shows for a reply (activations, or back diffs). */
  gridTiles(reply: FrameReplyT): FrameReplyT['tiles'];
}

/** How many frames of a 1×1 unit's value the pane plots. */
const SERIES_LENGTH = 120;

function fmt(n: number): string {
  return String(Math.round(n * 100) / 100);
}

export class PaneViews {
  gammaIndex = $state(0);
  boostIndex = $state(0);
  showLabels = $state(true);
  /** The grid shows a frame of the selected layer (false until the first one is drawn). */
  gridShown = $state(false);
  /** The selected unit's largest activation in the last frame (null before one). */
  unitMax = $state<number | null>(null);
  /** The selected unit is 1×1 (a class logit, a pooled feature): the pane shows its value over time. */
  unitScalar = $state(false);

  grid: GridView | null = null;
  private unitView: UnitView | null = null;
  /** A 1×1 unit's values, newest last, and which unit of which reply stream they belong to. */
  private series: number[] = [];
  private seriesOf = '';
  private seriesFrame = -1;

  constructor(private readonly host: PanesHost) {
    this.showLabels = host.settings.showLabels;
  }

  get gamma(): number {
    const g = this.host.settings.boosts.gammas;
    return g[this.gammaIndex % g.length] ?? 1;
  }

  get channelBoost(): number {
    const b = this.host.settings.boosts.channelBoosts;
    return b[this.boostIndex % b.length] ?? 0;
  }

  get boost(): Boost {
    return { gamma: this.gamma, channel: this.channelBoost };
  }

  get boostText(): string {
    if (this.gamma === 1 && this.channelBoost === 0) return 'off';
    return `γ ${fmt(this.gamma)} · b ${fmt(this.channelBoost)}`;
  }

  attachGrid(canvas: HTMLCanvasElement): GridView {
    this.grid = new GridView(canvas, this.host.settings.grid);
    this.redraw();
    return this.grid;
  }

  attachUnit(canvas: HTMLCanvasElement): void {
    this.unitView = new UnitView(canvas, this.host.settings.unitPane.size);
  }

  /** `g` / `k`: the next gamma / channel boost of the settings' cycle. */
  nextGamma(): void {
    this.gammaIndex = (this.gammaIndex + 1) % this.host.settings.boosts.gammas.length;
    this.redraw();
  }

  nextChannelBoost(): void {
    this.boostIndex = (this.boostIndex + 1) % this.host.settings.boosts.channelBoosts.length;
    this.redraw();
  }

  resetBoosts(): void {
    this.gammaIndex = 0;
    this.boostIndex = 0;
  }

  draw(reply: FrameReplyT): void {
    this.grid?.draw(this.host.gridTiles(reply), this.boost, this.host.cursor);
    if (!this.gridShown) this.gridShown = true;
    this.drawUnit();
  }

  /** The cursor moved: mark it on the grid and show its map from the last reply. */
  cursorMoved(): void {
    this.grid?.setCursor(this.host.cursor);
    this.drawUnit();
  }

  redraw(): void {
    const r = this.host.lastReply;
    if (r) this.draw(r);
  }

  /** No result to show (a new model, an unreadable input). */
  clear(): void {
    this.grid?.clear();
    this.unitView?.clear();
    this.unitMax = null;
    this.unitScalar = false;
    this.series = [];
    this.seriesOf = '';
    this.gridShown = false;
  }

  private drawUnit(): void {
    const r = this.host.lastReply;
    if (!r || !this.unitView) return;
    const c = this.host.cursor;
    if (c >= r.tiles.count) return;
    const exact = r.unit.index === c;
    const max = exact ? r.unit.max : (r.tiles.channelMax[c] ?? 0);
    if (max !== this.unitMax) this.unitMax = max;
    const scalar = r.tiles.h === 1 && r.tiles.w === 1;
    if (scalar !== this.unitScalar) this.unitScalar = scalar;
    if (scalar) return this.drawSeries(`${r.layer}\u0000${c}`, r.frameId, max);
    const factor = unitFactor(r.tiles, c, this.channelBoost);
    const map = exact ? r.unit : tileAsMap(r.tiles, c);
    this.unitView.draw(map, factor, this.gamma);
  }

  private drawSeries(of: string, frameId: number, value: number): void {
    if (of !== this.seriesOf) {
      this.seriesOf = of;
      this.series = [];
      this.seriesFrame = -1;
    }
    // A redraw of the same reply (a boost, a mounted canvas) adds no point.
    if (frameId !== this.seriesFrame) {
      this.series.push(value);
      if (this.series.length > SERIES_LENGTH) this.series.shift();
      this.seriesFrame = frameId;
    }
    this.unitView!.drawSeries(this.series, SERIES_LENGTH);
  }
}
