#!/usr/bin/env node
// Build the fake webcam video for browser tests and the live benchmark: the fixture photos, each
// centre-cropped and scaled to WxH, shown for S seconds at F fps, concatenated into a raw .y4m that
// Chromium plays (in a loop) as a camera with
//   --use-fake-device-for-media-stream --use-file-for-fake-video-capture=<file>
//
//   node scripts/make-fake-camera.mjs [--out e2e/.artifacts/cam.y4m] [--fps 10] [--seconds 2.5]
//        [--size 320x240] [--photos dog,eagle,giraffe,horses,person,kite,scream] [--photos-dir DIR] [--quiet]
//
// Prints the path (and the timeline as JSON on stderr). Skips the work when an identical file exists.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..');
export const DEFAULT_PHOTOS = ['dog', 'eagle', 'giraffe', 'horses', 'person', 'kite', 'scream'];
export const DEFAULT_PHOTOS_DIR = resolve(REPO, '../shared/fixtures/photos');

/**
 * @param {{ out?: string, fps?: number, seconds?: number, width?: number, height?: number, photos?: string[], photosDir?: string }} [opts]
 * @returns {{ path: string, fps: number, seconds: number, photos: string[], frames: number, loopSeconds: number }}
 */
export function makeFakeCamera(opts = {}) {
  const fps = opts.fps ?? 10;
  const seconds = opts.seconds ?? 2.5;
  const width = opts.width ?? 320;
  const height = opts.height ?? 240;
  const photos = opts.photos ?? DEFAULT_PHOTOS;
  const photosDir = opts.photosDir ?? DEFAULT_PHOTOS_DIR;
  const out = resolve(opts.out ?? join(REPO, 'e2e/.artifacts', `cam-${width}x${height}-${fps}fps.y4m`));
  const files = photos.map((p) => join(photosDir, /\.\w+$/.test(p) ? p : `${p}.jpg`));
  for (const f of files) if (!existsSync(f)) throw new Error(`fake camera: missing photo ${f}`);
  const framesEach = Math.max(1, Math.round(seconds * fps));
  const info = { path: out, fps, seconds: framesEach / fps, photos, frames: framesEach * photos.length, loopSeconds: (framesEach * photos.length) / fps, width, height };
  const stamp = `${out}.json`;
  const want = JSON.stringify({ ...info, sources: files.map((f) => [f, statSync(f).size, statSync(f).mtimeMs]) });
  if (existsSync(out) && existsSync(stamp) && readFileSync(stamp, 'utf8') === want) return info;

  mkdirSync(dirname(out), { recursive: true });
  const args = ['-hide_banner', '-loglevel', 'error', '-y'];
  for (const f of files) args.push('-loop', '1', '-framerate', String(fps), '-t', String(framesEach / fps), '-i', f);
  const chains = files.map(
    (_f, i) =>
      `[${i}:v]scale=${width}:${height}:force_original_aspect_ratio=increase,crop=${width}:${height},setsar=1,fps=${fps},trim=end_frame=${framesEach},format=yuv420p[v${i}]`,
  );
  const filter = `${chains.join(';')};${files.map((_f, i) => `[v${i}]`).join('')}concat=n=${files.length}:v=1:a=0[out]`;
  args.push('-filter_complex', filter, '-map', '[out]', '-r', String(fps), '-pix_fmt', 'yuv420p', '-color_range', 'tv', '-f', 'yuv4mpegpipe', out);
  try {
    execFileSync('ffmpeg', args, { stdio: ['ignore', 'inherit', 'inherit'] });
  } catch (e) {
    const why = /** @type {NodeJS.ErrnoException} */ (e).code === 'ENOENT' ? 'ffmpeg is not installed (apt-get install -y ffmpeg)' : String(/** @type {Error} */ (e).message);
    throw new Error(`fake camera: ${why}`);
  }
  writeFileSync(stamp, want);
  return info;
}

if (process.argv[1] && pathToFileURL(resolve(process.argv[1])).href === import.meta.url) {
  const { values } = parseArgs({
    options: {
      out: { type: 'string' },
      fps: { type: 'string' },
      seconds: { type: 'string' },
      size: { type: 'string' },
      photos: { type: 'string' },
      'photos-dir': { type: 'string' },
      quiet: { type: 'boolean', default: false },
    },
  });
  const [w, h] = (values.size ?? '320x240').split('x').map(Number);
  const info = makeFakeCamera({
    out: values.out,
    fps: values.fps ? Number(values.fps) : undefined,
    seconds: values.seconds ? Number(values.seconds) : undefined,
    width: w,
    height: h,
    photos: values.photos ? values.photos.split(',') : undefined,
    photosDir: values['photos-dir'],
  });
  if (!values.quiet) console.error(JSON.stringify(info));
  console.log(info.path);
}
