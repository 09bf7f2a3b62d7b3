// The one way DeepVis writes a file it must never leave half-written (settings, exported PNG/JSON,
// atlas tiles and index, the top-k index): the bytes go to a temp file beside the target, are
// fsynced, renamed over the target in one step, and the folder is fsynced so the rename itself
// survives a power cut. A reader therefore sees the old file or the new one, never a mix — even when
// the writer is killed mid-way. (The write-file-atomic package does the first three steps but not
// the folder fsync.)
//
// Temp files are named `<target>.<pid>-<random>.tmp`. One left by a killed writer is never read
// (readers open the target only) and is removed by the next write of the same target.
import { randomBytes } from 'node:crypto';
import { closeSync, fsyncSync, mkdirSync, openSync, readdirSync, renameSync, rmSync, writeSync } from 'node:fs';
import { mkdir, open, readdir, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

const TEMP_SUFFIX = /^(\d+)-[0-9a-f]+\.tmp$/;

function tempPath(path: string): string {
  return `${path}.${process.pid}-${randomBytes(4).toString('hex')}.tmp`;
}

/** Whether `name` (a file name in the target's folder) is a temp file of `base`, and whose. */
function tempOwner(base: string, name: string): number | null {
  if (!name.startsWith(base + '.')) return null;
  const m = TEMP_SUFFIX.exec(name.slice(base.length + 1));
  return m ? Number(m[1]) : null;
}

export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** A temp file whose writer is gone (a live writer — another process or this one — may still finish). */
function isStale(pid: number): boolean {
  return pid !== process.pid && !pidAlive(pid);
}

/** The temp files among `names` (a listing of path's folder) whose writers died mid-write. */
function staleTemps(path: string, names: string[]): string[] {
  const base = basename(path);
  return names.filter((name) => {
    const pid = tempOwner(base, name);
    return pid !== null && isStale(pid);
  });
}

/** Remove temp files left beside `path` by writers that died mid-write; returns how many. */
export async function removeStaleTemps(path: string): Promise<number> {
  let names: string[];
  try {
    names = staleTemps(path, await readdir(dirname(path)));
  } catch {
    return 0;
  }
  for (const name of names) await rm(join(dirname(path), name), { force: true });
  return names.length;
}

export function removeStaleTempsSync(path: string): number {
  let names: string[];
  try {
    names = staleTemps(path, readdirSync(dirname(path)));
  } catch {
    return 0;
  }
  for (const name of names) rmSync(join(dirname(path), name), { force: true });
  return names.length;
}

async function syncDir(dir: string): Promise<void> {
  // Best effort: not every platform can open a folder (Windows cannot).
  try {
    const d = await open(dir, 'r');
    try {
      await d.sync();
    } finally {
      await d.close();
    }
  } catch {
    /* the rename is still atomic, only its durability is not forced */
  }
}

function syncDirSync(dir: string): void {
  try {
    const fd = openSync(dir, 'r');
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  } catch {
    /* see syncDir */
  }
}

/**
 * Write `data` to `path` and fsync it before closing, so its bytes are on disk before anyone acts
 * on the file (renames it over a target, links it to a lock name). `wx`: fail with EEXIST when
 * `path` exists.
 */
export async function writeSynced(path: string, data: string | Uint8Array, flag: 'w' | 'wx' = 'w'): Promise<void> {
  const fh = await open(path, flag);
  try {
    await fh.writeFile(data);
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/**
 * Write `data` to `path` atomically and durably (see the top of this file). Creates the folder;
 * removes stale temp files of this target first. On failure the target is untouched and the temp
 * file removed.
 */
export async function writeFileAtomic(path: string, data: string | Uint8Array): Promise<void> {
  const dir = dirname(path);
  await mkdir(dir, { recursive: true });
  await removeStaleTemps(path);
  const tmp = tempPath(path);
  try {
    await writeSynced(tmp, data);
    await rename(tmp, path);
  } catch (e) {
    await rm(tmp, { force: true });
    throw e;
  }
  await syncDir(dir);
}

/** writeFileAtomic for places that cannot wait (a window closing, process exit). */
export function writeFileAtomicSync(path: string, data: string | Uint8Array): void {
  const dir = dirname(path);
  mkdirSync(dir, { recursive: true });
  removeStaleTempsSync(path);
  const tmp = tempPath(path);
  try {
    const fd = openSync(tmp, 'w');
    try {
      const bytes = typeof data === 'string' ? Buffer.from(data) : data;
      for (let at = 0; at < bytes.byteLength; ) at += writeSync(fd, bytes, at, bytes.byteLength - at);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, path);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw e;
  }
  syncDirSync(dir);
}
