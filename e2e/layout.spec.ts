// The window on a laptop (1366×768), a desktop (1920×1080) and a projector (1280×720): every pane on
// screen without scrolling, each picture at least its minimum size, no pane overlapping another, the
// full top-5 shown, a synthesis' picture with every seed's thumbnail in its pane; then the presenter
// layout (p). Screenshots are copied to e2e/.artifacts/screenshots/layout-<w>x<h>.png for a person
// to look at.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, test, type Page } from '@playwright/test';
import { PHOTOS_DIR, photo } from '../tests/support/fixtures.js';
import { startModelServer } from './global-setup.js';
import { openApp, saveScreenshot, waitForFrames } from './helpers.js';

const SIZES = [
  { width: 1366, height: 768 },
  { width: 1920, height: 1080 },
  { width: 1280, height: 720 },
];

/** The panes that must not overlap, and the smallest size (CSS px) of each one's picture. */
const PANES = ['toolbar', 'input-pane', 'top5', 'unit-pane', 'layer-list', 'grid-box', 'back-pane', 'synth-pane', 'patches', 'status-line'];
const MIN_PICTURE: Record<string, number> = { 'input-canvas': 200, 'grid-canvas': 240, 'unit-canvas': 128, 'back-canvas': 256 };

type Box = { x: number; y: number; width: number; height: number };

let server: Awaited<ReturnType<typeof startModelServer>>;
let cacheDir: string;

test.beforeAll(async () => {
  test.setTimeout(200_000);
  cacheDir = mkdtempSync(join(tmpdir(), 'deepvis-e2e-layout-'));
  server = await startModelServer('mobilenet-v1-0.75', { DEEPVIS_CACHE_DIR: cacheDir });
});

test.afterAll(async () => {
  await server?.stop();
  if (cacheDir) rmSync(cacheDir, { recursive: true, force: true });
});

async function box(page: Page, id: string): Promise<Box> {
  const b = await page.getByTestId(id).first().boundingBox();
  expect(b, `${id} is rendered`).not.toBeNull();
  return b!;
}

function inside(b: Box, w: number, h: number): boolean {
  return b.x >= -0.5 && b.y >= -0.5 && b.x + b.width <= w + 0.5 && b.y + b.height <= h + 0.5;
}

function overlap(a: Box, b: Box): boolean {
  return a.x < b.x + b.width - 0.5 && b.x < a.x + a.width - 0.5 && a.y < b.y + b.height - 0.5 && b.y < a.y + a.height - 0.5;
}

/** Nothing scrolls: the document is the viewport's size. */
async function pageScrolls(page: Page): Promise<boolean> {
  return page.evaluate(() => document.documentElement.scrollHeight > innerHeight || document.documentElement.scrollWidth > innerWidth);
}

test('layout at a laptop, a desktop and a projector size: every pane on screen, at its minimum, no overlap', async ({ page }, testInfo) => {
  test.setTimeout(300_000);
  await page.setViewportSize(SIZES[0]!);
  await openApp(page, { url: server.url, model: 'mobilenet-v1-0.75' });
  // Real top-9 patches: index the fixture photos from the window.
  await page.getByTestId('index-folder').fill(PHOTOS_DIR);
  await page.getByTestId('index-start').click();
  await expect(page.getByTestId('index-progress')).toContainText(/Indexed 7\/7/, { timeout: 150_000 });
  await page.getByTestId('file-input').setInputFiles(photo('kite'));
  await expect(page.getByTestId('status-mode')).toHaveText('static 1/1 kite.jpg');
  await expect(page.getByTestId('top5-item').first()).toContainText('parachute');
  await page.keyboard.press('b'); // back-projection on
  await expect(page.getByTestId('patch-folder').first()).toBeVisible({ timeout: 30_000 });
  // A synthesis under way: its picture and its seeds' thumbnails (two by default) are on screen too.
  await page.keyboard.press('y');
  await expect(page.getByTestId('synth-seed')).toHaveCount(2, { timeout: 60_000 });

  for (const size of SIZES) {
    await page.setViewportSize(size);
    await waitForFrames(page, 1).catch(() => {}); // a static image is not re-sent on resize
    await page.waitForTimeout(300);
    await saveScreenshot(page, testInfo, `layout-${size.width}x${size.height}`, `layout at ${size.width}×${size.height}`);
    expect(await pageScrolls(page), 'the page scrolls').toBe(false);

    const boxes = new Map<string, Box>();
    for (const id of PANES) {
      const b = await box(page, id);
      expect(inside(b, size.width, size.height), `${id} ${JSON.stringify(b)} inside ${size.width}×${size.height}`).toBe(true);
      for (const [other, ob] of boxes) expect(overlap(b, ob), `${id} overlaps ${other}`).toBe(false);
      boxes.set(id, b);
    }
    for (const [id, min] of Object.entries(MIN_PICTURE)) {
      const b = await box(page, id);
      // Canvases scaled with object-fit: contain show a square of the smaller side.
      expect(Math.min(b.width, b.height), `${id} at ${size.width}×${size.height}`).toBeGreaterThanOrEqual(min);
      expect(inside(b, size.width, size.height), `${id} inside`).toBe(true);
    }
    // The synthesis pane leaves room for a 256 px image across, and shows it with every seed's thumbnail.
    const synthPane = await box(page, 'synth-pane');
    expect(synthPane.width).toBeGreaterThanOrEqual(272);
    const large = await box(page, 'synth-image-large');
    expect(Math.min(large.width, large.height), `synthesis image at ${size.width}×${size.height}`).toBeGreaterThanOrEqual(256);
    expect(large.y + large.height, 'synthesis image visible in its pane').toBeLessThanOrEqual(synthPane.y + synthPane.height + 0.5);
    const seeds = page.getByTestId('synth-seed');
    for (let i = 0; i < (await seeds.count()); i++) {
      const b = (await seeds.nth(i).boundingBox())!;
      expect(Math.min(b.width, b.height), `seed ${i} thumbnail at ${size.width}×${size.height}`).toBeGreaterThanOrEqual(48);
      expect(inside({ x: b.x - synthPane.x, y: b.y - synthPane.y, width: b.width, height: b.height }, synthPane.width, synthPane.height), `seed ${i} thumbnail ${JSON.stringify(b)} inside the synthesis pane ${JSON.stringify(synthPane)}`).toBe(true);
    }
    // Each top patch and its deconvolution at least 64 px, all on screen.
    const patches = page.getByTestId('patch-folder');
    const n = await patches.count();
    expect(n).toBeGreaterThanOrEqual(5);
    const patchesBox = await box(page, 'patches');
    for (let i = 0; i < n; i++) {
      for (const sel of ['canvas.crop', 'canvas.deconv']) {
        const b = (await patches.nth(i).locator(sel).boundingBox())!;
        expect(Math.min(b.width, b.height), `patch ${i} ${sel}`).toBeGreaterThanOrEqual(64);
        expect(b.y + b.height, `patch ${i} visible in its pane`).toBeLessThanOrEqual(patchesBox.y + patchesBox.height + 0.5);
      }
    }
    // The full top-5: five rows, none cut off.
    const top5 = await box(page, 'top5');
    const items = page.getByTestId('top5-item');
    await expect(items).toHaveCount(5);
    for (let i = 0; i < 5; i++) {
      const it = items.nth(i);
      const b = (await it.boundingBox())!;
      expect(b.y + b.height).toBeLessThanOrEqual(top5.y + top5.height + 0.5);
      const cut = await it.locator('.name').evaluate((el) => el.scrollWidth > el.clientWidth + 1 || el.scrollHeight > el.clientHeight + 1);
      expect(cut, `top-5 row ${i} is cut`).toBe(false);
    }
  }

  if (await page.getByTestId('synth-cancel').isVisible()) await page.getByTestId('synth-cancel').click();
  // Presenter: the grid, the unit and the back-projection large, the controls gone; p returns.
  await page.setViewportSize(SIZES[2]!);
  await page.keyboard.press('p');
  await expect(page.getByTestId('toolbar')).toBeHidden();
  await expect(page.getByTestId('synth-pane')).toBeHidden();
  await page.waitForTimeout(300);
  await saveScreenshot(page, testInfo, 'layout-presenter-1280x720', 'presenter layout at 1280×720');
  const grid = await box(page, 'grid-canvas');
  const unit = await box(page, 'unit-canvas');
  const back = await box(page, 'back-canvas');
  expect(Math.min(grid.width, grid.height)).toBeGreaterThanOrEqual(500);
  expect(Math.min(unit.width, unit.height)).toBeGreaterThanOrEqual(256);
  expect(Math.min(back.width, back.height)).toBeGreaterThanOrEqual(256);
  const status = await box(page, 'status-line');
  for (const [name, b] of [['grid', grid], ['unit', unit], ['back-projection', back]] as const) {
    expect(inside(b, 1280, 720), `presenter ${name} inside the window`).toBe(true);
    expect(overlap(b, status), `presenter ${name} overlaps the status line`).toBe(false);
  }
  expect(overlap(unit, back)).toBe(false);
  expect(overlap(grid, unit) || overlap(grid, back)).toBe(false);
  await page.keyboard.press('p');
  await expect(page.getByTestId('toolbar')).toBeVisible();

  // Opening a top patch's source image keeps the user's list: Back returns to it.
  await page.getByTestId('file-input').setInputFiles([photo('kite'), photo('dog')]);
  await page.keyboard.press('e');
  await expect(page.getByTestId('status-mode')).toHaveText('static 2/2 kite.jpg');
  await page.getByTestId('patch-folder').first().click();
  await expect(page.getByTestId('status-mode')).toHaveText(/^static 1\/1 /);
  await page.getByTestId('input-back').click();
  await expect(page.getByTestId('status-mode')).toHaveText('static 2/2 kite.jpg');
  await page.keyboard.press('e');
  await expect(page.getByTestId('status-mode')).toHaveText('static 1/2 dog.jpg');
});
