// Back-projection in the live view: the back mode (`b`), the frozen back source (`d`),
// the grid showing activations or back diffs (`a`), zoom (`z`: unit → back-projection → off) and
// the Grad-CAM overlay (`x`). Owns its canvases (back pane, zoom view, input overlay); the app
// adds requestFields() to each frame request and hands each frame reply to onReply().
import { BACK_PERCENTILE_MIN, type FrameBackReplyT, type FrameGradCamReplyT, type GridShowT } from '../../../contract/backprojection';
import type { FrameReplyT, LayerInfoT, ModelInfo } from '../../../contract/messages';
import type { Settings } from '../settings';
import { backLabel, nextBack, type BackSetting } from './back';
import { drawRgb, heatToRgba } from './pixels';

/** What the controller reads from the app. */
export interface BackHost {
  readonly model: ModelInfo | null;
  readonly layer: LayerInfoT | null;
  readonly cursor: number;
  readonly top5: FrameReplyT['top5'];
}

export type BackAction = 'backMode' | 'backFreeze' | 'backGrid' | 'zoom' | 'gradcam';
export type ZoomMode = 'off' | 'unit' | 'back';
/** Grad-CAM class: the frame's top-1, the cursor's class (on the logits layer), or a fixed class. */
export type CamClass = 'top1' | 'cursor' | number;

interface Source {
  layer: string;
  display: string;
  unit: number;
}

export class BackController {
  setting = $state<BackSetting | null>(null);
  /** The back source frozen with `d` (null: follows the cursor). */
  frozen = $state<Source | null>(null);
  grid = $state<GridShowT>('activations');
  zoom = $state<ZoomMode>('off');
  gradcam = $state(false);
  camClass = $state<CamClass>('top1');
  opacity = $state(0.5);
  /** Full contrast at this percentile in every mode (100: the largest value). */
  percentile = $state(100);
  /** The source and class of the last drawn results (for titles and the status line). */
  lastSource = $state<string | null>(null);
  lastCam = $state<{ classIndex: number; className: string } | null>(null);

  private backCanvas: HTMLCanvasElement | null = null;
  private overlayCanvas: HTMLCanvasElement | null = null;
  private zoomCanvas: HTMLCanvasElement | null = null;
  private unitCanvas: HTMLCanvasElement | null = null;
  private lastBack: FrameBackReplyT | null = null;
  private lastHeat: FrameGradCamReplyT | null = null;

  constructor(
    private readonly host: BackHost,
    private readonly settings: Settings,
    /** Ask for a new frame now (frozen / static input: a change needs a fresh result). */
    private readonly kick: () => void,
    /** Redraw the grid from the last reply (activations ↔ back diffs). */
    private readonly redraw: () => void,
  ) {
    this.opacity = settings.back.gradcamOpacity;
    this.percentile = Math.max(BACK_PERCENTILE_MIN, Math.min(100, settings.back.percentile));
    this.gradcam = settings.back.gradcam;
  }

  // ---------------------------------------------------------------- state → text

  /** The current source: the frozen one, or the cursor. */
  get source(): Source | null {
    if (this.frozen) return this.frozen;
    const l = this.host.layer;
    return l ? { layer: l.name, display: l.display, unit: this.host.cursor } : null;
  }

  /** Status line: "grad norm · src pw5:3 (frozen)" / "off". */
  get statusText(): string {
    if (!this.setting) return this.frozen ? `off · src ${this.frozen.display}:${this.frozen.unit} (frozen)` : 'off';
    const s = this.source;
    const src = s ? `${s.display}:${s.unit}${this.frozen ? ' (frozen)' : ''}` : '—';
    return `${backLabel(this.setting)} · src ${src}`;
  }

  get gridText(): string {
    return this.grid === 'backDiffs' ? 'back diffs' : 'activations';
  }

  // ---------------------------------------------------------------- requests and replies

  /** The back-projection fields of a frame request for the frame's layer and unit. */
  requestFields(layer: string, unit: number): { back?: { mode: BackSetting['mode']; filter: BackSetting['filter']; layer: string; unit: number; percentile: number }; gradcam?: { class?: number; opacity: number }; grid?: GridShowT } {
    const out: ReturnType<BackController['requestFields']> = {};
    const st = this.setting;
    if (st) {
      const src = this.frozen ?? { layer, unit };
      out.back = { mode: st.mode, filter: st.filter, layer: src.layer, unit: src.unit, percentile: this.percentile };
    }
    if (this.gradcam) {
      const cls = this.camClassIndex(layer, unit);
      out.gradcam = { opacity: this.opacity, ...(cls === null ? {} : { class: cls }) };
    }
    if (this.grid === 'backDiffs') out.grid = 'backDiffs';
    return out;
  }

  private camClassIndex(layer: string, unit: number): number | null {
    const c = this.camClass;
    if (typeof c === 'number') return c;
    if (c === 'cursor' && layer === this.host.model?.logitsLayer) return unit;
    return null;
  }

  /** What the grid draws for this reply. */
  gridTiles(reply: FrameReplyT): FrameReplyT['tiles'] {
    return this.grid === 'backDiffs' && reply.backDiffs ? reply.backDiffs : reply.tiles;
  }

  onReply(reply: FrameReplyT): void {
    this.lastBack = this.setting ? (reply.back ?? null) : null;
    this.lastHeat = this.gradcam ? (reply.gradcam ?? null) : null;
    const src = this.lastBack?.source ?? null;
    if (src !== this.lastSource) this.lastSource = src;
    const cam = this.lastHeat;
    if (cam ? cam.classIndex !== this.lastCam?.classIndex : this.lastCam !== null) this.lastCam = cam ? { classIndex: cam.classIndex, className: cam.className } : null;
    this.drawBack();
    this.drawOverlay();
    this.drawZoom();
  }

  modelChanged(): void {
    this.frozen = null;
    this.lastBack = null;
    this.lastHeat = null;
    this.lastSource = null;
    this.lastCam = null;
    if (typeof this.camClass === 'number') this.camClass = 'top1';
    this.drawBack();
    this.drawOverlay();
    this.drawZoom();
  }

  // ---------------------------------------------------------------- keys and controls

  act(action: BackAction): void {
    switch (action) {
      case 'backMode':
        return this.setBack(nextBack(this.setting));
      case 'backFreeze':
        return this.toggleFreeze();
      case 'backGrid':
        this.grid = this.grid === 'activations' ? 'backDiffs' : 'activations';
        this.redraw();
        return this.kick();
      case 'zoom':
        this.zoom = this.zoom === 'off' ? 'unit' : this.zoom === 'unit' ? 'back' : 'off';
        // Let the zoom canvas mount before drawing into it.
        queueMicrotask(() => this.drawZoom());
        return;
      case 'gradcam':
        return this.setGradCam(!this.gradcam);
    }
  }

  setBack(s: BackSetting | null): void {
    this.setting = s;
    if (!s) {
      this.lastBack = null;
      this.lastSource = null;
      this.drawBack();
      this.drawZoom();
    }
    this.kick();
  }

  toggleFreeze(): void {
    if (this.frozen) this.frozen = null;
    else {
      const l = this.host.layer;
      if (!l) return;
      this.frozen = { layer: l.name, display: l.display, unit: this.host.cursor };
    }
    this.kick();
  }

  setGradCam(on: boolean): void {
    this.gradcam = on;
    if (!on) this.lastHeat = null;
    this.drawOverlay();
    this.kick();
  }

  setPercentile(p: number): void {
    this.percentile = p;
    this.kick();
  }

  setCamClass(c: CamClass): void {
    this.camClass = c;
    this.kick();
  }

  setOpacity(o: number): void {
    this.opacity = o;
    this.drawOverlay();
  }

  // ---------------------------------------------------------------- canvases

  attachBack(c: HTMLCanvasElement): void {
    this.backCanvas = c;
    this.drawBack();
  }

  attachOverlay(c: HTMLCanvasElement): void {
    this.overlayCanvas = c;
    this.drawOverlay();
  }

  attachZoom(c: HTMLCanvasElement | null, unitCanvas: HTMLCanvasElement | null): void {
    this.zoomCanvas = c;
    this.unitCanvas = unitCanvas;
    this.drawZoom();
  }

  private drawBack(): void {
    const c = this.backCanvas;
    if (!c) return;
    if (this.lastBack) return drawRgb(c, this.lastBack);
    const ctx = c.getContext('2d');
    if (!ctx) return;
    ctx.fillStyle = '#808080';
    ctx.fillRect(0, 0, c.width, c.height);
  }

  private drawOverlay(): void {
    const c = this.overlayCanvas;
    if (!c) return;
    const ctx = c.getContext('2d');
    if (!ctx) return;
    const h = this.gradcam ? this.lastHeat : null;
    if (!h) {
      ctx.clearRect(0, 0, c.width, c.height);
      return;
    }
    if (c.width !== h.width || c.height !== h.height) {
      c.width = h.width;
      c.height = h.height;
    }
    const img = ctx.createImageData(h.width, h.height);
    heatToRgba(h.heat, this.opacity, img.data);
    ctx.putImageData(img, 0, 0);
  }

  /** The zoom view over the grid: the selected unit's map (copied from the unit pane) or the back-projection. */
  drawZoom(): void {
    const c = this.zoomCanvas;
    if (!c || this.zoom === 'off') return;
    const ctx = c.getContext('2d');
    if (!ctx) return;
    if (this.zoom === 'back') {
      if (this.lastBack) return drawRgb(c, this.lastBack);
      ctx.fillStyle = '#808080';
      ctx.fillRect(0, 0, c.width, c.height);
      return;
    }
    const u = this.unitCanvas;
    if (!u) return;
    if (c.width !== u.width || c.height !== u.height) {
      c.width = u.width;
      c.height = u.height;
    }
    ctx.imageSmoothingEnabled = false;
    ctx.drawImage(u, 0, 0);
  }
}
