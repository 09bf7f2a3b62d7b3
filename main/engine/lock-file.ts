// A writer's lock on a file (the top-k index): `<target>.lock` holding its owner — a random token,
// pid, host and start time. Taking it is one atomic step (the owner record is written to a temp
// file and hard-linked to the lock name, which fails when the name exists), so no one ever sees a
// lock without its owner. A lock whose owner process is gone (same host, pid not alive) is taken
// over; the takeover itself is serialised by a second lock (`.lock.break`) and the lock re-read
// under it, so two processes that both saw the same stale lock cannot remove a fresh one. Release
// removes the lock only while it still holds our token.
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { link, mkdir, readFile, rm, stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import { z } from 'zod';
import { pidAlive, writeSynced } from './atomic-file.js';

const OwnerSchema = z.object({ token: z.string().min(8), pid: z.number().int().positive(), host: z.string(), started: z.number() });
export type LockOwner = z.infer<typeof OwnerSchema>;

/** A breaker dies between taking and dropping `.break` only by a crash; after this its lock is stale. */
const BREAK_STALE_MS = 10_000;
/** An owner record that cannot be parsed is being written (the copy fallback) or is junk; junk goes after this. */
const UNREADABLE_STALE_MS = 10_000;

export class LockHeld extends Error {
  constructor(
    readonly target: string,
    readonly owner: LockOwner | null,
  ) {
    const who = owner ? `process ${owner.pid}${owner.host !== hostname() ? ` on ${owner.host}` : ''}, since ${new Date(owner.started).toISOString()}` : 'another process';
    super(`${target} is being written by ${who}; wait for it to finish or stop it${owner && owner.host !== hostname() ? ` (remove ${target}.lock if that host is down)` : ''}`);
    this.name = 'LockHeld';
  }
}

export interface FileLock {
  readonly path: string;
  readonly owner: LockOwner;
  /** Remove the lock if it is still ours; true when it was. */
  release(): Promise<boolean>;
}

function code(e: unknown): string | undefined {
  return (e as NodeJS.ErrnoException).code;
}

async function readOwner(lock: string): Promise<LockOwner | 'absent' | 'unreadable'> {
  let text: string;
  try {
    text = await readFile(lock, 'utf8');
  } catch (e) {
    if (code(e) === 'ENOENT') return 'absent';
    throw e;
  }
  try {
    const r = OwnerSchema.safeParse(JSON.parse(text));
    return r.success ? r.data : 'unreadable';
  } catch {
    return 'unreadable';
  }
}

/** Create `path` holding `text` only if it does not exist; false when it does. */
async function createExclusive(path: string, text: string): Promise<boolean> {
  const tmp = `${path}.${process.pid}-${randomBytes(4).toString('hex')}.tmp`;
  await mkdir(dirname(path), { recursive: true });
  await writeSynced(tmp, text, 'wx');
  try {
    await link(tmp, path);
    return true;
  } catch (e) {
    if (code(e) === 'EEXIST') return false;
    if (code(e) !== 'EPERM' && code(e) !== 'ENOTSUP' && code(e) !== 'EXDEV') throw e;
    // A file system without hard links: exclusive create, then write (readers allow for the gap).
    try {
      await writeSynced(path, text, 'wx');
      return true;
    } catch (e2) {
      if (code(e2) === 'EEXIST') return false;
      throw e2;
    }
  } finally {
    await rm(tmp, { force: true });
  }
}

async function olderThan(path: string, ms: number): Promise<boolean> {
  try {
    return Date.now() - (await stat(path)).mtimeMs > ms;
  } catch {
    return false;
  }
}

function isStale(owner: LockOwner): boolean {
  if (owner.host !== hostname()) return false; // a pid on another machine cannot be checked
  if (owner.pid === process.pid) return false; // another holder in this process
  return !pidAlive(owner.pid);
}

/**
 * Remove the lock if it still holds the stale owner `seen` (checked again under the break lock).
 * Returns whether the caller should try to create the lock again.
 */
async function breakStale(lock: string, seen: LockOwner | 'unreadable'): Promise<boolean> {
  const breaker = `${lock}.break`;
  const me = JSON.stringify({ token: randomBytes(16).toString('hex'), pid: process.pid, host: hostname(), started: Date.now() });
  if (!(await createExclusive(breaker, me))) {
    if (await olderThan(breaker, BREAK_STALE_MS)) await rm(breaker, { force: true });
    return true; // someone else is breaking it: try again
  }
  try {
    const now = await readOwner(lock);
    if (now === 'absent') return true;
    const same = now === 'unreadable' ? seen === 'unreadable' : seen !== 'unreadable' && now.token === seen.token;
    if (same) await rm(lock, { force: true });
    return true;
  } finally {
    await rm(breaker, { force: true });
  }
}

/**
 * Take the lock of `target` (file `<target>.lock`) or throw LockHeld naming its owner. A stale
 * lock (its process gone) is taken over.
 */
export async function acquireLock(target: string): Promise<FileLock> {
  const lock = `${target}.lock`;
  const owner: LockOwner = { token: randomBytes(16).toString('hex'), pid: process.pid, host: hostname(), started: Date.now() };
  const text = JSON.stringify(owner);
  for (let attempt = 0; attempt < 50; attempt++) {
    if (await createExclusive(lock, text)) {
      return {
        path: lock,
        owner,
        release: async () => {
          const now = await readOwner(lock).catch(() => 'absent' as const);
          if (now === 'absent' || now === 'unreadable' || now.token !== owner.token) return false;
          await rm(lock, { force: true });
          return true;
        },
      };
    }
    const seen = await readOwner(lock);
    if (seen === 'absent') continue;
    if (seen === 'unreadable') {
      // Legacy locks held a bare pid; honour a live one.
      const legacyPid = Number((await readFile(lock, 'utf8').catch(() => '')).trim());
      if (Number.isSafeInteger(legacyPid) && legacyPid > 0) {
        if (legacyPid !== process.pid && pidAlive(legacyPid)) throw new LockHeld(target, { token: '-'.repeat(8), pid: legacyPid, host: hostname(), started: 0 });
      } else if (!(await olderThan(lock, UNREADABLE_STALE_MS))) {
        throw new LockHeld(target, null);
      }
    } else if (!isStale(seen)) {
      throw new LockHeld(target, seen);
    }
    await breakStale(lock, seen);
    await new Promise((r) => setTimeout(r, 5 + Math.random() * 20));
  }
  throw new Error(`cannot lock ${target}: ${lock} keeps changing hands`);
}
