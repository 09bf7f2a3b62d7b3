// A synthesis' start image as its first preview, made in the host when no job worker can take the
// job at once (one is inside a step: a warm-up building a graph, another job): the pane shows the
// run under way from the moment it is asked for, not after that worker's current step. It is the
// image synthesize() starts from and previews first, for the parameterisations whose start is their
// own (pyramid, maco; tests/synth-jobs.test.ts compares the two byte for byte); a start from noise
// pixels or from the user's frame is left to the worker.
import { macoParam, previewBytes, pyramidParam, type SynthSettings } from '../engine/synthesis/index.js';
import { pyramidLevels } from '../engine/synthesis/model-scale.js';

export interface StartPreview {
  width: number;
  height: number;
  images: Uint8Array[];
}

export function startPreview(settings: SynthSettings, seeds: readonly number[], size: [number, number]): StartPreview | null {
  if (settings.start === 'frame' || settings.param === 'pixels' || !seeds.length) return null;
  const [h, w] = size;
  const n = seeds.length;
  const param = settings.param === 'pyramid' ? pyramidParam(n, h, w, seeds[0]!, pyramidLevels([h, w])) : macoParam(n, h, w, seeds[0]!);
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
