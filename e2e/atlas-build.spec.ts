// Pattern mode's atlas built from the window (web mode, real engine and job worker): a user opens
// a layer without an atlas, presses s, builds a few units at a small size with the fast preset,
// sees the tiles appear in the grid with progress and an ETA, cancels, resumes (the finished units
// stay) and sees the layer finished — and the atlas is there after a reload, from disk.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, test, type Page } from '@playwright/test';
import { startModelServer } from './global-setup.js';
import { FAST_MODEL, openApp, saveScreenshot as shot } from './helpers.js';

const LAYER = 'pw4';
// Eight batches of eight units over the two job workers: when the first batch is in, several are
// still to run, so the cancel lands mid-build however fast the machine (with three, a fast machine
// finished them all before the cancel arrived).
const UNITS = 64;
const GREY = '96,96,104'; // pattern mode's colour for a unit without an image

let server: Awaited<ReturnType<typeof startModelServer>> | null = null;
let atlasDir = '';

test.describe.configure({ mode: 'serial' });

test.beforeAll(async () => {
  test.setTimeout(240_000);
  atlasDir = mkdtempSync(join(tmpdir(), 'deepvis-e2e-atlas-build-'));
  server = await startModelServer(FAST_MODEL, { DEEPVIS_ATLAS_DIR: atlasDir });
});

test.afterAll(async () => {
  await server?.stop();
  if (atlasDir) rmSync(atlasDir, { recursive: true, force: true });
});

/** The middle of grid cell i: flat grey (no image yet) or a synthesized image. */
async function cell(page: Page, i: number): Promise<{ grey: boolean; colourful: boolean }> {
  return page.getByTestId('grid-canvas').evaluate(
    (c: HTMLCanvasElement, [i, grey]) => {
      const cols = Number(c.dataset.cols);
      const rows = Number(c.dataset.rows);
      // A grid not drawn yet (just after a reload or a mode switch) shows no unit at all.
      if (!(cols > 0 && rows > 0 && c.width > 0 && c.height > 0)) return { grey: true, colourful: false };
      const cw = c.width / cols;
      const ch = c.height / rows;
      const d = c.getContext('2d')!.getImageData(Math.round((i % cols) * cw + cw / 4), Math.round(Math.floor(i / cols) * ch + ch / 4), Math.max(1, Math.round(cw / 2)), Math.max(1, Math.round(ch / 2))).data;
      let uniform = true;
      let colourful = false;
      for (let k = 0; k < d.length; k += 4) {
        if (d[k] !== d[0] || d[k + 1] !== d[1] || d[k + 2] !== d[2]) uniform = false;
        if (Math.abs(d[k]! - d[k + 1]!) > 2 || Math.abs(d[k + 1]! - d[k + 2]!) > 2) colourful = true;
      }
      return { grey: uniform && [d[0], d[1], d[2]].join() === grey, colourful };
    },
    [i, GREY] as const,
  );
}

async function builtCells(page: Page): Promise<number> {
  let n = 0;
  for (let i = 0; i < UNITS; i++) if (!(await cell(page, i)).grey) n++;
  return n;
}

async function unitsDone(page: Page): Promise<number> {
  const m = /(\d+)\/(\d+) units/.exec((await page.getByTestId('atlas-status').textContent()) ?? '');
  return m ? Number(m[1]) : -1;
}

test('build a layer\'s atlas from the window: tiles appear with progress and ETA, cancel keeps them, resume finishes', async ({ page }, testInfo) => {
  test.setTimeout(240_000);
  await openApp(page, { url: server!.url });
  await page.getByTestId('layer-item').filter({ hasText: new RegExp(`^${LAYER}$`) }).click();
  await page.keyboard.press('f'); // a still frame: the grid changes only by the atlas
  await page.keyboard.press('s');
  await expect(page.getByTestId('pattern-hint')).toContainText(`no atlas for ${LAYER} yet — build it here`);
  await expect.poll(async () => (await cell(page, 0)).grey).toBe(true);

  // A few units, small, fast: what a user would try first.
  await page.getByTestId('atlas-build-panel').locator('summary').click();
  await page.getByTestId('atlas-preset').selectOption('fast');
  await page.getByTestId('atlas-first').fill('0');
  await page.getByTestId('atlas-last').fill(String(UNITS - 1));
  await page.getByTestId('atlas-size').fill('64');
  await page.getByTestId('atlas-iterations').fill('80');
  await expect(page.getByTestId('atlas-build')).toHaveText(`Build ${LAYER}'s atlas`);
  await page.getByTestId('atlas-build').click();

  await expect(page.getByTestId('atlas-progress')).toBeVisible();
  await expect(page.getByTestId('atlas-status')).toContainText(new RegExp(`^${LAYER}: \\d+/${UNITS} units · `));
  // The first batch's tiles, in the grid, while the rest is still being made.
  await expect.poll(() => unitsDone(page), { timeout: 120_000, intervals: [50] }).toBeGreaterThanOrEqual(8);
  await expect(page.getByTestId('atlas-status')).toContainText(/about \d+ (s|min)|almost done/);
  await page.getByTestId('atlas-cancel').click();
  await expect(page.getByTestId('atlas-status')).toContainText(new RegExp(`stopped at \\d+/${UNITS} units — Resume continues from there`), { timeout: 120_000 });
  const kept = await unitsDone(page);
  console.log(`atlas build: the cancel kept ${kept} of ${UNITS} units`);
  expect(kept).toBeGreaterThanOrEqual(8);
  expect(kept).toBeLessThan(UNITS);
  await expect.poll(() => builtCells(page)).toBe(kept);
  expect((await cell(page, 0)).colourful).toBe(true); // a synthesized RGB image
  expect((await cell(page, UNITS - 1)).grey).toBe(true);
  expect(await page.getByTestId('atlas-progress').evaluate((p: HTMLProgressElement) => [p.value, p.max])).toEqual([kept, UNITS]);
  await shot(page, testInfo, 'atlas-build-cancelled');

  // Resume: the finished units are skipped, the rest fill in.
  await expect(page.getByTestId('atlas-build')).toHaveText('Resume');
  await page.getByTestId('atlas-build').click();
  await expect(page.getByTestId('atlas-status')).toContainText(`${LAYER}: atlas done, ${UNITS}/${UNITS} units`, { timeout: 180_000 });
  await expect.poll(() => builtCells(page)).toBe(UNITS);
  await expect(page.getByTestId('pattern-hint')).toHaveCount(0);
  await shot(page, testInfo, 'atlas-build-done');

  // The atlas is on disk: a fresh window shows it at once in pattern mode.
  await page.reload();
  await expect(page.getByTestId('status-model')).toHaveText(FAST_MODEL, { timeout: 90_000 });
  await page.getByTestId('layer-item').filter({ hasText: new RegExp(`^${LAYER}$`) }).click();
  await page.keyboard.press('s');
  await expect.poll(() => builtCells(page), { timeout: 30_000 }).toBe(UNITS);
});
