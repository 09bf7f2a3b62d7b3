// Shared test fixtures: the real photos in ../shared/fixtures/photos and the real models.
import { copyFileSync, existsSync, linkSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
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

/** A full copy of an installed model under another id in `dir` (copies, so breaking a file never reaches models/). */
export function copyModel(dir: string, id: string, from: (typeof MODEL_IDS)[number] = 'mobilenet-v1-0.25'): string {
  const src = join(REPO, 'models', from);
  const dst = join(dir, id);
  mkdirSync(dst);
  for (const f of readdirSync(src)) copyFileSync(join(src, f), join(dst, f));
  const d = JSON.parse(readFileSync(join(dst, 'deepvis.json'), 'utf8')) as { id: string };
  d.id = id;
  writeFileSync(join(dst, 'deepvis.json'), JSON.stringify(d));
  return dst;
}

/**
 * A file of models/ placed in a temp folder: hard-linked where the file system allows (no copy of
 * the weights), else copied. Not symlinked: the engine refuses model files that link outside
 * their folder.
 */
function place(src: string, dst: string): void {
  try {
    linkSync(src, dst);
  } catch {
    copyFileSync(src, dst);
  }
}

/** A new temp models folder holding the class files and the given real models (see place). */
export function linkedModelsDir(prefix: string, ids: readonly (typeof MODEL_IDS)[number][]): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  for (const f of ['imagenet-classes.json', 'imagenet-wnids.json']) place(join(REPO, 'models', f), join(dir, f));
  for (const id of ids) {
    mkdirSync(join(dir, id));
    for (const f of readdirSync(join(REPO, 'models', id))) place(join(REPO, 'models', id, f), join(dir, id, f));
  }
  return dir;
}

/** A fixture photo as RGBA bytes, cropped to cover `side`×`side` (what a frame request carries). */
export async function photoRgba(name: (typeof PHOTOS)[number], side = 224): Promise<Uint8Array> {
  const { default: sharp } = await import('sharp');
  const { data } = await sharp(photo(name)).resize(side, side, { fit: 'cover' }).ensureAlpha().raw().toBuffer({ resolveWithObject: true });
  return new Uint8Array(data);
}
