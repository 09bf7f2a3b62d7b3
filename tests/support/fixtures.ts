// Shared test fixtures: the real photos in ../shared/fixtures/photos and the real models.
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
export const REPO = resolve(here, '../..');
export const PHOTOS_DIR = process.env.DEEPVIS_PHOTOS ?? resolve(REPO, '../shared/fixtures/photos');
export const PHOTOS = ['dog', 'eagle', 'giraffe', 'horses', 'person', 'kite', 'scream'] as const;
export const MODEL_IDS = ['darknet-tiny', 'mobilenet-v1-0.75', 'mobilenet-v1-0.25'] as const;

export function photo(name: (typeof PHOTOS)[number]): string {
  const p = join(PHOTOS_DIR, `${name}.jpg`);
  if (!existsSync(p)) throw new Error(`fixture photo ${p} is missing (expected ../shared/fixtures/photos beside the repo)`);
  return p;
}
