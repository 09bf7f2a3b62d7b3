// Reading the files of a model folder without trusting them. A model folder is something a user
// drops in (or a download leaves half-done), so every name in it — a descriptor's modelJson, a
// SHA256SUMS line, a weight shard in model.json — may point anywhere: at a FIFO (opening it blocks a
// libuv thread, and with it every client of the server, forever), at /dev/zero (unbounded memory),
// or through `../` or a symlink at files outside the folder. Here a name is accepted only when it
// resolves, symlinks followed, to a regular file inside an allowed folder and under a size cap; the
// file is checked with lstat/stat before it is opened and again with fstat on the open handle, and
// opened with O_NONBLOCK so a FIFO swapped in between the two cannot block either.
import { constants } from 'node:fs';
import { lstat, open, readdir, realpath, stat } from 'node:fs/promises';
import { dirname, isAbsolute, join, relative, resolve, sep } from 'node:path';

const MiB = 1024 * 1024;

/** The largest file of each kind we read (far above any real model's; a hostile one stops here). */
export const FILE_CAPS = {
  descriptor: 1 * MiB,
  modelJson: 64 * MiB,
  checksums: 1 * MiB,
  classes: 16 * MiB,
  weightShard: 512 * MiB,
} as const;

export type FileFault = 'missing' | 'unsafe' | 'too-large';

/** A file that cannot be read the safe way; the message names it and says why. */
export class ModelFileError extends Error {
  constructor(
    readonly fault: FileFault,
    message: string,
  ) {
    super(message);
    this.name = 'ModelFileError';
  }
}

function inside(root: string, p: string): boolean {
  const rel = relative(root, p);
  return rel === '' || (!rel.startsWith('..' + sep) && rel !== '..' && !isAbsolute(rel));
}

/**
 * `name` resolved against `base`, refused when it is absolute or leaves every one of `roots`
 * (by its text alone; links are checked when the file is opened).
 */
export function pathInside(base: string, name: string, roots: readonly string[] = [base]): string {
  if (isAbsolute(name) || /^[a-z]:/i.test(name)) throw new ModelFileError('unsafe', `${join(base, name)}: "${name}" is an absolute path; model files are named relative to the model folder`);
  const p = resolve(base, name);
  if (!roots.some((r) => inside(resolve(r), p))) throw new ModelFileError('unsafe', `${p}: "${name}" points outside ${roots.map((r) => resolve(r)).join(' and ')}`);
  return p;
}

function kindOf(st: { isDirectory(): boolean; isFIFO(): boolean; isSocket(): boolean; isCharacterDevice(): boolean; isBlockDevice(): boolean }): string {
  if (st.isDirectory()) return 'a folder';
  if (st.isFIFO()) return 'a FIFO (named pipe)';
  if (st.isSocket()) return 'a socket';
  if (st.isCharacterDevice() || st.isBlockDevice()) return 'a device';
  return 'not a regular file';
}

function errno(e: unknown): string | undefined {
  return (e as NodeJS.ErrnoException).code;
}

export interface SafeFile {
  /** The path as named (inside the folder). */
  path: string;
  /** Where it really is (symlinks followed; still inside an allowed folder). */
  real: string;
  size: number;
  ino: number;
  dev: number;
}

/**
 * Check that `path` (already confined by pathInside) is, after following links, a regular file
 * inside one of `roots`, no larger than `cap`. Opens nothing.
 */
export async function checkRegularFile(path: string, roots: readonly string[], cap: number): Promise<SafeFile> {
  let own;
  try {
    own = await lstat(path);
  } catch (e) {
    if (errno(e) === 'ENOENT' || errno(e) === 'ENOTDIR') throw new ModelFileError('missing', `${path} is missing`);
    throw new ModelFileError('unsafe', `${path} cannot be read (${errno(e) ?? (e as Error).message})`);
  }
  // The common case, without resolving links: a regular file directly in an allowed folder.
  if (own.isFile() && roots.some((r) => resolve(r) === dirname(path))) {
    if (own.size > cap) throw new ModelFileError('too-large', `${path} is ${(own.size / MiB).toFixed(1)} MiB, over the ${cap / MiB} MiB limit for this kind of file`);
    return { path, real: path, size: own.size, ino: own.ino, dev: own.dev };
  }
  let real: string;
  try {
    real = await realpath(path);
  } catch (e) {
    // A dangling symlink (or a loop) is as good as absent.
    throw new ModelFileError('missing', `${path} is a link to nothing (${errno(e) ?? 'unresolvable'})`);
  }
  const realRoots = await Promise.all(roots.map((r) => realpath(r).catch(() => resolve(r))));
  if (!realRoots.some((r) => inside(r, real))) throw new ModelFileError('unsafe', `${path} is a symlink to ${real}, outside the model folder — copy the file in instead`);
  const st = await stat(real);
  if (!st.isFile()) throw new ModelFileError('unsafe', `${path} is ${kindOf(st)}, not a regular file`);
  if (st.size > cap) throw new ModelFileError('too-large', `${path} is ${(st.size / MiB).toFixed(1)} MiB, over the ${cap / MiB} MiB limit for this kind of file`);
  return { path, real, size: st.size, ino: st.ino, dev: st.dev };
}

/** Read a file checked by checkRegularFile, refusing it when it changed kind or grew past `cap` since. */
export async function readChecked(f: SafeFile, cap: number): Promise<Buffer> {
  const fh = await open(f.real, constants.O_RDONLY | constants.O_NONBLOCK | (constants.O_NOFOLLOW ?? 0)).catch((e: unknown) => {
    throw new ModelFileError(errno(e) === 'ENOENT' ? 'missing' : 'unsafe', `${f.path} cannot be opened (${errno(e) ?? (e as Error).message})`);
  });
  try {
    const st = await fh.stat();
    if (!st.isFile() || st.ino !== f.ino || st.dev !== f.dev) throw new ModelFileError('unsafe', `${f.path} was replaced while it was read — read it again`);
    if (st.size > cap) throw new ModelFileError('too-large', `${f.path} is over the ${cap / MiB} MiB limit for this kind of file`);
    // One byte more than the size says, to see a file that grows while we read it.
    const buf = Buffer.alloc(Math.min(st.size, cap) + 1);
    let at = 0;
    while (at < buf.length) {
      const { bytesRead } = await fh.read(buf, at, buf.length - at, at);
      if (bytesRead === 0) break;
      at += bytesRead;
    }
    if (at > cap) throw new ModelFileError('too-large', `${f.path} grew past the ${cap / MiB} MiB limit while it was read`);
    return buf.subarray(0, at);
  } finally {
    await fh.close();
  }
}

/** checkRegularFile then readChecked: the one way a model's file is read. */
export async function readRegularFile(path: string, roots: readonly string[], cap: number): Promise<Buffer> {
  return readChecked(await checkRegularFile(path, roots, cap), cap);
}

/** Whether anything (a file, a link, a FIFO…) has this name; never opens it. */
export async function exists(path: string): Promise<boolean> {
  try {
    await lstat(path);
    return true;
  } catch {
    return false;
  }
}

/** A folder's entries sorted by name, [] when it is absent (never follows into special files). */
export async function listFolder(dir: string): Promise<{ name: string; isDir: boolean }[]> {
  let names: string[];
  try {
    names = (await readdir(dir)).sort();
  } catch (e) {
    if (errno(e) === 'ENOENT' || errno(e) === 'ENOTDIR') return [];
    throw e;
  }
  const out: { name: string; isDir: boolean }[] = [];
  for (const name of names) {
    // stat (not lstat): a symlinked model folder is fine; its files are still confined to it.
    const st = await stat(join(dir, name)).catch(() => null);
    out.push({ name, isDir: !!st?.isDirectory() });
  }
  return out;
}

/** One line per file for a cache key: name, size, mtime, inode (lstat: links and FIFOs are not followed). */
export async function folderSignature(paths: readonly string[]): Promise<string> {
  const parts: string[] = [];
  for (const p of paths) {
    try {
      const st = await lstat(p);
      parts.push(`${p}:${st.size}:${st.mtimeMs}:${st.ino}:${st.mode}`);
    } catch {
      parts.push(`${p}:-`);
    }
  }
  return parts.join('\n');
}
