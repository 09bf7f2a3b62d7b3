// The main view on each bundled model, switched with the model picker (no restart), saved as a
// screenshot artifact (attached to the report and copied to e2e/.artifacts/screenshots/<model>.png).
import { expect, test } from '@playwright/test';
import { openApp, saveScreenshot, statusText, waitForFrames } from './helpers.js';

test('screenshots of the main view for each model, switched without restarting', async ({ page }, testInfo) => {
  test.setTimeout(120_000);
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
    await saveScreenshot(page, testInfo, model, `main view, ${model}`);
  }
});
