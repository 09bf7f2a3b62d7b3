// Back-projection in the renderer, the pure parts: DVT's `b` cycle and the modes' names (the
// pixel conversions are in pixels.ts).
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

/** Each mode's names: DVT's short one (status line, titles) and the one the pane's select shows. */
export const BACK_MODE_NAMES: Record<BackModeT, { short: string; long: string }> = {
  backprop: { short: 'grad', long: 'grad (backprop)' },
  deconv: { short: 'deconv', long: 'deconv' },
  guided: { short: 'guided', long: 'guided backprop' },
};

/** "grad norm", "deconv raw", "off" — DVT's names. */
export function backLabel(s: BackSetting | null): string {
  return s ? `${BACK_MODE_NAMES[s.mode].short} ${s.filter}` : 'off';
}

/** The scale a back-projection is drawn at, in words (so a user knows what white means): short for the pane, long for its tooltip. */
export function scaleText(s: BackSetting, percentile: number): { short: string; long: string } {
  const signed = s.filter === 'raw' || s.filter === 'gray';
  const of = signed ? '|value|' : 'the norm';
  const max = percentile >= 100;
  const short = `${signed ? 'grey = 0 · full contrast' : 'black = min · white'} at ${max ? `max ${of}` : `p${percentile} of ${of}`}`;
  const top = max ? `the largest ${of} (DVT)` : `the ${percentile}th percentile of ${of} (the top ${+(100 - percentile).toFixed(2)} % clip)`;
  const long = signed ? `grey = 0, full contrast at ${top}` : `black = smallest norm, white at ${top}`;
  return { short, long };
}

/** Why deconv shows a grid pattern through strided layers (said beside the pane). */
export const DECONV_STRIDE_NOTE =
  'deconv runs each stride-2 convolution backwards as a transposed convolution, as DVT did; its 3×3 kernels overlap unevenly at stride 2, which prints a fine checkerboard on the MobileNets. It is the method, not the image: guided backprop or the norm filters show the same unit without it.';
