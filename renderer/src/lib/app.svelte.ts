// The window's root: the engine connection, the model and the selected layer and unit, and the
// controllers that hold everything else — input (camera, images), live loop (frames to the engine),
// panes (grid and unit views, boosts), back-projection, synthesis, pattern mode, keys, layout and the
// saved view. Components read the $state fields and call the methods; each controller sees the app
// only through its own narrow host interface.
import type { FrameReplyT, ModelInfo, ModelSummary } from '../../../contract/messages';
import type { FolderPatchT } from '../../../contract/topk';
import type { Settings } from '../settings';
import { AtlasController } from './atlas.svelte';
import { AtlasBuildController } from './atlas-build.svelte';
import { ModelFolderController } from './model-folder.svelte';
import { BackController } from './back.svelte';
import { InputController } from './input.svelte';
import { KeyCommands } from './keys';
import { LayoutState } from './layout.svelte';
import { LiveLoop, type LiveLoopHost } from './live-loop.svelte';
import { PaneViews } from './panes.svelte';
import { SavedView } from './saved-view.svelte';
import { SynthController } from './synth.svelte';
import { moveCursor } from './tiles';
import type { Transport } from './transport';
import { saveUnit, saveView } from './view-export';

export class DeepVisApp {
  connection = $state<'connecting' | 'ready' | 'lost'>('connecting');
  /** A problem with the engine connection or start-up (shown as a banner). */
  fatal = $state<string | null>(null);
  backend = $state<string>('—');
  backendDescription = $state<string>('');
  models = $state.raw<ModelSummary[]>([]);
  model = $state.raw<ModelInfo | null>(null);
  loadingModel = $state<string | null>(null);
  modelError = $state<string | null>(null);
  layerIndex = $state(0);
  cursor = $state(0);
  showHelp = $state(false);
  /** The engine host's last one-line notice (a worker restarted, …), shown in the status line. */
  engineNotice = $state<string | null>(null);
  /** Bumped by `/`: the search box takes the focus. */
  searchRequested = $state(0);
  /** The selected unit's folder patches as shown (the patches pane keeps it current), for "save unit". */
  topPatches: FolderPatchT[] = [];

  /** Camera or static images (lib/input.svelte.ts). */
  readonly input: InputController;
  /** Frames to the engine and back, and what they measure (lib/live-loop.svelte.ts). */
  readonly live: LiveLoop;
  /** The grid and unit views and their boosts (lib/panes.svelte.ts). */
  readonly panes: PaneViews;
  /** Back-projection, back diffs, zoom and Grad-CAM (b, d, a, z, x). */
  readonly back: BackController;
  /** Synthesis of the selected unit (lib/synth.svelte.ts). */
  readonly synth: SynthController;
  /** Pattern mode: the layer's atlas in the grid (lib/atlas.svelte.ts). */
  readonly atlas: AtlasController;
  /** Building the layer's atlas from the window (lib/atlas-build.svelte.ts). */
  readonly atlasBuild: AtlasBuildController;
  /** A model folder opened in the window, and its input convention (lib/model-folder.svelte.ts). */
  readonly modelFolder: ModelFolderController = new ModelFolderController(this);
  /** What each key and menu item does (lib/keys.ts). */
  readonly commands: KeyCommands;
  /** Column widths and the presenter layout (lib/layout.svelte.ts). */
  readonly layout = new LayoutState();
  /** The view a user comes back to: restored at start, saved on change (lib/saved-view.svelte.ts). */
  private readonly savedView: SavedView;

  constructor(
    readonly settings: Settings,
    readonly transport: Transport,
  ) {
    const app = this;
    this.input = new InputController({
      transport,
      settings,
      inputChanged: () => this.live.kick(),
      cameraFrame: () => this.live.cameraFrame(),
      forgetResult: () => this.forgetResult(),
    });
    this.back = new BackController(this, settings, () => this.live.kick(), () => this.panes.redraw());
    this.live = new LiveLoop(withSelection<Omit<LiveLoopHost, keyof Selection>>(app, {
      transport,
      settings,
      input: this.input,
      get canSend() {
        return !app.loadingModel && app.connection === 'ready';
      },
      backFields: (layer, unit) => this.back.requestFields(layer, unit),
      drawReply: (reply) => {
        this.panes.draw(reply);
        this.back.onReply(reply);
      },
    }));
    this.panes = new PaneViews({
      settings,
      get cursor() {
        return app.cursor;
      },
      get lastReply() {
        return app.live.lastReply;
      },
      gridTiles: (reply) => this.back.gridTiles(reply),
    });
    this.synth = new SynthController(withSelection(app, { transport, currentFrame: () => this.input.currentFrame() }));
    this.atlas = new AtlasController(
      withSelection(app, {
        transport,
        get grid() {
          return app.panes.grid;
        },
      }),
    );
    this.atlasBuild = new AtlasBuildController(this);
    this.commands = new KeyCommands(this);
    this.savedView = new SavedView(this);
  }

  get layer() {
    return this.model?.layers[this.layerIndex] ?? null;
  }

  /** The frame's top-5 classes. */
  get top5(): FrameReplyT['top5'] {
    return this.live.top5;
  }

  get layerUnitText(): string {
    const l = this.layer;
    return l ? `${l.display}:${this.cursor}` : '—';
  }

  /** The class the cursor names on the logits layer (null elsewhere). */
  get unitClassName(): string | null {
    const m = this.model;
    const l = this.layer;
    if (!m || !l || l.name !== m.logitsLayer) return null;
    return m.classes[this.cursor]?.name ?? null;
  }

  // ---------------------------------------------------------------- start-up

  async start(): Promise<void> {
    this.transport.onClose((m) => {
      this.connection = 'lost';
      this.fatal = m;
    });
    this.transport.onEvent((e) => void this.commands.onAppEvent(e));
    this.live.start();
    const hello = await this.transport.request({ type: 'hello' });
    if (hello.type !== 'hello') {
      this.connection = 'lost';
      this.fatal = hello.type === 'error' ? hello.message : `unexpected reply "${hello.type}" to hello`;
      return;
    }
    this.connection = 'ready';
    // The engine the user chose (onnx, wasm, …): with ONNX Runtime, tfjs' own backend (wasm) only runs around the network.
    this.backend = hello.backend.choice;
    this.backendDescription = hello.backend.description;
    this.models = hello.models;
    if (hello.model) this.setModel(hello.model);
    else if (hello.modelError) this.modelError = hello.modelError;
    const want = this.settings.model;
    if (want && want !== hello.model?.id) await this.switchModel(want);
    await this.savedView.restore();
    if (this.settings.startSource === 'camera') await this.input.startCamera();
    else this.input.source = 'static';
    if (navigator.mediaDevices?.addEventListener) {
      navigator.mediaDevices.addEventListener('devicechange', () => void this.input.camera.refresh());
    }
  }

  dispose(): void {
    this.savedView.stop();
    this.live.stop();
    this.input.dispose();
    this.transport.close();
  }

  // ---------------------------------------------------------------- model, layer and unit

  /** Drop the last engine result from every view (a new model, or an input that could not be read). */
  private forgetResult(): void {
    this.live.forget();
    this.panes.clear();
  }

  private setModel(info: ModelInfo): void {
    this.model = info;
    const i = info.layers.findIndex((l) => l.name === info.defaultLayer);
    this.layerIndex = i >= 0 ? i : 0;
    this.cursor = 0;
    this.live.modelChanged();
    this.panes.clear();
    this.back.modelChanged();
    this.synth.modelChanged();
    const [h, w] = info.inputSize;
    this.input.resize(w, h);
  }

  async switchModel(id: string): Promise<boolean> {
    if (this.loadingModel || id === this.model?.id) return id === this.model?.id;
    const previous = this.model?.id ?? null;
    this.loadingModel = id;
    this.modelError = null;
    const reply = await this.transport.request({ type: 'loadModel', id });
    this.loadingModel = null;
    if (reply.type === 'loadModel') {
      this.setModel(reply.model);
      this.live.kick();
      return true;
    }
    const why = reply.type === 'error' ? reply.message : `unexpected reply "${reply.type}"`;
    const named = why.includes(id) ? why : `model ${id} failed to load: ${why}`;
    this.modelError = previous && !named.includes(`still running ${previous}`) ? `${named} — still running ${previous}` : named;
    this.live.kick();
    return false;
  }

  selectLayer(i: number): void {
    const m = this.model;
    if (!m) return;
    const n = m.layers.length;
    const next = Math.max(0, Math.min(n - 1, i));
    if (next === this.layerIndex) return;
    this.layerIndex = next;
    this.cursor = Math.min(this.cursor, m.layers[next]!.units - 1);
    this.live.kick();
  }

  selectUnit(i: number): void {
    const l = this.layer;
    if (!l) return;
    const u = Math.max(0, Math.min(l.units - 1, i));
    if (u === this.cursor) return;
    this.cursor = u;
    this.panes.cursorMoved();
    // Live camera: the next frame brings the unit's float map. Frozen/static: ask for it now.
    if (!this.input.liveVideo) this.live.kick();
  }

  /** Move the cursor to a unit of any layer (the search box, a saved view). */
  goToUnit(layer: string, unit: number): void {
    const m = this.model;
    if (!m) return;
    const i = m.layers.findIndex((l) => l.name === layer || l.display === layer);
    if (i < 0) return;
    this.selectLayer(i);
    this.selectUnit(unit);
  }

  /** Arrow keys: move the cursor on the grid as drawn (or on a square layout before the first frame). */
  moveBy(dx: number, dy: number): void {
    const l = this.layer;
    if (!l) return;
    const layout = this.panes.grid?.layout;
    if (layout && layout.count === l.units) this.selectUnit(moveCursor(layout, this.cursor, dx, dy));
    else this.selectUnit(this.cursor + dx + dy * Math.ceil(Math.sqrt(l.units)));
  }

  // ---------------------------------------------------------------- saving

  exportView(): Promise<void> {
    return saveView(this);
  }

  exportUnit(): Promise<void> {
    return saveUnit(this);
  }
}

/** The app's model, layer and cursor as a controller reads them. */
type Selection = { readonly model: DeepVisApp['model']; readonly layer: DeepVisApp['layer']; readonly cursor: number };

/** `host` with read-through getters for the app's model, layer and cursor (a controller reads them live). */
function withSelection<T extends object>(app: DeepVisApp, host: T): T & Selection {
  return Object.defineProperties(host, {
    model: { get: () => app.model, enumerable: true },
    layer: { get: () => app.layer, enumerable: true },
    cursor: { get: () => app.cursor, enumerable: true },
  }) as T & Selection;
}
