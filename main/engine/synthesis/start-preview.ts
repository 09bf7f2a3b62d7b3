// A synthesis' start image as the pane first shows it, without running the synthesis: the host
// sends it when no job worker can take the job at once (one is inside a step), so the run is
// visibly under way from the moment it is asked for. The same Pyramid / macoParam start
// synthesize() begins from (tests/synth-jobs.test.ts compares the two byte for byte); a start
// from noise pixels or from the user's frame is left to the worker.
import * as tf from '@tensorflow/tfjs-core';
import { previewBytes } from './batch.js';
import { pyramidLevels } from './model-scale.js';
import { macoParam } from './parameterization.js';
import { Pyramid } from './pyramid.js';
import type { SynthSettings } from './settings.js';

export interface StartPreview {
  width: number;
  height: number;
  images: Uint8Array[];
}

export function startPreview(settings: SynthSettings, seeds: readonly number[], size: [number, number]): StartPreview | null {
  if (settings.start === 'frame' || settings.param === 'pixels' || !seeds.length) return null;
  const [h, w] = size;
  const n = seeds.length;
  if (settings.param === 'pyramid') {
    const img = tf.tensor4d(new Pyramid(n, h, w, seeds, { levels: pyramidLevels(size) }).render(), [n, h, w, 3]);
    try {
      return { width: w, height: h, images: previewBytes(img) };
    } finally {
      img.dispose();
    }
  }
  const param = macoParam(n, h, w, seeds);
  try {
    const img = param.image();
    try {
      return { width: w, height: h, images: previewBytes(img) };
    } finally {
      img.dispose();
    }
  } finally {
    param.dispose();
  }
}
