// Model folders a user opens in the window, kept in a per-run user models folder that the session
// lists after the bundled ones: uploaded over the WebSocket in chunks (web mode) or copied from a
// folder on disk (the desktop app's dialog or a dropped folder). Only a model folder's own kinds of
// file are taken (model.json, weight shards, labels.txt, classes.json, deepvis.json), each under
// its size cap and the whole under one; a name that is a path is refused, so nothing is written
// outside the folder. Files are assembled in a staging folder and moved into place in one rename:
// the listing never sees half a model.
import { randomUUID } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { lstat, mkdir, open, readdir, rename, rm, type FileHandle } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { createWriteStream } from 'node:fs';
import { seqOf, type Reply, type Request } from '../../contract/messages.js';
import { modelFileCap, modelFileKind, UPLOAD_LIMITS, type ModelUploadStartRequestT } from '../../contract/user-models.js';
import { oneLine } from '../engine/errors.js';
import { idFromFolder } from '../engine/model-infer.js';
import type { ModelEntry } from '../engine/model-store.js';

const KINDS_TEXT = 'a model folder holds only model.json, its weight files (*.bin, group*-shard*), labels.txt, classes.json and deepvis.json';
const mib = (n: number) => `${Math.round(n / (1 << 20))} MiB`;

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** A refusal the user can act on (its message names the file and what to do). */
export class UploadRefused extends Error {}

interface Upload {
  id: string;
  client: string;
  folder: string;
  staging: string;
  files: Map<string, { size: number; received: number; handle: FileHandle | null }>;
}

/** Is this a bare file name (no folder part, no traversal, nothing hidden)? */
function bareName(name: string): boolean {
  return !/[\\/\0]/.test(name) && name !== '.' && name !== '..' && !name.startsWith('.');
}

/**
 * Check a folder's files before anything is written: bare names of the allowed kinds, no
 * duplicates, each within its cap and the whole within the total, a model.json among them.
 * Throws UploadRefused naming the first file that is wrong.
 */
export function checkModelFiles(folder: string, files: readonly { name: string; size: number }[]): string {
  if (!bareName(folder)) throw new UploadRefused(`"${folder.slice(0, 100)}" is not a folder name — open the folder that holds model.json`);
  const id = idFromFolder(folder);
  const seen = new Set<string>();
  let total = 0;
  if (files.length > UPLOAD_LIMITS.maxFiles) throw new UploadRefused(`${folder}: ${files.length} files, more than the ${UPLOAD_LIMITS.maxFiles} a model folder may hold — ${KINDS_TEXT}`);
  for (const f of files) {
    const shown = f.name.slice(0, 120);
    if (!bareName(f.name)) throw new UploadRefused(`${folder}/${shown}: a path, not a file name — send only the files of the model folder itself (no subfolders)`);
    const kind = modelFileKind(f.name);
    if (!kind) throw new UploadRefused(`${folder}/${shown} is not a model file — ${KINDS_TEXT}; remove it from the folder, or open the folder that holds only the model`);
    if (seen.has(f.name)) throw new UploadRefused(`${folder}/${shown} is listed twice`);
    seen.add(f.name);
    const cap = modelFileCap(kind);
    if (f.size > cap) throw new UploadRefused(`${folder}/${shown} is ${mib(f.size)}, more than the ${mib(cap)} a ${kind === 'weights' ? 'weight file' : kind === 'modelJson' ? 'model.json' : 'class or descriptor file'} may be`);
    total += f.size;
  }
  if (total > UPLOAD_LIMITS.maxTotalBytes) throw new UploadRefused(`${folder}: ${mib(total)} in all, more than the ${mib(UPLOAD_LIMITS.maxTotalBytes)} one model folder may hold`);
  if (!seen.has('model.json')) throw new UploadRefused(`${folder} has no model.json — open the folder that model.save() or tensorflowjs_converter wrote`);
  return id;
}

export class UserModelsHost {
  /** The folder of models that the session lists (one model folder each). */
  readonly modelsDir: string;
  private readonly staging: string;
  private readonly uploads = new Map<string, Upload>();

  constructor(readonly root: string) {
    this.modelsDir = join(root, 'models');
    this.staging = join(root, 'incoming');
  }

  async ready(): Promise<void> {
    await mkdir(this.modelsDir, { recursive: true });
    await mkdir(this.staging, { recursive: true });
  }

  /**
   * Remove the folders of earlier runs beside this one whose process is gone (a run killed before
   * it could clean up). Folders are named run-<time>-<pid>; a live process's folder is kept.
   */
  async sweepStale(): Promise<string[]> {
    const parent = dirname(this.root);
    const removed: string[] = [];
    for (const name of await readdir(parent).catch(() => [] as string[])) {
      const m = /^run-.+-(\d+)$/.exec(name);
      const dir = join(parent, name);
      if (!m || dir === this.root || alive(Number(m[1]))) continue;
      await rm(dir, { recursive: true, force: true });
      removed.push(dir);
    }
    return removed;
  }

  /** Begin an upload (one per client: a new one discards the client's previous). */
  async start(req: ModelUploadStartRequestT, client: string): Promise<string> {
    const folder = checkModelFiles(req.folder, req.files);
    for (const u of [...this.uploads.values()]) if (u.client === client) await this.discard(u);
    await this.ready();
    const upload: Upload = { id: randomUUID(), client, folder, staging: join(this.staging, randomUUID()), files: new Map() };
    await mkdir(upload.staging);
    for (const f of req.files) upload.files.set(f.name, { size: f.size, received: 0, handle: await open(join(upload.staging, f.name), 'wx') });
    this.uploads.set(upload.id, upload);
    return upload.id;
  }

  /** Append one chunk; chunks of a file come in order. Returns the bytes of that file received so far. */
  async chunk(req: { uploadId: string; name: string; offset: number; bytes: Uint8Array }, client: string): Promise<number> {
    const u = this.owned(req.uploadId, client);
    const f = u.files.get(req.name);
    if (!f) throw new UploadRefused(`${u.folder}/${req.name.slice(0, 120)} was not announced at the start of the upload — start it again with every file`);
    if (req.offset !== f.received) throw new UploadRefused(`${u.folder}/${req.name}: chunk at byte ${req.offset}, expected ${f.received} — chunks of a file are sent in order`);
    if (f.received + req.bytes.length > f.size) {
      await this.discard(u);
      throw new UploadRefused(`${u.folder}/${req.name}: more bytes than the ${f.size} announced — the upload was discarded`);
    }
    await f.handle!.write(req.bytes, 0, req.bytes.length, req.offset);
    f.received += req.bytes.length;
    return f.received;
  }

  /** Every file complete: move the folder into place (replacing one of the same name). Returns its path. */
  async finish(uploadId: string, client: string): Promise<string> {
    const u = this.owned(uploadId, client);
    const short = [...u.files].find(([, f]) => f.received !== f.size);
    if (short) throw new UploadRefused(`${u.folder}/${short[0]}: ${short[1].received} of ${short[1].size} bytes arrived — send the rest, or start again`);
    for (const f of u.files.values()) {
      await f.handle!.sync();
      await f.handle!.close();
      f.handle = null;
    }
    this.uploads.delete(u.id);
    return this.install(u.staging, u.folder);
  }

  /**
   * Copy a folder on disk (the desktop app: a dialog's choice or a dropped folder) by the same
   * rules. Returns its path in the user models folder.
   */
  async importFolder(path: string): Promise<string> {
    let st;
    try {
      st = await lstat(path);
    } catch (e) {
      throw new UploadRefused(`${path} cannot be read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
    }
    if (!st.isDirectory()) throw new UploadRefused(`${path} is not a folder — open the folder that holds model.json`);
    const entries = await readdir(path, { withFileTypes: true });
    const files: { name: string; size: number }[] = [];
    for (const e of entries) {
      if (e.isDirectory()) continue; // a model folder's own files only; subfolders are not read
      if (!e.isFile()) throw new UploadRefused(`${join(path, e.name)} is not a regular file (a link, device or pipe) — copy the real file into the folder`);
      files.push({ name: e.name, size: (await lstat(join(path, e.name))).size });
    }
    const base = path.replace(/[\\/]+$/, '').split(/[\\/]/).pop() ?? 'model';
    const folder = checkModelFiles(base, files);
    await this.ready();
    const staging = join(this.staging, randomUUID());
    await mkdir(staging);
    try {
      for (const f of files) await pipeline(createReadStream(join(path, f.name)), createWriteStream(join(staging, f.name), { flags: 'wx' }));
    } catch (e) {
      await rm(staging, { recursive: true, force: true });
      throw e;
    }
    return this.install(staging, folder);
  }

  /** A client went away: its unfinished upload is discarded. */
  async disconnect(client: string): Promise<void> {
    for (const u of [...this.uploads.values()]) if (u.client === client) await this.discard(u);
  }

  /** Remove the run's folder (the session ends). */
  async dispose(): Promise<void> {
    for (const u of [...this.uploads.values()]) await this.discard(u);
    await rm(this.root, { recursive: true, force: true });
  }

  private owned(uploadId: string, client: string): Upload {
    const u = this.uploads.get(uploadId);
    // Another window's upload is as unknown to this one as a made-up id.
    if (!u || u.client !== client) throw new UploadRefused(`unknown upload ${uploadId.slice(0, 100)} — start the upload again`);
    return u;
  }

  private async discard(u: Upload): Promise<void> {
    this.uploads.delete(u.id);
    for (const f of u.files.values()) await f.handle?.close().catch(() => {});
    await rm(u.staging, { recursive: true, force: true });
  }

  private async install(staging: string, folder: string): Promise<string> {
    const target = join(this.modelsDir, folder);
    const old = join(this.staging, `${randomUUID()}-old`);
    await rename(target, old).catch((e: NodeJS.ErrnoException) => {
      if (e.code !== 'ENOENT') throw e;
    });
    await rename(staging, target);
    await rm(old, { recursive: true, force: true });
    return target;
  }
}

type FolderRequest = Extract<Request, { type: 'modelUploadStart' | 'modelUploadChunk' | 'modelUploadFinish' | 'openModelFolder' }>;

/**
 * The reply to an upload step or to opening a folder on disk (the path of `openModelFolder` is
 * given by Electron main only). The last step lists the folder: the model's id and, when it cannot
 * be used, the listing's reason.
 */
export async function modelFolderReply(host: UserModelsHost | null, req: FolderRequest, client: string, list: () => Promise<ModelEntry[]>): Promise<Reply> {
  const error = (message: string): Reply => ({ type: 'error', message, request: req.type, ...seqOf(req) });
  if (!host) return error('this host keeps no user models folder — start it with --models-dir DIR and put the model folder there');
  try {
    let dir: string;
    switch (req.type) {
      case 'modelUploadStart':
        return { type: 'modelUploadStarted', uploadId: await host.start(req, client), chunkBytes: UPLOAD_LIMITS.chunkBytes, ...seqOf(req) };
      case 'modelUploadChunk':
        return { type: 'modelUploadChunk', uploadId: req.uploadId, received: await host.chunk(req, client), ...seqOf(req) };
      case 'modelUploadFinish':
        dir = await host.finish(req.uploadId, client);
        break;
      case 'openModelFolder':
        if (!req.path) return error('no folder given');
        dir = await host.importFolder(req.path);
        break;
    }
    const entry = (await list()).find((e) => e.dir === dir);
    if (!entry) return { type: 'modelAdded', id: null, problem: `${dir} holds no model DeepVis can list — it needs a model.json`, ...seqOf(req) };
    return { type: 'modelAdded', id: entry.id, problem: entry.problem, ...seqOf(req) };
  } catch (e) {
    return error(e instanceof UploadRefused ? e.message : `the model folder could not be saved: ${oneLine(e)}`);
  }
}
