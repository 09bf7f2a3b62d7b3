// The main view on each bundled model, switched with the model picker (no restart), saved as a
// screenshot artifact (attached to the report and copied to e2e/.artifacts/screenshots/<model>.png).
import { copyFileSync, mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect, test } from '@playwright/test';
import { openApp, statusText, waitForFrames } from './helpers.js';

const SHOTS = resolve(dirname(fileURLToPath(import.meta.url)), '.artifacts/screenshots');

test('screenshots of the main view for each model, switched without restarting', async ({ page }, testInfo) => {
  test.setTimeout(120_000);
  mkdirSync(SHOTS, { recursive: true });
  await openApp(page, { model: 'mobilenet-v1-0.75' });
  const select = page.getByTestId('model-select');
  for (const model of ['mobilenet-v1-0.75', 'darknet-tiny', 'mobilenet-v1-0.25']) {
    if ((await statusText(page, 'model')) !== model) {
      await select.selectOption(model);
      await expect(page.getByTestId('status-model')).toHaveText(model, { timeout: 60_000 });
    }
    await expect(select).toHaveValue(model);
    await waitForFrames(page, 8);
    await expect(page.getByTestId('top5-item')).toHaveCount(5);
    await expect.poll(async () => parseFloat(await statusText(page, 'fps'))).toBeGreaterThan(0);
    const path = testInfo.outputPath(`main-view-${model}.png`);
    await page.screenshot({ path });
    await testInfo.attach(`main view, ${model}`, { path, contentType: 'image/png' });
    copyFileSync(path, resolve(SHOTS, `${model}.png`));
  }
});
