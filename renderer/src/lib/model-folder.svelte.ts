// Opening a user's own model folder in the window. In the browser the folder's files (from a folder
// input or a drop) are uploaded to the web-mode host in chunks; in the desktop app Electron main
// opens the folder itself (a dialog, or the path of a dropped folder the preload reads). Either way
// the host checks the files, lists the model and says why when it cannot be used; a usable model is
// loaded at once.
import type { ModelInfo, ModelSummary, Reply, Request } from '../../../contract/messages';
import { modelFileKind, UPLOAD_LIMITS, type PreprocessName } from '../../../contract/user-models';

/** What a model folder upload (and the input convention) needs from the app. */
export interface ModelFolderHost {
  readonly transport: { kind: 'ipc' | 'websocket'; request(msg: Request): Promise<Reply> };
  models: ModelSummary[];
  model: ModelInfo | null;
  switchModel(id: string): Promise<boolean>;
  /** Caches built from the model's outputs (the layer's atlas) and the frame shown: fetched again. */
  readonly atlas: { reloadAtlas(): void };
  readonly live: { kick(): void };
}

export interface FolderFiles {
  folder: string;
  files: File[];
}

type Entry = FileSystemEntry;

/** A folder's own files from a folder input (webkitRelativePath "folder/name"); files in subfolders are not part of a model. */
export function folderFromInput(list: FileList | File[]): FolderFiles | null {
  const files = Array.from(list);
  if (!files.length) return null;
  const parts = (f: File) => (f.webkitRelativePath || f.name).split('/');
  const folder = parts(files[0]!).length > 1 ? parts(files[0]!)[0]! : 'model';
  return { folder, files: files.filter((f) => parts(f).length <= 2) };
}

function readAll(dir: FileSystemDirectoryEntry): Promise<Entry[]> {
  const reader = dir.createReader();
  const out: Entry[] = [];
  return new Promise((resolve, reject) => {
    const next = () =>
      reader.readEntries((batch) => {
        if (!batch.length) return resolve(out);
        out.push(...batch);
        next();
      }, reject);
    next();
  });
}

const fileOf = (e: FileSystemFileEntry) => new Promise<File>((resolve, reject) => e.file(resolve, reject));

/**
 * The entries of a drop, read while the event lasts (a DataTransfer is empty afterwards). Returns
 * a dropped folder that holds model.json, or null (then the drop is images).
 */
export function dropEntries(dt: DataTransfer): Entry[] {
  return Array.from(dt.items ?? [])
    .map((i) => (i.kind === 'file' ? i.webkitGetAsEntry?.() : null))
    .filter((e): e is Entry => !!e);
}

export async function modelFolderFromEntries(entries: Entry[]): Promise<FolderFiles | null> {
  if (entries.length !== 1 || !entries[0]!.isDirectory) return null;
  const dir = entries[0] as FileSystemDirectoryEntry;
  const children = await readAll(dir);
  if (!children.some((c) => c.isFile && c.name === 'model.json')) return null;
  const files = await Promise.all(children.filter((c): c is FileSystemFileEntry => c.isFile).map(fileOf));
  return { folder: dir.name, files };
}

/** Does this folder input hold a model (a model.json at its top)? */
export function holdsModel(f: FolderFiles): boolean {
  return f.files.some((x) => x.name === 'model.json');
}

export class ModelFolderController {
  busy = $state(false);
  /** Bytes sent of the folder's total (the upload's progress). */
  sent = $state(0);
  total = $state(0);
  /** The host's refusal or the listing's reason the model cannot be used (names the file and the next step). */
  problem = $state<string | null>(null);
  /** The model last added (its id), for the status text. */
  added = $state<string | null>(null);
  /** Why the input convention could not be changed. */
  preprocessError = $state<string | null>(null);

  constructor(private readonly host: ModelFolderHost) {}

  get desktop(): boolean {
    return this.host.transport.kind === 'ipc';
  }

  /** The desktop app: Electron main shows a folder dialog, or opens `dropped` (a File the preload turns into its path). */
  async openInDesktop(dropped?: File): Promise<void> {
    await this.run(() => this.host.transport.request({ type: 'openModelFolder', ...(dropped ? { path: dropped as unknown as string } : {}) }));
  }

  /** The browser: upload the folder's files to the host. */
  async upload(f: FolderFiles): Promise<void> {
    await this.run(async () => {
      const files = f.files.filter((x) => x.name !== '.DS_Store' && x.name !== 'Thumbs.db' && x.name !== 'desktop.ini');
      this.total = files.reduce((a, x) => a + x.size, 0);
      this.sent = 0;
      const t = this.host.transport;
      const start = await t.request({ type: 'modelUploadStart', folder: f.folder, files: files.map((x) => ({ name: x.name, size: x.size })) });
      if (start.type !== 'modelUploadStarted') return start;
      const chunk = Math.min(start.chunkBytes, UPLOAD_LIMITS.chunkBytes);
      for (const file of files) {
        for (let at = 0; at < file.size || (at === 0 && file.size === 0); at += chunk) {
          const bytes = new Uint8Array(await file.slice(at, at + chunk).arrayBuffer());
          const r = await t.request({ type: 'modelUploadChunk', uploadId: start.uploadId, name: file.name, offset: at, bytes });
          if (r.type !== 'modelUploadChunk') return r;
          this.sent += bytes.length;
          if (file.size === 0) break;
        }
      }
      return t.request({ type: 'modelUploadFinish', uploadId: start.uploadId });
    });
  }

  /** A folder from the browser's folder input: a model when it holds model.json. */
  async fromInput(list: FileList | File[]): Promise<void> {
    const f = folderFromInput(list);
    if (!f) return;
    if (!holdsModel(f)) {
      this.problem = `${f.folder} has no model.json at its top — open the folder that model.save() or tensorflowjs_converter wrote`;
      return;
    }
    await this.upload(f);
  }

  private async run(send: () => Promise<Reply>): Promise<void> {
    if (this.busy) return;
    this.busy = true;
    this.problem = null;
    this.added = null;
    try {
      const r = await send();
      if (r.type === 'error') {
        this.problem = r.message;
        return;
      }
      if (r.type !== 'modelAdded') {
        this.problem = `unexpected reply "${r.type}"`;
        return;
      }
      if (r.cancelled) return;
      const list = await this.host.transport.request({ type: 'listModels' });
      if (list.type === 'models') this.host.models = list.models;
      if (r.problem || !r.id) {
        this.problem = r.problem ?? 'the folder holds no model';
        return;
      }
      this.added = r.id;
      await this.host.switchModel(r.id);
    } finally {
      this.busy = false;
    }
  }

  /** Pick the loaded model's input convention ('auto': the inferred one); the host applies and remembers it. */
  async setPreprocess(preset: PreprocessName | 'auto'): Promise<void> {
    const m = this.host.model;
    if (!m) return;
    this.preprocessError = null;
    const r = await this.host.transport.request({ type: 'setPreprocess', model: m.id, preset });
    if (r.type !== 'preprocessSet') {
      this.preprocessError = r.type === 'error' ? r.message : `unexpected reply "${r.type}"`;
      return;
    }
    const now = this.host.model;
    if (now?.id === m.id) this.host.model = { ...now, preprocess: r.preprocess };
    // The model computes other activations now: its atlas is another one, and the frame is asked again.
    this.host.atlas.reloadAtlas();
    this.host.live.kick();
  }

  /** Is a file one the host takes (for the drop hint)? */
  static takes(name: string): boolean {
    return modelFileKind(name) !== null;
  }
}
