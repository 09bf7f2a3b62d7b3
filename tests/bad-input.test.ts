// What a hostile or clumsy user can open or send, each met where it is met in use: a model folder
// holding a FIFO, a device, links and paths out of it, a duplicate id (the engine keeps listing and
// serving the other models, within bounded time); two index runs on one folder (exactly one gets
// the lock, neither loses the other's images); outputs that would overwrite an input or follow a
// link (refused, nothing outside the output changes). Real files, real processes, real models.
import { execFile, spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { acquireLock, LockHeld } from '../main/persist/lock-file.js';
import { REPO } from './support/fixtures.js';

const CONTENDER = join(REPO, 'tests/support/lock-contender.mjs');

let work: string;
beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'deepvis-bad-input-'));
});
afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

/** The pid of a process that has exited (so a lock naming it is stale). */
function deadPid(): number {
  const r = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
  return Number(r.stdout);
}

function run(args: string[]): Promise<string> {
  return new Promise((done, fail) => execFile(process.execPath, args, { cwd: REPO, timeout: 120_000 }, (err, stdout) => (err ? fail(err) : done(stdout))));
}

describe('the index lock', () => {
  it('20 overlapping starts in separate processes over a stale lock: exactly one gets in, the others are told who holds it', async () => {
    const target = join(work, 'procs.json');
    writeFileSync(`${target}.lock`, JSON.stringify({ token: 'd'.repeat(32), pid: deadPid(), host: (await import('node:os')).hostname(), started: 1 }));
    // All start at one instant, well after every process has loaded (2 loaded cores).
    const startAt = Date.now() + 12_000;
    const outs = await Promise.all(Array.from({ length: 20 }, () => run([CONTENDER, target, String(startAt), '4000'])));
    const got = outs.filter((o) => o.startsWith('got'));
    expect(got, outs.join('')).toHaveLength(1);
    expect(got[0]).toContain('released true');
    for (const o of outs.filter((x) => !x.startsWith('got'))) expect(o).toMatch(/^held: .*procs\.json is being written by process \d+, since .*; wait for it to finish or stop it/);
    expect(readdirSync(work).filter((f) => f.startsWith('procs.json'))).toEqual([]); // no lock, breaker or temp left
  }, 120_000);

  it('20 overlapping starts in one process over a stale lock: exactly one gets in', async () => {
    const target = join(work, 'inproc.json');
    writeFileSync(`${target}.lock`, String(deadPid())); // the old format: a bare pid
    const results = await Promise.allSettled(Array.from({ length: 20 }, () => acquireLock(target)));
    const got = results.filter((r) => r.status === 'fulfilled');
    expect(got).toHaveLength(1);
    for (const r of results) if (r.status === 'rejected') expect(r.reason).toBeInstanceOf(LockHeld);
    await (got[0] as PromiseFulfilledResult<Awaited<ReturnType<typeof acquireLock>>>).value.release();
  });

  it('is released only by its owner: a run whose lock was taken over does not remove the new owner’s lock', async () => {
    const target = join(work, 'owner.json');
    const first = await acquireLock(target);
    // The first run's process is presumed dead and its lock taken over (simulated by rewriting it).
    writeFileSync(`${target}.lock`, JSON.stringify({ token: 'n'.repeat(32), pid: process.pid, host: (await import('node:os')).hostname(), started: Date.now() }));
    expect(await first.release()).toBe(false);
    expect(JSON.parse(readFileSync(`${target}.lock`, 'utf8')).token).toBe('n'.repeat(32));
    await expect(acquireLock(target)).rejects.toThrow(/is being written by process/);
    rmSync(`${target}.lock`);
  });

  it('a lock held by a live process on another host is never taken over', async () => {
    const target = join(work, 'remote.json');
    writeFileSync(`${target}.lock`, JSON.stringify({ token: 'r'.repeat(32), pid: 1, host: 'elsewhere.example', started: Date.now() }));
    await expect(acquireLock(target)).rejects.toThrow(/process 1 on elsewhere\.example.*remove .*remote\.json\.lock if that host is down/);
    rmSync(`${target}.lock`);
  });

  it('a lock file that is a symlink is not followed when released', async () => {
    const victim = join(work, 'victim.txt');
    writeFileSync(victim, 'keep');
    const target = join(work, 'linked.json');
    symlinkSync(victim, `${target}.lock`);
    await expect(acquireLock(target)).rejects.toThrow(LockHeld); // unreadable and fresh: held
    expect(readFileSync(victim, 'utf8')).toBe('keep');
    rmSync(`${target}.lock`);
  });
});
