// `deepvis index` and `deepvis top`, run as a user runs them, on a folder made of the fixture
// photos, mirrored/cropped copies (some as PNG, in a sub-folder) and a corrupt file: the index is
// consistent with direct forward passes, resumes, lists the corrupt file, survives being killed
// mid-run, and `top` gives receptive fields inside each original image at the right scale.
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadImageForModel, loadModel, selectBackend, type Model } from '../main/engine/index.js';
import { TopKIndex } from '../main/engine/topk/index-file.js';
import type { TopRow } from '../main/cli/top.js';
import { runDeepvis } from './support/cli.js';
import { PHOTOS, photo } from './support/fixtures.js';

const deepvis = (args: string[], timeout = 120_000) => runDeepvis(args, timeout);

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const BIN = join(ROOT, 'bin/deepvis.mjs');
const MODEL = 'mobilenet-v1-0.25';


const short = (s: string) => (s.length > 1500 ? s.slice(0, 1500) + '…' : s);

interface IndexSummary {
  images: number;
  added: number;
  skipped: number;
  forgotten: number;
  unreadable: { path: string; error: string }[];
  aborted: boolean;
  bytes: number;
}


let dir: string;
let images: string[];
const sizes = new Map<string, { width: number; height: number }>();

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'deepvis-index-'));
  const folder = join(dir, 'photos');
  mkdirSync(join(folder, 'variants', 'deeper'), { recursive: true });
  images = [];
  for (const [i, p] of PHOTOS.entries()) {
    const src = photo(p);
    const orig = join(folder, `${p}.jpg`);
    writeFileSync(orig, await sharp(src).toBuffer());
    images.push(orig);
    const meta = await sharp(src).metadata();
    // Mirror images (JPEG) for even i, off-centre crops saved as PNG for odd i.
    const out = join(folder, 'variants', i === 6 ? 'deeper' : '', i % 2 ? `${p}-crop.png` : `${p}-flop.jpg`);
    if (i % 2) {
      const w = Math.round(meta.width! * 0.6);
      const h = Math.round(meta.height! * 0.7);
      await sharp(src).extract({ left: meta.width! - w, top: 0, width: w, height: h }).png().toFile(out);
    } else await sharp(src).flop().jpeg({ quality: 90 }).toFile(out);
    images.push(out);
  }
  for (const f of images) {
    const m = await sharp(f).metadata();
    sizes.set(f, { width: m.width!, height: m.height! });
  }
  // A truncated JPEG (valid header, no data) and a file that is not an image at all.
  const jpeg = await sharp(photo('dog')).toBuffer();
  writeFileSync(join(folder, 'variants', 'broken.jpg'), jpeg.subarray(0, 300));
  writeFileSync(join(folder, 'notes.txt'), 'not an image, not a JPEG/PNG name: ignored');
}, 60_000);

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('deepvis index + top', () => {
  let indexDir: string;
  let first: IndexSummary;
  let model: Model;

  beforeAll(async () => {
    indexDir = join(dir, 'index');
    await selectBackend('wasm');
    model = await loadModel(MODEL);
  });

  afterAll(() => model?.dispose());

  it('indexes 14 images, skips and lists the corrupt file, exit 0', async () => {
    const r = await deepvis(['index', '--model', MODEL, join(dir, 'photos'), '--index-dir', indexDir, '--json']);
    expect(r.code, short(r.stderr)).toBe(0);
    first = JSON.parse(r.stdout) as IndexSummary;
    expect(first).toMatchObject({ images: 14, added: 14, skipped: 0, aborted: false });
    expect(first.unreadable.map((u) => u.path)).toEqual([join(dir, 'photos', 'variants', 'broken.jpg')]);
    // Listed on stderr at the end, with the reason; progress lines name the model.
    expect(r.stderr).toMatch(/1 unreadable file\(s\) skipped:\n\s+\S*broken\.jpg: cannot read image/);
    expect(r.stderr).toContain(`index ${MODEL}`);
    expect(r.stderr).toMatch(/14 new image\(s\) indexed/);
    const idx = await TopKIndex.read(join(indexDir, `${MODEL}.topk.json`));
    expect(idx.imageCount).toBe(14);
    expect(idx.checksum).toBe(model.checksum);
    expect(new Set(idx.files.map((f) => f!.path))).toEqual(new Set(images));
    expect(readdirSync(indexDir).sort()).toEqual([`${MODEL}.topk.json`]);
    console.log(`index of 14 images for ${MODEL}: ${first.bytes} bytes`);
  });

  it("top-1 of units agrees with a direct forward pass (stored position, and the max over all images)", async () => {
    expect(first, 'needs the index run above').toBeDefined();
    const idx = await TopKIndex.read(join(indexDir, `${MODEL}.topk.json`));
    const cases: [string, number][] = [
      ['conv1', 4],
      ['pw3', 5],
      ['dw8', 20],
      ['pw11', 17],
      ['logits', 1],
    ];
    const names = cases.map(([l]) => model.layer(l).name);
    const maps = new Map<string, tf.Tensor4D[]>();
    for (const f of images) {
      const px = await loadImageForModel(f, model.inputSize);
      maps.set(
        f,
        tf.tidy(() => {
          const r = model.forward(model.preprocess(px), { taps: names, logits: false });
          return names.map((n) => tf.keep(r.taps[n]!));
        }),
      );
      px.dispose();
    }
    for (const [ci, [l, u]] of cases.entries()) {
      const [top1] = idx.top(l, u, 1);
      expect(top1, `${l}:${u}`).toBeDefined();
      const at = tf.tidy(() => maps.get(top1!.image)![ci]!.slice([0, top1!.y, top1!.x, u], [1, 1, 1, 1]).dataSync()[0]!);
      // The CLI ran on the default backend (ONNX Runtime where installed), this test on its own:
      // the two agree to float32 rounding, not to the last bit.
      const close = (a: number, b: number) => Math.abs(a - b) <= 1e-5 * Math.max(1, Math.abs(b));
      expect(close(at, top1!.activation), `${l}:${u} recomputed at the stored position: ${at} vs ${top1!.activation}`).toBe(true);
      const best = Math.max(...images.map((f) => tf.tidy(() => tf.max(maps.get(f)![ci]!.slice([0, 0, 0, u], [-1, -1, -1, 1])).dataSync()[0]!)));
      expect(close(top1!.activation, best), `${l}:${u} is the max over all 14 images: ${top1!.activation} vs ${best}`).toBe(true);
    }
    for (const ts of maps.values()) tf.dispose(ts);
  });

  it('resumes: a second run scans nothing; a touched file is re-read', async () => {
    expect(first, 'needs the index run above').toBeDefined();
    const again = await deepvis(['index', '--model', MODEL, join(dir, 'photos'), '--index-dir', indexDir, '--json']);
    expect(again.code, short(again.stderr)).toBe(0);
    const s = JSON.parse(again.stdout) as IndexSummary;
    expect(s).toMatchObject({ images: 14, added: 0, skipped: 15, forgotten: 0 });
    // The corrupt file is still reported (from the index), not re-read.
    expect(s.unreadable.map((u) => u.path)).toEqual([join(dir, 'photos', 'variants', 'broken.jpg')]);
    const touched = images[3]!;
    const t = new Date(Date.now() - 3600_000);
    utimesSync(touched, t, t);
    const third = await deepvis(['index', '--model', MODEL, join(dir, 'photos'), '--index-dir', indexDir, '--json']);
    expect(third.code, short(third.stderr)).toBe(0);
    expect(JSON.parse(third.stdout)).toMatchObject({ images: 14, added: 1, skipped: 14, forgotten: 1 });
  });

  it('top --json: boxes inside each original image, the receptive field scaled to it', async () => {
    expect(first, 'needs the index run above').toBeDefined();
    // pw5 of MobileNet: 43-px field, stride 8, offset −14 (see receptive-field.test.ts).
    const r = await deepvis(['top', '--model', MODEL, '--layer', 'pw5', '--unit', '3', '--index-dir', indexDir, '--json']);
    expect(r.code, short(r.stderr)).toBe(0);
    const rows = JSON.parse(r.stdout) as TopRow[];
    expect(rows).toHaveLength(9);
    const idx = await TopKIndex.read(join(indexDir, `${MODEL}.topk.json`));
    const hits = idx.top('pw5', 3);
    for (const [i, row] of rows.entries()) {
      expect(Object.keys(row).sort()).toEqual(['activation', 'h', 'image', 'w', 'x', 'y']);
      const { width, height } = sizes.get(row.image)!;
      expect(row.x).toBeGreaterThanOrEqual(0);
      expect(row.y).toBeGreaterThanOrEqual(0);
      expect(row.x + row.w).toBeLessThanOrEqual(width);
      expect(row.y + row.h).toBeLessThanOrEqual(height);
      if (i > 0) expect(row.activation).toBeLessThanOrEqual(rows[i - 1]!.activation);
      // Scale: the centre crop is min(W, H) square, shown as 224 px.
      const s = Math.min(width, height) / 224;
      const hit = hits[i]!;
      expect(row).toMatchObject({ image: hit.image, activation: hit.activation });
      const inside = hit.inputBox.x >= 0 && hit.inputBox.y >= 0 && hit.inputBox.x + 43 <= 224 && hit.inputBox.y + 43 <= 224;
      if (inside) {
        // Unclipped: 43 model pixels, rounded outward to whole original pixels.
        expect(row.w).toBeGreaterThanOrEqual(Math.floor(43 * s));
        expect(row.w).toBeLessThanOrEqual(Math.ceil(43 * s) + 1);
        expect(row.h).toBeGreaterThanOrEqual(Math.floor(43 * s));
        expect(row.h).toBeLessThanOrEqual(Math.ceil(43 * s) + 1);
      } else {
        expect(row.w).toBeLessThanOrEqual(Math.ceil(43 * s) + 1);
        expect(row.w * row.h).toBeGreaterThan(0);
      }
    }
    // A global layer (logits): the whole centre crop.
    const g = await deepvis(['top', '--model', MODEL, '--layer', 'logits', '--unit', '0', '--k', '3', '--index-dir', indexDir, '--json']);
    expect(g.code, short(g.stderr)).toBe(0);
    for (const row of JSON.parse(g.stdout) as TopRow[]) {
      const { width, height } = sizes.get(row.image)!;
      const side = Math.min(width, height);
      expect(row).toMatchObject({ x: Math.floor((width - side) / 2), y: Math.floor((height - side) / 2), w: side, h: side });
    }
    // Bad input: unknown layer / unit out of range → exit 2, one line.
    const bad = await deepvis(['top', '--model', MODEL, '--layer', 'pw55', '--unit', '0', '--index-dir', indexDir]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/^deepvis: .*no layer "pw55"/);
    const range = await deepvis(['top', '--model', MODEL, '--layer', 'pw5', '--unit', '9999', '--index-dir', indexDir]);
    expect(range.code).toBe(2);
    expect(range.stderr).toMatch(/unit 9999 is out of range/);
  });

  it('survives being killed mid-run (atomic saves) and Ctrl-C, then resumes where it stopped', async () => {
    expect(first, 'needs the index run above (for the comparison at the end)').toBeDefined();
    const killDir = join(dir, 'index-killed');
    const file = join(killDir, `${MODEL}.topk.json`);
    const start = (extra: string[] = []) =>
      spawn(process.execPath, [BIN, '--models-dir', join(ROOT, 'models'), 'index', '--model', MODEL, join(dir, 'photos'), '--index-dir', killDir, '--save-every', '0.001', ...extra], {
        cwd: ROOT,
        stdio: ['ignore', 'pipe', 'pipe'],
      });
    const exited = (c: ReturnType<typeof spawn>) =>
      new Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }>((done) => {
        let stderr = '';
        c.stderr!.on('data', (d) => (stderr += String(d)));
        c.on('exit', (code, signal) => done({ code, signal, stderr }));
      });
    const waitFor = async (pred: () => boolean, ms = 60_000) => {
      const t0 = Date.now();
      while (!pred()) {
        if (Date.now() - t0 > ms) throw new Error('timed out');
        await new Promise((r) => setTimeout(r, 5));
      }
    };

    // 1. SIGKILL as soon as the first save exists: no chance to clean up.
    const a = start();
    const aExit = exited(a);
    await waitFor(() => existsSync(file));
    a.kill('SIGKILL');
    const ra = await aExit;
    expect(ra.signal).toBe('SIGKILL');
    const afterKill = await TopKIndex.read(file); // loads: never a partial file
    expect(afterKill.imageCount).toBeGreaterThanOrEqual(1);
    expect(afterKill.imageCount).toBeLessThan(14);

    // 2. Ctrl-C (SIGINT) after one more save: stops after the current image, saves, exit 130.
    const b = start();
    const bExit = exited(b);
    let n = afterKill.imageCount;
    await waitFor(() => {
      try {
        n = TopKIndex.parse(readFileSync(file, 'utf8')).imageCount;
      } catch {
        /* mid-rename on some filesystems: try again */
      }
      return n > afterKill.imageCount;
    });
    b.kill('SIGINT');
    const rb = await bExit;
    const afterInt = await TopKIndex.read(file);
    console.log(`killed after ${afterKill.imageCount} image(s); Ctrl-C after ${afterInt.imageCount} (exit ${rb.code})`);
    if (afterInt.imageCount < 14) {
      expect(rb.code, short(rb.stderr)).toBe(130);
      expect(rb.stderr).toMatch(/interrupted: stopping after the current image/);
      expect(rb.stderr).toMatch(/run the same command again to continue/);
    }
    // The killed run's lock (its pid is gone) was taken over, and its temp file cleaned up.
    expect(readdirSync(killDir).filter((f) => f.endsWith('.tmp') || f.endsWith('.lock'))).toEqual([]);

    // 3. Resume: only the rest is read, and the result is the same index as the uninterrupted run.
    const c = await deepvis(['index', '--model', MODEL, join(dir, 'photos'), '--index-dir', killDir, '--json']);
    expect(c.code, short(c.stderr)).toBe(0);
    const s = JSON.parse(c.stdout) as IndexSummary;
    expect(s.images).toBe(14);
    expect(s.added).toBe(14 - afterInt.imageCount);
    const full = await TopKIndex.read(join(indexDir, `${MODEL}.topk.json`));
    const resumed = await TopKIndex.read(file);
    for (const [l, u] of [
      ['pw3', 5],
      ['pw13', 100],
    ] as const) {
      // Same activations (image order differs, so ties may pick other images).
      expect(resumed.top(l, u).map((h) => h.activation)).toEqual(full.top(l, u).map((h) => h.activation));
    }
  });
});

describe('deepvis index errors', () => {
  it('exits 2 when no image can be read or none is found', async () => {
    const bad = join(dir, 'only-bad');
    mkdirSync(bad, { recursive: true });
    writeFileSync(join(bad, 'a.png'), 'not a png');
    const r = await deepvis(['index', '--model', MODEL, bad, '--index-dir', join(dir, 'index-bad')]);
    expect(r.code, short(r.stderr)).toBe(2);
    expect(r.stderr).toMatch(/a\.png: cannot read image/);
    expect(r.stderr).toMatch(/no image could be read/);
    const none = await deepvis(['index', '--model', MODEL, join(dir, 'nothing-here'), '--index-dir', join(dir, 'index-bad')]);
    expect(none.code).toBe(2);
    expect(none.stderr).toMatch(/nothing-here: no such file or folder/);
    expect(none.stderr).toMatch(/no JPEG or PNG files found/);
  });
});
