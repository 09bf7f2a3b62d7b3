// The benchmark's own arithmetic: a figure the issues' targets are judged by must mean what its name says.
import { describe, expect, it } from 'vitest';
import { medianToTarget } from '../scripts/bench-quality.js';

describe('median time to a target', () => {
  it('counts a run that never got there as slower than every run that did', () => {
    expect(medianToTarget([0.5, 0.2, 0.9])).toBe(0.5);
    expect(medianToTarget([0.5, null, 0.2, 0.9, 0.4])).toBe(0.5);
    expect(medianToTarget([0.4, null, 0.2, 0.8])).toBeCloseTo(0.6);
  });

  it('is null once half or more of the runs missed', () => {
    expect(medianToTarget([0.1, null, null])).toBeNull();
    expect(medianToTarget([0.1, 0.2, null, null])).toBeNull();
    expect(medianToTarget([])).toBeNull();
  });
});
