// Binary framing for contract messages over a WebSocket: JSON for the structure, raw bytes for the
// typed arrays (frames and tiles would triple in size as JSON and cost a parse per pixel).
//   [u32 little-endian header length][header JSON, UTF-8][zero pad to 4][blob 0][pad][blob 1]…
// In the header each typed array is replaced by {"$blob": i, "kind": "u8"|"f32"}. Works in Node and
// in browsers (no Buffer).

type Blob = { kind: 'u8' | 'f32'; bytes: Uint8Array };

/**
 * Largest JSON header: requests carry at most a few kB of fields (their arrays and strings are
 * bounded by the contract), and a reply's bulky parts travel as blobs. A bigger header is refused
 * before JSON.parse sees it.
 */
export const MAX_HEADER_BYTES = 1 << 20;

/**
 * Most blobs in one message: a top-k reply carries ~150 (crop and back-projection per patch). The
 * cap keeps a hostile message of empty blobs from making millions of objects.
 */
export const MAX_BLOBS = 4096;

function pad4(n: number): number {
  return (n + 3) & ~3;
}

export function encodeMessage(message: unknown): Uint8Array {
  const blobs: Blob[] = [];
  const header = JSON.stringify(message, (_k, v: unknown) => {
    if (v instanceof Uint8Array) {
      blobs.push({ kind: 'u8', bytes: v });
      return { $blob: blobs.length - 1, kind: 'u8' };
    }
    if (v instanceof Float32Array) {
      blobs.push({ kind: 'f32', bytes: new Uint8Array(v.buffer, v.byteOffset, v.byteLength) });
      return { $blob: blobs.length - 1, kind: 'f32' };
    }
    return v;
  });
  const head = new TextEncoder().encode(header);
  let size = pad4(4 + head.length);
  const offsets = blobs.map((b) => {
    const at = size;
    size = pad4(size + 4 + b.bytes.length);
    return at;
  });
  const out = new Uint8Array(size);
  const view = new DataView(out.buffer);
  view.setUint32(0, head.length, true);
  out.set(head, 4);
  blobs.forEach((b, i) => {
    view.setUint32(offsets[i]!, b.bytes.length, true);
    out.set(b.bytes, offsets[i]! + 4);
  });
  return out;
}

/** Decode a framed message; throws on malformed input (callers turn that into an error reply). */
export function decodeMessage(data: ArrayBuffer | Uint8Array): unknown {
  const bytes = data instanceof Uint8Array ? data : new Uint8Array(data);
  if (bytes.length < 4) throw new Error(`message too short (${bytes.length} bytes; a message starts with a 4-byte header length)`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headLen = view.getUint32(0, true);
  if (headLen > MAX_HEADER_BYTES) throw new Error(`header of ${headLen} bytes is over the ${MAX_HEADER_BYTES}-byte limit`);
  if (4 + headLen > bytes.length) throw new Error(`truncated message: header of ${headLen} bytes, but only ${bytes.length - 4} follow`);
  const header = new TextDecoder().decode(bytes.subarray(4, 4 + headLen));
  // Collect blob positions first: blob i follows blob i-1.
  const blobs: Uint8Array[] = [];
  let at = pad4(4 + headLen);
  while (at + 4 <= bytes.length) {
    const len = view.getUint32(at, true);
    if (at + 4 + len > bytes.length) throw new Error(`truncated message: blob ${blobs.length} of ${len} bytes runs past the end`);
    if (blobs.length === MAX_BLOBS) throw new Error(`more than ${MAX_BLOBS} blobs in one message`);
    blobs.push(bytes.slice(at + 4, at + 4 + len)); // copy: aligned, and detached from the socket buffer
    at = pad4(at + 4 + len);
  }
  return JSON.parse(header, (_k, v: unknown) => {
    if (v && typeof v === 'object' && '$blob' in v) {
      const ref = v as { $blob: unknown; kind: unknown };
      // An integer index only: "__proto__" or "length" would otherwise pick up Array internals.
      const b = typeof ref.$blob === 'number' && Number.isInteger(ref.$blob) ? blobs[ref.$blob] : undefined;
      if (!b) throw new Error(`missing blob ${String(ref.$blob).slice(0, 20)}`);
      if (ref.kind === 'f32') {
        if (b.byteLength % 4) throw new Error('float blob length is not a multiple of 4');
        return new Float32Array(b.buffer, b.byteOffset, b.byteLength / 4);
      }
      return b;
    }
    return v;
  });
}
