import { describe, expect, it } from 'vitest';
import { decodeMessage, encodeMessage } from '../../../contract/wire';
import { ipcTransport, webSocketTransport, webSocketUrl } from './transport';

/** A WebSocket stand-in: records what is sent; the test plays the server. */
class FakeSocket {
  static last: FakeSocket | null = null;
  binaryType = 'blob';
  sent: unknown[] = [];
  onopen: (() => void) | null = null;
  onmessage: ((ev: { data: unknown }) => void) | null = null;
  onclose: ((ev: { code: number; reason: string }) => void) | null = null;
  onerror: (() => void) | null = null;
  constructor(public url: string) {
    FakeSocket.last = this;
    setTimeout(() => this.onopen?.(), 0);
  }
  send(data: Uint8Array) {
    this.sent.push(decodeMessage(data));
  }
  close() {
    this.onclose?.({ code: 1000, reason: '' });
  }
  reply(msg: unknown) {
    const b = encodeMessage(msg);
    this.onmessage?.({ data: b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) });
  }
}

const hello = (seq: number) => ({
  type: 'hello',
  version: 1,
  backend: { backend: 'wasm', choice: 'auto', description: 'wasm' },
  models: [],
  model: null,
  seq,
});

describe('webSocketTransport', () => {
  it('matches replies to requests by seq, even out of order', async () => {
    const t = webSocketTransport('ws://x/ws?token=t', FakeSocket as unknown as typeof WebSocket);
    const a = t.request({ type: 'hello' });
    const b = t.request({ type: 'stats' });
    await new Promise((r) => setTimeout(r, 5));
    const s = FakeSocket.last!;
    expect(s.binaryType).toBe('arraybuffer');
    const seqs = s.sent.map((m) => (m as { seq: number }).seq);
    expect(new Set(seqs).size).toBe(2);
    s.reply({ type: 'stats', numTensors: 1, numBytes: 2, rssBytes: 3, framesProcessed: 0, framesDropped: 0, modelId: null, backend: 'wasm', seq: seqs[1] });
    s.reply(hello(seqs[0]!));
    expect((await a).type).toBe('hello');
    expect((await b).type).toBe('stats');
  });

  it('turns an invalid reply into an error reply and a lost connection into errors', async () => {
    const t = webSocketTransport('ws://x/ws?token=t', FakeSocket as unknown as typeof WebSocket);
    let lost = '';
    t.onClose((m) => (lost = m));
    const a = t.request({ type: 'hello' });
    await new Promise((r) => setTimeout(r, 5));
    const s = FakeSocket.last!;
    const seq = (s.sent[0] as { seq: number }).seq;
    s.reply({ type: 'hello', version: 999, seq }); // fails validation, but its seq says whose it is
    expect(await a).toMatchObject({ type: 'error', request: 'hello', seq, message: expect.stringContaining('invalid reply from the engine') });
    const b = t.request({ type: 'listModels' });
    s.onclose!({ code: 1006, reason: '' });
    const rb = await b;
    expect(rb).toMatchObject({ type: 'error', message: expect.stringContaining('lost the connection') });
    expect(lost).toContain('lost the connection');
  });

  it('a frame reply holding NaN (null on the wire) resolves its frame as an error with its frameId; the next frame is answered', async () => {
    const t = webSocketTransport('ws://x/ws?token=t', FakeSocket as unknown as typeof WebSocket);
    const frame = { type: 'frame', frameId: 7, width: 1, height: 1, rgba: new Uint8Array(4), layer: 'l', unit: 0 } as const;
    const a = t.request(frame as never);
    await new Promise((r) => setTimeout(r, 5));
    const s = FakeSocket.last!;
    const seq = (s.sent[0] as { seq: number }).seq;
    s.reply({ type: 'frame', frameId: 7, modelId: 'm', top5: [{ index: 0, wnid: null, name: 'x', prob: NaN }], seq });
    const settled = await Promise.race([a, new Promise((r) => setTimeout(() => r('still waiting'), 500))]);
    expect(settled).toMatchObject({ type: 'error', request: 'frame', frameId: 7, seq });
    const b = t.request({ type: 'stats' });
    await new Promise((r) => setTimeout(r, 5));
    const seq2 = (s.sent[1] as { seq: number }).seq;
    s.reply({ type: 'stats', numTensors: 1, numBytes: 2, rssBytes: 3, framesProcessed: 0, framesDropped: 0, modelId: null, backend: 'wasm', seq: seq2 });
    expect((await b).type).toBe('stats');
  });

  it('builds the URL from the page location', () => {
    expect(webSocketUrl({ protocol: 'http:', host: '127.0.0.1:5273', search: '?token=a+b' })).toBe('ws://127.0.0.1:5273/ws?token=a%20b');
    expect(webSocketUrl({ protocol: 'https:', host: 'h', search: '' })).toBe('wss://h/ws?token=');
  });
});

describe('ipcTransport', () => {
  it('validates replies and events', async () => {
    let listener: ((e: unknown) => void) | null = null;
    const t = ipcTransport({
      request: async (m) => (m.type === 'hello' ? hello(0) : { type: 'nonsense' }) as never,
      onEvent: (cb) => {
        listener = cb as (e: unknown) => void;
        return () => {};
      },
    });
    expect((await t.request({ type: 'hello' })).type).toBe('hello');
    expect(await t.request({ type: 'stats' })).toMatchObject({ type: 'error', message: expect.stringContaining('invalid reply') });
    const got: unknown[] = [];
    t.onEvent((e) => got.push(e));
    const warn = console.warn;
    console.warn = () => {};
    listener!({ type: 'menu', action: 'help' });
    listener!({ type: 'menu', action: 'format-disk' });
    console.warn = warn;
    expect(got).toEqual([{ type: 'menu', action: 'help' }]);
  });
});

describe('webSocketTransport events', () => {
  it('routes host events (no seq) to onEvent and still matches replies', async () => {
    const t = webSocketTransport('ws://x/ws?token=t', FakeSocket as unknown as typeof WebSocket);
    const events: unknown[] = [];
    t.onEvent((e) => events.push(e));
    const a = t.request({ type: 'hello' });
    await new Promise((r) => setTimeout(r, 5));
    const s = FakeSocket.last!;
    s.reply({ type: 'synth', jobId: 'j1', phase: 'progress', iteration: 3 });
    s.reply(hello((s.sent[0] as { seq: number }).seq));
    expect((await a).type).toBe('hello');
    expect(events).toEqual([{ type: 'synth', jobId: 'j1', phase: 'progress', iteration: 3 }]);
  });
});
