// Shared steps for the browser tests: open the app on a given model, read the status line, the
// top-5 and the canvases the way a user (or a screenshot) would see them.
import { copyFileSync, mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect, type Page, type TestInfo } from '@playwright/test';
import { installCanvasHash } from './canvas-hash.js';

/** Where screenshots are copied for people to look at (the report has them too). */
export const SCREENSHOTS = resolve(dirname(fileURLToPath(import.meta.url)), '.artifacts/screenshots');

export const FAST_MODEL = 'mobilenet-v1-0.25';
export const SLED_DOGS = /dogsled|malamute|Siberian husky|Eskimo dog/;

export function baseUrl(): string {
  const u = process.env.DEEPVIS_E2E_URL;
  if (!u) throw new Error('DEEPVIS_E2E_URL is not set (global-setup starts the web server)');
  return u;
}

export function wsUrl(token?: string): string {
  const u = new URL(baseUrl());
  return `ws://${u.host}/ws?token=${encodeURIComponent(token ?? u.searchParams.get('token') ?? '')}`;
}

export interface OpenOptions {
  model?: string;
  /** Extra renderer settings (localStorage override, see renderer/src/settings.ts). */
  settings?: Record<string, unknown>;
  /** Wait for the first drawn frame (default true). */
  waitForFrames?: boolean;
  url?: string;
}

export async function openApp(page: Page, opts: OpenOptions = {}): Promise<void> {
  const model = opts.model ?? FAST_MODEL;
  await installCanvasHash(page);
  await page.addInitScript((s) => localStorage.setItem('deepvis.settings', JSON.stringify(s)), { model, ...(opts.settings ?? {}) });
  await page.goto(opts.url ?? baseUrl());
  await expect(page.getByTestId('status-model')).toHaveText(model, { timeout: 90_000 });
  if (opts.waitForFrames !== false) await waitForFrames(page, 1);
}

export async function framesDrawn(page: Page): Promise<number> {
  return page.evaluate(() => window.__deepvisStats?.framesDrawn ?? 0);
}

/** Wait until `n` more engine results have been drawn. */
export async function waitForFrames(page: Page, n: number, timeout = 30_000): Promise<void> {
  const start = await framesDrawn(page);
  await page.waitForFunction((target) => (window.__deepvisStats?.framesDrawn ?? 0) >= target, start + n, { timeout });
}

export async function top5(page: Page): Promise<string[]> {
  return page.getByTestId('top5-item').allTextContents();
}

export async function top5Names(page: Page): Promise<string> {
  return (await page.getByTestId('top5-item').locator('.name').allTextContents()).join(' | ');
}

/** A cheap fingerprint of a canvas' pixels (canvas-hash.ts; the page was opened with openApp). */
export async function canvasHash(page: Page, testId: string): Promise<string> {
  return page.evaluate((id) => {
    if (!window.__canvasHash) throw new Error('window.__canvasHash is missing: open the page with openApp (or installCanvasHash)');
    const c = document.querySelector<HTMLCanvasElement>(`[data-testid="${id}"]`);
    return c ? window.__canvasHash(c) : 'empty';
  }, testId);
}

/** Distinct RGB colours of the first canvas matching `selector` (a flat canvas has one or two). */
export async function canvasColours(page: Page, selector: string): Promise<number> {
  return page.locator(selector).first().evaluate((c: HTMLCanvasElement) => {
    const d = c.getContext('2d')!.getImageData(0, 0, c.width, c.height).data;
    const s = new Set<number>();
    for (let i = 0; i < d.length; i += 4) s.add((d[i]! << 16) | (d[i + 1]! << 8) | d[i + 2]!);
    return s.size;
  });
}

/** Click tile i of the grid (the canvas publishes its tiling in data-cols/-rows/-count). */
export async function clickTile(page: Page, i: number): Promise<void> {
  const grid = page.getByTestId('grid-canvas');
  const { cols, rows, count } = await grid.evaluate((c: HTMLCanvasElement) => ({ cols: Number(c.dataset.cols), rows: Number(c.dataset.rows), count: Number(c.dataset.count) }));
  expect(i).toBeLessThan(count);
  const box = (await grid.boundingBox())!;
  await grid.click({ position: { x: ((i % cols) + 0.5) * (box.width / cols), y: (Math.floor(i / cols) + 0.5) * (box.height / rows) } });
}

export async function gridCols(page: Page): Promise<number> {
  return Number(await page.getByTestId('grid-canvas').getAttribute('data-cols'));
}

export async function statusText(page: Page, field: 'fps' | 'latency' | 'layer-unit' | 'model' | 'backend' | 'mode' | 'boost' | 'engine'): Promise<string> {
  return (await page.getByTestId(`status-${field}`).textContent()) ?? '';
}

declare global {
  interface Window {
    __deepvisStats?: { framesDrawn: number; lastFrameId: number; lastLayer: string | null; latencies: number[]; engineMs: number[]; errors: number };
  }
}

/** Set a range input the way dragging it would (input, then change), and see it took. */
export async function setRange(page: Page, testId: string, value: number): Promise<void> {
  await page.getByTestId(testId).evaluate((el: HTMLInputElement, v) => {
    el.value = String(v);
    el.dispatchEvent(new Event('input', { bubbles: true }));
    el.dispatchEvent(new Event('change', { bubbles: true }));
  }, value);
  await expect(page.getByTestId(testId)).toHaveValue(String(value));
}

/** A screenshot of the page, attached to the report and copied to e2e/.artifacts/screenshots/<name>.png. */
export async function saveScreenshot(page: Page, testInfo: TestInfo, name: string, title = name): Promise<void> {
  mkdirSync(SCREENSHOTS, { recursive: true });
  const path = testInfo.outputPath(`${name}.png`);
  await page.screenshot({ path });
  await testInfo.attach(title, { path, contentType: 'image/png' });
  copyFileSync(path, resolve(SCREENSHOTS, `${name}.png`));
}
