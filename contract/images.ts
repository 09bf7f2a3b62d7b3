// Static images opened in the desktop app (used by contract/messages.ts), and the limits every
// decoder applies to them. Electron main lists the folder or files the user picked and sends only
// their names; the renderer asks for one image's bytes when it shows it, so a folder of thousands
// of photos opens at once and none is dropped.
import { z } from 'zod';

const Bytes = z.instanceof(Uint8Array);
const Seq = z.number().int().nonnegative().optional();

/**
 * The largest image any part of DeepVis decodes: 100 megapixels (300 MB as RGB, 400 MB as the
 * browser's RGBA). That is above every camera a visitor is likely to bring (full-frame bodies top out
 * near 60 MP, medium format near 100 MP; phones save 12–50 MP by default) yet keeps one decode well
 * inside a laptop's memory. Larger images — a 20000×20000 decompression bomb is 1.2 GB of RGB — are
 * refused from their header, before any pixel is decoded.
 */
export const MAX_IMAGE_PIXELS = 100_000_000;

/** The largest image file read whole (a 100 MP JPEG is 20–60 MB; anything bigger is not a photo). */
export const MAX_IMAGE_BYTES = 64 << 20;

/** Names sent in one listing: far above any real photo folder, small enough to validate quickly. */
export const MAX_LISTED_IMAGES = 200_000;

const ListingId = z.string().min(1).max(100);

/**
 * File ▸ Open Image… / Open Folder… in the desktop app: the images found, in name order (natural
 * sort). `listing` names them for `listedImage` requests; `skipped` says, one line each, what was
 * left out and why (empty when nothing was).
 */
/**
 * A JPEG whose data stops before its end-of-image marker. Browsers draw what arrived and grey the
 * rest without an error, and libvips sometimes loses its message ("Unknown error"), so both the
 * renderer and the engine look for the marker after the first scan themselves.
 */
export function isTruncatedJpeg(b: Uint8Array): boolean {
  if (b[0] !== 0xff || b[1] !== 0xd8) return false;
  // Walk the header segments (their lengths skip over embedded thumbnails) to the first scan.
  let i = 2;
  for (;;) {
    if (i + 4 > b.length) return true;
    if (b[i] !== 0xff) return false; // not a well-formed header: leave it to the decoder
    const marker = b[i + 1]!;
    if (marker === 0xff) {
      i++;
      continue;
    }
    if (marker === 0xda) break;
    i += 2 + ((b[i + 2]! << 8) | b[i + 3]!);
  }
  for (let j = b.length - 2; j > i; j--) if (b[j] === 0xff && b[j + 1] === 0xd9) return false;
  return true;
}

export const OpenImagesMenuEvent = z.object({
  type: z.literal('menu'),
  action: z.literal('openImages'),
  source: z.enum(['file', 'folder']),
  listing: ListingId,
  names: z.array(z.string().min(1).max(4096)).min(1).max(MAX_LISTED_IMAGES),
  skipped: z.array(z.string().max(4096)).max(100),
});

/** The bytes of image `index` of a listing sent in an `openImages` event (desktop app only). */
export const ListedImageRequest = z.object({ type: z.literal('listedImage'), listing: ListingId, index: z.number().int().nonnegative(), seq: Seq });

export const ListedImageReply = z.object({ type: z.literal('listedImage'), listing: ListingId, index: z.number().int().nonnegative(), name: z.string(), bytes: Bytes, seq: Seq });

export type OpenImagesMenuEventT = z.infer<typeof OpenImagesMenuEvent>;
export type ListedImageRequestT = z.infer<typeof ListedImageRequest>;
export type ListedImageReplyT = z.infer<typeof ListedImageReply>;
