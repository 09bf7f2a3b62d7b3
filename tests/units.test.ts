// Naming a unit (contract/units.ts): the forms the window's search box and every CLI --unit
// accept, against the real ImageNet class list of a bundled model.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { resolveUnit, searchUnits } from '../contract/units.js';
import { cropResizeBytes, centreCrop } from '../contract/resample.js';
import { REPO } from './support/fixtures.js';

const names = JSON.parse(readFileSync(join(REPO, 'models/imagenet-classes.json'), 'utf8')) as string[];
const wnids = JSON.parse(readFileSync(join(REPO, 'models/imagenet-wnids.json'), 'utf8')) as string[];
const model = {
  id: 'mobilenet-v1-0.75',
  logitsLayer: 'conv_preds',
  layers: [
    { name: 'conv_pw_5_relu', display: 'pw5', units: 192 },
    { name: 'conv_preds', display: 'logits', units: 1000 },
  ],
  classes: names.map((name, i) => ({ name, wnid: wnids[i] ?? null })),
};

describe('resolveUnit', () => {
  it('takes a class name, a synonym, a WordNet id, an index, and layer:unit', () => {
    expect(resolveUnit(model, 'flamingo')).toEqual({ layer: 'conv_preds', unit: 130, label: 'logits:130 flamingo' });
    expect(resolveUnit(model, 'Chute').unit).toBe(701);
    expect(resolveUnit(model, 'n02007558').unit).toBe(130);
    expect(resolveUnit(model, '130').unit).toBe(130);
    expect(resolveUnit(model, 'pw5:7')).toEqual({ layer: 'conv_pw_5_relu', unit: 7, label: 'pw5:7' });
    expect(resolveUnit(model, 'conv_pw_5_relu:7').layer).toBe('conv_pw_5_relu');
    expect(resolveUnit(model, 'logits:130').label).toBe('logits:130 flamingo');
  });

  it('says what is wrong in one line', () => {
    expect(() => resolveUnit(model, 'pw5:192')).toThrow(/unit 192 is out of range for layer pw5 of mobilenet-v1-0.75 \(0…191\)/);
    expect(() => resolveUnit(model, 'pw9:1')).toThrow(/no layer "pw9" in mobilenet-v1-0.75 \(layers: pw5, logits\)/);
    expect(() => resolveUnit(model, 'unicorn')).toThrow(/no class named "unicorn".*layer:unit/);
    expect(() => resolveUnit(model, '1000')).toThrow(/out of range/);
  });
});

describe('searchUnits', () => {
  it('ranks an exact unit first, then names starting with the text, then names containing it', () => {
    expect(searchUnits(model, 'flamin')[0]!.label).toBe('logits:130 flamingo (n02007558)');
    expect(searchUnits(model, 'seash', 8).map((m) => m.unit)).toContain(978); // seashore
    expect(searchUnits(model, 'sea', 8)).toHaveLength(8);
    expect(searchUnits(model, '130')[0]!.unit).toBe(130);
    expect(searchUnits(model, 'pw5:3')).toEqual([{ layer: 'conv_pw_5_relu', unit: 3, label: 'pw5:3' }]);
    expect(searchUnits(model, '   ')).toEqual([]);
    expect(searchUnits(model, 'zzzzqx')).toEqual([]);
  });
});

describe('cropResizeBytes', () => {
  it('centre-crops to the aspect and averages areas: a 2×2 checker of 4×4 blocks becomes its block means', () => {
    // 8 wide × 4 high; the centre 4×4 crop is columns 2…5.
    const w = 8;
    const h = 4;
    const data = new Uint8Array(w * h * 3);
    for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) data.fill(x < 4 ? 0 : 200, (y * w + x) * 3, (y * w + x) * 3 + 3);
    expect(centreCrop(w, h, 2, 2)).toEqual({ left: 2, top: 0, width: 4, height: 4 });
    const out = cropResizeBytes({ width: w, height: h, data }, 3, 2, 2, 3);
    expect(Array.from(out)).toEqual([0, 0, 0, 200, 200, 200, 0, 0, 0, 200, 200, 200]);
  });

  it('keeps an image already at the size, dropping or adding alpha; transparent pixels are shown over white', () => {
    const opaque = Uint8Array.from([1, 2, 3, 255, 4, 5, 6, 255]);
    expect(Array.from(cropResizeBytes({ width: 2, height: 1, data: opaque }, 4, 2, 1, 3))).toEqual([1, 2, 3, 4, 5, 6]);
    expect(Array.from(cropResizeBytes({ width: 2, height: 1, data: opaque }, 4, 2, 1, 4))).toEqual([1, 2, 3, 255, 4, 5, 6, 255]);
    // Alpha 0 shows white whatever RGB hides under it; alpha 51 (a fifth) blends a fifth of the colour.
    const seeThrough = Uint8Array.from([10, 20, 30, 0, 0, 0, 0, 51]);
    expect(Array.from(cropResizeBytes({ width: 2, height: 1, data: seeThrough }, 4, 2, 1, 3))).toEqual([255, 255, 255, 204, 204, 204]);
  });

  it('averages, not samples: a one-pixel stripe pattern shrinks to its mean grey', () => {
    const w = 100;
    const data = new Uint8Array(w * w * 3);
    for (let i = 0; i < w * w; i++) data.fill((i % w) % 2 ? 255 : 0, i * 3, i * 3 + 3);
    const out = cropResizeBytes({ width: w, height: w, data }, 3, 10, 10, 3);
    for (const v of out) expect(Math.abs(v - 127.5)).toBeLessThanOrEqual(1);
  });
});
