import { describe, expect, it } from 'vitest';
import { BACK_CYCLE, backLabel, nextBack } from './back';
import { heatToRgba, JET, rgbToRgba } from './pixels';

describe('back-projection helpers', () => {
  it('b cycles off → grad raw → grad norm → deconv raw → guided raw → off', () => {
    const seen: string[] = [];
    let s = null as ReturnType<typeof nextBack>;
    for (let i = 0; i < BACK_CYCLE.length + 1; i++) {
      s = nextBack(s);
      seen.push(backLabel(s));
    }
    expect(seen).toEqual(['grad raw', 'grad norm', 'deconv raw', 'guided raw', 'off', 'grad raw']);
    // A setting chosen in the pane that is not on the cycle: the next b turns it off.
    expect(nextBack({ mode: 'guided', filter: 'normblur' })).toBeNull();
  });

  it('jet goes blue → red; heat overlay carries the opacity as alpha', () => {
    expect([JET[0], JET[1], JET[2]]).toEqual([0, 0, 128]);
    expect([JET[765], JET[766], JET[767]]).toEqual([128, 0, 0]);
    const out = new Uint8ClampedArray(8);
    heatToRgba(new Uint8Array([0, 255]), 0.5, out);
    expect(out[3]).toBe(128);
    expect(out[4]).toBe(128);
    const rgba = new Uint8ClampedArray(8);
    rgbToRgba(new Uint8Array([1, 2, 3, 4, 5, 6]), rgba);
    expect([...rgba]).toEqual([1, 2, 3, 255, 4, 5, 6, 255]);
  });
});
