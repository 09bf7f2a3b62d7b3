// Broken and oversized image files, made at test time from the real fixture photos: what a visitor's
// USB stick or a half-finished download really contains. Shared by the engine/CLI tests and the
// browser tests.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { crc32, deflateSync } from 'node:zlib';
import sharp from 'sharp';
import { photo } from './fixtures.js';

export interface BadImages {
  /** The first 20 kB of a real JPEG: a valid header, the scan data cut off. */
  truncatedJpeg: string;
  /** A real PNG (encoded from a photo) with one byte of its IHDR checksum flipped. */
  badCrcPng: string;
  /** The same PNG with its image-data (IDAT) checksum flipped instead. */
  badCrcDataPng: string;
  /** 0 bytes. */
  empty: string;
  /** A real JPEG whose frame header (SOF) says 20000×20000: 400 MP, ~1.2 GB of RGB if decoded. */
  hugeJpeg: string;
  /** A hand-made PNG declaring 20000×20000 (IHDR) with a tiny IDAT: the header of a decompression bomb. */
  hugePng: string;
  /** A text file with an image name. */
  notImage: string;
}

/** Offsets of each chunk of a PNG: [type, start of length field, data length]. */
function pngChunks(png: Buffer): Array<{ type: string; at: number; length: number }> {
  const out = [];
  for (let at = 8; at + 8 <= png.length; ) {
    const length = png.readUInt32BE(at);
    out.push({ type: png.toString('latin1', at + 4, at + 8), at, length });
    at += 12 + length;
  }
  return out;
}

function pngChunk(type: string, data: Buffer): Buffer {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(data.length);
  const body = Buffer.concat([Buffer.from(type, 'latin1'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(body));
  return Buffer.concat([len, body, crc]);
}

/** A JPEG with its frame size rewritten (the scan data stays the original's). */
export function withJpegSize(jpeg: Buffer, width: number, height: number): Buffer {
  const b = Buffer.from(jpeg);
  for (let i = 2; i + 9 < b.length; ) {
    if (b[i] !== 0xff) throw new Error('not a JPEG marker sequence');
    const marker = b[i + 1]!;
    const len = b.readUInt16BE(i + 2);
    // SOF0..SOF15, except DHT (C4), JPG (C8) and DAC (CC): P, Y, X follow the length.
    if (marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc) {
      b.writeUInt16BE(height, i + 5);
      b.writeUInt16BE(width, i + 7);
      return b;
    }
    i += 2 + len;
  }
  throw new Error('no SOF marker found');
}

/** A PNG header declaring width×height RGB, followed by one short row of real compressed data. */
export function hugePngHeader(width: number, height: number): Buffer {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr.set([8, 2, 0, 0, 0], 8); // 8-bit, RGB, deflate, adaptive filter, no interlace
  const row = deflateSync(Buffer.alloc(1 + 64 * 3));
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), pngChunk('IHDR', ihdr), pngChunk('IDAT', row), pngChunk('IEND', Buffer.alloc(0))]);
}

export async function makeBadImages(dir: string): Promise<BadImages> {
  mkdirSync(dir, { recursive: true });
  const p = (name: string) => join(dir, name);
  const f: BadImages = {
    truncatedJpeg: p('truncated.jpg'),
    badCrcPng: p('bad-crc.png'),
    badCrcDataPng: p('bad-crc-data.png'),
    empty: p('empty.jpg'),
    hugeJpeg: p('huge-20000.jpg'),
    hugePng: p('huge-20000.png'),
    notImage: p('notes.jpg'),
  };
  const dog = readFileSync(photo('dog'));
  writeFileSync(f.truncatedJpeg, dog.subarray(0, 20_000));
  const png = await sharp(photo('kite')).resize(96, 72).png().toBuffer();
  const chunks = pngChunks(png);
  const flipCrc = (type: string) => {
    const c = chunks.find((x) => x.type === type)!;
    const b = Buffer.from(png);
    const crcAt = c.at + 8 + c.length;
    b[crcAt] = b[crcAt]! ^ 0xff;
    return b;
  };
  writeFileSync(f.badCrcPng, flipCrc('IHDR'));
  writeFileSync(f.badCrcDataPng, flipCrc('IDAT'));
  writeFileSync(f.empty, '');
  writeFileSync(f.hugeJpeg, withJpegSize(dog, 20_000, 20_000));
  writeFileSync(f.hugePng, hugePngHeader(20_000, 20_000));
  writeFileSync(f.notImage, 'shopping list: milk, eggs\n');
  return f;
}
