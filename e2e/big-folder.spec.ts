// A folder of 5,000 photos (hard links to copies of the fixture photos) plus files that are not
// images, opened through the web UI's folder input: the first image shows at once with its place in
// the list (1/5000), none is lost, and stepping (e / w) and the other keys keep working.
import { copyFileSync, linkSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, test } from '@playwright/test';
import { PHOTOS, photo } from '../tests/support/fixtures.js';
import { openApp, saveScreenshot, top5Names } from './helpers.js';

const N = 5000;
let dir: string;
let folder: string;

test.beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'deepvis-e2e-folder-'));
  const src = PHOTOS.map((p) => {
    const to = join(dir, `${p}.jpg`);
    copyFileSync(photo(p), to);
    return to;
  });
  folder = join(dir, 'photos');
  mkdirSync(folder);
  // img1.jpg … img5000.jpg: photo i is PHOTOS[i % 7]; natural order puts img2 before img10.
  for (let i = 1; i <= N; i++) linkSync(src[i % src.length]!, join(folder, `img${i}.jpg`));
  writeFileSync(join(folder, 'notes.txt'), 'not an image');
  writeFileSync(join(folder, 'index.html'), '<p>not an image</p>');
  writeFileSync(join(folder, 'data.json'), '{}');
});

test.afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test('5,000 images through the folder input: 1/5000 shows and is classified, e / w step, keys keep working', async ({ page }, testInfo) => {
  test.setTimeout(180_000);
  const pageErrors: string[] = [];
  page.on('pageerror', (e) => pageErrors.push(e.message));
  await openApp(page);
  const t0 = Date.now();
  await page.getByTestId('folder-input').setInputFiles(folder);
  const mode = page.getByTestId('status-mode');
  await expect(mode).toHaveText(`static 1/${N} img1.jpg`, { timeout: 60_000 });
  await expect(page.getByTestId('image-name')).toHaveText(`img1.jpg (1/${N})`);
  console.log(`5,000-image folder: first image shown ${Date.now() - t0} ms after setInputFiles`);
  // img1 is PHOTOS[1] = eagle: classified.
  await expect.poll(() => top5Names(page)).not.toBe('');
  const eagle = await top5Names(page);
  await saveScreenshot(page, testInfo, 'big-folder', 'a 5,000-image folder, first image');

  await page.keyboard.press('e');
  await expect(mode).toHaveText(`static 2/${N} img2.jpg`);
  await page.keyboard.press('w');
  await page.keyboard.press('w');
  await expect(mode).toHaveText(`static ${N}/${N} img${N}.jpg`);
  // img5000 is PHOTOS[5000 % 7 = 2] = giraffe: a different answer from img1's.
  await expect.poll(() => top5Names(page)).not.toBe(eagle);
  await page.keyboard.press('PageDown');
  await expect(mode).toHaveText(`static 1/${N} img1.jpg`);
  await expect.poll(() => top5Names(page)).toBe(eagle);
  for (let i = 0; i < 9; i++) await page.keyboard.press('e');
  await expect(mode).toHaveText(`static 10/${N} img10.jpg`);

  // Other keys still answer: next layer, cursor, help.
  const layer = await page.getByTestId('status-layer-unit').textContent();
  await page.keyboard.press('o');
  await expect(page.getByTestId('status-layer-unit')).not.toHaveText(layer!);
  await page.keyboard.press('h');
  await expect(page.getByTestId('help-overlay')).toBeVisible();
  expect(pageErrors).toEqual([]);
});
