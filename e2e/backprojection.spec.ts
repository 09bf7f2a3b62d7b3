// Back-projection in the live view: `b` cycles the back modes and the back pane shows a
// map, `d` freezes its source while the cursor moves, `a` puts the back diffs in the grid, `z`
// zooms the unit and then the back-projection, `x` lays Grad-CAM heat over the input. A screenshot
// with back-projection and Grad-CAM on is saved (e2e/.artifacts/screenshots/backprojection.png).
import { expect, test, type Page } from '@playwright/test';
import { photo } from '../tests/support/fixtures.js';
import { canvasHash, framesDrawn, openApp, saveScreenshot } from './helpers.js';


/** Pixel spread of a canvas: the number of distinct grey-ish levels (R channel) and the std-dev. */
async function spread(page: Page, testId: string): Promise<{ levels: number; sd: number }> {
  return page.evaluate((id) => {
    const c = document.querySelector<HTMLCanvasElement>(`[data-testid="${id}"]`);
    if (!c || !c.width || !c.height) return { levels: 0, sd: 0 };
    const d = c.getContext('2d')!.getImageData(0, 0, c.width, c.height).data;
    const seen = new Set<number>();
    let s = 0;
    let s2 = 0;
    const n = d.length / 4;
    for (let i = 0; i < d.length; i += 4) {
      seen.add(d[i]!);
      s += d[i]!;
      s2 += d[i]! * d[i]!;
    }
    return { levels: seen.size, sd: Math.sqrt(Math.max(0, s2 / n - (s / n) ** 2)) };
  }, testId);
}

const status = (page: Page) => page.getByTestId('status-back');

test('b / d / a / z / x on a static photo, with a screenshot of back-projection and Grad-CAM', async ({ page }, testInfo) => {
  test.setTimeout(120_000);
  await openApp(page);
  await page.getByTestId('file-input').setInputFiles(photo('dog'));
  await expect(page.getByTestId('status-mode')).toHaveText('static 1/1 dog.jpg');
  await expect(status(page)).toHaveText('off');

  // b: grad raw — the pane shows a non-uniform map of the selected unit.
  await page.keyboard.press('b');
  await expect(status(page)).toHaveText('grad raw · src pw5:0');
  await expect(page.getByTestId('back-source')).toHaveText('pw5:0');
  await expect.poll(async () => (await spread(page, 'back-canvas')).levels).toBeGreaterThan(20);
  const gradRaw = await canvasHash(page, 'back-canvas');
  await page.keyboard.press('b');
  await expect(status(page)).toHaveText('grad norm · src pw5:0');
  await expect.poll(() => canvasHash(page, 'back-canvas')).not.toBe(gradRaw);
  const gradNorm = await canvasHash(page, 'back-canvas');
  await page.keyboard.press('b');
  await expect(status(page)).toHaveText('deconv raw · src pw5:0');
  await expect.poll(() => canvasHash(page, 'back-canvas')).not.toBe(gradNorm);
  expect((await spread(page, 'back-canvas')).sd).toBeGreaterThan(2);

  // d: the source stays pw5:0 while the cursor moves on.
  await page.keyboard.press('d');
  await expect(status(page)).toHaveText('deconv raw · src pw5:0 (frozen)');
  const frozenMap = await canvasHash(page, 'back-canvas');
  const n0 = await framesDrawn(page);
  await page.keyboard.press('ArrowRight');
  await page.keyboard.press('ArrowRight');
  await expect(page.getByTestId('status-layer-unit')).toHaveText('pw5:2');
  await expect.poll(() => framesDrawn(page)).toBeGreaterThan(n0);
  await expect(page.getByTestId('unit-name')).toHaveText('pw5:2');
  await expect(status(page)).toHaveText('deconv raw · src pw5:0 (frozen)');
  expect(await canvasHash(page, 'back-canvas')).toBe(frozenMap);
  await page.keyboard.press('d');
  await expect(status(page)).toHaveText('deconv raw · src pw5:2');
  await expect.poll(() => canvasHash(page, 'back-canvas')).not.toBe(frozenMap);

  // a: the grid shows the back diffs at the selected layer (a lower one than the source).
  await page.keyboard.press('d'); // freeze pw5:2 again
  const lastLayer = () => page.evaluate(() => window.__deepvisStats?.lastLayer ?? null);
  const layerBefore = await lastLayer();
  await page.keyboard.press('u'); // one layer down
  await expect(page.getByTestId('status-layer-unit')).not.toHaveText(/^pw5:/);
  // Until the lower layer's first frame is drawn the grid still shows pw5's, of the same size
  // here (28×28, 64 channels). Counting frames drawn does not tell: the frame the freeze sent,
  // still on its way when u was pressed, may be drawn (as pw5's) after the count was read.
  await expect.poll(lastLayer, { timeout: 30_000 }).not.toBe(layerBefore);
  // Settled: two reads 300 ms apart agree.
  let acts = await canvasHash(page, 'grid-canvas');
  await expect
    .poll(async () => {
      const h = await canvasHash(page, 'grid-canvas');
      const same = h === acts;
      acts = h;
      return same;
    }, { intervals: [300] })
    .toBe(true);
  await page.keyboard.press('a');
  await expect(page.getByTestId('status-grid')).toHaveText('back diffs');
  await expect.poll(() => canvasHash(page, 'grid-canvas')).not.toBe(acts);
  await page.keyboard.press('a');
  await expect(page.getByTestId('status-grid')).toHaveCount(0);
  await expect.poll(() => canvasHash(page, 'grid-canvas')).toBe(acts);

  // z: unit fills the grid → back-projection fills it → off.
  await page.keyboard.press('z');
  await expect(page.getByTestId('zoom-pane')).toHaveAttribute('data-zoom', 'unit');
  await expect.poll(async () => (await spread(page, 'zoom-canvas')).sd).toBeGreaterThan(1);
  await page.keyboard.press('z');
  await expect(page.getByTestId('zoom-pane')).toHaveAttribute('data-zoom', 'back');
  await expect.poll(() => canvasHash(page, 'zoom-canvas')).toBe(await canvasHash(page, 'back-canvas'));
  await page.keyboard.press('z');
  await expect(page.getByTestId('zoom-pane')).toHaveCount(0);

  // x: Grad-CAM heat over the input for the top-1 class (the pixels of the input pane change).
  const square = page.getByTestId('input-canvas').locator('..');
  const before = await square.screenshot();
  await page.keyboard.press('x');
  await expect(page.getByTestId('gradcam-toggle')).toBeChecked();
  await expect(page.getByTestId('gradcam-class-name')).toContainText(/dogsled|malamute|husky|Eskimo/);
  await expect.poll(async () => (await spread(page, 'gradcam-overlay')).levels).toBeGreaterThan(20);
  const after = await square.screenshot();
  expect(after.equals(before)).toBe(false);

  // The view with back-projection (guided, chosen in the pane) and Grad-CAM on, for the record.
  await page.keyboard.press('d'); // follow the cursor again
  await page.keyboard.press('o'); // back to pw5
  await page.getByTestId('back-mode-select').selectOption('guided');
  await page.getByTestId('back-filter-select').selectOption('norm');
  await expect(status(page)).toHaveText(/^guided norm · src pw5:2$/);
  await expect(page.getByTestId('back-source')).toHaveText('pw5:2');
  await page.waitForTimeout(500);
  await saveScreenshot(page, testInfo, 'backprojection', 'back-projection and Grad-CAM');

  // x again: the overlay goes away; b from a pane setting off the cycle turns back-projection off.
  await page.keyboard.press('x');
  await expect(page.getByTestId('gradcam-overlay')).toBeHidden();
  await page.keyboard.press('b');
  await expect(status(page)).toHaveText('off');
});

test('live camera: the back pane follows every new frame', async ({ page }) => {
  await openApp(page);
  await page.keyboard.press('b');
  await page.keyboard.press('b'); // grad norm
  await expect(page.getByTestId('status-back')).toHaveText('grad norm · src pw5:0');
  await expect.poll(async () => (await spread(page, 'back-canvas')).levels).toBeGreaterThan(20);
  // The slideshow changes photo every 2.5 s: the map changes with it.
  const seen = new Set<string>();
  const t0 = Date.now();
  while (Date.now() - t0 < 8_000 && seen.size < 3) {
    seen.add(await canvasHash(page, 'back-canvas'));
    await page.waitForTimeout(300);
  }
  expect(seen.size).toBeGreaterThanOrEqual(3);
  const s = await page.evaluate(() => window.__deepvisStats!);
  expect(s.errors).toBe(0);
});
