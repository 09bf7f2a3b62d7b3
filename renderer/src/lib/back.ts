// Back-projection in the renderer, the pure parts: DVT's `b` cycle, status labels, and
// pixel conversions for the back pane, the zoom view and the Grad-CAM overlay.
import type { BackFilterT, BackModeT } from '../../../contract/backprojection';

export interface BackSetting {
  mode: BackModeT;
  filter: BackFilterT;
}

/**
 * `b` cycles off → grad raw → grad norm → deconv raw → guided raw → off: DVT's cycle with guided
 * backprop added after deconv. Any mode × filter is also reachable from the back pane's selects.
 */
export const BACK_CYCLE: (BackSetting | null)[] = [
  null,
  { mode: 'backprop', filter: 'raw' },
  { mode: 'backprop', filter: 'norm' },
  { mode: 'deconv', filter: 'raw' },
  { mode: 'guided', filter: 'raw' },
];

/** The next setting of the cycle after `cur` (a setting off the cycle goes back to off). */
export function nextBack(cur: BackSetting | null, cycle: (BackSetting | null)[] = BACK_CYCLE): BackSetting | null {
  const i = cycle.findIndex((s) => (s === null ? cur === null : cur !== null && s.mode === cur.mode && s.filter === cur.filter));
  return cycle[(i + 1) % cycle.length] ?? null;
}

const MODE_NAMES: Record<BackModeT, string> = { backprop: 'grad', deconv: 'deconv', guided: 'guided' };

/** "grad norm", "deconv raw", "off" — DVT's names. */
export function backLabel(s: BackSetting | null): string {
  return s ? `${MODE_NAMES[s.mode]} ${s.filter}` : 'off';
}

/** Packed RGB → RGBA (opaque) into `out` (width·height·4). */
export function rgbToRgba(rgb: Uint8Array, out: Uint8ClampedArray): void {
  for (let i = 0, j = 0; i < rgb.length; i += 3, j += 4) {
    out[j] = rgb[i]!;
    out[j + 1] = rgb[i + 1]!;
    out[j + 2] = rgb[i + 2]!;
    out[j + 3] = 255;
  }
}

/** The jet colormap as a 256-entry RGB table (the engine's jet: 1.5 − |4t − centre|, clipped). */
export const JET: Uint8Array = (() => {
  const lut = new Uint8Array(256 * 3);
  for (let v = 0; v < 256; v++) {
    const t = v / 255;
    [3, 2, 1].forEach((c, k) => (lut[v * 3 + k] = Math.round(255 * Math.min(1, Math.max(0, 1.5 - Math.abs(4 * t - c))))));
  }
  return lut;
})();

/** Grad-CAM heat (0..255) → jet RGBA with alpha = opacity (0…1), for a canvas laid over the input. */
export function heatToRgba(heat: Uint8Array, opacity: number, out: Uint8ClampedArray): void {
  const a = Math.round(255 * Math.min(1, Math.max(0, opacity)));
  for (let i = 0, j = 0; i < heat.length; i++, j += 4) {
    const v = heat[i]! * 3;
    out[j] = JET[v]!;
    out[j + 1] = JET[v + 1]!;
    out[j + 2] = JET[v + 2]!;
    out[j + 3] = a;
  }
}
