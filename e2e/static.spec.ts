// Static images and the failure paths of the input and the model: a photo opened from disk shows its
// top-5; a denied or unplugged camera explains itself and static mode still works; a model that
// fails to load is named and the previous model keeps running.
import { expect, test } from '@playwright/test';
import { photo } from '../tests/support/fixtures.js';
import { framesDrawn, openApp, top5Names, waitForFrames, SLED_DOGS } from './helpers.js';


test('opening kite.jpg in static mode shows its top-5 (parachute on mobilenet-v1-0.75)', async ({ page }) => {
  await openApp(page, { model: 'mobilenet-v1-0.75' });
  await page.getByTestId('file-input').setInputFiles(photo('kite'));
  await expect(page.getByTestId('status-mode')).toHaveText('static 1/1 kite.jpg');
  await expect(page.getByTestId('top5-item').first()).toContainText('parachute');
  await expect(page.getByTestId('input-canvas')).toBeVisible();
  // Static mode keeps answering layer changes with the same image.
  await page.keyboard.press('o');
  await expect(page.getByTestId('status-layer-unit')).not.toHaveText(/^pw5:/);
  await expect(page.getByTestId('top5-item').first()).toContainText('parachute');
});

test('static images: several files, e / w and PgDn / PgUp step through them, c returns to the camera', async ({ page }) => {
  await openApp(page);
  await page.getByTestId('file-input').setInputFiles([photo('kite'), photo('dog'), photo('eagle')]);
  const mode = page.getByTestId('status-mode');
  await expect(mode).toHaveText('static 1/3 dog.jpg'); // sorted by name
  await expect.poll(() => top5Names(page)).toMatch(/^dogsled/);
  await page.keyboard.press('e');
  await expect(mode).toHaveText('static 2/3 eagle.jpg');
  await expect.poll(() => top5Names(page)).toMatch(/^ruddy turnstone/);
  await page.keyboard.press('PageDown');
  await expect(mode).toHaveText('static 3/3 kite.jpg');
  await page.keyboard.press('e');
  await expect(mode).toHaveText('static 1/3 dog.jpg');
  await page.keyboard.press('w');
  await expect(mode).toHaveText('static 3/3 kite.jpg');
  await page.keyboard.press('PageUp');
  await expect(mode).toHaveText('static 2/3 eagle.jpg');
  await page.keyboard.press('c');
  await expect(mode).toHaveText('camera');
  await waitForFrames(page, 3);
  await page.keyboard.press('c');
  await expect(mode).toHaveText('static 2/3 eagle.jpg');
});

test('camera denied: a clear message, and static images still work', async ({ page }) => {
  await page.addInitScript(() => {
    navigator.mediaDevices.getUserMedia = () => Promise.reject(new DOMException('Permission denied', 'NotAllowedError'));
  });
  await openApp(page, { waitForFrames: false });
  await expect(page.getByTestId('error-camera')).toContainText('Camera access was denied');
  await expect(page.getByTestId('status-mode')).toHaveText('camera (denied)');
  expect(await framesDrawn(page)).toBe(0);
  await page.getByTestId('file-input').setInputFiles(photo('dog'));
  await expect(page.getByTestId('status-mode')).toHaveText('static 1/1 dog.jpg');
  await expect.poll(() => top5Names(page)).toMatch(SLED_DOGS);
  await expect(page.getByTestId('error-camera')).toHaveCount(0);
});

test('no camera: a clear message', async ({ page }) => {
  await page.addInitScript(() => {
    navigator.mediaDevices.getUserMedia = () => Promise.reject(new DOMException('Requested device not found', 'NotFoundError'));
  });
  await openApp(page, { waitForFrames: false });
  await expect(page.getByTestId('error-camera')).toContainText('No camera found');
});

test('camera unplugged while running: a clear message', async ({ page }) => {
  await openApp(page);
  await page.evaluate(() => {
    const v = document.querySelector<HTMLVideoElement>('[data-testid="input-video"]')!;
    const track = (v.srcObject as MediaStream).getVideoTracks()[0]!;
    track.stop(); // stop() fires no event; a real unplug does: simulate it
    track.dispatchEvent(new Event('ended'));
  });
  await expect(page.getByTestId('error-camera')).toContainText('disconnected');
  await expect(page.getByTestId('status-mode')).toHaveText('camera (unplugged)');
});

test('a model that fails to load is named, and the previous model keeps running', async ({ page }) => {
  await openApp(page);
  await waitForFrames(page, 2);
  // Start again asking for a model that does not exist (init scripts run in order: this one wins).
  await page.addInitScript(() => localStorage.setItem('deepvis.settings', JSON.stringify({ model: 'no-such-model' })));
  await page.reload();
  await expect(page.getByTestId('error-model')).toContainText('no-such-model');
  await expect(page.getByTestId('error-model')).toContainText('still running mobilenet-v1-0.25');
  await expect(page.getByTestId('status-model')).toHaveText('mobilenet-v1-0.25');
  await waitForFrames(page, 3);
});
