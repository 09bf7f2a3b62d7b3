import { describe, expect, it } from 'vitest';
import { channelFactors, gammaLut, gridLayout, moveCursor, renderTiles, renderUnit, tileAt, tileOrigin, unitFactor } from './tiles';

describe('gridLayout', () => {
  it('tiles near-square in a square pane and uses every channel', () => {
    const l = gridLayout(64, 28, 28, 1, 600, 600);
    expect(l.cols).toBe(8);
    expect(l.rows).toBe(8);
    expect(l.width).toBe(8 * 29 + 1);
  });
  it('uses more columns in a wide pane', () => {
    expect(gridLayout(64, 28, 28, 1, 1200, 300).cols).toBeGreaterThan(8);
  });
  it('fits 1000 logits', () => {
    const l = gridLayout(1000, 1, 1, 0, 600, 600);
    expect(l.cols * l.rows).toBeGreaterThanOrEqual(1000);
  });
  it('maps positions to tiles and back', () => {
    const l = gridLayout(10, 4, 4, 1, 100, 100);
    for (let i = 0; i < 10; i++) {
      const o = tileOrigin(l, i);
      expect(tileAt(l, o.x + 2, o.y + 2)).toBe(i);
    }
    expect(tileAt(l, l.width - 1, l.height - 1)).toBe(-1); // past the last tile
  });
});

describe('moveCursor', () => {
  const l = gridLayout(10, 4, 4, 0, 400, 300); // 4 columns, 3 rows (last row: 2)
  it('moves by tiles and clamps at the edges', () => {
    expect(l.cols).toBe(4);
    expect(moveCursor(l, 0, 1, 0)).toBe(1);
    expect(moveCursor(l, 0, -1, 0)).toBe(0);
    expect(moveCursor(l, 0, 3, 0)).toBe(3);
    expect(moveCursor(l, 3, 3, 0)).toBe(3);
    expect(moveCursor(l, 1, 0, 1)).toBe(5);
    expect(moveCursor(l, 5, 0, 3)).toBe(9); // row 2 has units 8, 9: clamped to the last unit
    expect(moveCursor(l, 9, 0, -3)).toBe(1);
  });
});

describe('boosts', () => {
  it('gamma LUT: 1 is the identity, < 1 brightens', () => {
    const one = gammaLut(1);
    expect(one[0]).toBe(0);
    expect(one[one.length - 1]).toBe(255);
    const half = gammaLut(0.5);
    expect(half[1024]!).toBeGreaterThan(one[1024]!);
  });
  it('per-channel boost b=0 is the layer max, b=1 normalises each channel', () => {
    const cm = new Float32Array([4, 1, 0]);
    const f0 = channelFactors(cm, 0);
    expect(f0[0]! * 4).toBeCloseTo(1);
    expect(f0[1]! * 1).toBeCloseTo(0.25);
    const f1 = channelFactors(cm, 1);
    expect(f1[0]! * 4).toBeCloseTo(1);
    expect(f1[1]! * 1).toBeCloseTo(1);
    expect(f1[2]).toBe(0);
    const f5 = channelFactors(cm, 0.5); // renormalised: the brightest channel still reaches 1
    expect(Math.max(f5[0]! * 4, f5[1]! * 1)).toBeCloseTo(1);
    expect(f5[1]! * 1).toBeGreaterThan(f0[1]! * 1);
  });
  it('unitFactor matches the grid', () => {
    const tiles = { channelMax: new Float32Array([2, 8]), scale: 8 };
    expect(unitFactor(tiles, 0, 0)).toBeCloseTo(1 / 8);
    expect(unitFactor(tiles, 0, 1)).toBeCloseTo(1 / 2);
  });
});

describe('renderTiles', () => {
  const tiles = { count: 3, h: 2, w: 2, scale: 10, channelMax: new Float32Array([10, 5, 0]), data: new Uint8Array([255, 0, 0, 0, 128, 128, 0, 0, 0, 0, 0, 0]) };
  const l = gridLayout(3, 2, 2, 0, 100, 100); // 2 cols × 2 rows
  const px = (out: Uint8ClampedArray, x: number, y: number) => out[(y * l.width + x) * 4]!;

  it('copies tiles as grey, background in empty cells', () => {
    const out = new Uint8ClampedArray(l.width * l.height * 4);
    renderTiles(tiles, l, { gamma: 1, channel: 0 }, out, [7, 8, 9]);
    expect(px(out, 0, 0)).toBe(255);
    expect(px(out, 1, 0)).toBe(0);
    expect(px(out, 2, 0)).toBe(128); // channel 1 at column 1
    const empty = tileOrigin(l, 3);
    expect([...out.subarray((empty.y * l.width + empty.x) * 4, (empty.y * l.width + empty.x) * 4 + 4)]).toEqual([7, 8, 9, 255]);
  });
  it('per-channel boost 1 brings every channel to full scale', () => {
    const out = new Uint8ClampedArray(l.width * l.height * 4);
    renderTiles(tiles, l, { gamma: 1, channel: 1 }, out, [0, 0, 0]);
    expect(px(out, 0, 0)).toBe(255);
    expect(px(out, 2, 0)).toBeGreaterThanOrEqual(254); // 128/255·10 = 5.02 ≈ its max 5
  });
  it('gamma brightens mid-tones', () => {
    const out = new Uint8ClampedArray(l.width * l.height * 4);
    renderTiles(tiles, l, { gamma: 0.5, channel: 0 }, out, [0, 0, 0]);
    expect(px(out, 2, 0)).toBeGreaterThan(170);
  });
});

describe('renderUnit', () => {
  it('enlarges with nearest neighbour and clamps negatives to black', () => {
    const out = new Uint8ClampedArray(4 * 4 * 4);
    renderUnit({ h: 2, w: 2, data: [1, -1, 0.5, 2] }, 1, 1, out, 4);
    const at = (x: number, y: number) => out[(y * 4 + x) * 4]!;
    expect(at(0, 0)).toBe(255);
    expect(at(1, 1)).toBe(255);
    expect(at(2, 0)).toBe(0);
    expect(at(0, 3)).toBe(128);
    expect(at(3, 3)).toBe(255); // 2 clamps to 1
  });
});
