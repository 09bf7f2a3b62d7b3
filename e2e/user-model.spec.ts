// A user's own model opened in the window (web mode): a bare folder built the way users build
// models (tfjs-layers, model.save()'s files and a labels.txt), picked with the folder input, is
// uploaded, listed, loaded and classifies the camera with its own class names; its input
// convention, picked in the toolbar, changes the top-5 and is remembered when the window reopens.
// A folder with a file of another kind, and a graph model with an op DeepVis lacks, are refused with the host's words; a
// drop of image files still opens images.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, test, type Page } from '@playwright/test';
import { startModelServer } from './global-setup.js';
import { FAST_MODEL, openApp, saveScreenshot as shot, statusText, waitForFrames } from './helpers.js';
import { photo } from '../tests/support/fixtures.js';
import { GRAPH_CLASSES, writeGraphModel } from '../tests/support/graph-model.js';
import { plainLogitsModel, saveBareFolder } from '../tests/support/user-models.js';

const LABELS = ['cat', 'dog', 'bird', 'fish'];

let server: Awaited<ReturnType<typeof startModelServer>> | null = null;
let work = '';
let folder = '';

test.describe.configure({ mode: 'serial' });

test.beforeAll(async () => {
  test.setTimeout(240_000);
  work = mkdtempSync(join(tmpdir(), 'deepvis-e2e-user-model-'));
  folder = await saveBareFolder(plainLogitsModel(), join(work, 'my-scores'), LABELS);
  // The choice of input convention is remembered in the state folder.
  server = await startModelServer(FAST_MODEL, { DEEPVIS_STATE_DIR: join(work, 'state') });
});

test.afterAll(async () => {
  await server?.stop();
  if (work) rmSync(work, { recursive: true, force: true });
});

/** The shown top-5 probabilities by class name. */
async function probs(page: Page): Promise<Record<string, number>> {
  const items = await page.getByTestId('top5-item').evaluateAll((els) => els.map((e) => [e.querySelector('.name')!.textContent!, parseFloat(e.querySelector('.prob')!.textContent!)] as const));
  return Object.fromEntries(items);
}

const gap = (a: Record<string, number>, b: Record<string, number>) => Math.max(...LABELS.map((l) => Math.abs((a[l] ?? 0) - (b[l] ?? 0))));

/** The top-5 once two reads a moment apart agree (the last frame in flight has landed). */
async function settled(page: Page): Promise<Record<string, number>> {
  let last = await probs(page);
  for (;;) {
    await page.waitForTimeout(400);
    const now = await probs(page);
    if (Object.keys(now).length === LABELS.length && gap(now, last) === 0) return now;
    last = now;
  }
}

async function openFolder(page: Page, dir: string): Promise<void> {
  await page.getByTestId('model-folder-input').setInputFiles(dir);
}

test('a bare model folder opened in the window is listed, loaded and classifies; its input convention changes the top-5 and is remembered', async ({ page }, testInfo) => {
  test.setTimeout(240_000);
  await openApp(page, { url: server!.url });
  await openFolder(page, folder);
  await expect(page.getByTestId('status-model')).toHaveText('my-scores', { timeout: 90_000 });
  await expect(page.getByTestId('model-select')).toHaveValue('my-scores');
  await waitForFrames(page, 2);
  await expect.poll(async () => Object.keys(await probs(page)).sort()).toEqual([...LABELS].sort());
  await expect(page.getByTestId('preprocess-select')).toHaveValue('0-1');

  // One still image: only the convention changes the answer.
  await page.getByTestId('file-input').setInputFiles(photo('dog'));
  await expect.poll(() => statusText(page, 'mode')).toMatch(/^static 1\/1 dog/);
  const before = await settled(page);
  await page.getByTestId('preprocess-select').selectOption('caffe');
  await expect.poll(async () => gap(await probs(page), before)).toBeGreaterThan(1); // percentage points
  const after = await settled(page);
  await shot(page, testInfo, 'user-model-caffe');

  // Reopen the window and the folder: the convention comes back with the model.
  await page.reload();
  await expect(page.getByTestId('status-model')).toHaveText(FAST_MODEL, { timeout: 90_000 });
  await openFolder(page, folder);
  await expect(page.getByTestId('status-model')).toHaveText('my-scores', { timeout: 90_000 });
  await expect(page.getByTestId('preprocess-select')).toHaveValue('caffe');
  await page.getByTestId('file-input').setInputFiles(photo('dog'));
  await expect.poll(async () => gap(await probs(page), after)).toBeLessThan(0.2);
  // A bundled model has a descriptor: no choice to offer.
  await page.getByTestId('model-select').selectOption(FAST_MODEL);
  await expect(page.getByTestId('status-model')).toHaveText(FAST_MODEL);
  await expect(page.getByTestId('preprocess-select')).toHaveCount(0);
});

test('a folder holding another kind of file, and a graph model with an unsupported op, are refused with what to do', async ({ page }, testInfo) => {
  test.setTimeout(120_000);
  const notes = join(work, 'with-notes');
  await saveBareFolder(plainLogitsModel(), notes, LABELS);
  writeFileSync(join(notes, 'README.md'), '# my model\n');
  const graph = join(work, 'my-graph');
  mkdirSync(graph);
  // A graph model (written as the converter writes one) with an op DeepVis does not compile.
  writeGraphModel(graph);
  const mj = JSON.parse(readFileSync(join(graph, 'model.json'), 'utf8')) as { modelTopology: { node: { name: string; op: string }[] } };
  mj.modelTopology.node.find((n) => n.name === 'block1/Relu')!.op = 'Erf';
  writeFileSync(join(graph, 'model.json'), JSON.stringify(mj));
  await openApp(page, { url: server!.url });

  await openFolder(page, notes);
  await expect(page.getByTestId('model-folder-problem')).toContainText('with-notes/README.md is not a model file — a model folder holds only model.json, its weight files');
  await expect(page.getByTestId('status-model')).toHaveText(FAST_MODEL);

  await openFolder(page, graph);
  await expect(page.getByTestId('model-folder-problem')).toContainText(/graph model.*node "block1\/Relu" uses the op Erf.*not supported yet/);
  await expect(page.getByTestId('status-model')).toHaveText(FAST_MODEL);
  await shot(page, testInfo, 'user-model-refused');

  // The same graph model without the foreign op opens, runs live and names its classes.
  const good = join(work, 'my-graph-ok');
  writeGraphModel(good);
  await openFolder(page, good);
  await expect(page.getByTestId('status-model')).toHaveText('my-graph-ok', { timeout: 90_000 });
  await waitForFrames(page, 2);
  await expect.poll(async () => Object.keys(await probs(page)).length).toBe(5);
  expect(Object.keys(await probs(page)).sort()).toEqual([...GRAPH_CLASSES].sort());
});

test('dropping image files still opens them as images; only a folder holding model.json is a model', async ({ page }) => {
  test.setTimeout(120_000);
  await openApp(page, { url: server!.url });
  const jpeg = readFileSync(photo('dog')).toString('base64');
  await page.evaluate((b64) => {
    const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
    const dt = new DataTransfer();
    dt.items.add(new File([bytes], 'dog.jpg', { type: 'image/jpeg' }));
    window.dispatchEvent(new DragEvent('drop', { dataTransfer: dt, bubbles: true, cancelable: true }));
  }, jpeg);
  await expect.poll(() => statusText(page, 'mode')).toMatch(/^static 1\/1 dog\.jpg/);
  await expect(page.getByTestId('status-model')).toHaveText(FAST_MODEL);
  await expect(page.getByTestId('model-folder-problem')).toHaveCount(0);
});
