// Static images: files from the open dialogs (file or folder) and from drag-and-drop (folders too),
// filtered to images and sorted by path like a file browser.

const IMAGE_EXT = /\.(jpe?g|png|gif|webp|bmp|avif|ico)$/i;

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

export async function decodeFile(file: File): Promise<ImageBitmap> {
  try {
    return await createImageBitmap(file);
  } catch (e) {
    throw new Error(`${file.name}: cannot read this image (${(e as Error).message || 'unsupported format'})`);
  }
}
