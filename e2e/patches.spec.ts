// Top-k image patches in the app: index the fixture photos folder from the UI (a web
// server of our own, with its index in a temp dir), see the selected unit's patch strip (crop +
// deconv), the session memory fill from the fake camera, and click a patch to load that image as
// the static input with the unit still selected (top-5 follows the image).
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect, test } from '@playwright/test';
import { PHOTOS_DIR } from '../tests/support/fixtures.js';
import { startModelServer } from './global-setup.js';
import { canvasColours, FAST_MODEL, openApp, statusText, top5Names, waitForFrames } from './helpers.js';

const HERE = dirname(fileURLToPath(import.meta.url));
const ARTIFACTS = resolve(HERE, '.artifacts');

let server: Awaited<ReturnType<typeof startModelServer>>;
let cacheDir: string;

test.beforeAll(async () => {
  test.setTimeout(200_000);
  // Our own engine host, so the index lands in a temp dir and not in ~/.cache.
  cacheDir = mkdtempSync(join(tmpdir(), 'deepvis-e2e-patches-'));
  server = await startModelServer(FAST_MODEL, { DEEPVIS_CACHE_DIR: cacheDir });
});

test.afterAll(async () => {
  await server?.stop();
  if (cacheDir) rmSync(cacheDir, { recursive: true, force: true });
});

test('index the photos from the UI, see the unit’s top patches, click one to open it', async ({ page }) => {
  test.setTimeout(180_000);
  await openApp(page, { url: server.url });
  const unit = await statusText(page, 'layer-unit');
  await expect(page.getByTestId('patches-folder-empty')).toBeVisible();

  // Index the fixture photos folder (on the engine host) from the UI.
  await page.getByTestId('index-folder').fill(PHOTOS_DIR);
  await page.getByTestId('index-start').click();
  await expect(page.getByTestId('index-progress')).toContainText(/Indexed 7\/7 .*7 images in the index/, { timeout: 120_000 });
  // The live view kept running meanwhile.
  await waitForFrames(page, 3);

  // The unit's folder patches: crops with their deconvs, at most 9.
  const folder = page.getByTestId('patch-folder');
  await expect(folder.first()).toBeVisible({ timeout: 30_000 });
  const n = await folder.count();
  expect(n).toBeGreaterThan(0);
  expect(n).toBeLessThanOrEqual(9);
  expect(await page.getByTestId('patch-deconv').count()).toBe(n);
  expect(await canvasColours(page, '[data-testid="patch-folder"] canvas.crop')).toBeGreaterThan(20);
  expect(await canvasColours(page, '[data-testid="patch-deconv"]')).toBeGreaterThan(20);

  // Another unit: the strip follows. (The strip may still catch up with the finished index on a
  // loaded machine: take its first patch once it holds still.)
  let firstTitle: string | null = null;
  await expect
    .poll(async () => {
      const t = await folder.first().getAttribute('title');
      const same = t === firstTitle;
      firstTitle = t;
      return same;
    }, { intervals: [1000], timeout: 30_000 })
    .toBe(true);
  await page.keyboard.press('l');
  await expect(page.getByTestId('patches')).toContainText(await statusText(page, 'layer-unit'), { timeout: 20_000 });
  await page.keyboard.press('j'); // back to the first unit (j: cursor left)
  await expect(page.getByTestId('patches')).toContainText(unit, { timeout: 20_000 });
  await expect(folder.first()).toHaveAttribute('title', firstTitle!);

  // The camera's frames fill the session memory for this layer.
  await expect(page.getByTestId('patch-session').first()).toBeVisible({ timeout: 30_000 });

  mkdirSync(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: join(ARTIFACTS, 'patches.png') });
  await page.getByTestId('patches').screenshot({ path: join(ARTIFACTS, 'patches-pane.png') });

  // Click the best patch: its image becomes the static input, the unit stays selected.
  const name = /^(.+?) — activation/.exec(firstTitle ?? '')![1]!;
  const before = await top5Names(page);
  const drawn = await page.evaluate(() => window.__deepvisStats?.framesDrawn ?? 0);
  await folder.first().click();
  await expect(page.getByTestId('image-name')).toHaveText(`${name} (1/1)`);
  await expect(page.getByTestId('status-mode')).toHaveText(`static 1/1 ${name}`);
  expect(await statusText(page, 'layer-unit')).toBe(unit);
  await expect(page.getByTestId('input-canvas')).toBeVisible();
  await page.waitForFunction((n) => (window.__deepvisStats?.framesDrawn ?? 0) > n, drawn, { timeout: 30_000 });
  // The top-5 is now the image's: stable (the same static frame), and what that photo shows.
  await page.waitForTimeout(1000);
  const after = await top5Names(page);
  await page.waitForTimeout(500);
  expect(await top5Names(page)).toBe(after);
  expect(after).not.toBe('');
  const expected: Record<string, RegExp> = {
    'dog.jpg': /dogsled|malamute|husky|Eskimo dog/,
    'kite.jpg': /parachute|kite/,
    'giraffe.jpg': /zebra|giraffe|impala|gazelle|hartebeest/,
  };
  if (expected[name]) expect(after).toMatch(expected[name]!);
  console.log(`patch ${name}: top-5 ${before} → ${after}`);
  await page.screenshot({ path: join(ARTIFACTS, 'patches-opened.png') });

  // Back returns to what the user had (here the camera), the unit still selected.
  await page.getByTestId('input-back').click();
  await expect(page.getByTestId('status-mode')).toHaveText('camera');
  await expect(page.getByTestId('input-back')).toHaveCount(0);
  expect(await statusText(page, 'layer-unit')).toBe(unit);
  await waitForFrames(page, 2);
});
