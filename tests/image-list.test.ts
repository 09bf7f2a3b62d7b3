// The desktop app's lazy image listing (main/electron/image-list.ts) on a folder of 5,000 photos
// (hard links to the fixture photos) plus files that are not images: every image is listed, in
// natural order, without reading any; one image's bytes come by index; anything else is refused.
import { copyFileSync, linkSync, mkdirSync, mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MAX_IMAGE_BYTES } from '../contract/images.js';
import { parseEvent, parseReply, parseRequest } from '../contract/messages.js';
import { ImageListings } from '../main/electron/image-list.js';
import { PHOTOS, photo } from './support/fixtures.js';

const N = 5000;
let dir: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'deepvis-image-list-'));
  const folder = join(dir, 'big');
  mkdirSync(folder);
  // Copies first, so the hard links stay on one file system.
  const src = PHOTOS.map((p) => {
    const to = join(dir, `${p}.jpg`);
    copyFileSync(photo(p), to);
    return to;
  });
  // img1.jpg … img5000.jpg (unpadded numbers: natural order must put img2 before img10).
  for (let i = 1; i <= N; i++) linkSync(src[i % src.length]!, join(folder, `img${i}.jpg`));
  writeFileSync(join(folder, 'notes.txt'), 'not an image');
  writeFileSync(join(folder, '.hidden.jpg'), 'editor droppings');
  writeFileSync(join(folder, 'Thumbs.db'), '');
  mkdirSync(join(folder, 'sub.jpg')); // a folder with an image's name
}, 120_000);

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('ImageListings', () => {
  it('lists 5,000 images in natural order, no other file, without reading them', async () => {
    const listings = new ImageListings();
    const t0 = performance.now();
    const l = await listings.listFolder(join(dir, 'big'));
    console.log(`listed ${l.names.length} images in ${(performance.now() - t0).toFixed(0)} ms`);
    expect(l.names).toHaveLength(N);
    expect(l.names.slice(0, 3)).toEqual(['img1.jpg', 'img2.jpg', 'img3.jpg']);
    expect(l.names[9]).toBe('img10.jpg');
    expect(l.names.at(-1)).toBe(`img${N}.jpg`);
    expect(new Set(l.names).size).toBe(N);
    expect(l.skipped).toEqual([]);
    expect(listings.get(l.id)?.names).toBe(l.names);
  });

  it('reads one image by index; refuses an unknown listing, an out-of-range index, a gone, empty or oversized file', async () => {
    const listings = new ImageListings();
    const l = await listings.listFolder(join(dir, 'big'));
    const img = await listings.read(l.id, 4321);
    expect(img.name).toBe('img4322.jpg');
    expect(Buffer.from(img.bytes).equals(readFileSync(photo(PHOTOS[4322 % PHOTOS.length]!)))).toBe(true);

    await expect(listings.read('no-such-listing', 0)).rejects.toThrow(/^unknown image listing/);
    await expect(listings.read(l.id, N)).rejects.toThrow(`no image ${N} in this listing (it has ${N})`);
    await expect(listings.read(l.id, -1)).rejects.toThrow(/no image -1/);
    await expect(listings.read(l.id, 1.5)).rejects.toThrow(/no image 1.5/);

    const small = join(dir, 'small');
    mkdirSync(small);
    for (const n of ['a.jpg', 'b.png', 'c.jpg']) writeFileSync(join(small, n), 'x');
    truncateSync(join(small, 'b.png'), 0);
    truncateSync(join(small, 'c.jpg'), MAX_IMAGE_BYTES + 1); // sparse: no disk used
    const s = await listings.listFolder(small);
    expect(s.names).toEqual(['a.jpg', 'b.png', 'c.jpg']);
    rmSync(join(small, 'a.jpg'));
    await expect(listings.read(s.id, 0)).rejects.toThrow('a.jpg: no longer there (moved or deleted?)');
    await expect(listings.read(s.id, 1)).rejects.toThrow('b.png: empty file (0 bytes), not an image');
    await expect(listings.read(s.id, 2)).rejects.toThrow(/^c\.jpg: 64 MB file is above the 64 MB limit for one image$/);
  });

  it('files picked one by one: natural order of their names; only listed paths are readable', async () => {
    const listings = new ImageListings();
    const picked = [join(dir, 'big', 'img10.jpg'), join(dir, 'big', 'img9.jpg'), photo('dog')];
    const l = listings.listFiles(picked);
    expect(l.names).toEqual(['dog.jpg', 'img9.jpg', 'img10.jpg']);
    expect((await listings.read(l.id, 2)).name).toBe('img10.jpg');
    await expect(listings.read(l.id, 3)).rejects.toThrow(/no image 3 in this listing \(it has 3\)/);
  });

  it('keeps only the latest few listings', async () => {
    const listings = new ImageListings();
    const first = listings.listFiles([photo('dog')]);
    for (let i = 0; i < 4; i++) listings.listFiles([photo('kite')]);
    await expect(listings.read(first.id, 0)).rejects.toThrow(/^unknown image listing/);
  });
});

describe('contract: openImages event and listedImage request', () => {
  it('carries 5,000 names (no bytes); a request names a listing and an index, never a path', async () => {
    const l = await new ImageListings().listFolder(join(dir, 'big'));
    const ev = parseEvent({ type: 'menu', action: 'openImages', source: 'folder', listing: l.id, names: l.names, skipped: l.skipped });
    expect(ev.ok).toBe(true);
    expect(parseEvent({ type: 'menu', action: 'openImages', source: 'folder', listing: l.id, names: [], skipped: [] }).ok).toBe(false);
    expect(parseRequest({ type: 'listedImage', listing: l.id, index: 3, seq: 1 }).ok).toBe(true);
    for (const bad of [
      { type: 'listedImage', listing: l.id, index: -1 },
      { type: 'listedImage', listing: l.id, index: '3' },
      { type: 'listedImage', listing: l.id, index: 0.5 },
      { type: 'listedImage', listing: '', index: 0 },
      { type: 'listedImage', path: '/etc/passwd', index: 0 },
    ]) {
      expect(parseRequest(bad).ok, JSON.stringify(bad)).toBe(false);
    }
    const img = await new ImageListings().read((await new ImageListings().listFolder(join(dir, 'big'))).id, 0).catch((e: Error) => e);
    expect(img).toBeInstanceOf(Error); // another instance's listing is unknown to this one
    const r = parseReply({ type: 'listedImage', listing: l.id, index: 0, name: 'img1.jpg', bytes: new Uint8Array([1, 2, 3]), seq: 1 });
    expect(r.ok).toBe(true);
  });
});
