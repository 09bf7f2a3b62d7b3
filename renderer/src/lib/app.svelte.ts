// The renderer's state and behaviour in one place: connection, model, layer/cursor, input source
// (camera or static images), boosts, the latest-frame-wins loop and what each key does. Components
// read the $state fields and call the methods; canvases are drawn imperatively (views.ts) so a frame
// reply is drawn the moment it arrives.
import type { AppEvent, FrameReplyT, ModelInfo, ModelSummary, Reply, Request } from '../../../contract/messages';
import { ACTION_HELP, keyMap, type Action, type Settings } from '../settings';
import { FrameGrabber, listCameras, onVideoFrames, openCamera, stopStream, type CameraDevice, type CameraStatus } from './camera';
import { decodeEntry, fileEntries, listingEntries, sortImages, type ImageEntry } from './images';
import { LatestFramePipeline, type Grabbed } from './pipeline';
import { moveCursor, tileAsMap, unitFactor, type Boost } from './tiles';
import type { Transport } from './transport';
import { FrameView, GridView, UnitView } from './views';
import { BackController } from './back.svelte';
import { SynthController } from './synth.svelte';
import { SavedView } from './saved-view.svelte';
import type { DeepVisStats } from './stats';
import { LayoutState } from './layout.svelte';
import { download, inputImage, paneFiles, safeName, synthImages, visibleCanvas, type PaneImage } from './export';
import type { FolderPatchT } from '../../../contract/topk';

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

type Source = 'camera' | 'static';

function fmt(n: number): string {
  return String(Math.round(n * 100) / 100);
}

export class DeepVisApp {
  // ---------------------------------------------------------------- reactive state
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
  source = $state<Source>('camera');
  frozen = $state(false);
  cameraStatus = $state<CameraStatus>('off');
  cameraMessage = $state<string | null>(null);
  cameras = $state.raw<CameraDevice[]>([]);
  cameraId = $state<string | null>(null);
  /** The static images being stepped through (browser files or the desktop app's listing), fetched when shown. */
  images = $state.raw<ImageEntry[]>([]);
  imageIndex = $state(0);
  imageError = $state<string | null>(null);
  gammaIndex = $state(0);
  boostIndex = $state(0);
  showHelp = $state(false);
  showLabels = $state(true);
  top5 = $state.raw<FrameReplyT['top5']>([]);
  fps = $state(0);
  latencyMs = $state<number | null>(null);
  engineMs = $state<number | null>(null);
  engineError = $state<string | null>(null);
  /** The engine host's last one-line notice (a worker restarted, …), shown in the status line. */
  engineNotice = $state<string | null>(null);
  /** The grid shows a frame of the selected layer (false until the first one is drawn). */
  gridShown = $state(false);
  /** The selected unit's folder patches as shown (the patches pane keeps it current), for "save unit". */
  topPatches: FolderPatchT[] = [];
  /** Bumped by `/`: the search box takes the focus. */
  searchRequested = $state(0);
  /** The selected unit's largest activation in the last frame (null before one). */
  unitMax = $state<number | null>(null);
  /** The input pane shows the live video (true) or the frame that was sent (frozen / static). */
  liveVideo = $derived(this.source === 'camera' && !this.frozen && this.cameraStatus === 'on');

  readonly stats: DeepVisStats = { framesDrawn: 0, lastFrameId: -1, latencies: [], engineMs: [], grabMs: [], roundTripMs: [], drawMs: [], cameraFrames: 0, framesSkipped: 0, leadMs: null, framesDropped: 0, errors: 0 };
  readonly keys: Map<string, Action>;
  /** Back-projection, back diffs, zoom and Grad-CAM (b, d, a, z, x). */
  readonly back: BackController;
  readonly help: { keys: string[]; text: string }[];
  /** Synthesis of the selected unit and pattern mode (lib/synth.svelte.ts). */
  readonly synth: SynthController = new SynthController(this, () => this.grid);
  /** Column widths and the presenter layout (lib/layout.svelte.ts). */
  readonly layout = new LayoutState();
  /** The view a user comes back to: restored at start, saved on change (lib/saved-view.svelte.ts). */
  private readonly savedView = new SavedView(this);

  // ---------------------------------------------------------------- plain state
  private video: HTMLVideoElement | null = null;
  private stream: MediaStream | null = null;
  private stopFrames: (() => void) | null = null;
  private grid: GridView | null = null;
  private unitView: UnitView | null = null;
  private frameView: FrameView | null = null;
  private grabber: FrameGrabber | null = null;
  private frozenRgba: Uint8Array<ArrayBuffer> | null = null;
  private staticRgba: Uint8Array<ArrayBuffer> | null = null;
  private lastSent: Uint8Array<ArrayBuffer> | null = null;
  private lastReply: FrameReplyT | null = null;
  private frameCounter = 0;
  private drawTimes: number[] = [];
  private readonly pipeline: LatestFramePipeline<OutFrame>;
  private fpsTimer: ReturnType<typeof setInterval> | null = null;
  private staticToken = 0;
  private cameraToken = 0;
  /** Pipeline depth 2: the send lead (see leadMs) and recent (round trip − engine time) samples. */
  private lead: number | null = null;
  private overheads: number[] = [];

  constructor(
    readonly settings: Settings,
    readonly transport: Transport,
  ) {
    this.keys = keyMap(settings.keys);
    this.back = new BackController(this, settings, () => this.pipeline.kick(), () => this.redraw());
    this.showLabels = settings.showLabels;
    this.help = (Object.keys(ACTION_HELP) as Action[]).map((a) => ({ keys: settings.keys[a], text: ACTION_HELP[a] }));
    this.pipeline = new LatestFramePipeline<OutFrame>(
      () => this.grab(),
      (f) => this.process(f),
      Math.max(1, Math.min(2, Math.round(settings.pipelineDepth))),
      () => this.leadMs(),
    );
    if (typeof window !== 'undefined') window.__deepvisStats = this.stats;
  }

  // ---------------------------------------------------------------- derived values

  get layer() {
    return this.model?.layers[this.layerIndex] ?? null;
  }

  get gamma(): number {
    return this.settings.boosts.gammas[this.gammaIndex % this.settings.boosts.gammas.length] ?? 1;
  }

  get channelBoost(): number {
    return this.settings.boosts.channelBoosts[this.boostIndex % this.settings.boosts.channelBoosts.length] ?? 0;
  }

  get boost(): Boost {
    return { gamma: this.gamma, channel: this.channelBoost };
  }

  get boostText(): string {
    if (this.gamma === 1 && this.channelBoost === 0) return 'off';
    return `γ ${fmt(this.gamma)} · b ${fmt(this.channelBoost)}`;
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

  get modeText(): string {
    if (this.source === 'camera') {
      if (this.frozen) return 'camera (frozen)';
      return this.cameraStatus === 'on' ? 'camera' : `camera (${this.cameraStatus})`;
    }
    const f = this.images[this.imageIndex];
    return f ? `static ${this.imageIndex + 1}/${this.images.length} ${f.name}` : 'static (no image)';
  }

  // ---------------------------------------------------------------- wiring from components

  attachVideo(v: HTMLVideoElement): void {
    this.video = v;
    if (this.stream) this.playStream();
  }

  attachGrid(canvas: HTMLCanvasElement): GridView {
    this.grid = new GridView(canvas, this.settings.grid);
    if (this.lastReply) this.drawReply(this.lastReply);
    return this.grid;
  }

  attachUnit(canvas: HTMLCanvasElement): void {
    this.unitView = new UnitView(canvas, this.settings.unitPane.size);
  }

  attachFrame(canvas: HTMLCanvasElement): void {
    this.frameView = new FrameView(canvas);
  }

  // ---------------------------------------------------------------- start-up

  async start(): Promise<void> {
    this.transport.onClose((m) => {
      this.connection = 'lost';
      this.fatal = m;
    });
    this.transport.onEvent((e) => void this.onAppEvent(e));
    this.fpsTimer = setInterval(() => this.updateFps(), 250);
    const hello = await this.transport.request({ type: 'hello' });
    if (hello.type !== 'hello') {
      this.connection = 'lost';
      this.fatal = hello.type === 'error' ? hello.message : `unexpected reply "${hello.type}" to hello`;
      return;
    }
    this.connection = 'ready';
    this.backend = hello.backend.backend;
    this.backendDescription = hello.backend.description;
    this.models = hello.models;
    if (hello.model) this.setModel(hello.model);
    else if (hello.modelError) this.modelError = hello.modelError;
    const want = this.settings.model;
    if (want && want !== hello.model?.id) await this.switchModel(want);
    await this.savedView.restore();
    if (this.settings.startSource === 'camera') await this.startCamera();
    else this.source = 'static';
    if (navigator.mediaDevices?.addEventListener) {
      navigator.mediaDevices.addEventListener('devicechange', () => void this.refreshCameras());
    }
  }

  dispose(): void {
    this.savedView.stop();
    this.pipeline.stop();
    this.stopCamera();
    if (this.fpsTimer) clearInterval(this.fpsTimer);
    this.transport.close();
  }

  // ---------------------------------------------------------------- model and layer

  /** Drop the last engine result from every view (a new model, or an input that could not be read). */
  private forgetResult(): void {
    this.lastReply = null;
    this.top5 = [];
    this.grid?.clear();
    this.unitView?.clear();
    this.unitMax = null;
    this.gridShown = false;
  }

  private setModel(info: ModelInfo): void {
    this.model = info;
    const i = info.layers.findIndex((l) => l.name === info.defaultLayer);
    this.layerIndex = i >= 0 ? i : 0;
    this.cursor = 0;
    this.forgetResult();
    this.back?.modelChanged();
    this.lead = null; // a new engine time: estimate the send lead afresh
    this.overheads = [];
    const [h, w] = info.inputSize;
    if (this.grabber) this.grabber.resize(w, h);
    else this.grabber = new FrameGrabber(w, h);
    // A static image or frozen frame must be re-grabbed at the new input size.
    if (this.source === 'static') void this.showImage(this.imageIndex);
    else if (this.frozen) this.frozen = false;
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
      this.pipeline.kick();
      return true;
    }
    const why = reply.type === 'error' ? reply.message : `unexpected reply "${reply.type}"`;
    const named = why.includes(id) ? why : `model ${id} failed to load: ${why}`;
    this.modelError = previous && !named.includes(`still running ${previous}`) ? `${named} — still running ${previous}` : named;
    this.pipeline.kick();
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
    this.pipeline.kick();
  }

  selectUnit(i: number): void {
    const l = this.layer;
    if (!l) return;
    const u = Math.max(0, Math.min(l.units - 1, i));
    if (u === this.cursor) return;
    this.cursor = u;
    this.grid?.setCursor(u);
    this.drawUnit();
    // Live camera: the next frame brings the unit's float map. Frozen/static: ask for it now.
    if (!this.liveVideo) this.pipeline.kick();
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

  private moveBy(dx: number, dy: number): void {
    const l = this.layer;
    if (!l) return;
    const layout = this.grid?.layout;
    if (layout && layout.count === l.units) this.selectUnit(moveCursor(layout, this.cursor, dx, dy));
    else this.selectUnit(this.cursor + dx + dy * Math.ceil(Math.sqrt(l.units)));
  }

  // ---------------------------------------------------------------- camera

  async startCamera(): Promise<void> {
    const token = ++this.cameraToken;
    this.source = 'camera';
    this.frozen = false;
    this.cameraStatus = 'starting';
    this.cameraMessage = null;
    stopStream(this.stream);
    this.stream = null;
    const r = await openCamera(this.cameraId ?? this.settings.camera.deviceId, this.settings.camera.width, this.settings.camera.height);
    if (token !== this.cameraToken) {
      stopStream(r.stream);
      return;
    }
    this.cameraStatus = r.status;
    this.cameraMessage = r.message;
    if (!r.stream) return;
    this.stream = r.stream;
    const track = r.stream.getVideoTracks()[0];
    if (track) {
      this.cameraId = track.getSettings().deviceId ?? this.cameraId;
      track.addEventListener('ended', () => {
        if (this.stream !== r.stream) return;
        this.cameraStatus = 'unplugged';
        this.cameraMessage = 'The camera was disconnected. Plug it back in and press c twice (or pick a camera), or open images instead.';
        this.stopFrames?.();
        this.stopFrames = null;
      });
    }
    await this.refreshCameras();
    this.playStream();
  }

  private playStream(): void {
    const v = this.video;
    if (!v || !this.stream) return;
    v.srcObject = this.stream;
    v.muted = true;
    v.playsInline = true;
    void v.play().catch(() => {});
    this.stopFrames?.();
    this.stopFrames = onVideoFrames(v, () => {
      if (this.source !== 'camera' || this.frozen) return;
      this.stats.cameraFrames++;
      this.pipeline.kick();
      this.stats.framesSkipped = this.pipeline.dropped;
    });
  }

  stopCamera(): void {
    this.cameraToken++;
    this.stopFrames?.();
    this.stopFrames = null;
    stopStream(this.stream);
    this.stream = null;
    if (this.video) this.video.srcObject = null;
    if (this.cameraStatus === 'on' || this.cameraStatus === 'starting') this.cameraStatus = 'off';
  }

  async refreshCameras(): Promise<void> {
    try {
      this.cameras = await listCameras();
    } catch {
      this.cameras = [];
    }
  }

  async chooseCamera(deviceId: string): Promise<void> {
    this.cameraId = deviceId;
    await this.startCamera();
  }

  toggleFreeze(): void {
    if (this.source !== 'camera') return;
    if (this.frozen) {
      this.frozen = false;
      this.frozenRgba = null;
      this.pipeline.kick();
      return;
    }
    if (!this.lastSent) return;
    this.frozenRgba = this.lastSent;
    this.frozen = true;
    const [h, w] = this.model!.inputSize;
    this.frameView?.show(this.frozenRgba, w, h);
  }

  async toggleSource(): Promise<void> {
    if (this.source === 'camera') {
      this.stopCamera();
      this.source = 'static';
      this.frozen = false;
      if (this.images.length) await this.showImage(this.imageIndex);
    } else {
      await this.startCamera();
    }
  }

  // ---------------------------------------------------------------- static images

  async openFiles(files: Iterable<File>): Promise<void> {
    return this.openImages(fileEntries(sortImages(files)));
  }

  /** What "Back" returns to after a patch's source image was opened: the user's own list and place. */
  returnTo = $state.raw<{ images: ImageEntry[]; index: number; source: Source } | null>(null);

  /** Open images for a look (a top patch's source) without losing the user's list: Back returns to it. */
  async openAside(files: File[]): Promise<void> {
    if (!this.returnTo) this.returnTo = { images: this.images, index: this.imageIndex, source: this.source };
    await this.openImages(fileEntries(sortImages(files)), true);
  }

  /** Back to the list (or the camera) the user had before opening a patch's source image. */
  async goBack(): Promise<void> {
    const r = this.returnTo;
    if (!r) return;
    this.returnTo = null;
    if (r.source === 'camera') {
      this.images = r.images;
      this.imageIndex = r.index;
      await this.startCamera();
      return;
    }
    this.images = r.images;
    if (!r.images.length) {
      this.staticRgba = null;
      this.frameView?.clear();
      this.forgetResult();
      return;
    }
    await this.showImage(r.index);
  }

  /** Static-image mode on this list, showing its first image; the one path for files and listings. */
  async openImages(list: ImageEntry[], aside = false): Promise<void> {
    if (!list.length) {
      this.imageError = 'None of those files is an image.';
      return;
    }
    // A list the user opens replaces the one Back would return to.
    if (!aside) this.returnTo = null;
    this.images = list;
    if (this.source === 'camera') this.stopCamera();
    this.source = 'static';
    this.frozen = false;
    await this.showImage(0);
  }

  async showImage(i: number): Promise<void> {
    const n = this.images.length;
    if (!n || !this.model || !this.grabber) return;
    const idx = ((i % n) + n) % n;
    this.imageIndex = idx;
    const entry = this.images[idx]!;
    const token = ++this.staticToken;
    try {
      const bmp = await decodeEntry(entry);
      if (token !== this.staticToken) return bmp.close();
      const rgba = this.grabber.grabImage(bmp);
      bmp.close();
      if (!rgba) throw new Error(`${entry.name}: empty image`);
      this.staticRgba = rgba;
      this.imageError = null;
      this.frameView?.show(rgba, this.grabber.width, this.grabber.height);
      this.pipeline.kick();
    } catch (e) {
      if (token !== this.staticToken) return;
      this.imageError = (e as Error).message;
      // Show nothing rather than the previous image's input, layer and classes under this one's name.
      this.staticRgba = null;
      this.frameView?.clear();
      this.forgetResult();
    }
  }

  /** One image's bytes from the desktop app's listing (main reads only what the user picked). */
  private async fetchListed(listing: string, index: number, name: string): Promise<Blob> {
    const r = await this.transport.request({ type: 'listedImage', listing, index });
    if (r.type === 'listedImage') return new Blob([r.bytes as BlobPart], { type: guessType(r.name) });
    const msg = r.type === 'error' ? r.message : `unexpected reply ${r.type}`;
    throw new Error(msg.startsWith(`${name}: `) ? msg : `${name}: ${msg}`);
  }

  // ---------------------------------------------------------------- frame loop

  /** The frame the input pane shows, for synthesis "from this frame" (null before one). */
  currentFrame(): { width: number; height: number; rgba: Uint8Array<ArrayBuffer> } | null {
    const rgba = this.source === 'camera' ? (this.frozen ? this.frozenRgba : this.lastSent) : this.staticRgba;
    return rgba && this.grabber ? { width: this.grabber.width, height: this.grabber.height, rgba } : null;
  }

  private grab(): OutFrame | null {
    const m = this.model;
    const l = this.layer;
    if (!m || !l || this.loadingModel || !this.grabber || this.connection !== 'ready') return null;
    const grabbedAt = performance.now();
    let rgba: Uint8Array<ArrayBuffer> | null = null;
    if (this.source === 'camera') {
      if (this.frozen) rgba = this.frozenRgba;
      else if (this.video && this.cameraStatus === 'on' && this.video.readyState >= 2) {
        rgba = this.grabber.grab(this.video, this.video.videoWidth, this.video.videoHeight, this.settings.camera.mirror);
        if (rgba) this.lastSent = rgba;
      }
    } else rgba = this.staticRgba;
    if (!rgba) return null;
    return {
      frameId: ++this.frameCounter,
      grabbedAt,
      grabbedBy: performance.now(),
      rgba,
      width: this.grabber.width,
      height: this.grabber.height,
      layer: l.name,
      unit: Math.min(this.cursor, l.units - 1),
      modelId: m.id,
    };
  }

  private async process(f: OutFrame): Promise<void> {
    const req: Request = { type: 'frame', frameId: f.frameId, width: f.width, height: f.height, rgba: f.rgba, layer: f.layer, unit: f.unit, ...this.back.requestFields(f.layer, f.unit) };
    const reply: Reply = await this.transport.request(req);
    const replied = performance.now();
    if (reply.type === 'frame') {
      this.engineError = null;
      if (reply.modelId !== this.model?.id) return;
      // A reply for an input no longer shown (a camera frame, or the previous static image) is stale.
      if (this.source === 'static' && f.rgba !== this.staticRgba) return;
      this.top5 = reply.top5;
      if (reply.layer !== this.layer?.name) return; // the user changed layer meanwhile; the next frame has it
      this.lastReply = reply;
      this.drawReply(reply);
      this.back.onReply(reply);
      const now = performance.now();
      const s = this.stats;
      s.framesDrawn++;
      s.lastFrameId = reply.frameId;
      const keep = this.settings.stats.keep;
      const push = (a: number[], v: number) => {
        a.push(v);
        if (a.length > keep) a.splice(0, a.length - keep);
      };
      push(s.latencies, now - f.grabbedAt);
      push(s.engineMs, reply.engineMs);
      push(s.grabMs, f.grabbedBy - f.grabbedAt);
      push(s.roundTripMs, replied - f.grabbedBy);
      push(s.drawMs, now - replied);
      if (!this.frozen && this.source === 'camera') this.steerLead(replied - f.grabbedBy, reply.engineMs);
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
    if (this.lead === null || this.source !== 'camera' || this.frozen) return Infinity;
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
    const target = this.settings.pipelineTargetWaitMs;
    this.lead = Math.max(0, Math.min(E + floor, this.lead + 0.25 * (waited - target)));
    s.leadMs = Math.round(this.lead * 10) / 10;
  }

  private updateFps(now = performance.now()): void {
    const win = this.settings.stats.fpsWindowMs;
    const t = this.drawTimes;
    let i = 0;
    while (i < t.length && t[i]! < now - win) i++;
    if (i) t.splice(0, i);
    this.fps = (t.length * 1000) / win;
  }

  private drawReply(reply: FrameReplyT): void {
    this.grid?.draw(this.back.gridTiles(reply), this.boost, this.cursor);
    if (!this.gridShown) this.gridShown = true;
    this.drawUnit();
  }

  private drawUnit(): void {
    const r = this.lastReply;
    if (!r || !this.unitView) return;
    const c = this.cursor;
    if (c >= r.tiles.count) return;
    const factor = unitFactor(r.tiles, c, this.channelBoost);
    const exact = r.unit.index === c;
    const map = exact ? r.unit : tileAsMap(r.tiles, c);
    this.unitView.draw(map, factor, this.gamma);
    const max = exact ? r.unit.max : (r.tiles.channelMax[c] ?? 0);
    if (max !== this.unitMax) this.unitMax = max;
  }

  private redraw(): void {
    if (this.lastReply) this.drawReply(this.lastReply);
  }

  // ---------------------------------------------------------------- keys and menu

  /** Handle a key; returns true when it was one of ours. */
  key(e: Pick<KeyboardEvent, 'key' | 'ctrlKey' | 'metaKey' | 'altKey'>): boolean {
    if (e.ctrlKey || e.metaKey || e.altKey) return false;
    const action = this.keys.get(e.key);
    if (!action) return false;
    void this.act(action);
    return true;
  }

  async act(action: Action): Promise<void> {
    switch (action) {
      case 'cursorLeft':
        return this.moveBy(-1, 0);
      case 'cursorRight':
        return this.moveBy(1, 0);
      case 'cursorUp':
        return this.moveBy(0, -1);
      case 'cursorDown':
        return this.moveBy(0, 1);
      case 'cursorLeft3':
        return this.moveBy(-3, 0);
      case 'cursorRight3':
        return this.moveBy(3, 0);
      case 'cursorUp3':
        return this.moveBy(0, -3);
      case 'cursorDown3':
        return this.moveBy(0, 3);
      case 'prevLayer':
        return this.selectLayer(this.layerIndex - 1);
      case 'nextLayer':
        return this.selectLayer(this.layerIndex + 1);
      case 'freeze':
        return this.toggleFreeze();
      case 'toggleSource':
        return this.toggleSource();
      case 'nextImage':
        if (this.source === 'static') await this.showImage(this.imageIndex + 1);
        return;
      case 'prevImage':
        if (this.source === 'static') await this.showImage(this.imageIndex - 1);
        return;
      case 'gammaBoost':
        this.gammaIndex = (this.gammaIndex + 1) % this.settings.boosts.gammas.length;
        return this.redraw();
      case 'channelBoost':
        this.boostIndex = (this.boostIndex + 1) % this.settings.boosts.channelBoosts.length;
        return this.redraw();
      case 'toggleLabels':
        this.showLabels = !this.showLabels;
        return;
      case 'backMode':
      case 'backFreeze':
      case 'backGrid':
      case 'zoom':
      case 'gradcam':
        return this.back.act(action);
      case 'help':
        this.showHelp = !this.showHelp;
        return;
      case 'presenter':
        this.layout.presenter = !this.layout.presenter;
        return;
      case 'search':
        this.searchRequested++;
        return;
      case 'synthesize':
        return this.synth.toggle();
      case 'patternMode':
        return this.synth.togglePattern();
      case 'reset':
        // Esc while a synthesis runs cancels it (and only that).
        if (this.synth.running) return this.synth.cancel();
        this.showHelp = false;
        this.gammaIndex = 0;
        this.boostIndex = 0;
        this.selectUnit(0);
        this.redraw();
        return;
      case 'quit':
        // Only the desktop app quits; a browser tab is the user's to close.
        if (this.transport.kind === 'ipc') window.close();
        return;
    }
  }

  private async onAppEvent(e: AppEvent): Promise<void> {
    // Synthesis events belong to the synthesis pane (not part of the live view).
    if (e.type === 'synth') return this.synth.onEvent(e);
    if (e.type === 'notice') {
      this.engineNotice = e.message;
      return;
    }
    if (e.type !== 'menu') return;
    switch (e.action) {
      case 'openImages':
        if (e.skipped.length) console.warn(`open ${e.source}: ${e.skipped.join('; ')}`);
        return this.openImages(listingEntries(e.names, (i) => this.fetchListed(e.listing, i, e.names[i]!)));
      case 'exportPng':
        return this.exportView();
      case 'toggleCamera':
        return this.toggleSource();
      case 'help':
        this.showHelp = !this.showHelp;
        return;
      case 'selectModel':
        await this.switchModel(e.modelId);
        return;
    }
  }

  /** Every visible pane as PNG plus the settings and unit as JSON (lib/export.ts). */
  async exportView(): Promise<void> {
    const l = this.layer;
    const m = this.model;
    if (!l || !m) return;
    const base = `${safeName(m.id)}_${safeName(l.display)}-${this.cursor}`;
    const panes: PaneImage[] = [];
    const input = inputImage(this.video, this.settings.camera.mirror);
    if (input) panes.push({ name: 'input', canvas: input });
    for (const [id, name] of [['grid-canvas', 'grid'], ['unit-canvas', 'unit'], ['back-canvas', 'back'], ['zoom-canvas', 'zoom']] as const) {
      const c = visibleCanvas(id);
      if (c && (id !== 'back-canvas' || this.back.setting)) panes.push({ name, canvas: c });
    }
    panes.push(...synthImages('synth'));
    await download(await paneFiles(base, panes, { name: 'view', value: this.viewJson() }));
  }

  /** The selected unit: activation map, back-projection, synthesized seeds and top patches with their source paths. */
  async exportUnit(): Promise<void> {
    const l = this.layer;
    const m = this.model;
    if (!l || !m) return;
    const base = `${safeName(m.id)}_${safeName(l.display)}-${this.cursor}`;
    const panes: PaneImage[] = [];
    const unit = visibleCanvas('unit-canvas');
    if (unit) panes.push({ name: 'activation', canvas: unit });
    const back = this.back.setting ? visibleCanvas('back-canvas') : null;
    if (back) panes.push({ name: 'back', canvas: back });
    panes.push(...synthImages('seed'));
    document.querySelectorAll<HTMLElement>('[data-testid="patch-folder"]').forEach((el, i) => {
      const crop = el.querySelector<HTMLCanvasElement>('canvas.crop');
      const deconv = el.querySelector<HTMLCanvasElement>('canvas.deconv');
      if (crop?.width) panes.push({ name: `top${i + 1}`, canvas: crop });
      if (deconv?.width) panes.push({ name: `top${i + 1}_deconv`, canvas: deconv });
    });
    const value = {
      ...this.viewJson(),
      unitMax: this.unitMax,
      topPatches: this.topPatches.map((p, i) => ({ rank: i + 1, image: p.image, box: p.box, activation: p.activation })),
    };
    await download(await paneFiles(base, panes, { name: 'unit', value }));
  }

  private viewJson() {
    const l = this.layer!;
    return {
      app: 'DeepVis',
      savedAt: new Date().toISOString(),
      model: this.model!.id,
      layer: l.name,
      layerDisplay: l.display,
      unit: this.cursor,
      className: this.unitClassName,
      source: this.source,
      image: this.source === 'static' ? (this.images[this.imageIndex]?.name ?? null) : null,
      frozen: this.frozen,
      gamma: this.gamma,
      channelBoost: this.channelBoost,
      back: this.back.setting,
      backSource: this.back.lastSource,
      grid: this.back.grid,
      gradcam: this.back.gradcam,
      top5: this.top5,
      backend: this.backend,
    };
  }
}

function guessType(name: string): string {
  const ext = name.toLowerCase().split('.').pop() ?? '';
  const map: Record<string, string> = { jpg: 'image/jpeg', jpeg: 'image/jpeg', png: 'image/png', gif: 'image/gif', webp: 'image/webp', bmp: 'image/bmp' };
  return map[ext] ?? 'application/octet-stream';
}
