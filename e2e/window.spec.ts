// The window as a keyboard user and a screen-reader user meet it: no serious or critical axe-core
// violations; a keyboard-only walk from the unit search to synthesis, back-projection and export;
// and a model switch that leaves no pane showing the previous model's pixels.
import { AxeBuilder } from '@axe-core/playwright';
import { expect, test, type Download, type Page } from '@playwright/test';
import { photo } from '../tests/support/fixtures.js';
import { canvasColours, canvasHash, openApp, saveScreenshot, setRange } from './helpers.js';

async function seriousViolations(page: Page): Promise<string[]> {
  const r = await new AxeBuilder({ page }).analyze();
  return r.violations
    .filter((v) => v.impact === 'serious' || v.impact === 'critical')
    .map((v) => `${v.id} (${v.impact}): ${v.help} — ${v.nodes.map((n) => n.target.join(' ')).slice(0, 4).join(', ')}`);
}

/** Tab until the element with this test id has the focus; returns how many presses it took. */
async function tabTo(page: Page, testId: string, max = 60): Promise<number> {
  for (let i = 1; i <= max; i++) {
    await page.keyboard.press('Tab');
    if (await page.evaluate((id) => document.activeElement?.getAttribute('data-testid') === id, testId)) return i;
  }
  throw new Error(`${testId} was not reached with ${max} Tab presses`);
}

const colours = (page: Page, testId: string) => canvasColours(page, `[data-testid="${testId}"]`);

test('accessibility: no serious or critical axe-core violations, with the help overlay closed and open', async ({ page }) => {
  test.setTimeout(180_000);
  await openApp(page, { model: 'mobilenet-v1-0.75' });
  await page.getByTestId('file-input').setInputFiles(photo('kite'));
  await expect(page.getByTestId('top5-item').first()).toContainText('parachute');
  expect(await seriousViolations(page)).toEqual([]);
  await page.keyboard.press('h');
  await expect(page.getByTestId('help-overlay')).toBeVisible();
  expect(await seriousViolations(page)).toEqual([]);
});

test('keyboard only: / search flamingo → y synthesize → b back-projection → Tab to export and save the view', async ({ page }, testInfo) => {
  test.setTimeout(240_000);
  await openApp(page, { model: 'mobilenet-v1-0.75' });
  await page.getByTestId('file-input').setInputFiles(photo('kite'));
  await expect(page.getByTestId('top5-item').first()).toContainText('parachute');

  // Search: `/` focuses the box; the suggestions name the class; Enter moves the cursor.
  await page.keyboard.press('/');
  await expect(page.getByTestId('unit-search')).toBeFocused();
  await page.keyboard.type('flamin');
  await expect(page.getByTestId('unit-search-result').first()).toHaveText('logits:130 flamingo (n02007558)');
  await page.keyboard.press('Enter');
  await expect(page.getByTestId('status-layer-unit')).toHaveText('logits:130');
  await expect(page.getByTestId('status-class')).toHaveText('flamingo');
  await expect(page.getByTestId('unit-class')).toHaveText('flamingo');
  await expect(page.getByTestId('unit-search')).not.toBeFocused();
  // The toolbox keys work at once: → moves the cursor, ← comes back.
  await page.keyboard.press('ArrowRight');
  await expect(page.getByTestId('status-layer-unit')).toHaveText('logits:131');
  await page.keyboard.press('ArrowLeft');
  await expect(page.getByTestId('status-layer-unit')).toHaveText('logits:130');
  // Other forms: a WordNet id, a layer:unit.
  await page.keyboard.press('/');
  await page.keyboard.type('n01530575');
  await page.keyboard.press('Enter');
  await expect(page.getByTestId('status-layer-unit')).toHaveText('logits:10');
  await page.keyboard.press('/');
  await page.keyboard.type('pw5:7');
  await page.keyboard.press('Enter');
  await expect(page.getByTestId('status-layer-unit')).toHaveText('pw5:7');
  // Esc in the box gives the keys back without moving anything.
  await page.keyboard.press('/');
  await page.keyboard.type('flamingo');
  await page.keyboard.press('Enter');
  await expect(page.getByTestId('status-layer-unit')).toHaveText('logits:130');

  // Synthesize (a short job: the preset's sliders set for speed, then the keys again).
  await setRange(page, 'synth-iterations', 30);
  await setRange(page, 'synth-seeds', 1);
  await page.keyboard.press('y');
  await expect(page.getByTestId('synth-label')).toHaveText(/130.*flamingo/);
  await expect(page.getByTestId('synth-status')).toHaveText(/^done/, { timeout: 180_000 });

  // Back-projection of the class onto the kite photo: not a flat grey.
  await page.keyboard.press('b');
  await expect(page.getByTestId('back-source')).toHaveText(/130.*flamingo/);
  await expect.poll(() => colours(page, 'back-canvas'), { timeout: 30_000 }).toBeGreaterThan(50);

  // Export with the keyboard: Tab reaches it (with a visible focus ring), Enter saves the view.
  const downloads: Download[] = [];
  page.on('download', (d) => downloads.push(d));
  await page.locator('body').focus();
  await tabTo(page, 'export-view');
  const ring = await page.getByTestId('export-view').evaluate((el) => getComputedStyle(el).outlineStyle);
  expect(ring).not.toBe('none');
  await saveScreenshot(page, testInfo, 'keyboard-export-focus', 'keyboard walk: export focused');
  await page.keyboard.press('Enter');
  await expect.poll(() => downloads.map((d) => d.suggestedFilename()).sort().join(' '), { timeout: 15_000 }).toMatch(/view\.json/);
  const names = downloads.map((d) => d.suggestedFilename());
  for (const pane of ['input', 'grid', 'unit', 'back']) expect(names.some((n) => n.endsWith(`_${pane}.png`)), `${pane}.png in ${names.join(', ')}`).toBe(true);
  const json = downloads.find((d) => d.suggestedFilename().endsWith('view.json'))!;
  const view = JSON.parse(await (await import('node:fs/promises')).readFile((await json.path())!, 'utf8')) as Record<string, unknown>;
  expect(view).toMatchObject({ model: 'mobilenet-v1-0.75', layer: 'conv_preds', layerDisplay: 'logits', unit: 130, className: 'flamingo' });
  expect((view.top5 as unknown[]).length).toBe(5);
});

test('after a model switch no pane shows the previous model’s pixels', async ({ page }) => {
  test.setTimeout(180_000);
  await openApp(page, { model: 'mobilenet-v1-0.75' });
  await page.getByTestId('file-input').setInputFiles(photo('kite'));
  await expect(page.getByTestId('top5-item').first()).toContainText('parachute');
  await page.keyboard.press('b');
  await expect.poll(() => colours(page, 'back-canvas'), { timeout: 30_000 }).toBeGreaterThan(50);
  const panes = ['grid-canvas', 'unit-canvas', 'back-canvas'];
  const before: Record<string, string> = {};
  for (const p of panes) before[p] = await canvasHash(page, p);

  await page.getByTestId('model-select').selectOption('darknet-tiny');
  await expect(page.getByTestId('status-model')).toHaveText('darknet-tiny', { timeout: 90_000 });
  // From the moment the new model is named, nothing of the old one stays on screen …
  for (const p of panes) expect(await canvasHash(page, p), `${p} right after the switch`).not.toBe(before[p]);
  // … and once it has answered, every pane shows its result.
  for (const p of panes) {
    await expect.poll(() => canvasHash(page, p), { timeout: 30_000 }).not.toBe('empty');
    expect(await canvasHash(page, p), p).not.toBe(before[p]);
  }
  await expect.poll(() => colours(page, 'back-canvas'), { timeout: 30_000 }).toBeGreaterThan(50);
  await expect(page.getByTestId('top5-item')).toHaveCount(5);
  await expect(page.getByTestId('status-layer-unit')).not.toHaveText(/^pw5:/);
});
