// `deepvis explain`, run as a user runs it (node bin/deepvis.mjs …) on the fixture photos: the PNGs
// it writes, the JSON it prints (14×14 grid), and one-line errors with exit code 2.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import { afterAll, describe, expect, it } from 'vitest';
import { PHOTOS_DIR } from './support/fixtures.js';
import { runDeepvis, type CliRun } from './support/cli.js';

/** Long stderr (a crash) is cut so assertion messages stay readable. */
const deepvis = async (args: string[], timeout?: number) => {
  const r = await runDeepvis(args, timeout);
  return { ...r, stderr: r.stderr.length > 1500 ? r.stderr.slice(0, 1500) + '…' : r.stderr };
};

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const PHOTOS = PHOTOS_DIR;
const photo = (name: string) => join(PHOTOS, `${name}.jpg`);
const tmp = mkdtempSync(join(tmpdir(), 'deepvis-explain-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));


interface ExplainJson {
  model: string;
  mode: string;
  target: { kind: string; index?: number; name?: string; layer?: string; display?: string; unit?: number };
  grid: number[][];
  out: string;
  overlay?: string;
  layer?: string;
  filter?: string;
  percentile?: number;
}

function parse(r: CliRun): ExplainJson {
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as ExplainJson;
}

function expectGrid(grid: number[][]): void {
  expect(grid).toHaveLength(14);
  for (const row of grid) {
    expect(row).toHaveLength(14);
    for (const v of row) expect(Number.isFinite(v) && v >= 0 && v <= 1).toBe(true);
  }
  expect(Math.max(...grid.flat())).toBe(1);
}

/** Share of the grid's mass in the left half (columns 0–6). */
const leftShare = (g: number[][]) => g.flat().reduce((s, v, i) => s + (i % 14 < 7 ? v : 0), 0) / g.flat().reduce((s, v) => s + v, 0);

describe('deepvis explain', () => {
  it('guided back-projection of the sled-dog class: a 224×224 PNG and a 14×14 grid weighted to the dog (left)', { timeout: 60_000 }, async () => {
    const out = join(tmp, 'guided.png');
    const j = parse(await deepvis(['explain', '--mode', 'guided', '--class', 'malamute', '--filter', 'norm', '--out', out, '--json', photo('dog')]));
    expect(j).toMatchObject({ model: 'mobilenet-v1-0.75', mode: 'guided', out, filter: 'norm', target: { kind: 'class', index: 249 } });
    expectGrid(j.grid);
    expect(leftShare(j.grid)).toBeGreaterThan(0.55);
    const meta = await sharp(out).metadata();
    expect([meta.format, meta.width, meta.height, meta.channels]).toEqual(['png', 224, 224, 3]);
  });

  it('Grad-CAM on darknet-tiny (top-1 class by default): heat map and overlay PNGs, grid on the dog', { timeout: 60_000 }, async () => {
    const out = join(tmp, 'cam.png');
    const j = parse(await deepvis(['explain', '--model', 'darknet-tiny', '--mode', 'gradcam', '--opacity', '0.4', '--out', out, '--json', photo('dog')]));
    expect(j).toMatchObject({ model: 'darknet-tiny', mode: 'gradcam', out, overlay: join(tmp, 'cam.overlay.png'), layer: 'leaky_re_lu_15' });
    expect(j.target.kind).toBe('class');
    expect(j.target.name).toMatch(/dogsled|malamute|Eskimo dog|husky/);
    expectGrid(j.grid);
    expect(leftShare(j.grid)).toBeGreaterThan(0.6);
    for (const f of [out, j.overlay!]) expect((await sharp(f).metadata()).width).toBe(224);
  });

  it('a channel target (display name, deconv, normblur) without --json prints one line', { timeout: 60_000 }, async () => {
    const out = join(tmp, 'unit.png');
    const r = await deepvis(['explain', '--model', 'mobilenet-v1-0.25', '--mode', 'deconv', '--layer', 'pw5', '--unit', '7', '--filter', 'normblur', '--out', out, photo('kite')]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.trim().split('\n')).toEqual([`${out}: deconv of pw5:7 (mobilenet-v1-0.25)`]);
    expect((await sharp(out).metadata()).height).toBe(224);
  });

  it("a back-projection is drawn at the window's scale (p99.5): the brightest 0.5 % clip, the rest spread wider than by the max", { timeout: 90_000 }, async () => {
    /** Share of channel values at 0 or 255, and the mean distance from grey, of a raw PNG. */
    const stats = async (file: string) => {
      const d = await sharp(file).raw().toBuffer();
      let clipped = 0;
      let dev = 0;
      for (const v of d) {
        if (v === 0 || v === 255) clipped++;
        dev += Math.abs(v - 128);
      }
      return { clipped: clipped / d.length, dev: dev / d.length };
    };
    const byDefault = join(tmp, 'p995.png');
    const byMax = join(tmp, 'max.png');
    const args = ['explain', '--model', 'mobilenet-v1-0.25', '--mode', 'deconv', '--unit', 'pw5:7', '--json', photo('kite')];
    const j = parse(await deepvis([...args, '--out', byDefault]));
    expect(j).toMatchObject({ filter: 'raw', percentile: 99.5 });
    expect(parse(await deepvis([...args, '--percentile', '100', '--out', byMax])).percentile).toBe(100);
    const [p, m] = [await stats(byDefault), await stats(byMax)];
    // Per channel the values past the 99.5th percentile of |value| clip (and those rounding up to it).
    expect(p.clipped).toBeGreaterThan(0.004);
    expect(p.clipped).toBeLessThan(0.03);
    // By the largest value only that value reaches the end of the range.
    expect(m.clipped).toBeLessThan(0.001);
    expect(p.dev).toBeGreaterThan(1.5 * m.dev);
  });

  it('--unit takes the search box forms: layer:unit, and a class name or WordNet id without --layer', { timeout: 90_000 }, async () => {
    const out = join(tmp, 'forms.png');
    const channel = await deepvis(['explain', '--model', 'mobilenet-v1-0.25', '--mode', 'backprop', '--unit', 'pw5:7', '--out', out, '--json', photo('kite')]);
    expect(channel.code, channel.stderr).toBe(0);
    expect(JSON.parse(channel.stdout).target).toMatchObject({ kind: 'channel', display: 'pw5', unit: 7 });
    for (const spec of ['flamingo', 'n02007558', 'logits:130']) {
      const r = await deepvis(['explain', '--model', 'mobilenet-v1-0.25', '--mode', 'gradcam', '--unit', spec, '--out', out, '--json', photo('kite')]);
      expect(r.code, r.stderr).toBe(0);
      expect(JSON.parse(r.stdout).target, spec).toMatchObject({ kind: 'class', index: 130, name: 'flamingo' });
    }
    const wrong = await deepvis(['explain', '--model', 'mobilenet-v1-0.25', '--mode', 'backprop', '--layer', 'pw5', '--unit', 'flamingo', '--out', out, photo('kite')]);
    expect(wrong.code).toBe(2);
    expect(wrong.stderr).toMatch(/^deepvis: --unit flamingo: layer pw5 has channels 0…\d+, not named classes\n$/);
  });

  it('bad input: one line on stderr, nothing on stdout, exit 2', { timeout: 120_000 }, async () => {
    const notImage = join(tmp, 'not-an-image.jpg');
    writeFileSync(notImage, 'this is text, not a JPEG\n');
    const out = join(tmp, 'x.png');
    const cases: [string[], RegExp][] = [
      [['explain', '--model', 'mobilenet-v1-0.25', '--mode', 'guided', '--out', out, '--json', notImage], /not-an-image\.jpg: cannot read image/],
      [['explain', '--mode', 'guided', '--out', out, '--json', join(tmp, 'missing.jpg')], /missing\.jpg: no such file/],
      [['explain', '--model', 'mobilenet-v1-0.25', '--mode', 'backprop', '--layer', 'pw5', '--unit', '9999', '--out', out, photo('dog')], /--unit 9999 is out of range for layer pw5/],
      [['explain', '--model', 'mobilenet-v1-0.25', '--mode', 'gradcam', '--class', 'no such class', '--out', out, photo('dog')], /no class named "no such class"/],
      [['explain', '--mode', 'gradcam', '--filter', 'raw', '--out', out, photo('dog')], /--filter applies to backprop/],
      [['explain', '--mode', 'gradcam', '--percentile', '99', '--out', out, photo('dog')], /--percentile applies to backprop/],
      [['explain', '--mode', 'deconv', '--percentile', '20', '--out', out, photo('dog')], /percentile from 50 to 100/],
      [['explain', '--mode', 'sideways', '--out', out, photo('dog')], /sideways/],
    ];
    for (const [args, msg] of cases) {
      const r = await deepvis(args);
      const lines = r.stderr.split('\n').filter((l) => l.trim());
      expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(2);
      expect(lines, args.join(' ')).toHaveLength(1);
      expect(lines[0]).toMatch(/^deepvis: /);
      expect(lines[0]).toMatch(msg);
      expect(r.stdout).toBe('');
    }
  });
});
