// State that survives, as a user sees it: change the model, layer, unit, boosts,
// back mode and scale, labels and synthesis preset; reload the page, then restart the server — everything
// comes back. A state file that was damaged meanwhile gives a clean start, and is kept aside.
// Its own web server with a temp DEEPVIS_STATE_DIR (the shared server keeps no state).
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, test, type Page } from '@playwright/test';
import { startModelServer, type WebServerProcess } from './global-setup.js';
import { FAST_MODEL, saveScreenshot, statusText, waitForFrames } from './helpers.js';

const OTHER = 'darknet-tiny';

let stateDir: string;
let server: WebServerProcess | null = null;

test.beforeAll(async () => {
  test.setTimeout(240_000);
  stateDir = mkdtempSync(join(tmpdir(), 'deepvis-e2e-state-'));
  server = await startModelServer(FAST_MODEL, { DEEPVIS_STATE_DIR: stateDir });
});

test.afterAll(async () => {
  await server?.stop();
  rmSync(stateDir, { recursive: true, force: true });
});

async function restartServer(): Promise<void> {
  await server?.stop();
  server = null;
  server = await startModelServer(FAST_MODEL, { DEEPVIS_STATE_DIR: stateDir });
}

function savedView(): Record<string, unknown> | null {
  try {
    return JSON.parse(readFileSync(join(stateDir, 'state.json'), 'utf8')).view ?? null;
  } catch {
    return null;
  }
}

async function press(page: Page, keys: string): Promise<void> {
  for (const k of keys) await page.keyboard.press(k);
}

interface Seen {
  model: string;
  layerUnit: string;
  boost: string;
  back: string;
  labels: number;
  preset: string;
  scale: string;
}

async function seen(page: Page): Promise<Seen> {
  return {
    model: await statusText(page, 'model'),
    layerUnit: await statusText(page, 'layer-unit'),
    boost: await statusText(page, 'boost'),
    back: (await page.getByTestId('status-back').textContent()) ?? '',
    labels: await page.getByTestId('top5-item').count(),
    preset: await page.getByTestId('synth-preset').inputValue(),
    scale: await page.getByTestId('back-scale-select').inputValue(),
  };
}

async function expectRestored(page: Page, want: Seen): Promise<void> {
  await expect(page.getByTestId('status-model')).toHaveText(want.model, { timeout: 120_000 });
  await expect(page.getByTestId('status-layer-unit')).toHaveText(want.layerUnit);
  await expect(page.getByTestId('status-boost')).toHaveText(want.boost);
  await expect(page.getByTestId('status-back')).toHaveText(want.back);
  await expect(page.getByTestId('synth-preset')).toHaveValue(want.preset);
  await expect(page.getByTestId('back-scale-select')).toHaveValue(want.scale);
  await waitForFrames(page, 2, 60_000);
  await expect(page.getByTestId('top5-item')).toHaveCount(want.labels);
}

test('model, layer, unit, boosts, back mode, labels and preset come back after a reload and after a server restart', async ({ page }, testInfo) => {
  test.setTimeout(360_000);
  await page.goto(server!.url);
  await expect(page.getByTestId('status-model')).toHaveText(FAST_MODEL, { timeout: 90_000 });
  const fresh = await seen(page);

  await page.getByTestId('model-select').selectOption(OTHER);
  await expect(page.getByTestId('status-model')).toHaveText(OTHER, { timeout: 90_000 });
  await waitForFrames(page, 1, 60_000);
  await page.evaluate(() => (document.activeElement as HTMLElement | null)?.blur());
  // o o: two layers on; l l l: unit 3; t t: γ .5; T: b .3; b b: grad norm; 8: labels off.
  await press(page, 'oolllttTbb8');
  await page.getByTestId('synth-preset').selectOption('paper-3');
  await page.getByTestId('back-scale-select').selectOption('100');
  await page.evaluate(() => (document.activeElement as HTMLElement | null)?.blur());
  const want = await seen(page);
  expect(want).toMatchObject({ model: OTHER, boost: 'γ 0.5 · b 0.3', labels: 0, preset: 'paper-3', scale: '100' });
  expect(fresh.scale).not.toBe('100');
  expect(want.layerUnit).toMatch(/:3$/);
  expect(want.back).toMatch(/^grad norm · src /);
  expect(want.layerUnit).not.toBe(fresh.layerUnit);

  // The host wrote it (debounced): wait for the file, as a user would wait a moment before closing.
  await expect.poll(() => savedView(), { timeout: 30_000 }).toMatchObject({ model: OTHER, unit: 3, gamma: 0.5, channelBoost: 0.3, back: { mode: 'backprop', filter: 'norm' }, showLabels: false, synthPreset: 'paper-3', backPercentile: 100 });

  await page.reload();
  await expectRestored(page, want);

  await restartServer();
  await page.goto(server!.url);
  await expectRestored(page, want);
  await saveScreenshot(page, testInfo, 'state-restored', 'the view restored after a server restart');
});

/** Restart the server on a state file with this view (the rest as saved by an older run). */
async function startWithView(view: Record<string, unknown>): Promise<void> {
  await server?.stop();
  server = null;
  const base = { model: FAST_MODEL, layer: null, unit: 0, gamma: 1, channelBoost: 0, back: null, grid: 'activations', gradcam: false, gradcamOpacity: 0.5, showLabels: true, synthPreset: 'fast' };
  writeFileSync(join(stateDir, 'state.json'), JSON.stringify({ format: 'deepvis-state', version: 1, view: { ...base, ...view }, window: null }));
  server = await startModelServer(FAST_MODEL, { DEEPVIS_STATE_DIR: stateDir });
}

test('what no longer fits (a model that is gone, a unit out of range) falls back to the defaults, without an error', async ({ page }) => {
  test.setTimeout(240_000);
  await startWithView({ model: 'resnet-9000', layer: 'conv_pw_5_relu', unit: 3, gamma: 0.7 });
  await page.goto(server!.url);
  await expect(page.getByTestId('status-model')).toHaveText(FAST_MODEL, { timeout: 90_000 });
  await expect(page.getByTestId('status-boost')).toHaveText('γ 0.7 · b 0');
  await waitForFrames(page, 1, 60_000);
  const defaultLayer = await statusText(page, 'layer-unit');
  expect(defaultLayer).toMatch(/:0$/);
  expect(defaultLayer).not.toBe('pw5:3'); // the gone model's layer/unit are not applied to another model
  await expect(page.getByTestId('error-model')).toHaveCount(0);

  await startWithView({ layer: 'conv_pw_5_relu', unit: 100_000, channelBoost: 0.42 });
  await page.goto(server!.url);
  await expect(page.getByTestId('status-model')).toHaveText(FAST_MODEL, { timeout: 90_000 });
  await expect(page.getByTestId('status-layer-unit')).toHaveText('pw5:0');
  await expect(page.getByTestId('status-boost')).toHaveText('off'); // 0.42 is not in the boost cycle
  await waitForFrames(page, 1, 60_000);
  await expect(page.getByTestId('error-model')).toHaveCount(0);
  expect(await page.evaluate(() => window.__deepvisStats?.errors ?? -1)).toBe(0);
});

test('a damaged state file: a clean start with the defaults, and the file kept aside', async ({ page }) => {
  test.setTimeout(240_000);
  await server?.stop();
  server = null;
  const damaged = '{"format":"deepvis-state","version":1,"view":{"model":"darkn';
  writeFileSync(join(stateDir, 'state.json'), damaged);
  server = await startModelServer(FAST_MODEL, { DEEPVIS_STATE_DIR: stateDir });
  await page.goto(server.url);
  await expect(page.getByTestId('status-model')).toHaveText(FAST_MODEL, { timeout: 90_000 });
  await expect(page.getByTestId('status-boost')).toHaveText('off');
  await expect(page.getByTestId('status-back')).toHaveText('off');
  await expect(page.getByTestId('status-layer-unit')).toHaveText(/:0$/);
  const kept = readdirSync(stateDir).filter((f) => f.startsWith('state.json.corrupt-'));
  expect(kept).toHaveLength(1);
  expect(readFileSync(join(stateDir, kept[0]!), 'utf8')).toBe(damaged);
  expect(existsSync(join(stateDir, 'state.json'))).toBe(false);
});
