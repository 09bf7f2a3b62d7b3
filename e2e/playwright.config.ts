// End-to-end tests: web mode driven in Debian's Chromium with a fake camera made from the fixture
// photos (scripts/make-fake-camera.mjs), plus the Electron test (skipped where no Electron binary
// exists). One worker: the engine is one shared process and the machine has two cores.
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { defineConfig } from '@playwright/test';
import { CHROMIUM_PATH, chromiumArgs, fakeCamera } from './chromium.js';

const HERE = dirname(fileURLToPath(import.meta.url));

export default defineConfig({
  testDir: HERE,
  outputDir: resolve(HERE, '.artifacts/test-results'),
  globalSetup: resolve(HERE, 'global-setup.ts'),
  fullyParallel: false,
  workers: 1,
  retries: 0,
  timeout: 60_000,
  expect: { timeout: 20_000 },
  reporter: [['list'], ['html', { open: 'never', outputFolder: resolve(HERE, '.artifacts/report') }]],
  projects: [
    {
      name: 'web',
      testIgnore: /electron\.spec\.ts$/,
      use: {
        viewport: { width: 1280, height: 800 },
        launchOptions: {
          executablePath: CHROMIUM_PATH,
          // The photos at 10 fps, 2.5 s each: dog, eagle, giraffe, horses, person, kite, scream (loops).
          args: chromiumArgs(fakeCamera({ fps: 10, seconds: 2.5, size: '320x240' })),
        },
        trace: 'retain-on-failure',
        screenshot: 'only-on-failure',
      },
    },
    { name: 'electron', testMatch: /electron\.spec\.ts$/ },
  ],
});
