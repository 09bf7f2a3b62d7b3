// Indexing in batches scored elsewhere builds the index one run builds: the same tables (activation,
// mean, image, position), the same files in the same order, the same unreadable file — merged in
// this thread from batches of three (each scored above the index's thresholds when it was sent,
// which keep most of a later batch's images out of its shard), and through `deepvis index
// --workers 2` on real job workers.
// Real model, real photos (and their mirror images and crops, so there are several batches).
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadModel, selectBackend, type Model } from '../main/engine/index.js';
import { indexFilesInBatches, scoreFiles } from '../main/engine/topk/batches.js';
import { TopKIndex } from '../main/engine/topk/index-file.js';
import { TopKIndexer } from '../main/engine/topk/indexer.js';
import { indexFiles } from '../main/engine/topk/indexing.js';
import { listImageFiles } from '../main/engine/topk/walk.js';
import { runDeepvis } from './support/cli.js';
import { PHOTOS, photo } from './support/fixtures.js';

const MODEL = 'mobilenet-v1-0.25';

let dir: string;
let folder: string;
let model: Model;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'deepvis-topk-batches-'));
  folder = join(dir, 'photos');
  mkdirSync(folder);
  for (const p of PHOTOS) {
    const src = photo(p);
    writeFileSync(join(folder, `${p}.jpg`), await sharp(src).toBuffer());
    await sharp(src).flop().jpeg({ quality: 90 }).toFile(join(folder, `${p}-flop.jpg`));
    const m = await sharp(src).metadata();
    await sharp(src).extract({ left: 0, top: 0, width: Math.round(m.width! * 0.6), height: Math.round(m.height! * 0.6) }).png().toFile(join(folder, `${p}-crop.png`));
  }
  // An unreadable file among them: recorded as such, in its place.
  writeFileSync(join(folder, 'kite-broken.jpg'), (await sharp(photo('kite')).toBuffer()).subarray(0, 300));
  await selectBackend('wasm');
  model = await loadModel(MODEL);
}, 120_000);

afterAll(() => {
  model?.dispose();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** What an index holds, comparable with toEqual. */
function contents(idx: TopKIndex) {
  return {
    k: idx.k,
    files: idx.files.map((f) => f && { path: f.path, size: f.size, width: f.width, height: f.height }),
    unreadable: idx.unreadable.map((u) => u.path),
    layers: idx.layers.map((l) => ({ name: l.name, act: [...l.table.act], mean: [...l.table.mean], image: [...l.table.image], pos: [...l.table.pos] })),
  };
}

describe('batches merged in order', () => {
  it('give the tables of one run over all the files, with progress to the end', { timeout: 240_000 }, async () => {
    const listing = await listImageFiles([folder]);
    expect(listing.files).toHaveLength(3 * PHOTOS.length + 1);
    const one = TopKIndexer.create(model, 5);
    const alone = await indexFiles(one, listing);
    const merged = TopKIndexer.create(model, 5);
    const done: number[] = [];
    // Two in flight, finishing out of order: the later batch answers first.
    let calls = 0;
    /** Per batch: the (unit, slot) entries its shard kept, and how many a shard without floors keeps (every unit each of its images: 3 < k). */
    const kept: { entries: number; unfloored: number }[] = [];
    const r = await indexFilesInBatches(merged, listing, {
      concurrency: 2,
      batchSize: 3,
      onProgress: (p) => done.push(p.done),
      scoreBatch: async (files, k, signal, floors) => {
        const slow = calls++ % 2 === 0;
        const shard = await scoreFiles(model, files, k, signal, floors);
        if (slow) await new Promise((res) => setTimeout(res, 50));
        if (shard) {
          const units = shard.layers.reduce((a, l) => a + l.image.length / k, 0);
          kept.push({ entries: shard.layers.reduce((a, l) => a + l.image.filter((i) => i >= 0).length, 0), unfloored: units * shard.files.length });
          // Everything kept beats the floor it was scored against (by max, then mean).
          shard.layers.forEach((l, li) => {
            for (let j = 0; j < l.image.length; j++) {
              if (l.image[j]! < 0) continue;
              const u = Math.floor(j / k);
              const [a, fa] = [l.act[j]!, floors[li]!.act[u]!];
              expect(a > fa || (a === fa && l.mean[j]! > floors[li]!.mean[u]!)).toBe(true);
            }
          });
        }
        return shard;
      },
    });
    // The floors did keep images out: the first batch (no floor yet) keeps all, the later ones (22 images, k 5: the tables still filling) about half.
    expect(kept[0]!.entries).toBe(kept[0]!.unfloored);
    const later = kept.slice(3);
    expect(later.reduce((a, b) => a + b.entries, 0)).toBeLessThan(0.75 * later.reduce((a, b) => a + b.unfloored, 0));
    expect(r).toMatchObject({ aborted: false, added: alone.added, failed: 1, done: listing.files.length, total: listing.files.length });
    expect(r.unreadable.map((u) => u.path)).toEqual([join(folder, 'kite-broken.jpg')]);
    expect(done.at(-1)).toBe(listing.files.length);
    expect(contents(merged)).toEqual(contents(one));
    // Not trivially equal: the tables are full and hold images of several batches.
    const ids = new Set(merged.layers.flatMap((l) => [...l.table.image]));
    expect(Math.max(...ids)).toBeGreaterThanOrEqual(6);
    expect(ids.has(-1)).toBe(false);
  });

  it('a stop cancels the batches in flight and keeps the ones scored', { timeout: 120_000 }, async () => {
    const listing = await listImageFiles([folder]);
    const indexer = TopKIndexer.create(model, 5);
    const stop = new AbortController();
    let batches = 0;
    const r = await indexFilesInBatches(indexer, listing, {
      concurrency: 1,
      batchSize: 4,
      signal: stop.signal,
      scoreBatch: async (files, k, signal, floors) => {
        if (++batches === 2) stop.abort();
        return scoreFiles(model, files, k, signal, floors);
      },
    });
    expect(r.aborted).toBe(true);
    expect(indexer.imageCount).toBe(4);
    expect(batches).toBe(2);
  });
});

describe('deepvis index --workers 2', () => {
  // On wasm, which computes the same bits in any thread (ONNX Runtime's CPU provider rounds
  // differently in a worker thread than in the main one: same rankings, activations ~1e-4 apart).
  it('writes the index the in-process run writes', { timeout: 300_000 }, async () => {
    const a = join(dir, 'index-one');
    const b = join(dir, 'index-pool');
    const one = await runDeepvis(['--backend', 'wasm', 'index', '--model', MODEL, folder, '--index-dir', a, '--json'], 240_000);
    expect(one.code, one.stderr).toBe(0);
    const pool = await runDeepvis(['--backend', 'wasm', 'index', '--model', MODEL, folder, '--index-dir', b, '--workers', '2', '--json'], 240_000);
    expect(pool.code, pool.stderr).toBe(0);
    const [sa, sb] = [JSON.parse(one.stdout), JSON.parse(pool.stdout)];
    expect(sb).toMatchObject({ images: sa.images, added: sa.added, unreadable: sa.unreadable, aborted: false });
    const [ia, ib] = await Promise.all([TopKIndex.read(join(a, `${MODEL}.topk.json`)), TopKIndex.read(join(b, `${MODEL}.topk.json`))]);
    expect(contents(ib)).toEqual(contents(ia));
  });
});
