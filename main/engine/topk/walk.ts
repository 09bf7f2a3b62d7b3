// Finding the images to index: JPEG/PNG files under folders (recursing, symlinked folders not
// followed), each with the size and mtime that decide whether an indexed copy is still current.
import { lstat, readdir, stat } from 'node:fs/promises';
import { extname, join, resolve } from 'node:path';

export const IMAGE_EXTENSIONS = ['.jpg', '.jpeg', '.png'] as const;

export function isImageName(name: string): boolean {
  return (IMAGE_EXTENSIONS as readonly string[]).includes(extname(name).toLowerCase());
}

export interface Listing {
  files: FileStat[];
  /** Roots or sub-folders that could not be read, one line each. */
  problems: string[];
  /** Folders that were listed completely (for forgetting files that disappeared from them). */
  completeDirs: string[];
  /** The walk was stopped (the signal) before it finished: files holds what was found so far. */
  aborted?: boolean;
}

/** How far a folder walk has got. */
export interface WalkProgress {
  folders: number;
  files: number;
  /** The folder being listed. */
  current: string;
}

export interface WalkOptions {
  /** Stop walking: checked before every folder, so a stop takes one readdir at most. */
  signal?: AbortSignal;
  /** Called at most every `progressEveryMs` (default 250 ms) while walking. */
  onProgress?: (p: WalkProgress) => void;
  progressEveryMs?: number;
}

/** One line for the walk's progress (CLI and the window show the same words). */
export function describeWalk(p: WalkProgress): string {
  return `looking through folders: ${p.folders.toLocaleString('en')} folders, ${p.files.toLocaleString('en')} images so far`;
}

/**
 * JPEG/PNG files under the given folders (recursively; symlinked folders are not followed, to
 * avoid cycles) plus any files named directly, sorted by path, without duplicates. A walk over a
 * huge tree reports progress and stops promptly on the signal.
 */
export async function listImageFiles(roots: string[], opts: WalkOptions = {}): Promise<Listing> {
  const files = new Map<string, FileStat>();
  const problems: string[] = [];
  const completeDirs: string[] = [];
  const every = opts.progressEveryMs ?? 250;
  let folders = 0;
  let lastReport = performance.now();
  let aborted = false;
  const walk = async (dir: string): Promise<boolean> => {
    if (opts.signal?.aborted) {
      aborted = true;
      return false;
    }
    folders++;
    if (opts.onProgress && performance.now() - lastReport >= every) {
      lastReport = performance.now();
      opts.onProgress({ folders, files: files.size, current: dir });
    }
    let entries;
    try {
      entries = await readdir(dir, { withFileTypes: true });
    } catch (e) {
      problems.push(`${dir}: cannot list (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
      return false;
    }
    let complete = true;
    entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const e of entries) {
      if (aborted) return false;
      const p = join(dir, e.name);
      if (e.isDirectory()) complete = (await walk(p)) && complete;
      else if ((e.isFile() || e.isSymbolicLink()) && isImageName(e.name)) {
        try {
          const s = await stat(p);
          if (s.isFile()) files.set(p, { path: p, size: s.size, mtimeMs: Math.round(s.mtimeMs) });
        } catch (err) {
          problems.push(`${p}: cannot stat (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
        }
      }
    }
    return complete;
  };
  for (const r of roots) {
    if (opts.signal?.aborted) {
      aborted = true;
      break;
    }
    const root = resolve(r);
    let s;
    try {
      s = await lstat(root).then((l) => (l.isSymbolicLink() ? stat(root) : l));
    } catch (e) {
      problems.push(`${r}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file or folder' : (e as Error).message}`);
      continue;
    }
    if (s.isDirectory()) {
      if (await walk(root)) completeDirs.push(root);
    } else if (s.isFile()) files.set(root, { path: root, size: s.size, mtimeMs: Math.round(s.mtimeMs) });
    else problems.push(`${r}: not a file or folder`);
  }
  return { files: [...files.values()].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0)), problems, completeDirs, ...(aborted ? { aborted } : {}) };
}

export interface FileStat {
  path: string;
  size: number;
  mtimeMs: number;
}

export async function statFile(path: string): Promise<FileStat> {
  const s = await stat(path);
  if (!s.isFile()) throw new Error(`${path}: not a file`);
  return { path: resolve(path), size: s.size, mtimeMs: Math.round(s.mtimeMs) };
}
