// The window's back-projection scale: full contrast at a percentile of |value| (or of the norm)
// instead of the single largest value, so one extreme pixel does not flatten the map to grey.
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { BACK_PERCENTILE_DEFAULT } from '../contract/backprojection.js';
import { displayBytes, filterMap, selectBackend } from '../main/engine/index.js';

/** A 20×20 RGB map of small values with one pixel 1000× larger. */
function spiky(): tf.Tensor4D {
  const n = 20 * 20 * 3;
  const v = Array.from({ length: n }, (_, i) => ((i * 7919) % 13) / 13 - 0.5);
  v[0] = v[1] = v[2] = 500;
  return tf.tensor4d(v, [1, 20, 20, 3]);
}

/** Distinct byte values and the spread of |byte − 128| over the image. */
async function contrast(t: tf.Tensor4D): Promise<{ levels: number; meanDev: number }> {
  const d = Array.from(await t.data());
  t.dispose();
  return { levels: new Set(d).size, meanDev: d.reduce((a, x) => a + Math.abs(x - 128), 0) / d.length };
}

describe('back-projection percentile scale', () => {
  beforeAll(async () => {
    await selectBackend('cpu');
  });

  for (const filter of ['raw', 'gray'] as const) {
    it(`${filter}: at the 99.5th percentile the small values use the range; by the max they are one grey`, async () => {
      const m = spiky();
      const byMax = await contrast(displayBytes(m, filter));
      const byPct = await contrast(displayBytes(m, filter, { percentile: BACK_PERCENTILE_DEFAULT }));
      expect(byMax.meanDev).toBeLessThan(2); // near-uniform grey: what a user saw
      expect(byPct.meanDev).toBeGreaterThan(40);
      expect(byPct.levels).toBeGreaterThan(8);
      m.dispose();
    });
  }

  it('norm: the top of min–max at the percentile; the spike clips to white', async () => {
    const m = spiky();
    const f = filterMap(m, 'norm', { percentile: 99 });
    const d = await f.data();
    expect(d[0]).toBe(1); // beyond the percentile: clipped to white
    expect(Math.max(...Array.from(d).slice(3))).toBeGreaterThan(0.5);
    const b = await displayBytes(m, 'norm', { percentile: 99 }).data();
    expect(b[0]).toBe(255);
    tf.dispose([m, f]);
  });

  it('percentile 100 is the largest value, byte for byte', async () => {
    const m = spiky();
    for (const filter of ['raw', 'gray', 'norm', 'normblur'] as const) {
      const a = await displayBytes(m, filter).data();
      const b = await displayBytes(m, filter, { percentile: 100 }).data();
      expect(Array.from(b), filter).toEqual(Array.from(a));
    }
    m.dispose();
  });

  it('raw scales each channel by its own percentile', async () => {
    // Channel 0 ten times channel 1: both fill the range.
    const v = Array.from({ length: 400 * 3 }, (_, i) => (i % 3 === 0 ? 10 : i % 3 === 1 ? 1 : 0) * (((i * 31) % 17) / 17 - 0.5));
    const m = tf.tensor4d(v, [1, 20, 20, 3]);
    const d = await filterMap(m, 'raw', { percentile: 99.5 }).data();
    const dev = (c: number) => Math.max(...Array.from(d).filter((_, i) => i % 3 === c).map((x) => Math.abs(x - 0.5)));
    expect(dev(0)).toBeGreaterThan(0.45);
    expect(dev(1)).toBeGreaterThan(0.45);
    m.dispose();
  });
});
