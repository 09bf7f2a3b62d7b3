// Bad image files opened in the web UI, as a visitor's USB stick delivers them: a truncated JPEG,
// PNGs with a wrong checksum, a 0-byte file, a text file named .jpg and 20000×20000 headers. Each
// shows one line naming the file and what is wrong, the page never throws, and stepping on to a
// good photo shows it and classifies it.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { expect, test } from '@playwright/test';
import { makeBadImages, type BadImages } from '../tests/support/bad-images.js';
import { photo } from '../tests/support/fixtures.js';
import { openApp, saveScreenshot, SLED_DOGS, top5Names } from './helpers.js';

let dir: string;
let bad: BadImages;

test.beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'deepvis-e2e-bad-'));
  bad = await makeBadImages(dir);
});

test.afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** What the user must be told about each bad file (after its name). */
function reasons(): Map<string, RegExp> {
  return new Map([
    [basename(bad.truncatedJpeg), /the file is truncated/],
    [basename(bad.badCrcPng), /cannot read image/],
    [basename(bad.badCrcDataPng), /cannot read image/],
    [basename(bad.empty), /empty file \(0 bytes\), not an image/],
    [basename(bad.hugeJpeg), /20000×20000 pixels \(400 MP\) is above the 100 MP limit/],
    [basename(bad.hugePng), /20000×20000 pixels \(400 MP\) is above the 100 MP limit/],
    [basename(bad.notImage), /cannot read image/],
  ]);
}

test('each bad file: its message, no page error, and the good photo among them is shown and classified', async ({ page }, testInfo) => {
  const pageErrors: string[] = [];
  page.on('pageerror', (e) => pageErrors.push(e.message));
  await openApp(page);
  const expected = reasons();
  const files = [...Object.values(bad), photo('dog')];
  await page.getByTestId('file-input').setInputFiles(files);
  const mode = page.getByTestId('status-mode');
  const error = page.getByTestId('error-image');
  const seen = new Set<string>();
  for (let k = 1; k <= files.length; k++) {
    await expect(mode).toHaveText(new RegExp(`^static ${k}/${files.length} `));
    const name = (await mode.textContent())!.replace(/^static \d+\/\d+ /, '');
    seen.add(name);
    if (name === 'dog.jpg') {
      await expect(error).toHaveCount(0);
      await expect.poll(() => top5Names(page)).toMatch(SLED_DOGS);
    } else {
      await expect(error, name).toHaveText(expected.get(name)!);
      await expect(error).toHaveText(new RegExp(`^${name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: `));
      await expect(page.getByTestId('top5-item')).toHaveCount(0); // no stale classes under a bad image's name
      await expect(page.getByTestId('grid-hint')).toBeVisible(); // nor the previous image's layer
      await expect(page.getByTestId('unit-max')).toHaveText('—');
      if (name === basename(bad.truncatedJpeg)) await saveScreenshot(page, testInfo, 'bad-image-truncated', 'a truncated JPEG: its message, no classes');
    }
    await page.keyboard.press('e');
  }
  expect([...seen].sort()).toEqual(files.map((f) => basename(f)).sort());
  expect(pageErrors).toEqual([]);
});

test('a bad file opened alone, then a good one: the message, then the photo classified', async ({ page }) => {
  const pageErrors: string[] = [];
  page.on('pageerror', (e) => pageErrors.push(e.message));
  await openApp(page);
  for (const f of [bad.hugeJpeg, bad.truncatedJpeg, bad.empty]) {
    await page.getByTestId('file-input').setInputFiles(f);
    await expect(page.getByTestId('status-mode')).toHaveText(`static 1/1 ${basename(f)}`);
    await expect(page.getByTestId('error-image')).toHaveText(reasons().get(basename(f))!);
    await page.getByTestId('file-input').setInputFiles(photo('dog'));
    await expect(page.getByTestId('status-mode')).toHaveText('static 1/1 dog.jpg');
    await expect(page.getByTestId('error-image')).toHaveCount(0);
    await expect.poll(() => top5Names(page)).toMatch(SLED_DOGS);
  }
  expect(pageErrors).toEqual([]);
});
