// The view a user comes back to: at start-up, after the model list arrives, the saved model, layer,
// unit, boosts, back-projection, synthesis preset and pane toggles are put back; afterwards every
// change is sent to the engine host (debounced), which writes it atomically (main/persist/app-state.ts).
// Whatever no longer fits — a model that is gone, a layer it lacks, a unit out of range, a boost
// not in the settings' cycle — quietly stays at its default.
import type { ViewState } from '../../../contract/app-state';
import type { LayerInfoT, ModelInfo, ModelSummary, Reply, Request } from '../../../contract/messages';
import type { Settings } from '../settings';
import type { BackController } from './back.svelte';
import type { SynthController } from './synth.svelte';

/** Quiet time before a change is saved: a burst of key presses makes one save. */
export const SAVE_DELAY_MS = 500;

/** What the saved view reads from and restores into (DeepVisApp). */
export interface SavedViewHost {
  readonly transport: { request(message: Request): Promise<Reply> };
  readonly settings: Settings;
  readonly models: ModelSummary[];
  readonly model: ModelInfo | null;
  readonly layer: LayerInfoT | null;
  readonly cursor: number;
  readonly panes: { readonly gamma: number; readonly channelBoost: number; gammaIndex: number; boostIndex: number; showLabels: boolean };
  readonly back: BackController;
  readonly synth: SynthController;
  switchModel(id: string): Promise<boolean>;
  selectLayer(i: number): void;
  selectUnit(i: number): void;
}

/** The current view, as saved. Reads reactive state: inside an effect, any change re-runs it. */
export function captureView(h: SavedViewHost): ViewState {
  const b = h.back;
  return {
    model: h.model?.id ?? null,
    layer: h.layer?.name ?? null,
    unit: h.cursor,
    gamma: h.panes.gamma,
    channelBoost: h.panes.channelBoost,
    back: b.setting ? { mode: b.setting.mode, filter: b.setting.filter } : null,
    backPercentile: b.percentile,
    grid: b.grid,
    gradcam: b.gradcam,
    gradcamOpacity: b.opacity,
    showLabels: h.panes.showLabels,
    synthPreset: h.synth.preset,
  };
}

function indexIn(list: number[], v: number): number {
  const i = list.findIndex((x) => Math.abs(x - v) < 1e-9);
  return i >= 0 ? i : 0;
}

export class SavedView {
  private stopEffect: (() => void) | null = null;
  private timer: ReturnType<typeof setTimeout> | null = null;
  private pending: ViewState | null = null;
  private lastSaved = '';
  private readonly onPageHide = () => this.saveNow();

  constructor(private readonly host: SavedViewHost) {}

  /**
   * Ask the host for the saved view, put it back, then save every change. An explicit start-up
   * model in the settings (settings.model) wins over the saved one.
   */
  async restore(): Promise<void> {
    const h = this.host;
    const reply = await h.transport.request({ type: 'getAppState' });
    if (reply.type !== 'appState' || !reply.persisted) return; // this host keeps nothing: nothing to save either
    if (reply.warning) console.warn(`DeepVis: ${reply.warning}`);
    const v = reply.view;
    if (v) {
      const installed = (id: string) => h.models.some((m) => m.id === id && m.installed);
      if (v.model && !h.settings.model && v.model !== h.model?.id && installed(v.model)) await h.switchModel(v.model);
      const m = h.model;
      if (m && v.model === m.id) {
        const li = m.layers.findIndex((l) => l.name === v.layer);
        if (li >= 0) {
          h.selectLayer(li);
          if (v.unit < m.layers[li]!.units) h.selectUnit(v.unit);
        }
      }
      h.panes.gammaIndex = indexIn(h.settings.boosts.gammas, v.gamma);
      h.panes.boostIndex = indexIn(h.settings.boosts.channelBoosts, v.channelBoost);
      h.panes.showLabels = v.showLabels;
      if (v.back) h.back.setBack({ mode: v.back.mode, filter: v.back.filter });
      if (v.backPercentile !== undefined && v.backPercentile !== h.back.percentile) h.back.setPercentile(v.backPercentile);
      h.back.grid = v.grid;
      h.back.setOpacity(v.gradcamOpacity);
      if (v.gradcam !== h.back.gradcam) h.back.setGradCam(v.gradcam);
      if (v.synthPreset !== h.synth.preset) h.synth.setPreset(v.synthPreset);
    }
    this.lastSaved = JSON.stringify(captureView(h));
    this.watch();
  }

  private watch(): void {
    this.stopEffect = $effect.root(() => {
      $effect(() => {
        const view = captureView(this.host);
        if (JSON.stringify(view) === this.lastSaved) return;
        this.pending = view;
        if (this.timer) clearTimeout(this.timer);
        this.timer = setTimeout(() => this.saveNow(), SAVE_DELAY_MS);
      });
    });
    if (typeof window !== 'undefined') window.addEventListener('pagehide', this.onPageHide);
  }

  /** Send the pending change now (timer, or the page going away). */
  saveNow(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    const view = this.pending;
    this.pending = null;
    if (!view) return;
    const text = JSON.stringify(view);
    if (text === this.lastSaved) return;
    this.lastSaved = text;
    void this.host.transport.request({ type: 'saveAppState', view }).then((r) => {
      if (r.type === 'error') console.warn(`DeepVis: the view was not saved (${r.message})`);
    });
  }

  stop(): void {
    this.saveNow();
    this.stopEffect?.();
    this.stopEffect = null;
    if (typeof window !== 'undefined') window.removeEventListener('pagehide', this.onPageHide);
  }
}
