// Bad image files, as a visitor's USB stick delivers them: a truncated JPEG, PNGs with a wrong
// checksum, a 0-byte file, a text file named .jpg and 20000×20000 decompression bombs. Each gets one
// line naming the file and what is wrong — from the engine, from `deepvis classify` and from
// `deepvis index` — memory stays bounded (the bombs are refused from their header), and the good
// images beside them are still classified and indexed.
import { execFile } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeFailure, decodeImage, MAX_INPUT_PIXELS } from '../main/engine/images.js';
import { TopKIndex } from '../main/engine/topk/index-file.js';
import { makeBadImages, type BadImages } from './support/bad-images.js';
import { runDeepvis } from './support/cli.js';
import { photo, REPO } from './support/fixtures.js';

const MODEL = 'mobilenet-v1-0.25';
const short = (s: string) => (s.length > 1500 ? s.slice(0, 1500) + '…' : s);

let dir: string;
let bad: BadImages;
/** A real, fully encoded 20000×20000 PNG (black, ~1 MB): decoding it would take 1.2 GB. */
let bombPng: string;

/** What each bad file must be called, in the one line about it. */
function expectedReasons(): Array<[string, RegExp]> {
  return [
    [bad.truncatedJpeg, /the file is truncated/],
    [bad.badCrcPng, /damaged PNG \(a chunk checksum is wrong\)/],
    [bad.badCrcDataPng, /damaged PNG data/],
    [bad.empty, /empty file \(0 bytes\), not an image/],
    [bad.hugeJpeg, /20000×20000 pixels \(400 MP\) is above the 100 MP limit/],
    [bad.hugePng, /20000×20000 pixels \(400 MP\) is above the 100 MP limit/],
    [bad.notImage, /not an image, or a format DeepVis cannot read/],
  ];
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'deepvis-bad-images-'));
  bad = await makeBadImages(join(dir, 'bad'));
  bombPng = join(dir, 'bomb-20000.png');
  await sharp({ create: { width: 20_000, height: 20_000, channels: 3, background: '#000' }, limitInputPixels: false })
    .png({ compressionLevel: 9 })
    .toFile(bombPng);
}, 60_000);

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('engine: decodeImage', () => {
  it('refuses each bad file with one line naming it and what is wrong', async () => {
    for (const [file, reason] of expectedReasons()) {
      const err = await decodeImage(file).then(
        () => null,
        (e: unknown) => e as Error,
      );
      expect(err, file).toBeInstanceOf(Error);
      expect(err!.message.split('\n'), file).toHaveLength(1);
      expect(err!.message.startsWith(`${file}: `), err!.message).toBe(true);
      expect(err!.message).toMatch(reason);
    }
    // Buffers (stdin, the app's listings) get the same checks, under the caller's label.
    await expect(decodeImage(Buffer.alloc(0), 'stdin')).rejects.toThrow(/^stdin: empty file \(0 bytes\)/);
    await expect(decodeImage(readFileSync(bad.hugePng), 'bomb')).rejects.toThrow(/^bomb: 20000×20000 pixels/);
    const good = await decodeImage(photo('dog'));
    expect([good.width, good.height]).toEqual([768, 576]);
  });

  it('names the problem from the file itself when libvips reports "Unknown error" or another file\'s message (both seen with several decodes in flight)', async () => {
    const decodeErrors = expectedReasons().filter(([f]) => ![bad.empty, bad.hugeJpeg, bad.hugePng].includes(f));
    expect(decodeErrors).toHaveLength(4);
    for (const libvips of ['Unknown error', 'VipsJpeg: Premature end of input file', 'pngload: libpng read error', 'Input file contains unsupported image format']) {
      for (const [file, reason] of decodeErrors) {
        const e = await decodeFailure(new Error(libvips), file, file);
        expect(e.message, `${file} with "${libvips}"`).toMatch(reason);
      }
    }
  });

  it('a real 20000×20000 PNG is refused from its header: resident memory stays bounded', { timeout: 60_000 }, async () => {
    // In a fresh process, so its peak resident memory (maxRSS) measures these decodes and nothing else.
    const script = `
      import { decodeImage } from ${JSON.stringify(join(REPO, 'main/engine/images.ts'))};
      const rssStart = process.memoryUsage().rss;
      const errors = [];
      for (const f of process.argv.slice(1)) await decodeImage(f).then(() => errors.push(null), (e) => errors.push(e.message));
      console.log(JSON.stringify({ errors, rssStart, maxRss: process.resourceUsage().maxRSS * 1024 }));`;
    const files = [bombPng, bad.hugeJpeg, bad.hugePng, photo('kite')];
    const stdout = await new Promise<string>((res, rej) =>
      execFile(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script, ...files], { cwd: REPO, timeout: 60_000 }, (err, out, errOut) =>
        err ? rej(new Error(`${err.message}\n${short(errOut)}`)) : res(out),
      ),
    );
    const r = JSON.parse(stdout) as { errors: Array<string | null>; rssStart: number; maxRss: number };
    const mb = (n: number) => Math.round(n / 2 ** 20);
    console.log(`bombs refused: RSS start ${mb(r.rssStart)} MB, peak ${mb(r.maxRss)} MB (+${mb(r.maxRss - r.rssStart)} MB; the bomb's raster alone would be ${mb(20_000 * 20_000 * 3)} MB)`);
    expect(r.errors.slice(0, 3)).toEqual(files.slice(0, 3).map((f) => `${f}: 20000×20000 pixels (400 MP) is above the ${MAX_INPUT_PIXELS / 1e6} MP limit; scale it down first`));
    expect(r.errors[3]).toBeNull(); // and a real photo (12 MP kite) decodes in the same process
    expect(r.maxRss - r.rssStart).toBeLessThan(200 * 2 ** 20);
  });
});

describe('deepvis classify', () => {
  it('each bad file alone: exit 2, one line naming it and the reason, no crash', { timeout: 120_000 }, async () => {
    const runs = await Promise.all([bad.truncatedJpeg, bad.hugePng].map((f) => runDeepvis(['classify', '--model', MODEL, f])));
    for (const [i, r] of runs.entries()) {
      const f = [bad.truncatedJpeg, bad.hugePng][i]!;
      expect(r.signal, short(r.stderr)).toBeNull();
      expect(r.code, short(r.stderr)).toBe(2);
      const lines = r.stderr.split('\n').filter((l) => l.trim());
      expect(lines, short(r.stderr)).toHaveLength(1);
      expect(lines[0]).toMatch(new RegExp(`^deepvis: ${f.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: `));
    }
  });

  it('all bad files and a good one in one call: a line for each bad one, the good one classified', { timeout: 120_000 }, async () => {
    const reasons = expectedReasons();
    const r = await runDeepvis(['classify', '--model', MODEL, '--json', ...reasons.slice(0, 3).map(([f]) => f), photo('dog'), ...reasons.slice(3).map(([f]) => f)]);
    expect(r.signal, short(r.stderr)).toBeNull();
    expect(r.code, short(r.stderr)).toBe(2);
    const lines = r.stderr.split('\n').filter((l) => l.trim());
    expect(lines, short(r.stderr)).toHaveLength(reasons.length);
    for (const [f, reason] of reasons) {
      const mine = lines.filter((l) => l.startsWith(`deepvis: ${f}: `));
      expect(mine, `${f}\n${short(r.stderr)}`).toHaveLength(1);
      expect(mine[0]).toMatch(reason);
    }
    const out = JSON.parse(r.stdout) as { results: Array<{ image: string; top5?: Array<{ name: string }>; error?: string }> };
    const dog = out.results.find((x) => x.image === photo('dog'))!;
    expect(dog.error).toBeUndefined();
    expect(dog.top5).toHaveLength(5);
    expect(out.results.filter((x) => x.error)).toHaveLength(reasons.length);
  });
});

describe('deepvis index over a folder mixing good and bad files', () => {
  it('indexes the good ones, lists the bad ones with reasons, and the index stays readable', { timeout: 240_000 }, async () => {
    const folder = join(dir, 'mixed');
    mkdirSync(folder);
    const good = (['dog', 'eagle', 'kite'] as const).map((p) => {
      const to = join(folder, `${p}.jpg`);
      copyFileSync(photo(p), to);
      return to;
    });
    const reasons = expectedReasons();
    for (const [f] of reasons) copyFileSync(f, join(folder, f.split('/').pop()!));
    const indexDir = join(dir, 'index');
    const args = ['index', '--model', MODEL, folder, '--index-dir', indexDir, '--json'];
    const r = await runDeepvis(args, 180_000);
    expect(r.signal, short(r.stderr)).toBeNull();
    expect(r.code, short(r.stderr)).toBe(0);
    const s = JSON.parse(r.stdout) as { images: number; added: number; unreadable: Array<{ path: string; error: string }> };
    expect(s).toMatchObject({ images: 3, added: 3 });
    // Only JPEG/PNG names are indexed: all seven bad files carry one.
    expect(s.unreadable.map((u) => u.path).sort()).toEqual(reasons.map(([f]) => join(folder, f.split('/').pop()!)).sort());
    for (const [f, reason] of reasons) {
      const u = s.unreadable.find((x) => x.path === join(folder, f.split('/').pop()!))!;
      expect(u.error, u.path).toMatch(reason);
      expect(r.stderr).toContain(`${u.path}: ${u.error}`);
    }
    // Nothing in the index is corrupted: it reads back with exactly the good images, and `top` answers.
    const idx = await TopKIndex.read(join(indexDir, `${MODEL}.topk.json`));
    expect(idx.imageCount).toBe(3);
    expect(idx.files.filter(Boolean).map((f) => f!.path).sort()).toEqual(good.sort());
    const top = await runDeepvis(['top', '--model', MODEL, '--layer', 'pw5', '--unit', '3', '--k', '3', '--index-dir', indexDir, '--json']);
    expect(top.code, short(top.stderr)).toBe(0);
    const rows = JSON.parse(top.stdout) as unknown[] | { hits?: unknown[] };
    expect(JSON.stringify(rows)).toMatch(/(dog|eagle|kite)\.jpg/);
    expect(JSON.stringify(rows)).not.toMatch(/truncated|bad-crc|huge-20000|empty|notes/);
  });
});
