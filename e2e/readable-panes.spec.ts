// What a user sees in the panes that are easy to get wrong: a raw back-projection that is a picture
// rather than a flat grey (full contrast at the 99.5th percentile, the scale named beside the pane,
// deconv's stride checkerboard explained), a logits unit that shows its class, logit and
// probability instead of a black 1×1 square, a model menu that shows the whole model name, and the
// two save buttons writing the files their names promise. Screenshots:
// e2e/.artifacts/screenshots/back-percentile.png, back-deconv.png, logits-unit.png.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, test, type Download, type Page } from '@playwright/test';
import { PHOTOS_DIR, photo } from '../tests/support/fixtures.js';
import { startModelServer } from './global-setup.js';
import { canvasColours, canvasHash, openApp, saveScreenshot, setRange } from './helpers.js';

let server: Awaited<ReturnType<typeof startModelServer>>;
let cacheDir: string;

test.beforeAll(async () => {
  test.setTimeout(200_000);
  cacheDir = mkdtempSync(join(tmpdir(), 'deepvis-e2e-panes-'));
  server = await startModelServer('mobilenet-v1-0.75', { DEEPVIS_CACHE_DIR: cacheDir });
});

test.afterAll(async () => {
  await server?.stop();
  if (cacheDir) rmSync(cacheDir, { recursive: true, force: true });
});

/** Standard deviation of a canvas's red channel: a flat grey is near 0. */
async function spread(page: Page, testId: string): Promise<number> {
  return page.evaluate((id) => {
    const c = document.querySelector<HTMLCanvasElement>(`[data-testid="${id}"]`);
    if (!c || !c.width || !c.height) return 0;
    const d = c.getContext('2d')!.getImageData(0, 0, c.width, c.height).data;
    let s = 0;
    let s2 = 0;
    const n = d.length / 4;
    for (let i = 0; i < d.length; i += 4) {
      s += d[i]!;
      s2 += d[i]! * d[i]!;
    }
    return Math.sqrt(Math.max(0, s2 / n - (s / n) ** 2));
  }, testId);
}

/** Make a change and wait until the back pane shows its result: the picture changes, then holds still. */
async function backAfter(page: Page, change: () => Promise<unknown>): Promise<number> {
  const before = await canvasHash(page, 'back-canvas');
  await change();
  await expect.poll(() => canvasHash(page, 'back-canvas'), { timeout: 30_000 }).not.toBe(before);
  let last = -1;
  await expect
    .poll(async () => {
      const s = await spread(page, 'back-canvas');
      const same = Math.abs(s - last) < 1e-6;
      last = s;
      return same;
    }, { timeout: 30_000, intervals: [400, 400, 600, 800] })
    .toBe(true);
  return last;
}

test('back-projection: every mode at the 99.5th percentile by default, a picture not a grey; the scale named; deconv explained', async ({ page }, testInfo) => {
  test.setTimeout(180_000);
  await page.setViewportSize({ width: 1366, height: 768 });
  await openApp(page, { url: server.url, model: 'mobilenet-v1-0.75' });
  await page.getByTestId('file-input').setInputFiles(photo('kite'));
  await expect(page.getByTestId('status-mode')).toHaveText('static 1/1 kite.jpg');
  await backAfter(page, () => page.keyboard.press('b')); // grad raw
  await expect(page.getByTestId('status-back')).toHaveText('grad raw · src pw5:0');
  await expect(page.getByTestId('back-scale-select')).toHaveValue('99.5');
  await expect(page.getByTestId('back-scale-note')).toHaveText('grey = 0 · full contrast at p99.5 of |value|');
  await expect(page.getByTestId('back-scale-note')).toHaveAttribute('title', 'grey = 0, full contrast at the 99.5th percentile of |value| (the top 0.5 % clip)');
  await saveScreenshot(page, testInfo, 'back-percentile', 'grad raw at the 99.5th percentile');

  // Each mode at the default percentile against DVT's scale by the largest value: much less grey.
  const seen: string[] = [];
  for (const mode of ['backprop', 'deconv', 'guided'] as const) {
    if (mode !== 'backprop') await backAfter(page, () => page.getByTestId('back-mode-select').selectOption(mode));
    await expect(page.getByTestId('back-scale-select')).toHaveValue('99.5');
    const byMax = await backAfter(page, () => page.getByTestId('back-scale-select').selectOption('100'));
    const byPct = await backAfter(page, () => page.getByTestId('back-scale-select').selectOption('99.5'));
    seen.push(`${mode}: p99.5 ${byPct.toFixed(1)} vs max ${byMax.toFixed(1)}`);
    expect(byPct, seen.join('; ')).toBeGreaterThan(1.5 * byMax);
    await expect(page.getByTestId('deconv-note')).toHaveCount(mode === 'deconv' ? 1 : 0);
  }
  testInfo.annotations.push({ type: 'back-projection spread (sd of the red channel)', description: seen.join('; ') });
  console.log(seen.join('; '));
  await page.getByTestId('back-mode-select').selectOption('deconv');
  await expect(page.getByTestId('deconv-note')).toContainText('transposed');
  await expect(page.getByTestId('back-scale-note')).toHaveAttribute('title', /stride-2 convolution backwards as a transposed convolution/);
  await saveScreenshot(page, testInfo, 'back-deconv', 'deconv raw at the 99.5th percentile, with its note');
  // The norm filters name their own scale.
  await page.getByTestId('back-mode-select').selectOption('guided');
  await page.getByTestId('back-filter-select').selectOption('norm');
  await expect(page.getByTestId('back-scale-note')).toHaveText('black = min · white at p99.5 of the norm');
});

test('a logits unit shows its class, logit and probability over time, not a black square', async ({ page }, testInfo) => {
  test.setTimeout(120_000);
  await page.setViewportSize({ width: 1366, height: 768 });
  await openApp(page, { url: server.url, model: 'mobilenet-v1-0.75' });
  await page.getByTestId('file-input').setInputFiles(photo('kite'));
  await expect(page.getByTestId('top5-item').first()).toContainText('parachute');
  await page.keyboard.press('/');
  await page.keyboard.type('parachute');
  await page.keyboard.press('Enter');
  await expect(page.getByTestId('status-layer-unit')).toHaveText('logits:701');
  await expect(page.getByTestId('unit-class')).toHaveText('parachute, chute');
  await expect(page.getByTestId('unit-scalar')).toContainText('logit');
  await expect(page.getByTestId('unit-scalar-value')).toHaveText(/^-?\d/);
  // The class is the frame's top-1: its probability is the top-5's first.
  const p = (await page.getByTestId('top5-item').first().locator('.prob').textContent())!.trim();
  await expect(page.getByTestId('unit-scalar-prob')).toHaveText(`p ${p}`);
  expect(await canvasColours(page, '[data-testid="unit-canvas"]'), 'the unit canvas draws the value, not one black pixel').toBeGreaterThan(2);
  await saveScreenshot(page, testInfo, 'logits-unit', 'logits unit pane: class, logit, probability');
  // A class outside the top-5 says so rather than inventing a probability.
  await page.keyboard.press('/');
  await page.keyboard.type('flamingo');
  await page.keyboard.press('Enter');
  await expect(page.getByTestId('unit-class')).toHaveText('flamingo');
  const inTop5 = (await page.getByTestId('top5-item').allTextContents()).some((t) => t.includes('flamingo'));
  if (!inTop5) await expect(page.getByTestId('unit-scalar-prob')).toContainText('not in top-5');
  // Back on a spatial layer the map is back.
  await page.keyboard.press('/');
  await page.keyboard.type('pw5:3');
  await page.keyboard.press('Enter');
  await expect(page.getByTestId('unit-scalar')).toHaveCount(0);
});

test('the model menu shows the whole model name at 1280×720 and 1366×768', async ({ page }) => {
  test.setTimeout(90_000);
  await openApp(page, { url: server.url, model: 'mobilenet-v1-0.75' });
  for (const size of [{ width: 1280, height: 720 }, { width: 1366, height: 768 }]) {
    await page.setViewportSize(size);
    const select = page.getByTestId('model-select');
    const title = await select.evaluate((el: HTMLSelectElement) => el.selectedOptions[0]!.textContent!.trim());
    expect(title).toMatch(/MobileNet v1 α=0\.75/);
    await expect(select).toHaveAttribute('title', title);
    // The chosen name's rendered width fits inside the select (beside its arrow).
    const fit = await select.evaluate((el: HTMLSelectElement) => {
      const probe = document.createElement('span');
      probe.style.font = getComputedStyle(el).font;
      probe.style.whiteSpace = 'pre';
      probe.textContent = el.selectedOptions[0]!.textContent;
      document.body.appendChild(probe);
      const text = probe.getBoundingClientRect().width;
      probe.remove();
      const cs = getComputedStyle(el);
      return { text, room: el.clientWidth - parseFloat(cs.paddingLeft) - parseFloat(cs.paddingRight) };
    });
    expect(fit.text, `model name ${fit.text} px in ${fit.room} px at ${size.width}×${size.height}`).toBeLessThanOrEqual(fit.room);
    // The toolbar itself still fits the window.
    const bar = (await page.getByTestId('toolbar').boundingBox())!;
    expect(await page.getByTestId('toolbar').evaluate((el) => el.scrollWidth <= el.clientWidth + 1)).toBe(true);
    expect(bar.width).toBeLessThanOrEqual(size.width);
  }
});

test('“save unit” writes activation, back-projection, seeds and top-9 with source paths; “save image” the seed and its settings', async ({ page }) => {
  test.setTimeout(300_000);
  await page.setViewportSize({ width: 1366, height: 768 });
  await openApp(page, { url: server.url, model: 'mobilenet-v1-0.75' });
  await expect(page.getByTestId('export-unit')).toHaveText('save unit');
  await page.getByTestId('index-folder').fill(PHOTOS_DIR);
  await page.getByTestId('index-start').click();
  await expect(page.getByTestId('index-progress')).toContainText(/Indexed 7\/7/, { timeout: 150_000 });
  await page.getByTestId('file-input').setInputFiles(photo('kite'));
  await expect(page.getByTestId('status-mode')).toHaveText('static 1/1 kite.jpg');
  await page.keyboard.press('b');
  await expect(page.getByTestId('patch-folder').first()).toBeVisible({ timeout: 30_000 });
  await setRange(page, 'synth-iterations', 20);
  await setRange(page, 'synth-seeds', 2);
  await page.getByTestId('synth-start').click();
  await expect(page.getByTestId('synth-status')).toHaveText(/^done/, { timeout: 180_000 });
  await expect(page.getByTestId('synth-export')).toHaveText('save image');

  const downloads: Download[] = [];
  page.on('download', (d) => downloads.push(d));
  await page.getByTestId('export-unit').click();
  await expect.poll(() => downloads.some((d) => d.suggestedFilename().endsWith('_unit.json')), { timeout: 20_000 }).toBe(true);
  const names = downloads.map((d) => d.suggestedFilename());
  const patches = await page.getByTestId('patch-folder').count();
  for (const part of ['activation', 'back', 'seed1', 'seed2', 'top1', 'top1_deconv', `top${patches}`]) {
    expect(names.some((n) => n.endsWith(`_${part}.png`)), `${part}.png in ${names.join(', ')}`).toBe(true);
  }
  expect(names.every((n) => n.startsWith('mobilenet-v1-0.75_pw5-0_'))).toBe(true);
  const unitJson = downloads.find((d) => d.suggestedFilename().endsWith('_unit.json'))!;
  const unit = JSON.parse(readFileSync((await unitJson.path())!, 'utf8')) as { unit: number; layer: string; topPatches: { rank: number; image: string }[] };
  expect(unit).toMatchObject({ layer: 'conv_pw_5_relu', unit: 0 });
  expect(unit.topPatches).toHaveLength(patches);
  for (const p of unit.topPatches) expect(p.image.startsWith(PHOTOS_DIR), p.image).toBe(true);

  downloads.length = 0;
  await page.getByTestId('synth-export').click();
  await expect.poll(() => downloads.map((d) => d.suggestedFilename()).sort().join(' '), { timeout: 20_000 }).toMatch(/\.json .*\.png$|\.json$/);
  await expect.poll(() => downloads.length, { timeout: 10_000 }).toBe(2);
  const png = downloads.find((d) => d.suggestedFilename().endsWith('.png'))!;
  const json = downloads.find((d) => d.suggestedFilename().endsWith('.json'))!;
  expect(readFileSync((await png.path())!).subarray(1, 4).toString()).toBe('PNG');
  const side = JSON.parse(readFileSync((await json.path())!, 'utf8')) as Record<string, unknown>;
  expect(side).toMatchObject({ model: 'mobilenet-v1-0.75', layer: 'conv_pw_5_relu', unit: 0 });
  expect(side.settings).toBeTruthy();
});

test('the synthesized image is at least 256 px on a 1280×720 projector, and a model switch clears the synthesis pane', async ({ page }, testInfo) => {
  test.setTimeout(240_000);
  await page.setViewportSize({ width: 1280, height: 720 });
  await openApp(page, { url: server.url, model: 'mobilenet-v1-0.75' });
  await page.keyboard.press('/');
  await page.keyboard.type('flamingo');
  await page.keyboard.press('Enter');
  await setRange(page, 'synth-iterations', 20);
  await setRange(page, 'synth-seeds', 2);
  await page.getByTestId('synth-start').click();
  await expect(page.getByTestId('synth-status')).toHaveText(/^done/, { timeout: 180_000 });
  await expect(page.getByTestId('synth-image')).toHaveCount(2);
  const large = (await page.getByTestId('synth-image-large').boundingBox())!;
  const pane = (await page.getByTestId('synth-pane').boundingBox())!;
  expect(Math.min(large.width, large.height), 'synthesized image size').toBeGreaterThanOrEqual(256);
  // On screen without scrolling the pane: inside it and inside the window.
  expect(large.y + large.height, 'image bottom within the synthesis pane').toBeLessThanOrEqual(pane.y + pane.height + 0.5);
  expect(large.x + large.width).toBeLessThanOrEqual(1280);
  await saveScreenshot(page, testInfo, 'synthesis-1280x720', 'synthesis done at 1280×720');
  // The other seed (the best one is selected when the run ends), chosen with the keyboard, shows
  // large; a click back on the first one shows that again.
  const before = await canvasHash(page, 'synth-image-large');
  const seeds = page.getByTestId('synth-seed');
  const pressed = await seeds.evaluateAll((els) => els.map((e) => e.getAttribute('aria-pressed')));
  const was = pressed.indexOf('true');
  const other = seeds.nth(1 - was);
  await other.focus();
  await page.keyboard.press('Enter');
  await expect(other).toHaveAttribute('aria-pressed', 'true');
  await expect(seeds.nth(was)).toHaveAttribute('aria-pressed', 'false');
  await expect.poll(() => canvasHash(page, 'synth-image-large')).not.toBe(before);
  await seeds.nth(was).click();
  await expect.poll(() => canvasHash(page, 'synth-image-large')).toBe(before);

  await page.getByTestId('model-select').selectOption('mobilenet-v1-0.25');
  await expect(page.getByTestId('status-model')).toHaveText('mobilenet-v1-0.25', { timeout: 90_000 });
  await expect(page.getByTestId('synth-image')).toHaveCount(0);
  await expect(page.getByTestId('synth-image-large')).toHaveCount(0);
  await expect(page.getByTestId('synth-status')).toHaveCount(0);
  await expect(page.getByTestId('synth-start')).toBeVisible();
});
