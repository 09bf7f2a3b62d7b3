// The top-k index engine: the table merge and the per-unit maxima against brute force, the index
// on real photos against direct forward passes, saving/loading, forgetting, the background runner
// (yields to the live view, stops cleanly) and the camera session's bounded memory.
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cropResize, decodeImage, loadImageForModel, loadModel, selectBackend, type Model } from '../main/engine/index.js';
import { receptiveFields } from '../main/engine/receptive-field.js';
import { indexFiles, startIndexing } from '../main/engine/topk/indexing.js';
import { listImageFiles } from '../main/engine/topk/walk.js';
import { SessionTopK } from '../main/engine/topk/session-memory.js';
import { mulberry32 } from '../main/engine/synthesis/run.js';
import { TopKIndex } from '../main/engine/topk/index-file.js';
import { TopKIndexer } from '../main/engine/topk/indexer.js';
import { mapCandidates, TopKTable, unitCandidates } from '../main/engine/topk/scoring.js';
import { PHOTOS, PHOTOS_DIR, photo } from './support/fixtures.js';

const rng = mulberry32;

describe('TopKTable', () => {
  it('keeps the k best (activation, then mean) of a stream, like sorting everything', () => {
    const r = rng(1);
    const units = 5;
    const k = 4;
    const t = new TopKTable(units, k);
    const all: { u: number; a: number; m: number; img: number }[] = [];
    for (let img = 0; img < 200; img++) {
      for (let u = 0; u < units; u++) {
        // Coarse values so ties in activation (broken by the mean) and full ties happen.
        const a = Math.round(r() * 20) / 4;
        const m = Math.round(r() * 8) / 8;
        all.push({ u, a, m, img });
        t.offer(u, a, m, img, img * 10 + u);
      }
    }
    for (let u = 0; u < units; u++) {
      // Stable sort: a full tie keeps the earlier image, as the table does.
      const want = all
        .filter((e) => e.u === u)
        .sort((p, q) => q.a - p.a || q.m - p.m)
        .slice(0, k);
      expect(t.row(u).map((e) => [e.activation, e.mean, e.image, e.pos])).toEqual(want.map((e) => [e.a, e.m, e.img, e.img * 10 + u]));
    }
  });

  it('forgets images and keeps rows sorted and packed', () => {
    const t = new TopKTable(2, 3);
    [5, 4, 3, 2].forEach((a, i) => t.offer(0, a, 0, i, i));
    t.offer(1, 1, 0, 1, 0);
    expect(t.remove((img) => img === 1)).toBe(2);
    expect(t.row(0).map((e) => e.image)).toEqual([0, 2]);
    expect(t.row(1)).toEqual([]);
    const act = new Float32Array(2);
    const mean = new Float32Array(2);
    t.thresholds(act, mean);
    expect([...act]).toEqual([-Infinity, -Infinity]);
  });
});

/** Maps of these [h, w, c] shapes filled by `value`, as data and as [1, h, w, c] tensors. */
function randomMaps(shapes: [number, number, number][], value: () => number): { datas: Float32Array[]; taps: tf.Tensor4D[] } {
  const datas = shapes.map(([h, w, c]) => Float32Array.from({ length: h * w * c }, value));
  return { datas, taps: shapes.map(([h, w, c], i) => tf.tensor4d(datas[i]!, [1, h, w, c])) };
}

/** Per-layer thresholds for maps of these shapes: unit u's max to beat `act(u)`, every mean `mean`. */
function thresholdsFor(shapes: [number, number, number][], act: (u: number) => number, mean: number): { act: Float32Array; mean: Float32Array }[] {
  return shapes.map(([, , c]) => ({ act: Float32Array.from({ length: c }, (_, u) => act(u)), mean: new Float32Array(c).fill(mean) }));
}

describe('unitCandidates', () => {
  beforeAll(async () => {
    await selectBackend('wasm');
  });

  it('gives the max, mean and a position holding the max per channel, only for channels that beat their threshold', async () => {
    const r = rng(2);
    // Small maps (pooled globally, downloaded whole: the first maximum in row-major order), a
    // 1×1 map, and large maps reduced over 2×2 and 4×4 blocks (the first block holding the
    // maximum, then row-major inside it). Coarse values: many ties inside each map.
    const shapes: [number, number, number][] = [
      [7, 5, 6],
      [1, 1, 4],
      [3, 9, 2],
      [10, 12, 5],
      [16, 20, 70],
    ];
    const { datas, taps } = randomMaps(shapes, () => Math.round(r() * 6));
    const thresholds = thresholdsFor(shapes, (u) => (u % 2 ? 6 : -Infinity), 2.9);
    const got = await unitCandidates(taps, thresholds);
    shapes.forEach(([h, w, c], l) => {
      const d = datas[l]!;
      const b = l === 3 ? 2 : l === 4 ? 4 : 0;
      const units: number[] = [];
      for (let u = 0; u < c; u++) {
        let best = -Infinity;
        let sum = 0;
        for (let p = 0; p < h * w; p++) {
          best = Math.max(best, d[p * c + u]!);
          sum += d[p * c + u]!;
        }
        const label = `layer ${l} unit ${u}`;
        expect(got[l]!.max[u], label).toBe(best);
        expect(got[l]!.mean[u], label).toBeCloseTo(sum / (h * w), 4);
        const ta = thresholds[l]!.act[u]!;
        if (best > ta || (best === ta && got[l]!.mean[u]! > 2.9)) units.push(u);
      }
      expect([...got[l]!.units], `layer ${l}`).toEqual(units);
      got[l]!.units.forEach((u, j) => {
        const pos = got[l]!.pos[j]!;
        expect(d[pos * c + u], `layer ${l} unit ${u} position ${pos}`).toBe(got[l]!.max[u]);
        // Which maximum: row-major first for small maps; block order for blocked ones.
        const order = Array.from({ length: h * w }, (_, p) => p);
        if (b) {
          const key = (p: number) => {
            const y = Math.floor(p / w);
            const x = p % w;
            return ((Math.floor(y / b) * (w / b) + Math.floor(x / b)) * b + (y % b)) * b + (x % b);
          };
          order.sort((p, q) => key(p) - key(q));
        }
        expect(pos, `layer ${l} unit ${u}`).toBe(h * w === 1 ? 0 : order.find((p) => d[p * c + u] === got[l]!.max[u])!);
      });
    });
    tf.dispose(taps);
  });

  it('on plain arrays (the session memory on the host) gives the same units, maxima and positions as on tensors', async () => {
    const r = rng(3);
    const shapes: [number, number, number][] = [
      [7, 5, 6],
      [1, 1, 4],
      [10, 12, 5],
      [16, 20, 70],
      [14, 14, 64],
    ];
    const { datas, taps } = randomMaps(shapes, () => (r() < 0.5 ? Math.round(r() * 6) : r() * 6));
    const thresholds = thresholdsFor(shapes, (u) => (u % 3 ? 5.5 : -Infinity), 2.9);
    const want = await unitCandidates(taps, thresholds);
    tf.dispose(taps);
    shapes.forEach(([h, w, c], l) => {
      const got = mapCandidates(datas[l]!, h, w, c, thresholds[l]!);
      expect([...got.max], `layer ${l}`).toEqual([...want[l]!.max]);
      expect([...got.units], `layer ${l}`).toEqual([...want[l]!.units]);
      expect([...got.pos], `layer ${l}`).toEqual([...want[l]!.pos]);
      got.mean.forEach((m, u) => expect(m, `layer ${l} unit ${u}`).toBeCloseTo(want[l]!.mean[u]!, 5));
    });
  });
});

/**
 * The crop + resize written out the slow, obvious way, as references for the byte-level one: the
 * centred crop, then per output pixel either the exact area-weighted mean of the source pixels it
 * covers (shrinking) or bilinear interpolation with half-pixel centres (tfjs, when enlarging).
 */
function centredCrop(img: { width: number; height: number }, [h, w]: [number, number]) {
  const scale = Math.min(img.height / h, img.width / w);
  const ch = Math.max(1, Math.round(h * scale));
  const cw = Math.max(1, Math.round(w * scale));
  return { top: Math.floor((img.height - ch) / 2), left: Math.floor((img.width - cw) / 2), ch, cw };
}

function bilinearReference(img: { width: number; height: number; data: Uint8Array }, size: [number, number]): tf.Tensor4D {
  return tf.tidy(() => {
    const { top, left, ch, cw } = centredCrop(img, size);
    const t = tf.cast(tf.tensor3d(img.data, [img.height, img.width, 3], 'int32'), 'float32');
    const crop = tf.slice(t, [top, left, 0], [ch, cw, 3]) as tf.Tensor3D;
    const out = ch === size[0] && cw === size[1] ? crop : tf.image.resizeBilinear(crop, size, false, true);
    return tf.expandDims(out, 0) as tf.Tensor4D;
  });
}

function areaReference(img: { width: number; height: number; data: Uint8Array }, size: [number, number]): Float32Array {
  const [h, w] = size;
  const { top, left, ch, cw } = centredCrop(img, size);
  const sy = ch / h;
  const sx = cw / w;
  const out = new Float32Array(h * w * 3);
  for (let oy = 0; oy < h; oy++) {
    for (let ox = 0; ox < w; ox++) {
      const acc = [0, 0, 0];
      for (let y = Math.floor(oy * sy); y < Math.min(ch, Math.ceil((oy + 1) * sy)); y++) {
        const wy = Math.min((oy + 1) * sy, y + 1) - Math.max(oy * sy, y);
        for (let x = Math.floor(ox * sx); x < Math.min(cw, Math.ceil((ox + 1) * sx)); x++) {
          const wgt = wy * (Math.min((ox + 1) * sx, x + 1) - Math.max(ox * sx, x));
          const i = ((top + y) * img.width + left + x) * 3;
          for (let c = 0; c < 3; c++) acc[c]! += wgt * img.data[i + c]!;
        }
      }
      for (let c = 0; c < 3; c++) out[(oy * w + ox) * 3 + c] = acc[c]! / (sy * sx);
    }
  }
  return out;
}

const maxDiff = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
};

describe('cropResize (byte-level crop)', () => {
  it('shrinks photos to the exact area average and enlarges bilinearly, rounded to bytes; RGBA gives the RGB result', async () => {
    await selectBackend('wasm');
    for (const p of PHOTOS) {
      const img = await decodeImage(photo(p));
      const fast = cropResize(img, [224, 224]);
      // Rounding to bytes moves a value by half a grey level (and float32 arithmetic a hair more).
      expect(maxDiff(fast.dataSync(), areaReference(img, [224, 224])), p).toBeLessThanOrEqual(0.51);
      fast.dispose();
    }
    // Odd shapes: wide, tall, already the right size (no resize), smaller than the input.
    const r = rng(3);
    for (const [w, h] of [
      [301, 200],
      [97, 263],
      [224, 224],
      [50, 40],
    ] as const) {
      const img = { width: w, height: h, data: Uint8Array.from({ length: w * h * 3 }, () => Math.floor(r() * 256)) };
      const slow = bilinearReference(img, [224, 224]);
      const fast = cropResize(img, [224, 224]);
      expect(maxDiff(fast.dataSync(), slow.dataSync()), `${w}×${h}`).toBeLessThanOrEqual(0.51);
      const rgba = new Uint8Array(w * h * 4);
      for (let i = 0; i < w * h; i++) rgba.set(img.data.subarray(i * 3, i * 3 + 3), i * 4), (rgba[i * 4 + 3] = 255);
      const fromRgba = cropResize({ width: w, height: h, data: rgba }, [224, 224], 4);
      expect(maxDiff(fromRgba.dataSync(), fast.dataSync()), `${w}×${h} RGBA`).toBe(0);
      tf.dispose([slow, fast, fromRgba]);
    }
  });
});

describe('TopKIndexer on the fixture photos (mobilenet-v1-0.25)', () => {
  let model: Model;
  let dir: string;
  /** 14 images: the photos and their mirror images, as model-input pixels. */
  const images: { name: string; pixels: tf.Tensor4D }[] = [];
  let indexer: TopKIndexer;

  beforeAll(async () => {
    await selectBackend('wasm');
    model = await loadModel('mobilenet-v1-0.25');
    dir = mkdtempSync(join(tmpdir(), 'deepvis-topk-'));
    for (const p of PHOTOS) {
      const px = await loadImageForModel(photo(p), model.inputSize);
      images.push({ name: p, pixels: px }, { name: `${p}-flipped`, pixels: tf.reverse(px, 2) as tf.Tensor4D });
    }
    indexer = TopKIndexer.create(model, 5);
    let i = 0;
    for (const im of images) {
      await indexer.addPixels(im.pixels, { path: join(dir, `${im.name}.jpg`), size: 1000 + i, mtimeMs: i, width: 224, height: 224 });
      i++;
    }
  });

  afterAll(() => {
    tf.dispose(images.map((i) => i.pixels));
    model?.dispose();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('holds, for every unit checked, the top-5 that brute force over all 14 images gives', () => {
    const layers = ['conv1', 'pw3', 'dw6', 'pw13', 'logits'];
    const names = layers.map((l) => model.layer(l).name);
    // Brute force: every image's full maps, max and first arg-max per unit in JS.
    const maps = images.map((im) =>
      tf.tidy(() => {
        const r = model.forward(model.preprocess(im.pixels), { taps: names, logits: false });
        return names.map((n) => ({ data: r.taps[n]!.dataSync() as Float32Array, shape: r.taps[n]!.shape }));
      }),
    );
    let checked = 0;
    layers.forEach((l, li) => {
      const [, h, w, c] = maps[0]![li]!.shape;
      for (const u of [0, Math.floor(c / 2), c - 1]) {
        const per = maps.map((m, img) => {
          const d = m[li]!.data;
          let best = -Infinity;
          let at = -1;
          let sum = 0;
          for (let p = 0; p < h * w; p++) {
            const v = d[p * c + u]!;
            sum += v;
            if (v > best) {
              best = v;
              at = p;
            }
          }
          return { img, best, at, mean: sum / (h * w) };
        });
        // Means computed in float32 by tfjs vs float64 here: compare maxima exactly, order by (max, mean).
        per.sort((p, q) => q.best - p.best || q.mean - p.mean);
        const got = indexer.top(l, u);
        expect(got.map((g) => g.activation), `${l}:${u}`).toEqual(per.slice(0, 5).map((p) => p.best));
        // Where maxima differ, the images must match too, and the stored position holds the maximum.
        got.forEach((g, j) => {
          const p = per[j]!;
          const tie = per.filter((q) => q.best === p.best).length > 1;
          if (!tie) expect(g.image.endsWith(`${images[p.img]!.name}.jpg`), `${l}:${u} rank ${j}`).toBe(true);
          const img = images.findIndex((im) => g.image.endsWith(`/${im.name}.jpg`));
          expect(maps[img]![li]!.data[(g.y * w + g.x) * c + u], `${l}:${u} rank ${j} position`).toBe(g.activation);
        });
        checked++;
      }
    });
    expect(checked).toBe(15);
  });

  it('stores positions at which a direct forward pass gives the stored activation', () => {
    for (const [l, u] of [
      ['pw5', 7],
      ['dw12', 3],
    ] as const) {
      const name = model.layer(l).name;
      for (const hit of indexer.top(l, u)) {
        const im = images.find((i) => hit.image.endsWith(`/${i.name}.jpg`))!;
        const v = tf.tidy(() => model.forward(model.preprocess(im.pixels), { taps: [name], logits: false }).taps[name]!.slice([0, hit.y, hit.x, u], [1, 1, 1, 1]).dataSync()[0]!);
        expect(v).toBe(hit.activation);
        const r = receptiveFields(model).regionFor(l, hit.y, hit.x);
        expect(hit.inputBox).toEqual(r.unclipped);
      }
    }
  });

  it('saves atomically and reads back the same index; refuses to extend one for another k', async () => {
    const path = join(dir, 'idx', `${model.id}.topk.json`);
    await indexer.save(path);
    expect(readdirSync(join(dir, 'idx'))).toEqual([`${model.id}.topk.json`]);
    const back = await TopKIndex.read(path);
    expect(back.imageCount).toBe(14);
    expect(back.toJSON().layers).toEqual(indexer.toJSON().layers);
    expect(back.top('pw7', 11)).toEqual(indexer.top('pw7', 11));
    const same = await TopKIndexer.load(model, path, 5);
    expect(same.rebuilt).toBeNull();
    expect(same.indexer.imageCount).toBe(14);
    expect(same.indexer.isKnown({ path: join(dir, 'dog.jpg'), size: 1000, mtimeMs: 0 })).toBe(true);
    expect(same.indexer.isKnown({ path: join(dir, 'dog.jpg'), size: 1000, mtimeMs: 1 })).toBe(false);
    const other = await TopKIndexer.load(model, path, 9);
    expect(other.rebuilt).toMatch(/top 5, not 9/);
    expect(other.indexer.imageCount).toBe(0);
    // A damaged file is an error, never silently replaced.
    const { writeFileSync } = await import('node:fs');
    writeFileSync(path, '{"format":"deepvis-topk"');
    await expect(TopKIndexer.load(model, path, 5)).rejects.toThrow(/not JSON/);
  });

  it('forgets a changed image everywhere', async () => {
    const path = join(dir, 'forget', `${model.id}.topk.json`);
    await indexer.save(path);
    const { indexer: copy } = await TopKIndexer.load(model, path, 5);
    const victim = join(dir, 'eagle.jpg');
    expect(copy.layers.some((l) => l.table.image.includes(copy.files.findIndex((f) => f?.path === victim)))).toBe(true);
    copy.forget([victim]);
    expect(copy.imageCount).toBe(13);
    for (const l of copy.layers) {
      for (let u = 0; u < l.shape[2]; u++) {
        const row = l.table.row(u);
        for (const e of row) expect(copy.files[e.image]).not.toBeNull();
        for (let j = 1; j < row.length; j++) expect(row[j - 1]!.activation).toBeGreaterThanOrEqual(row[j]!.activation);
      }
    }
  });

  it('runs in the background one image at a time, yielding to the live view first, and stops cleanly', async () => {
    const path = join(dir, 'bg', `${model.id}.topk.json`);
    const events: string[] = [];
    let yields = 0;
    const fresh = TopKIndexer.create(model, 3);
    const job = startIndexing(fresh, [PHOTOS_DIR], {
      saveTo: path,
      yieldToLive: async () => {
        yields++;
        events.push('live-start');
        // The live view takes its time; indexing must wait for it.
        await new Promise((r) => setTimeout(r, 20));
        events.push('live-end');
      },
      onProgress: (p) => {
        events.push(`image ${p.done}`);
        if (p.done === 3) void job.stop();
      },
    });
    const r = await job.done;
    expect(r.aborted).toBe(true);
    expect(r.added).toBe(3);
    expect(yields).toBe(3);
    // Strict alternation: every image comes after a complete live turn.
    expect(events).toEqual(['live-start', 'live-end', 'image 1', 'live-start', 'live-end', 'image 2', 'live-start', 'live-end', 'image 3']);
    const saved = await TopKIndex.read(path);
    expect(saved.imageCount).toBe(3);
    // Resume: the other photos only.
    const { indexer: again } = await TopKIndexer.load(model, path, 3);
    const rest = await indexFiles(again, await listImageFiles([PHOTOS_DIR]), { saveTo: path });
    expect({ added: rest.added, skipped: rest.skipped }).toEqual({ added: PHOTOS.length - 3, skipped: 3 });
  });
});

describe('SessionTopK (camera session memory)', () => {
  let model: Model;
  const frames: tf.Tensor4D[] = [];

  beforeAll(async () => {
    await selectBackend('wasm');
    model = await loadModel('mobilenet-v1-0.25');
    for (const p of PHOTOS) {
      const px = await loadImageForModel(photo(p), model.inputSize);
      frames.push(px, tf.reverse(px, 2) as tf.Tensor4D);
    }
  });

  afterAll(() => {
    tf.dispose(frames);
    model?.dispose();
  });

  it('keeps each unit’s best frames within the byte budget, shrinking crops before k', async () => {
    const layer = model.layer('pw13');
    // 256 units × 9 × 64² × 3 = 28 MB wanted; 1 MiB allowed → crops shrink to the 16 px floor, then
    // k drops to floor(1 MiB / (256 × 16² × 3)) = 5.
    const s = new SessionTopK(model, { layer: 'pw13', k: 9, maxBytes: 1024 * 1024 });
    expect(s.cropWidth).toBe(16);
    expect(s.k).toBe(5);
    const acts: Float32Array[] = [];
    for (let f = 0; f < frames.length; f++) {
      const tap = tf.tidy(() => model.forward(model.preprocess(frames[f]!), { taps: [layer.name], logits: false }).taps[layer.name]!);
      acts.push(tf.tidy(() => tf.max(tap, [0, 1, 2]).dataSync() as Float32Array));
      await s.offer(f, tap, frames[f]!);
      tap.dispose();
      expect(s.bytes).toBeLessThanOrEqual(s.maxBytes);
    }
    for (const u of [0, 100, 255]) {
      const top = s.top(u);
      expect(top).toHaveLength(s.k);
      const want = acts.map((a) => a[u]!).sort((p, q) => q - p).slice(0, s.k);
      expect(top.map((t) => t.activation)).toEqual(want);
      expect(top[0]!.crop.data).toHaveLength(16 * 16 * 3);
      // pw13's 315-px field always crosses the 224-px frame: left/top for x, y ≤ 3 (field starts at
      // −126 + 32·x), right/bottom otherwise. There the crop shows MobileNet's zero input, pixel 128.
      for (const t of top) {
        const i = t.y <= 3 ? 0 : 15;
        const j = t.x <= 3 ? 0 : 15;
        expect(Array.from(t.crop.data.slice((i * 16 + j) * 3, (i * 16 + j) * 3 + 3))).toEqual([128, 128, 128]);
      }
    }
    s.clear();
    expect(s.top(0)).toEqual([]);
  });

  it('stores the receptive field’s own pixels when it is small', async () => {
    // conv1: 3×3 field, stored at full size (no resampling): the crop is exactly the frame's pixels.
    const s = new SessionTopK(model, { layer: 'conv1', k: 2 });
    expect([s.cropWidth, s.cropHeight]).toEqual([3, 3]);
    const name = model.layer('conv1').name;
    const tap = tf.tidy(() => model.forward(model.preprocess(frames[0]!), { taps: [name], logits: false }).taps[name]!);
    const px = frames[0]!.dataSync();
    await s.offer(7, tap, frames[0]!);
    tap.dispose();
    const W = 224;
    for (let u = 0; u < s.units; u++) {
      const [hit] = s.top(u);
      expect(hit!.frame).toBe(7);
      const box = hit!.region.unclipped;
      for (let i = 0; i < 3; i++) {
        for (let j = 0; j < 3; j++) {
          const yy = box.y + i;
          const xx = box.x + j;
          const got = Array.from(hit!.crop.data.slice((i * 3 + j) * 3, (i * 3 + j) * 3 + 3));
          // MobileNet input 0 is pixel 127.5 → 128 (rounded).
          if (yy >= 224 || xx >= 224) expect(got).toEqual([128, 128, 128]);
          else expect(got).toEqual(Array.from(px.slice((yy * W + xx) * 3, (yy * W + xx) * 3 + 3)).map(Math.round));
        }
      }
    }
  });
});
