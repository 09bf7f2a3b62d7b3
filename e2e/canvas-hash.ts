// The one fingerprint of a canvas' pixels the browser tests and benchmarks compare: FNV-1a over the
// RGBA bytes of the canvas, or of a rectangle of it, computed in the page (reading the pixels out
// would cost more than hashing them there). It is installed into a page once, before the app's
// scripts run (addInitScript), so helpers, in-page samplers and benchmarks call the same function.
import type { Page } from '@playwright/test';

export interface CanvasRect {
  x: number;
  y: number;
  w: number;
  h: number;
}

declare global {
  interface Window {
    /** `<w>x<h>:<hex>` of the canvas (or `rect` of it); "empty" for a canvas of no pixels. */
    __canvasHash?: (c: HTMLCanvasElement, rect?: CanvasRect) => string;
  }
}

/** Runs in the page. */
function defineCanvasHash(): void {
  window.__canvasHash = (c, rect) => {
    if (!c.width || !c.height) return 'empty';
    const r = rect ?? { x: 0, y: 0, w: c.width, h: c.height };
    const d = c.getContext('2d')!.getImageData(r.x, r.y, r.w, r.h).data;
    let h = 0x811c9dc5;
    for (let i = 0; i < d.length; i += 1) h = Math.imul(h ^ d[i]!, 0x01000193);
    return `${r.w}x${r.h}:${(h >>> 0).toString(16)}`;
  };
}

/** As source text: tsx names functions with a helper of its own (__name), which the page has to have too. */
const SCRIPT = `var __name = (f) => f; (${defineCanvasHash.toString()})();`;

/** Give every document this page loads window.__canvasHash (call before page.goto). */
export async function installCanvasHash(page: Page): Promise<void> {
  await page.addInitScript({ content: SCRIPT });
}
