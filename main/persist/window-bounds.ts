// Where the desktop window reopens: its saved bounds, moved and shrunk as needed so that the whole
// window lands on a display that exists now (a laptop borrowed for a demo has no second monitor).
// Pure, so it is tested without Electron; main/electron/main.ts feeds it screen work areas.
import type { WindowState } from './app-state.js';

export interface Rect {
  x: number;
  y: number;
  width: number;
  height: number;
}

export interface WindowPlacement {
  /** Absent: let the system place the window (first start). */
  x?: number;
  y?: number;
  width: number;
  height: number;
  maximized: boolean;
}

export const DEFAULT_WINDOW_SIZE = { width: 1400, height: 900 };
export const MIN_WINDOW_SIZE = { width: 800, height: 600 };

function overlap(a: Rect, b: Rect): number {
  const w = Math.min(a.x + a.width, b.x + b.width) - Math.max(a.x, b.x);
  const h = Math.min(a.y + a.height, b.y + b.height) - Math.max(a.y, b.y);
  return w > 0 && h > 0 ? w * h : 0;
}

function clamp(v: number, lo: number, hi: number): number {
  return Math.max(lo, Math.min(hi, v));
}

/**
 * The window's placement from its saved state and the displays' work areas (the first is the
 * primary). The display that shows most of the saved window keeps it; a window on no display
 * (that monitor is gone) is centred on the primary. The size is kept within the minimum and the
 * display; the position keeps the whole window on the display.
 */
export function placeWindow(saved: WindowState | null, displays: Rect[], defaults = DEFAULT_WINDOW_SIZE, min = MIN_WINDOW_SIZE): WindowPlacement {
  const primary = displays[0];
  if (!primary) return saved ? { width: Math.max(min.width, saved.width), height: Math.max(min.height, saved.height), maximized: saved.maximized } : { ...defaults, maximized: false };
  if (!saved) {
    return { width: Math.min(defaults.width, primary.width), height: Math.min(defaults.height, primary.height), maximized: false };
  }
  let best: Rect | null = null;
  let bestArea = 0;
  for (const d of displays) {
    const a = overlap(saved, d);
    if (a > bestArea) {
      best = d;
      bestArea = a;
    }
  }
  const d = best ?? primary;
  const width = clamp(saved.width, Math.min(min.width, d.width), d.width);
  const height = clamp(saved.height, Math.min(min.height, d.height), d.height);
  if (!best) {
    return { x: d.x + Math.round((d.width - width) / 2), y: d.y + Math.round((d.height - height) / 2), width, height, maximized: saved.maximized };
  }
  return { x: clamp(saved.x, d.x, d.x + d.width - width), y: clamp(saved.y, d.y, d.y + d.height - height), width, height, maximized: saved.maximized };
}
