// Top-k image patches in the renderer: the selected unit's patches from the folder index
// and from this session's camera frames (a `topk` request, debounced, refreshed while the camera
// runs and as indexing progresses), indexing a folder on the engine host (indexStart/indexStop and
// the `index` events), and opening a folder patch's image as the static input.
import type { AppEvent, Reply, Request } from '../../../contract/messages';
import type { FolderPatchT, IndexEventT, IndexInfoT, SessionPatchT } from '../../../contract/topk';
import { imageMimeType } from './images';

/** How long the cursor must rest before the patches are asked for, and how often they refresh. */
const DEBOUNCE_MS = 180;
const SESSION_REFRESH_MS = 2500;
const INDEX_REFRESH_MS = 3000;

export function formatDuration(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const ss = String(s % 60).padStart(2, '0');
  return h ? `${h}:${String(m).padStart(2, '0')}:${ss}` : `${m}:${ss}`;
}

/** The progress line for an index event. */
export function indexLine(e: IndexEventT): string {
  const base = (p: string) => p.split('/').pop() ?? p;
  switch (e.phase) {
    case 'progress': {
      const eta = e.etaMs == null ? '' : ` · ETA ${formatDuration(e.etaMs)}`;
      const rate = e.imagesPerSecond ? ` · ${e.imagesPerSecond.toFixed(1)} img/s` : '';
      return `Indexing ${e.done}/${e.total}${rate}${eta}${e.file ? ` · ${base(e.file)}` : ''}`;
    }
    case 'done': {
      const bad = e.unreadableCount ? ` · ${e.unreadableCount} unreadable` : '';
      const skipped = e.skipped ? ` (${e.skipped} already indexed)` : '';
      return `Indexed ${e.done}/${e.total}${skipped}${bad} in ${formatDuration(e.elapsedMs ?? 0)} — ${e.images ?? 0} images in the index`;
    }
    case 'stopped':
      return `Stopped at ${e.done}/${e.total} (${e.message ?? 'stopped'}) — ${e.images ?? 0} images in the index`;
    case 'error':
      return `Indexing failed: ${e.message ?? 'unknown error'}`;
  }
}

/** What the patches pane needs from the app. */
export interface PatchesHost {
  readonly transport: { request(message: Request): Promise<Reply>; onEvent(callback: (event: AppEvent) => void): () => void };
  readonly model: { id: string; layers: { name: string; display: string }[] } | null;
  readonly input: { readonly liveVideo: boolean; openAside(files: File[]): Promise<void> };
}

export class PatchesState {
  folder = $state.raw<FolderPatchT[]>([]);
  session = $state.raw<SessionPatchT[]>([]);
  index = $state.raw<IndexInfoT | null>(null);
  /** What the patches are of ("conv_pw_5:7"), or null before the first reply. */
  shownFor = $state<string | null>(null);
  loading = $state(false);
  error = $state<string | null>(null);
  folderPath = $state('');
  indexing = $state(false);
  progress = $state<string | null>(null);
  progressError = $state(false);
  unreadable = $state.raw<{ path: string; error: string }[]>([]);

  private timer: ReturnType<typeof setTimeout> | null = null;
  private refresher: ReturnType<typeof setInterval> | null = null;
  private lastIndexRefresh = 0;
  private asked = 0;
  private want: { layer: string; unit: number; model: string } | null = null;
  private readonly off: () => void;

  constructor(private readonly app: PatchesHost) {
    this.off = app.transport.onEvent((e) => this.onEvent(e));
    this.refresher = setInterval(() => {
      // The session memory grows while the camera runs: show it.
      if (this.app.input.liveVideo && this.want) void this.fetch();
    }, SESSION_REFRESH_MS);
  }

  dispose(): void {
    this.off();
    if (this.timer) clearTimeout(this.timer);
    if (this.refresher) clearInterval(this.refresher);
  }

  /** The selected unit changed (or the model): ask for its patches once the cursor rests. */
  select(model: string | null, layer: string | null, unit: number): void {
    if (!model || !layer) {
      this.want = null;
      return;
    }
    const same = this.want && this.want.model === model && this.want.layer === layer && this.want.unit === unit;
    if (same) return;
    this.want = { model, layer, unit };
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.fetch(), DEBOUNCE_MS);
  }

  async fetch(): Promise<void> {
    const w = this.want;
    if (!w) return;
    const n = ++this.asked;
    this.loading = true;
    const r = await this.app.transport.request({ type: 'topk', layer: w.layer, unit: w.unit });
    if (n !== this.asked) return; // a newer request is on its way
    this.loading = false;
    if (r.type === 'topk') {
      if (r.modelId !== this.app.model?.id) return;
      this.folder = r.folder;
      this.session = r.session;
      this.index = r.index;
      this.indexing = r.index?.indexing ?? this.indexing;
      const display = this.app.model?.layers.find((l) => l.name === r.layer)?.display ?? r.layer;
      this.shownFor = `${display}:${r.unit}`;
      this.error = null;
    } else if (r.type === 'error') {
      if (!/superseded/.test(r.message)) this.error = r.message;
    }
  }

  async startIndexing(): Promise<void> {
    const dir = this.folderPath.trim();
    if (!dir) {
      this.progress = 'Type the path of a folder on the engine host first.';
      this.progressError = true;
      return;
    }
    this.progressError = false;
    this.unreadable = [];
    this.progress = 'Listing images…';
    const r = await this.app.transport.request({ type: 'indexStart', dirs: [dir] });
    if (r.type === 'indexStart') {
      this.indexing = true;
      this.progress = `Indexing ${r.dirs.join(', ')} for ${r.modelId}…`;
    } else {
      this.progress = r.type === 'error' ? r.message : `unexpected reply "${r.type}"`;
      this.progressError = true;
    }
  }

  async stopIndexing(): Promise<void> {
    const r = await this.app.transport.request({ type: 'indexStop' });
    if (r.type === 'indexStop' && !r.stopped) this.indexing = false;
  }

  /** Load a folder patch's image as the static input (the layer and unit stay selected). */
  async open(p: FolderPatchT): Promise<void> {
    const r = await this.app.transport.request({ type: 'openIndexedImage', path: p.image });
    if (r.type !== 'openIndexedImage') {
      this.error = r.type === 'error' ? r.message : `unexpected reply "${r.type}"`;
      return;
    }
    this.error = null;
    await this.app.input.openAside([new File([r.bytes as BlobPart], r.name, { type: imageMimeType(r.name) })]);
  }

  private onEvent(e: AppEvent): void {
    if (e.type !== 'index') return;
    this.progress = indexLine(e);
    this.progressError = e.phase === 'error';
    if (e.phase === 'progress') {
      this.indexing = true;
      const now = performance.now();
      if (now - this.lastIndexRefresh > INDEX_REFRESH_MS) {
        this.lastIndexRefresh = now;
        void this.fetch();
      }
      return;
    }
    this.indexing = false;
    this.unreadable = e.unreadable ?? [];
    void this.fetch();
  }
}
