// scripts/fetch-models.mjs, run as a child process against real files in temp folders.
import { execFile } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { verifyModelDir } from '../scripts/model-files.mjs';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const SCRIPT = join(ROOT, 'scripts/fetch-models.mjs');
const ID = 'mobilenet-v1-0.25';
const REAL = resolve(ROOT, '../shared/models', ID);
const SHARD = 'group29-shard1of1'; // the big one (1 MB)
const UNREACHABLE = 'http://127.0.0.1:9/';

interface Run {
  code: number | null;
  out: string;
}

let work: string;
let seq = 0;

/** A fresh models dir holding a copy of the real descriptor (public URL made unreachable) + SHA256SUMS. */
function modelsDir(): string {
  const dir = join(work, `models-${++seq}`);
  mkdirSync(join(dir, ID), { recursive: true });
  const desc = JSON.parse(readFileSync(join(ROOT, 'models', ID, 'deepvis.json'), 'utf8'));
  desc.weights.url = UNREACHABLE;
  writeFileSync(join(dir, ID, 'deepvis.json'), JSON.stringify(desc, null, 2));
  cpSync(join(ROOT, 'models', ID, 'SHA256SUMS'), join(dir, ID, 'SHA256SUMS'));
  return dir;
}

/** A mirror folder holding <id>/ with the real weight files. */
function mirrorDir(): string {
  const dir = join(work, `mirror-${++seq}`);
  mkdirSync(dir);
  cpSync(REAL, join(dir, ID), { recursive: true });
  return dir;
}

function emptyDir(): string {
  const dir = join(work, `empty-${++seq}`);
  mkdirSync(dir);
  return dir;
}

function run(args: string[], env: Record<string, string>): Promise<Run> {
  const base = { ...process.env };
  for (const k of ['DEEPVIS_MODEL_MIRROR', 'DEEPVIS_SHARED_MODELS', 'DEEPVIS_SKIP_MODELS', 'DEEPVIS_MODELS_DIR']) delete base[k];
  return new Promise((res) => {
    execFile(process.execPath, [SCRIPT, ...args], { env: { ...base, ...env }, timeout: 15_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : null) : 0;
      res({ code, out: `${stdout}${stderr}` });
    });
  });
}

const fetchArgs = (dir: string) => ['--models-dir', dir, '--only', ID];
const leftovers = (dir: string) => readdirSync(join(dir, ID)).filter((n) => n.startsWith('.fetching'));

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'deepvis-fetch-'));
});
afterAll(() => {
  rmSync(work, { recursive: true, force: true });
});

describe.skipIf(!existsSync(join(REAL, 'model.json')))('fetch-models', () => {
  it('(a) fetches from a good mirror folder, verifies, then reports cached', async () => {
    const dir = modelsDir();
    const env = { DEEPVIS_MODEL_MIRROR: mirrorDir(), DEEPVIS_SHARED_MODELS: emptyDir() };
    const r1 = await run(fetchArgs(dir), env);
    expect(r1.code, r1.out).toBe(0);
    expect(r1.out).toMatch(new RegExp(`${ID} … ok \\(2\\.0 MB from mirror `));
    expect(verifyModelDir(join(dir, ID))).toEqual({ ok: true, problems: [] });
    expect(readFileSync(join(dir, ID, SHARD))).toEqual(readFileSync(join(REAL, SHARD)));
    expect(leftovers(dir)).toEqual([]);

    const r2 = await run(fetchArgs(dir), env);
    expect(r2.code, r2.out).toBe(0);
    expect(r2.out).toContain(`${ID} … ok (cached)`);

    const r3 = await run([...fetchArgs(dir), '--check'], env);
    expect(r3.code, r3.out).toBe(0);
  });

  it('(b) corrupt mirror shard, no shared copy, offline URL: exit 1, names the file, no model.json left', async () => {
    const dir = modelsDir();
    // A stale model.json from an earlier, incomplete attempt must not survive a failed fetch.
    cpSync(join(REAL, 'model.json'), join(dir, ID, 'model.json'));
    const mirror = mirrorDir();
    const shard = join(mirror, ID, SHARD);
    const bytes = readFileSync(shard);
    bytes.writeUInt8(bytes.readUInt8(1000) ^ 0xff, 1000);
    writeFileSync(shard, bytes);

    const r = await run(fetchArgs(dir), { DEEPVIS_MODEL_MIRROR: mirror, DEEPVIS_SHARED_MODELS: emptyDir() });
    expect(r.code, r.out).toBe(1);
    const line = r.out.split('\n').find((l) => l.includes(`${ID} … FAILED`));
    expect(line, r.out).toBeDefined();
    expect(line).toContain(`${SHARD} has wrong sha256`);
    expect(line).toContain('127.0.0.1'); // the public URL was tried too
    expect(line).toContain('DEEPVIS_MODEL_MIRROR');
    expect(existsSync(join(dir, ID, 'model.json'))).toBe(false);
    expect(leftovers(dir)).toEqual([]);
    expect(verifyModelDir(join(dir, ID)).ok).toBe(false);
  });

  it('(e) a damaged SHA256SUMS beside a working model: exit 1 saying so, and no file of the model is deleted or changed', async () => {
    const dir = modelsDir();
    const env = { DEEPVIS_MODEL_MIRROR: mirrorDir(), DEEPVIS_SHARED_MODELS: emptyDir() };
    expect((await run(fetchArgs(dir), env)).code).toBe(0);
    const sums = join(dir, ID, 'SHA256SUMS');
    // One hex digit of the shard's line flipped, as a bad edit or a bit rot would.
    const text = readFileSync(sums, 'utf8').replace(new RegExp(`^([0-9a-f])([0-9a-f]{63}\\s+\\*?${SHARD})$`, 'm'), (_m, c: string, rest: string) => `${c === '0' ? '1' : '0'}${rest}`);
    expect(text).not.toBe(readFileSync(sums, 'utf8'));
    writeFileSync(sums, text);
    const before = readdirSync(join(dir, ID)).sort().map((f) => [f, readFileSync(join(dir, ID, f)).toString('base64')]);

    const r = await run(fetchArgs(dir), env);
    expect(r.code, r.out).toBe(1);
    expect(r.out).toMatch(new RegExp(`SHA256SUMS looks damaged: ${SHARD} matches the source's copy byte for byte.*no file was changed — restore it`));
    const after = readdirSync(join(dir, ID)).sort().map((f) => [f, readFileSync(join(dir, ID, f)).toString('base64')]);
    expect(after).toEqual(before);
    expect(readFileSync(join(dir, ID, 'model.json'))).toEqual(readFileSync(join(REAL, 'model.json')));
  });

  it('(c) falls back to DEEPVIS_SHARED_MODELS when the mirror lacks the model', async () => {
    const dir = modelsDir();
    const shared = mirrorDir();
    const r = await run(fetchArgs(dir), { DEEPVIS_MODEL_MIRROR: emptyDir(), DEEPVIS_SHARED_MODELS: shared });
    expect(r.code, r.out).toBe(0);
    // The script names the source relative to the project when that is shorter (a clone under /tmp
    // sees this temp dir as ../…), so match the source folder's own tail.
    expect(r.out).toMatch(new RegExp(`ok \\(2\\.0 MB from \\S*${basename(dirname(shared))}/${basename(shared)}\\)`));
    expect(verifyModelDir(join(dir, ID)).ok).toBe(true);
    expect(leftovers(dir)).toEqual([]);
  });

  it('(d) --check on a truncated shard: exit 1 naming it, nothing fetched or deleted', async () => {
    const dir = modelsDir();
    const env = { DEEPVIS_MODEL_MIRROR: mirrorDir(), DEEPVIS_SHARED_MODELS: emptyDir() };
    expect((await run(fetchArgs(dir), env)).code).toBe(0);
    truncateSync(join(dir, ID, SHARD), 100);

    const r = await run([...fetchArgs(dir), '--check'], env);
    expect(r.code, r.out).toBe(1);
    expect(r.out).toContain(`${SHARD}: wrong sha256`);
    expect(readFileSync(join(dir, ID, SHARD)).length).toBe(100);
    expect(existsSync(join(dir, ID, 'model.json'))).toBe(true);
    expect(verifyModelDir(join(dir, ID)).problems).toEqual([expect.stringContaining(SHARD)]);

    // A normal run repairs just that file.
    const fix = await run(fetchArgs(dir), env);
    expect(fix.code, fix.out).toBe(0);
    expect(fix.out).toContain('ok (2 of 56 files'); // the shard, plus model.json re-committed last
    expect(verifyModelDir(join(dir, ID)).ok).toBe(true);
  });

  describe('http mirror', () => {
    let server: Server;
    let base: string;
    const hits: string[] = [];
    beforeAll(async () => {
      server = createServer((req, res) => {
        const url = req.url ?? '/';
        hits.push(url);
        if (url.startsWith('/hang/')) return; // never answers
        const file = join(REAL, url.split('/').pop() ?? '');
        if (!url.startsWith(`/${ID}/`) || !existsSync(file)) {
          res.writeHead(404).end('not found');
          return;
        }
        res.writeHead(200, { 'content-type': 'application/octet-stream' }).end(readFileSync(file));
      });
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
      base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    });
    afterAll(() => {
      server.closeAllConnections();
      server.close();
    });

    it('downloads from an http(s) DEEPVIS_MODEL_MIRROR', async () => {
      const dir = modelsDir();
      const r = await run(fetchArgs(dir), { DEEPVIS_MODEL_MIRROR: `${base}/`, DEEPVIS_SHARED_MODELS: emptyDir() });
      expect(r.code, r.out).toBe(0);
      expect(r.out).toContain(`from mirror ${base}/`);
      expect(hits).toContain(`/${ID}/${SHARD}`);
      expect(verifyModelDir(join(dir, ID)).ok).toBe(true);
    });

    it('reports HTTP errors and stalled downloads', async () => {
      const dir = modelsDir();
      const r404 = await run(fetchArgs(dir), { DEEPVIS_MODEL_MIRROR: `${base}/nothing`, DEEPVIS_SHARED_MODELS: emptyDir() });
      expect(r404.code).toBe(1);
      expect(r404.out).toMatch(/HTTP 404/);
      const hang = await run(fetchArgs(dir), {
        DEEPVIS_MODEL_MIRROR: `${base}/hang`,
        DEEPVIS_SHARED_MODELS: emptyDir(),
        DEEPVIS_FETCH_TIMEOUT_MS: '300',
      });
      expect(hang.code).toBe(1);
      expect(hang.out).toMatch(/no data for 300 ms from 127\.0\.0\.1/);
      expect(leftovers(dir)).toEqual([]);
    });
  });

  it('skips user models without a weights block, and DEEPVIS_SKIP_MODELS', async () => {
    const dir = modelsDir();
    mkdirSync(join(dir, 'mine'));
    writeFileSync(join(dir, 'mine', 'deepvis.json'), JSON.stringify({ id: 'mine', title: 'my own net' }));
    const r = await run(['--models-dir', dir, '--only', 'mine'], {});
    expect(r.code, r.out).toBe(0);
    expect(r.out).toContain('mine … user model, not managed');

    const skip = await run(['--models-dir', dir], { DEEPVIS_SKIP_MODELS: '1' });
    expect(skip.code).toBe(0);
    expect(skip.out).toContain('DEEPVIS_SKIP_MODELS');
    expect(existsSync(join(dir, ID, 'model.json'))).toBe(false);
  });
});
