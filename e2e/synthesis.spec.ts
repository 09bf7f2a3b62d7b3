// Synthesis in the app, and pattern mode: start a job for a class unit with
// `y`, watch the preview/progress/curve, export PNG + JSON; cancel; pattern mode `s` showing a layer's
// atlas built beforehand with the real CLI. This file runs its own web server (same model as the
// global one) with DEEPVIS_ATLAS_DIR pointing at that freshly built atlas.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect, test, type Download, type Page } from '@playwright/test';
import { startModelServer } from './global-setup.js';
import { canvasHash, clickTile, FAST_MODEL, openApp, saveScreenshot as shot, setRange, statusText } from './helpers.js';

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = resolve(HERE, '..');
const ATLAS_LAYER = 'pw3';

let server: Awaited<ReturnType<typeof startModelServer>> | null = null;
let atlasDir = '';

test.describe.configure({ mode: 'serial' });

test.beforeAll(async () => {
  test.setTimeout(240_000);
  atlasDir = mkdtempSync(join(tmpdir(), 'deepvis-e2e-atlas-'));
  // The real CLI, as a user would build an atlas for the conference demo.
  execFileSync(
    process.execPath,
    [join(ROOT, 'bin/deepvis.mjs'), 'atlas', '--model', FAST_MODEL, '--layer', ATLAS_LAYER, '--units', '0-3', '--preset', 'fast', '--iterations', '5', '--size', '64', '--out', atlasDir],
    { cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'], timeout: 180_000 },
  );
  server = await startModelServer(FAST_MODEL, { DEEPVIS_ATLAS_DIR: atlasDir });
});

test.afterAll(async () => {
  await server?.stop();
  if (atlasDir) rmSync(atlasDir, { recursive: true, force: true });
});

async function open(page: Page): Promise<void> {
  await openApp(page, { url: server!.url });
}

async function progressValue(page: Page): Promise<number> {
  return page.getByTestId('synth-progress').evaluate((p: HTMLProgressElement) => p.value);
}

async function selectFlamingo(page: Page): Promise<void> {
  await page.getByTestId('layer-item').filter({ hasText: /^logits$/ }).click();
  await expect(page.getByTestId('grid-canvas')).toHaveAttribute('data-count', '1000');
  await clickTile(page, 130);
  await expect(page.getByTestId('status-layer-unit')).toHaveText('logits:130');
  await expect(page.getByTestId('synth-unit')).toHaveValue('130');
}

/** Standard deviation of the grey levels of the first synthesis image (0 = a flat field). */
async function previewSpread(page: Page): Promise<number> {
  return page.getByTestId('synth-image').first().evaluate((c: HTMLCanvasElement) => {
    const d = c.getContext('2d')!.getImageData(0, 0, c.width, c.height).data;
    let sum = 0;
    let sq = 0;
    let n = 0;
    for (let k = 0; k < d.length; k += 4) for (let j = 0; j < 3; j++) {
      sum += d[k + j]!;
      sq += d[k + j]! ** 2;
      n++;
    }
    return Math.sqrt(Math.max(0, sq / n - (sum / n) ** 2));
  });
}

/** RGBA of canvas pixels inside tile i's cell (the canvas publishes its tiling). */
async function cellPixels(page: Page, i: number): Promise<{ hash: string; uniform: boolean; colourful: boolean; rgb: number[] }> {
  return page.getByTestId('grid-canvas').evaluate((c: HTMLCanvasElement, i) => {
    const cols = Number(c.dataset.cols);
    const rows = Number(c.dataset.rows);
    const cw = c.width / cols;
    const ch = c.height / rows;
    // The middle half of the cell (clear of gaps and the cursor outline).
    const x = Math.round((i % cols) * cw + cw / 4);
    const y = Math.round(Math.floor(i / cols) * ch + ch / 4);
    const w = Math.max(1, Math.round(cw / 2));
    const h = Math.max(1, Math.round(ch / 2));
    const d = c.getContext('2d')!.getImageData(x, y, w, h).data;
    const hash = window.__canvasHash!(c, { x, y, w, h });
    let uniform = true;
    let colourful = false;
    for (let k = 0; k < d.length; k += 4) {
      if (d[k] !== d[0] || d[k + 1] !== d[1] || d[k + 2] !== d[2]) uniform = false;
      if (Math.abs(d[k]! - d[k + 1]!) > 2 || Math.abs(d[k + 1]! - d[k + 2]!) > 2) colourful = true;
    }
    return { hash, uniform, colourful, rgb: [d[0]!, d[1]!, d[2]!] };
  }, i);
}

test('y synthesizes flamingo (class 130): progress, changing preview, curve, top-1, export PNG + JSON', async ({ page }, testInfo) => {
  test.setTimeout(180_000);
  const t0 = Date.now();
  await open(page);
  await selectFlamingo(page);
  await page.getByTestId('synth-preset').selectOption('fast');
  await setRange(page, 'synth-iterations', 60);
  await setRange(page, 'synth-seeds', 2);
  await setRange(page, 'synth-size', 224);
  const framesBefore = await page.evaluate(() => window.__deepvisStats?.framesDrawn ?? 0);

  // Every drawn frame's progress and preview, seen in the page: a fast run can be over (recognised)
  // before two reads from here would find it moving.
  await page.evaluate(() => {
    const seen = { progress: new Set<number>(), previews: new Set<string>() };
    (window as unknown as { __synthSeen: typeof seen }).__synthSeen = seen;
    const sample = () => {
      const p = document.querySelector<HTMLProgressElement>('[data-testid="synth-progress"]');
      if (p && p.value > 0) seen.progress.add(p.value);
      const c = document.querySelector<HTMLCanvasElement>('[data-testid="synth-image"]');
      if (c && c.width && c.height) seen.previews.add(window.__canvasHash!(c));
      if (seen.progress.size < 1000) requestAnimationFrame(sample);
    };
    requestAnimationFrame(sample);
  });
  await page.keyboard.press('y');
  const tY = Date.now();
  // The preview is there from the first step, one image per seed side by side, and not a grey field.
  await expect(page.getByTestId('synth-image')).toHaveCount(2, { timeout: 30_000 });
  const firstPreviewS = (Date.now() - tY) / 1000;
  expect(await previewSpread(page), 'grey-level spread of the first preview').toBeGreaterThan(15);
  const boxes = await page.getByTestId('synth-image').evaluateAll((els) => els.map((e) => e.getBoundingClientRect().top));
  expect(Math.abs(boxes[0]! - boxes[1]!)).toBeLessThan(2);
  await expect(page.getByTestId('synth-cancel')).toBeVisible();
  await expect(page.getByTestId('synth-label')).toHaveText(/130.*flamingo/);
  await expect(page.getByTestId('synth-progress-text')).toHaveText(/^\d+\/60 · \d+\.\d s$/, { timeout: 60_000 });

  // The fast preset stops when both seeds are recognised (or at its 60-step cap here).
  await expect(page.getByTestId('synth-status')).toHaveText(/^done( \(recognised\))? — top-1 flamingo$/, { timeout: 120_000 });
  const jobSeconds = (Date.now() - t0) / 1000;
  // The progress bar advanced and the preview changed while it ran.
  const seen = await page.evaluate(() => {
    const s = (window as unknown as { __synthSeen: { progress: Set<number>; previews: Set<string> } }).__synthSeen;
    return { progress: s.progress.size, previews: s.previews.size };
  });
  expect(seen.progress, 'distinct progress values drawn').toBeGreaterThan(1);
  expect(seen.previews, 'distinct previews drawn').toBeGreaterThan(1);
  await expect(page.getByTestId('synth-image')).toHaveCount(2);
  await expect(page.getByTestId('synth-target-prob')).toHaveText(/%$/);
  expect(parseFloat((await page.getByTestId('synth-target-prob').textContent()) ?? '0')).toBeGreaterThan(50);
  const ran = Number(/^(\d+)\/(\d+) · /.exec((await page.getByTestId('synth-progress-text').textContent()) ?? '')?.[1]);
  await expect(page.getByTestId('synth-progress-text')).toHaveText(new RegExp(`^${ran}/${ran} · `));
  expect(ran).toBeGreaterThan(0);
  expect(ran).toBeLessThanOrEqual(60);
  // The live view kept running during the job.
  expect(await page.evaluate(() => window.__deepvisStats?.framesDrawn ?? 0)).toBeGreaterThan(framesBefore + 3);
  expect(await canvasHash(page, 'synth-curve')).not.toBe('empty');
  await shot(page, testInfo, 'synthesis-done');

  // Export: the selected seed's PNG and its settings JSON.
  const downloads: Download[] = [];
  page.on('download', (d) => downloads.push(d));
  await page.getByTestId('synth-export').click();
  await expect.poll(() => downloads.length, { timeout: 15_000 }).toBe(2);
  const png = downloads.find((d) => d.suggestedFilename().endsWith('.png'))!;
  const json = downloads.find((d) => d.suggestedFilename().endsWith('.json'))!;
  expect(png.suggestedFilename()).toMatch(/^mobilenet-v1-0\.25_logits_130_flamingo_seed\d+\.png$/);
  const pngPath = testInfo.outputPath(png.suggestedFilename());
  const jsonPath = testInfo.outputPath(json.suggestedFilename());
  await png.saveAs(pngPath);
  await json.saveAs(jsonPath);
  const bytes = readFileSync(pngPath);
  expect([...bytes.subarray(0, 8)]).toEqual([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  expect(bytes.readUInt32BE(16)).toBe(224); // IHDR width
  expect(bytes.readUInt32BE(20)).toBe(224);
  const meta = JSON.parse(readFileSync(jsonPath, 'utf8'));
  expect(meta).toMatchObject({ model: FAST_MODEL, unit: 130, preset: 'fast', width: 224, height: 224 });
  expect(meta.settings).toMatchObject({ iterations: 60, param: 'pyramid' });
  expect(meta.objective_curve).toHaveLength(ran);
  expect(meta.objective_best).toBeGreaterThan(meta.objective_start);
  expect(meta.top5[0].name).toBe('flamingo');
  console.log(`synthesis (a): first preview ${firstPreviewS.toFixed(2)} s after y; ${ran} steps; job done ${jobSeconds.toFixed(1)} s after page open; export ${bytes.length} B PNG`);
});

test('cancel: Esc stops a long paper-3 job, y starts and y again cancels; the live view keeps running', async ({ page }, testInfo) => {
  test.setTimeout(180_000);
  await open(page);
  await selectFlamingo(page);
  await page.getByTestId('synth-preset').selectOption('paper-3');
  await expect(page.getByTestId('synth-iterations')).toHaveValue('1000');
  await expect(page.getByTestId('synth-theta-blurWidth')).toHaveValue('1');
  // Only the θ paper-3 uses are offered; the fast preset offers jitter and no percentile clipping.
  await expect(page.getByTestId('synth-theta-normPct')).toBeVisible();
  await expect(page.getByTestId('synth-theta-jitter')).toHaveCount(0);
  await page.getByTestId('synth-preset').selectOption('fast');
  await expect(page.getByTestId('synth-theta-jitter')).toBeVisible();
  await expect(page.getByTestId('synth-theta-normPct')).toHaveCount(0);
  await expect(page.getByTestId('synth-theta-contribPct')).toHaveCount(0);
  await page.getByTestId('synth-preset').selectOption('paper-3');
  await setRange(page, 'synth-seeds', 4);
  await setRange(page, 'synth-size', 160);
  const frames0 = await page.evaluate(() => window.__deepvisStats?.framesDrawn ?? 0);
  await page.keyboard.press('y');
  await expect.poll(() => progressValue(page), { timeout: 60_000 }).toBeGreaterThan(20);
  await expect(page.getByTestId('synth-image')).toHaveCount(4, { timeout: 30_000 });
  await expect(page.getByTestId('synth-status')).toHaveText(/^running/);
  // Screenshot mid-run (the preview and curve after some steps).
  await expect.poll(() => progressValue(page), { timeout: 60_000 }).toBeGreaterThan(60);
  await shot(page, testInfo, 'synthesis-running');
  expect(await page.evaluate(() => window.__deepvisStats?.framesDrawn ?? 0)).toBeGreaterThan(frames0 + 3);

  await page.keyboard.press('Escape');
  await expect(page.getByTestId('synth-status')).toHaveText('cancelled', { timeout: 15_000 });
  const stoppedAt = await progressValue(page);
  expect(stoppedAt).toBeLessThan(1000);
  await expect(page.getByTestId('synth-start')).toBeVisible();
  // Esc cancelled only the job: the cursor stayed on the class.
  await expect(page.getByTestId('status-layer-unit')).toHaveText('logits:130');

  await page.keyboard.press('y');
  await expect(page.getByTestId('synth-status')).toHaveText(/^running/, { timeout: 15_000 });
  await expect.poll(() => progressValue(page), { timeout: 60_000 }).toBeGreaterThan(2);
  await page.keyboard.press('y');
  await expect(page.getByTestId('synth-status')).toHaveText('cancelled', { timeout: 15_000 });
  // And the Cancel button.
  await page.getByTestId('synth-start').click();
  await expect(page.getByTestId('synth-status')).toHaveText(/^running/, { timeout: 15_000 });
  await page.getByTestId('synth-cancel').click();
  await expect(page.getByTestId('synth-status')).toHaveText('cancelled', { timeout: 15_000 });
  // No job keeps running in the engine: progress stays put.
  const p = await progressValue(page);
  await page.waitForTimeout(1000);
  expect(await progressValue(page)).toBe(p);
});

test('pattern mode (s): the grid shows the atlas tiles, grey where missing; the hint on a layer without atlas', async ({ page }, testInfo) => {
  test.setTimeout(120_000);
  await open(page);
  await page.getByTestId('layer-item').filter({ hasText: new RegExp(`^${ATLAS_LAYER}$`) }).click();
  await expect(page.getByTestId('status-layer-unit')).toHaveText(`${ATLAS_LAYER}:0`);
  // The unit pane shows unit 0's cached image at once (the layer has an atlas).
  await expect(page.getByTestId('unit-atlas-canvas')).toBeVisible();
  await page.keyboard.press('f'); // freeze, so the activation view is stable for the comparison
  await expect.poll(() => statusText(page, 'mode')).toBe('camera (frozen)');
  await page.waitForTimeout(500);
  const act0 = await cellPixels(page, 0);
  const act5 = await cellPixels(page, 5);

  await page.keyboard.press('s');
  await expect.poll(async () => (await cellPixels(page, 0)).hash).not.toBe(act0.hash);
  const pat0 = await cellPixels(page, 0);
  expect(pat0.uniform).toBe(false);
  expect(pat0.colourful).toBe(true); // a synthesized RGB image, not a grey activation map
  expect(act0.colourful).toBe(false);
  const pat5 = await cellPixels(page, 5); // unit 5 is not in the atlas: grey
  expect(pat5.uniform).toBe(true);
  expect(pat5.rgb).toEqual([96, 96, 104]);
  await expect(page.getByTestId('pattern-hint')).toHaveCount(0);
  // Unfreeze: frames keep arriving, the pattern stays.
  await page.keyboard.press('f');
  await page.waitForTimeout(800);
  expect((await cellPixels(page, 0)).hash).toBe(pat0.hash);
  await page.keyboard.press('l'); // cursor right (← → change layer while the layer list has focus)
  await expect(page.getByTestId('status-layer-unit')).toHaveText(`${ATLAS_LAYER}:1`);
  await expect(page.getByTestId('unit-atlas-canvas')).toBeVisible();
  await shot(page, testInfo, 'pattern-mode');

  // s again: activations.
  await page.keyboard.press('s');
  await expect.poll(async () => (await cellPixels(page, 5)).uniform && (await cellPixels(page, 5)).rgb.join() === '96,96,104').toBe(false);
  expect(act5.rgb.join()).not.toBe('96,96,104');

  // A layer without atlas, in pattern mode: the hint with the CLI command.
  await page.keyboard.press('s');
  await page.getByTestId('layer-item').filter({ hasText: /^pw5$/ }).click();
  await expect(page.getByTestId('pattern-hint')).toContainText(`npx deepvis atlas --model ${FAST_MODEL} --layer pw5`);
  await expect(page.getByTestId('unit-atlas')).toHaveCount(0);
  await shot(page, testInfo, 'pattern-mode-no-atlas');
  // Back to the atlas layer: tiles again, no hint.
  await page.getByTestId('layer-item').filter({ hasText: new RegExp(`^${ATLAS_LAYER}$`) }).click();
  await expect(page.getByTestId('pattern-hint')).toHaveCount(0);
  await expect.poll(async () => (await cellPixels(page, 0)).colourful).toBe(true);
});
