// Binary framing for contract messages over a WebSocket: JSON for the structure, raw bytes for the
// typed arrays (frames and tiles would triple in size as JSON and cost a parse per pixel).
//   [u32 little-endian header length][header JSON, UTF-8][zero pad to 4][blob 0][pad][blob 1]…
// In the header each typed array is replaced by {"$blob": i, "kind": "u8"|"f32"}. Works in Node and
// in browsers (no Buffer).

type Blob = { kind: 'u8' | 'f32'; bytes: Uint8Array };

const MAX_HEADER = 1 << 20;

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
  if (bytes.length < 4) throw new Error('message too short');
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headLen = view.getUint32(0, true);
  if (headLen > MAX_HEADER || 4 + headLen > bytes.length) throw new Error('bad message header length');
  const header = new TextDecoder().decode(bytes.subarray(4, 4 + headLen));
  // Collect blob positions first: blob i follows blob i-1.
  const blobs: Uint8Array[] = [];
  let at = pad4(4 + headLen);
  while (at + 4 <= bytes.length) {
    const len = view.getUint32(at, true);
    if (at + 4 + len > bytes.length) throw new Error('truncated message body');
    blobs.push(bytes.slice(at + 4, at + 4 + len)); // copy: aligned, and detached from the socket buffer
    at = pad4(at + 4 + len);
  }
  return JSON.parse(header, (_k, v: unknown) => {
    if (v && typeof v === 'object' && '$blob' in v) {
      const ref = v as { $blob: number; kind: string };
      const b = blobs[ref.$blob];
      if (!b) throw new Error(`missing blob ${ref.$blob}`);
      if (ref.kind === 'f32') {
        if (b.byteLength % 4) throw new Error('float blob length is not a multiple of 4');
        return new Float32Array(b.buffer, b.byteOffset, b.byteLength / 4);
      }
      return b;
    }
    return v;
  });
}
