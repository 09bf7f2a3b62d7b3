// How the browser tests and the live benchmarks start Chromium: Debian's build (Playwright's own
// browser download does not work on these machines) with a fake camera playing a .y4m of the
// fixture photos.
import { execFileSync } from 'node:child_process';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');

export const CHROMIUM_PATH = process.env.DEEPVIS_CHROMIUM ?? '/usr/bin/chromium';

export const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
  '--use-fake-ui-for-media-stream',
  '--use-fake-device-for-media-stream',
];

/**
 * Path of the fake-camera .y4m (made by ffmpeg from ../shared/fixtures/photos, cached under
 * e2e/.artifacts). $DEEPVIS_FAKE_CAMERA overrides it.
 */
export function fakeCamera(opts: { fps?: number; seconds?: number; size?: string } = {}): string {
  if (process.env.DEEPVIS_FAKE_CAMERA) return resolve(process.env.DEEPVIS_FAKE_CAMERA);
  const out = execFileSync(
    process.execPath,
    [resolve(ROOT, 'scripts/make-fake-camera.mjs'), '--fps', String(opts.fps ?? 10), '--seconds', String(opts.seconds ?? 2.5), '--size', opts.size ?? '320x240', '--quiet'],
    { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] },
  );
  return out.trim().split('\n').pop()!;
}

export function chromiumArgs(cameraFile: string): string[] {
  return [...CHROMIUM_ARGS, `--use-file-for-fake-video-capture=${cameraFile}`];
}
