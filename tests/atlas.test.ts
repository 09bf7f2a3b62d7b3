// The atlas: every unit of a layer synthesised into a portable cache; interrupted builds resume
// without redoing finished units; the sprite tiles the units in order; a copied folder is found.
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadModel, selectBackend, type Model } from '../main/engine/index.js';
import { buildAtlas, findAtlas, ATLAS_TILE } from '../main/engine/synthesis/atlas.js';

describe('atlas', () => {
  let model: Model;
  let root: string;
  beforeAll(async () => {
    await selectBackend('wasm');
    model = await loadModel('mobilenet-v1-0.25');
    root = mkdtempSync(join(tmpdir(), 'deepvis-atlas-'));
  });
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  it('builds units in batches, resumes after an interruption, and tiles a sprite', async () => {
    const spec = { preset: 'paper-3' as const, iterations: 25, seeds: 1, size: 96 };
    // Interrupt after the first batch of 4 units.
    const ac = new AbortController();
    const first = await buildAtlas({
      model,
      layer: 'pw9',
      units: [0, 9],
      spec,
      root,
      batch: 4,
      signal: ac.signal,
      onProgress: (p) => {
        if (p.unitsThisBatch[0] === 4 && p.iteration === 0) ac.abort();
      },
    });
    expect(Object.keys(first.index.done).map(Number).sort((a, b) => a - b)).toEqual([0, 1, 2, 3]);
    const stamp = readFileSync(join(first.dir, first.index.done['0']!.files[0]!));

    const second = await buildAtlas({ model, layer: 'pw9', units: [0, 9], spec, root, batch: 4 });
    expect(second.skipped).toBe(4);
    expect(second.built).toBe(6);
    expect(second.dir).toBe(first.dir);
    // Finished units were not redone: their files are byte-identical.
    expect(readFileSync(join(second.dir, second.index.done['0']!.files[0]!)).equals(stamp)).toBe(true);
    for (const u of Object.values(second.index.done)) expect(u.objectiveBest[0]!).toBeGreaterThan(u.objectiveStart[0]!);

    const sprite = second.index.sprite!;
    expect(sprite.units).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    const meta = await sharp(join(second.dir, sprite.file)).metadata();
    expect(meta.width).toBe(sprite.cols * ATLAS_TILE);
    expect(meta.height).toBe(Math.ceil(10 / sprite.cols) * ATLAS_TILE);
    const one = await sharp(join(second.dir, second.index.done['7']!.files[0]!)).metadata();
    expect([one.width, one.height]).toEqual([96, 96]);
  });

  it('is found again from a copied folder (carried to an offline machine)', () => {
    const copy = mkdtempSync(join(tmpdir(), 'deepvis-atlas-copy-'));
    cpSync(root, copy, { recursive: true });
    const found = findAtlas(copy, model, 'conv_pw_9_relu');
    expect(found).not.toBeNull();
    expect(existsSync(join(found!.dir, 'sprite.png'))).toBe(true);
    expect(findAtlas(copy, model, 'conv_pw_8_relu')).toBeNull();
    rmSync(copy, { recursive: true, force: true });
  });
});

describe('atlas through the engine host (pattern mode)', () => {
  it('answers with the sprite when built, and with how to build it when not', async () => {
    const { EngineSession } = await import('../main/session/engine-session.js');
    const root = mkdtempSync(join(tmpdir(), 'deepvis-atlas-session-'));
    const session = await EngineSession.create({ backend: 'wasm', model: 'mobilenet-v1-0.25', atlasDir: root });
    const missing = await session.handle({ type: 'atlas', layer: 'pw3' });
    expect(missing).toMatchObject({ type: 'atlas', found: false });
    expect((missing as { hint: string }).hint).toMatch(/npx deepvis atlas --model mobilenet-v1-0.25 --layer pw3/);
    await buildAtlas({ model: session.model!, layer: 'pw3', units: [0, 3], spec: { preset: 'fast', iterations: 5, seeds: 1, size: 64 }, root });
    const found = await session.handle({ type: 'atlas', layer: 'pw3' });
    expect(found).toMatchObject({ type: 'atlas', found: true, layer: 'conv_pw_3_relu', units: [0, 1, 2, 3], tile: ATLAS_TILE, cols: 2 });
    const png = (found as { sprite: Uint8Array }).sprite;
    expect(Buffer.from(png.subarray(1, 4)).toString()).toBe('PNG');
    await session.dispose();
    rmSync(root, { recursive: true, force: true });
  });
});
