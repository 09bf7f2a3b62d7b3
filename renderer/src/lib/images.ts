// Static images: files from the open dialogs (file or folder) and from drag-and-drop (folders too),
// filtered to images and sorted by path like a file browser — or, in the desktop app, the names of
// the images main listed, fetched one at a time. Either way the app steps through one list of
// ImageEntry and decodes only the image it shows, refusing bad ones with one line naming them.
import { imageSize } from 'image-size';
import { isTruncatedJpeg, MAX_IMAGE_BYTES, MAX_IMAGE_PIXELS } from '../../../contract/images';

const IMAGE_EXT = /\.(jpe?g|png|gif|webp|bmp|avif|ico)$/i;

const MIME: Record<string, string> = { jpg: 'image/jpeg', jpeg: 'image/jpeg', png: 'image/png', gif: 'image/gif', webp: 'image/webp', bmp: 'image/bmp', avif: 'image/avif', ico: 'image/x-icon' };

/** The media type of an image file's bytes, from its name (bytes from the host come without one). */
export function imageMimeType(name: string): string {
  return MIME[name.toLowerCase().split('.').pop() ?? ''] ?? 'application/octet-stream';
}

export function isImageFile(f: { name: string; type: string }): boolean {
  return f.type.startsWith('image/') || IMAGE_EXT.test(f.name);
}

function pathOf(f: File): string {
  return (f as File & { webkitRelativePath?: string }).webkitRelativePath || f.name;
}

export function sortImages(files: Iterable<File>): File[] {
  const coll = new Intl.Collator(undefined, { numeric: true, sensitivity: 'base' });
  return [...files].filter(isImageFile).sort((a, b) => coll.compare(pathOf(a), pathOf(b)));
}

type Entry = FileSystemEntry;

async function readEntry(entry: Entry, out: File[]): Promise<void> {
  if (entry.isFile) {
    const file = await new Promise<File>((res, rej) => (entry as FileSystemFileEntry).file(res, rej));
    out.push(file);
  } else if (entry.isDirectory) {
    const reader = (entry as FileSystemDirectoryEntry).createReader();
    for (;;) {
      const batch = await new Promise<Entry[]>((res, rej) => reader.readEntries(res, rej));
      if (!batch.length) break;
      for (const e of batch) await readEntry(e, out);
    }
  }
}

/** Files dropped on the window, descending into dropped folders. */
export async function filesFromDrop(dt: DataTransfer): Promise<File[]> {
  const entries: Entry[] = [];
  for (const item of Array.from(dt.items ?? [])) {
    const e = item.kind === 'file' ? item.webkitGetAsEntry?.() : null;
    if (e) entries.push(e);
  }
  if (!entries.length) return sortImages(Array.from(dt.files ?? []));
  const out: File[] = [];
  for (const e of entries) await readEntry(e, out);
  return sortImages(out);
}

/** One image of the list being stepped through; its bytes are fetched only when it is shown. */
export interface ImageEntry {
  readonly name: string;
  /** The image file's bytes; rejects with one line naming the image. */
  load(): Promise<Blob>;
}

/** Files the browser gave us (already sorted with sortImages). */
export function fileEntries(files: File[]): ImageEntry[] {
  return files.map((f) => ({ name: f.name, load: () => Promise.resolve(f) }));
}

/** The desktop app's listing: names now, bytes from main (`fetch`) when an image is shown. */
export function listingEntries(names: string[], fetch: (index: number) => Promise<Blob>): ImageEntry[] {
  return names.map((name, i) => ({ name, load: () => fetch(i) }));
}

function mp(pixels: number): string {
  const m = pixels / 1e6;
  return `${m < 10 ? m.toFixed(1) : Math.round(m)} MP`;
}

/** Enough of the start of a file to hold any real header (EXIF, ICC profiles and thumbnails come first). */
const HEADER_BYTES = 512 << 10;

/**
 * Decode one image for display, refusing from the header (before decoding) an empty file, one above
 * MAX_IMAGE_BYTES or MAX_IMAGE_PIXELS, and a truncated JPEG; decoder failures become one line too.
 */
export async function decodeFile(file: Blob, name = (file as File).name ?? 'image'): Promise<ImageBitmap> {
  if (file.size === 0) throw new Error(`${name}: empty file (0 bytes), not an image`);
  if (file.size > MAX_IMAGE_BYTES) throw new Error(`${name}: ${Math.round(file.size / 2 ** 20)} MB file is above the ${MAX_IMAGE_BYTES / 2 ** 20} MB limit for one image`);
  const head = new Uint8Array(await file.slice(0, HEADER_BYTES).arrayBuffer());
  let size: { width: number; height: number } | null = null;
  try {
    size = imageSize(head);
  } catch {
    // Unknown to image-size (or a damaged header): the browser's decoder has the last word below.
  }
  if (size && size.width * size.height > MAX_IMAGE_PIXELS) {
    throw new Error(`${name}: ${size.width}×${size.height} pixels (${mp(size.width * size.height)}) is above the ${mp(MAX_IMAGE_PIXELS)} limit; scale it down first`);
  }
  if (head[0] === 0xff && head[1] === 0xd8 && isTruncatedJpeg(file.size <= HEADER_BYTES ? head : new Uint8Array(await file.arrayBuffer()))) {
    throw new Error(`${name}: cannot read image: the file is truncated (the image data ends early)`);
  }
  try {
    return await createImageBitmap(file);
  } catch {
    // Chromium says only "The source image could not be decoded".
    throw new Error(`${name}: cannot read image: the data is damaged, or not an image format the browser can decode`);
  }
}

/** Fetch and decode one entry of the list; every failure is one line naming it. */
export async function decodeEntry(entry: ImageEntry): Promise<ImageBitmap> {
  const blob = await entry.load();
  return decodeFile(blob, entry.name);
}
