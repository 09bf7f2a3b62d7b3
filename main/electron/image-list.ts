// The images a user opened in the desktop app (File ▸ Open Image… / Open Folder…), listed by name
// without reading them; the renderer asks for one image's bytes when it shows it. A folder of
// thousands of photos opens at once, none is dropped, and memory holds names, not pixels. Only paths
// the user picked in a dialog are ever read: a request names a listing and an index, never a path.
// No Electron import, so it is unit-tested in Node.
import { randomUUID } from 'node:crypto';
import { readdir, readFile, stat } from 'node:fs/promises';
import { basename, extname, join } from 'node:path';
import { MAX_IMAGE_BYTES, MAX_LISTED_IMAGES } from '../../contract/images.js';

/** What the open dialogs offer and a folder listing keeps (the renderer's decoder reads them all). */
export const IMAGE_EXTENSIONS = ['jpg', 'jpeg', 'png', 'webp', 'gif', 'bmp', 'avif'] as const;

/** Listings kept: the current one and a few before it, so an image being fetched as the user opens another folder still arrives. */
const KEEP_LISTINGS = 4;

export interface ImageListing {
  id: string;
  /** Display names, in natural order (img2 before img10), one per path. */
  names: string[];
  paths: string[];
  /** What was left out, one line each (only ever images beyond MAX_LISTED_IMAGES; non-images are not reported). */
  skipped: string[];
}

export interface ListedImage {
  name: string;
  bytes: Uint8Array<ArrayBuffer>;
}

const collator = new Intl.Collator(undefined, { numeric: true, sensitivity: 'base' });

export function isImageName(name: string): boolean {
  return !name.startsWith('.') && (IMAGE_EXTENSIONS as readonly string[]).includes(extname(name).slice(1).toLowerCase());
}

function mb(bytes: number): string {
  return `${(bytes / 2 ** 20).toFixed(bytes < 10 * 2 ** 20 ? 1 : 0)} MB`;
}

export class ImageListings {
  private readonly listings = new Map<string, ImageListing>();

  /** The image files directly in `dir` (not recursing: a folder is what the dialog showed), natural order. */
  async listFolder(dir: string): Promise<ImageListing> {
    let entries;
    try {
      entries = await readdir(dir, { withFileTypes: true });
    } catch (e) {
      throw new Error(`${dir}: cannot list the folder (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
    }
    // Symlinks count when their name is an image's; a broken one fails later, when shown, with a message.
    const names = entries
      .filter((e) => (e.isFile() || e.isSymbolicLink()) && isImageName(e.name))
      .map((e) => e.name)
      .sort(collator.compare);
    return this.add(
      names.map((n) => join(dir, n)),
      names,
    );
  }

  /** Files picked one by one (Open Image… with several selected), in natural order of their names. */
  listFiles(paths: string[]): ImageListing {
    const sorted = [...paths].sort((a, b) => collator.compare(basename(a), basename(b)) || collator.compare(a, b));
    return this.add(sorted, sorted.map((p) => basename(p)));
  }

  get(id: string): ImageListing | undefined {
    return this.listings.get(id);
  }

  /**
   * The bytes of image `index` of listing `id`. Throws one line: an unknown (or forgotten) listing,
   * an index out of range, a file that is gone, empty, not a file or above MAX_IMAGE_BYTES.
   */
  async read(id: string, index: number): Promise<ListedImage> {
    const l = this.listings.get(id);
    if (!l) throw new Error('unknown image listing (open the images again)');
    if (!Number.isInteger(index) || index < 0 || index >= l.paths.length) {
      throw new Error(`no image ${index} in this listing (it has ${l.paths.length})`);
    }
    const path = l.paths[index]!;
    const name = l.names[index]!;
    let size: number;
    try {
      const st = await stat(path);
      if (!st.isFile()) throw new Error(`${name}: not a file`);
      size = st.size;
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (!code) throw e;
      throw new Error(`${name}: ${code === 'ENOENT' ? 'no longer there (moved or deleted?)' : `cannot open (${code})`}`);
    }
    if (size === 0) throw new Error(`${name}: empty file (0 bytes), not an image`);
    if (size > MAX_IMAGE_BYTES) throw new Error(`${name}: ${mb(size)} file is above the ${mb(MAX_IMAGE_BYTES)} limit for one image`);
    const buf = await readFile(path);
    return { name, bytes: new Uint8Array(buf.buffer as ArrayBuffer, buf.byteOffset, buf.byteLength) };
  }

  private add(paths: string[], names: string[]): ImageListing {
    const extra = paths.length - MAX_LISTED_IMAGES;
    const listing: ImageListing =
      extra > 0
        ? { id: randomUUID(), names: names.slice(0, MAX_LISTED_IMAGES), paths: paths.slice(0, MAX_LISTED_IMAGES), skipped: [`${extra} more images not opened (at most ${MAX_LISTED_IMAGES} at once)`] }
        : { id: randomUUID(), names, paths, skipped: [] };
    this.listings.set(listing.id, listing);
    while (this.listings.size > KEEP_LISTINGS) this.listings.delete(this.listings.keys().next().value!);
    return listing;
  }
}
