// The live view with the fake camera (the fixture photos as a slideshow, 2.5 s each, mirrored like a
// mirror): frames flow, tiles select units, keys move the cursor and the layer, `f` freezes.
import { expect, test } from '@playwright/test';
import { canvasHash, clickTile, framesDrawn, gridCols, openApp, SLED_DOGS, statusText, top5, top5Names, waitForFrames } from './helpers.js';

test('frames flow: fps above zero, top-5 follows the slideshow (sled dogs while the dog plays)', async ({ page }) => {
  await openApp(page);
  await expect(page.getByTestId('status-backend')).not.toHaveText('—');
  await expect.poll(async () => parseFloat(await statusText(page, 'fps')), { timeout: 15_000 }).toBeGreaterThan(0);
  await expect.poll(async () => parseFloat(await statusText(page, 'latency'))).toBeGreaterThan(0);
  await expect(page.getByTestId('top5-item')).toHaveCount(5);

  // Watch one full loop of the slideshow (7 photos × 2.5 s): the top-5 changes from photo to photo,
  // and a sled-dog class shows up while the dog photo plays.
  const seen = new Set<string>();
  let sledDogs = false;
  const t0 = Date.now();
  while (Date.now() - t0 < 25_000 && !(sledDogs && seen.size >= 3)) {
    const names = await top5Names(page);
    seen.add(names);
    if (SLED_DOGS.test(names)) sledDogs = true;
    await page.waitForTimeout(400);
  }
  expect(sledDogs, `a sled-dog class in the top-5 at some point; saw:\n${[...seen].join('\n')}`).toBe(true);
  expect(seen.size, 'the top-5 changes as the photos change').toBeGreaterThanOrEqual(3);
  const s = await page.evaluate(() => window.__deepvisStats!);
  expect(s.latencies.length).toBe(s.framesDrawn);
  expect(s.engineMs.every((x) => x > 0)).toBe(true);
});

test('clicking a tile selects that unit and the enlarged map changes', async ({ page }) => {
  await openApp(page);
  await expect(page.getByTestId('status-layer-unit')).toHaveText(/^pw5:0$/);
  // Freeze so that only the selection changes what the unit pane shows.
  await page.keyboard.press('f');
  await expect(page.getByTestId('status-mode')).toHaveText('camera (frozen)');
  await page.waitForTimeout(300);
  const before = await canvasHash(page, 'unit-canvas');
  await clickTile(page, 10);
  await expect(page.getByTestId('status-layer-unit')).toHaveText('pw5:10');
  await expect(page.getByTestId('unit-name')).toHaveText('pw5:10');
  await expect.poll(() => canvasHash(page, 'unit-canvas')).not.toBe(before);
  const ten = await canvasHash(page, 'unit-canvas');
  await clickTile(page, 3);
  await expect(page.getByTestId('status-layer-unit')).toHaveText('pw5:3');
  await expect.poll(() => canvasHash(page, 'unit-canvas')).not.toBe(ten);
});

test('arrow keys, j l k i (J L K I ×3), u / o and the layer list move the cursor and the layer', async ({ page }) => {
  await openApp(page);
  const unit = page.getByTestId('status-layer-unit');
  await expect(unit).toHaveText('pw5:0');
  const cols = await gridCols(page);
  expect(cols).toBeGreaterThan(3);
  await page.keyboard.press('ArrowRight');
  await expect(unit).toHaveText('pw5:1');
  await page.keyboard.press('l');
  await expect(unit).toHaveText('pw5:2');
  await page.keyboard.press('L');
  await expect(unit).toHaveText('pw5:5');
  await page.keyboard.press('ArrowDown');
  await expect(unit).toHaveText(`pw5:${5 + cols}`);
  await page.keyboard.press('k');
  await expect(unit).toHaveText(`pw5:${5 + 2 * cols}`);
  await page.keyboard.press('i');
  await page.keyboard.press('ArrowUp');
  await expect(unit).toHaveText('pw5:5');
  await page.keyboard.press('J');
  await expect(unit).toHaveText('pw5:2');
  await page.keyboard.press('j');
  await page.keyboard.press('ArrowLeft');
  await expect(unit).toHaveText('pw5:0');
  await page.keyboard.press('ArrowLeft'); // clamped at the edge
  await expect(unit).toHaveText('pw5:0');

  // u / o: previous / next layer; the grid is redrawn with the new layer's channel count.
  await page.keyboard.press('o');
  await expect(unit).toHaveText('dw6:0');
  await expect(page.getByTestId('grid-canvas')).toHaveAttribute('data-count', '64');
  await page.keyboard.press('o');
  await expect(unit).toHaveText('pw6:0');
  await expect(page.getByTestId('grid-canvas')).toHaveAttribute('data-count', '128');
  await page.keyboard.press('u');
  await page.keyboard.press('u');
  await expect(unit).toHaveText('pw5:0');

  // The layer list: a click selects a layer and leaves the keys to the toolbox (←/→ move the
  // cursor); with the list focused from the keyboard (Tab), ←/→ change layer.
  await page.getByTestId('layer-item').filter({ hasText: /^conv1$/ }).click();
  await expect(unit).toHaveText('conv1:0');
  await expect(page.getByTestId('grid-canvas')).toHaveAttribute('data-count', '8'); // α = 0.25: 32 × 0.25 channels
  await expect(page.getByTestId('layer-list')).not.toBeFocused();
  await page.keyboard.press('ArrowRight');
  await expect(unit).toHaveText('conv1:1');
  await page.keyboard.press('ArrowLeft');
  await expect(unit).toHaveText('conv1:0');
  await page.getByTestId('layer-list').focus();
  await page.keyboard.press('ArrowRight');
  await expect(unit).toHaveText('dw1:0');
  await page.keyboard.press('ArrowLeft');
  await expect(unit).toHaveText('conv1:0');
  await page.keyboard.press('Escape'); // Esc hands the keys back from the list
  await expect(page.getByTestId('layer-list')).not.toBeFocused();
  await page.keyboard.press('ArrowRight');
  await expect(unit).toHaveText('conv1:1');
  await page.keyboard.press('ArrowLeft');

  // Mouse wheel over the grid changes layer too.
  const box = (await page.getByTestId('grid-canvas').boundingBox())!;
  await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
  await page.mouse.wheel(0, 120);
  await expect(unit).toHaveText('dw1:0');
  await page.mouse.wheel(0, -120);
  await expect(unit).toHaveText('conv1:0');

  // The last layer (logits) shows all 1000 classes as 1×1 tiles.
  await page.getByTestId('layer-item').filter({ hasText: /^logits$/ }).click();
  await expect(page.getByTestId('grid-canvas')).toHaveAttribute('data-count', '1000');
  await waitForFrames(page, 2);
});

test('f freezes the frame (top-5 and grid stop changing) and unfreezes', async ({ page }) => {
  await openApp(page);
  await waitForFrames(page, 5);
  await page.keyboard.press('f');
  await expect(page.getByTestId('status-mode')).toHaveText('camera (frozen)');
  await expect(page.getByTestId('input-canvas')).toBeVisible();
  await page.waitForTimeout(400); // a frame in flight when f was pressed may still land
  const frozen = { top: await top5(page), grid: await canvasHash(page, 'grid-canvas'), n: await framesDrawn(page) };
  await page.waitForTimeout(1500);
  expect(await top5(page)).toEqual(frozen.top);
  expect(await canvasHash(page, 'grid-canvas')).toBe(frozen.grid);
  expect(await framesDrawn(page)).toBe(frozen.n);
  await expect.poll(async () => parseFloat(await statusText(page, 'fps'))).toBe(0);

  // Frozen, the layer can still be explored: the engine runs the frozen frame again.
  let n = await framesDrawn(page);
  await page.keyboard.press('o');
  await page.waitForFunction((k) => window.__deepvisStats!.framesDrawn > k, n);
  n = await framesDrawn(page);
  await page.keyboard.press('u');
  await page.waitForFunction((k) => window.__deepvisStats!.framesDrawn > k, n);
  await page.waitForTimeout(300);
  expect(await top5(page)).toEqual(frozen.top);
  expect(await canvasHash(page, 'grid-canvas')).toBe(frozen.grid);

  await page.keyboard.press('f');
  await expect(page.getByTestId('status-mode')).toHaveText('camera');
  await waitForFrames(page, 5);
  await expect.poll(async () => parseFloat(await statusText(page, 'fps'))).toBeGreaterThan(0);
});

test('h shows the help with every binding; t / T boost the display; 8 hides the labels; Esc resets', async ({ page }) => {
  await openApp(page);
  await page.keyboard.press('h');
  const help = page.getByTestId('help-overlay');
  await expect(help).toBeVisible();
  for (const text of ['freeze', 'previous layer', 'next layer', 'gamma boost', 'per-channel boost', 'camera ↔ static', 'next image', 'reset', 'quit']) {
    await expect(help).toContainText(text);
  }
  await page.keyboard.press('Escape');
  await expect(help).toBeHidden();

  await page.keyboard.press('f');
  await page.waitForTimeout(400);
  const plain = await canvasHash(page, 'grid-canvas');
  await page.keyboard.press('t');
  await expect(page.getByTestId('status-boost')).toHaveText('γ 0.7 · b 0');
  await page.keyboard.press('T');
  await expect(page.getByTestId('status-boost')).toHaveText('γ 0.7 · b 0.3');
  expect(await canvasHash(page, 'grid-canvas')).not.toBe(plain);
  await page.keyboard.press('ArrowRight');
  await expect(page.getByTestId('status-layer-unit')).toHaveText('pw5:1');

  await page.keyboard.press('8');
  await expect(page.getByTestId('top5-item')).toHaveCount(0);
  await page.keyboard.press('8');
  await expect(page.getByTestId('top5-item')).toHaveCount(5);

  await page.keyboard.press('Escape');
  await expect(page.getByTestId('status-boost')).toHaveText('off');
  await expect(page.getByTestId('status-layer-unit')).toHaveText('pw5:0');
  await expect.poll(() => canvasHash(page, 'grid-canvas')).toBe(plain);
  await page.keyboard.press('q'); // a no-op in the browser
  await expect(page.getByTestId('status-model')).toHaveText('mobilenet-v1-0.25');
});
