// Web mode end to end at the protocol level: a real server on a random port, a real WebSocket
// client (ws), the real mobilenet-v1-0.25 and a real photo. No mocks.
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { parseReply, type HelloReplyT, type Reply } from '../contract/messages.js';
import { decodeMessage, encodeMessage } from '../contract/wire.js';
import { startWebServer, type WebServer } from '../main/web/server.js';
import { photo } from './support/fixtures.js';

const MODEL = 'mobilenet-v1-0.25';
const SLED_DOG = /dogsled|malamute|husky|eskimo dog/i;

let work: string;
let server: WebServer;
let dogRgba: Uint8Array;

/** A WebSocket client that validates every reply against the contract and hands them out in order. */
class Client {
  private replies: Reply[] = [];
  private waiters: ((r: Reply) => void)[] = [];
  private constructor(readonly ws: WebSocket) {
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      expect(isBinary).toBe(true);
      const parsed = parseReply(decodeMessage(new Uint8Array(data.buffer, data.byteOffset, data.byteLength)));
      if (!parsed.ok) throw new Error(`reply does not match the contract: ${parsed.error}`);
      const w = this.waiters.shift();
      if (w) w(parsed.reply);
      else this.replies.push(parsed.reply);
    });
  }

  static open(url: string, options: { origin?: string } = {}): Promise<Client> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url, options);
      ws.once('open', () => resolve(new Client(ws)));
      ws.once('unexpected-response', (_req, res) => reject(new Error(`HTTP ${res.statusCode}`)));
      ws.once('error', reject);
    });
  }

  next(): Promise<Reply> {
    const r = this.replies.shift();
    if (r) return Promise.resolve(r);
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  send(msg: unknown): void {
    this.ws.send(encodeMessage(msg));
  }

  async call(msg: unknown): Promise<Reply> {
    this.send(msg);
    return this.next();
  }

  close(): void {
    this.ws.close();
  }
}

function wsUrl(token: string | null): string {
  return `ws://127.0.0.1:${server.port}/ws${token === null ? '' : `?token=${encodeURIComponent(token)}`}`;
}

/** GET with the path sent exactly as given (fetch would normalise "/../x" away). */
function rawGet(path: string, headers: Record<string, string> = {}): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port: server.port, path, method: 'GET', headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
    });
    req.on('error', reject);
    req.end();
  });
}

function expectRefused(url: string, options: { origin?: string } = {}): Promise<number> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, options);
    ws.once('open', () => {
      ws.close();
      reject(new Error('connection was accepted'));
    });
    ws.once('unexpected-response', (_req, res) => {
      resolve(res.statusCode ?? 0);
      res.resume();
      ws.terminate();
    });
    ws.once('error', () => resolve(-1));
  });
}

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'deepvis-web-'));
  // A stand-in renderer build, with files beside it that must never be served.
  const dist = join(work, 'dist');
  mkdirSync(join(dist, 'assets'), { recursive: true });
  writeFileSync(join(dist, 'index.html'), '<!doctype html><title>DeepVis test page</title><script type="module" src="/assets/app.js"></script>');
  writeFileSync(join(dist, 'assets', 'app.js'), 'console.log("app")');
  writeFileSync(join(work, 'package.json'), '{"secret": true}');
  writeFileSync(join(work, 'secret.txt'), 'secret');
  symlinkSync(join(work, 'secret.txt'), join(dist, 'link.txt'));

  const { data } = await sharp(photo('dog')).resize(224, 224, { fit: 'cover' }).ensureAlpha().raw().toBuffer({ resolveWithObject: true });
  dogRgba = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);

  server = await startWebServer({ port: 0, model: MODEL, backend: process.env.DEEPVIS_BACKEND ?? 'wasm', staticDir: dist });
});

afterAll(async () => {
  await server?.close();
  if (work) rmSync(work, { recursive: true, force: true });
});

describe('web mode server', () => {
  it('prints a 127.0.0.1 URL with a long random token', () => {
    expect(server.url).toBe(`http://127.0.0.1:${server.port}/?token=${server.token}`);
    expect(server.token).toMatch(/^[A-Za-z0-9_-]{32}$/);
    expect(server.port).toBeGreaterThan(0);
  });

  it('answers hello with the models and the backend', async () => {
    const c = await Client.open(wsUrl(server.token));
    try {
      const r = await c.call({ type: 'hello', seq: 7 });
      expect(r.type).toBe('hello');
      const hello = r as HelloReplyT;
      expect(hello.seq).toBe(7);
      expect(hello.models.map((m) => m.id)).toContain(MODEL);
      expect(hello.backend.backend).toMatch(/\w+/);
      expect(hello.backend.description).toContain(hello.backend.choice);
      expect(hello.model?.id).toBe(MODEL);
      expect(hello.model?.layers.length).toBeGreaterThan(5);
    } finally {
      c.close();
    }
  });

  it('classifies a camera-like frame and returns every channel of the layer as tiles', async () => {
    const c = await Client.open(wsUrl(server.token));
    try {
      const hello = (await c.call({ type: 'hello' })) as HelloReplyT;
      const model = hello.model!;
      for (const layerName of [model.defaultLayer, model.layers[0]!.name, model.logitsLayer]) {
        const layer = model.layers.find((l) => l.name === layerName)!;
        const [h, w, units] = layer.shape;
        const unit = Math.min(3, units - 1);
        const r = await c.call({ type: 'frame', frameId: 1, width: 224, height: 224, rgba: dogRgba, layer: layerName, unit });
        if (r.type !== 'frame') throw new Error(`expected a frame reply, got ${JSON.stringify(r)}`);
        expect(r.frameId).toBe(1);
        expect(r.modelId).toBe(MODEL);
        expect(r.layer).toBe(layerName);
        expect(r.top5).toHaveLength(5);
        expect(r.top5.some((t) => SLED_DOG.test(t.name))).toBe(true);
        expect(r.tiles.count).toBe(units);
        expect([r.tiles.h, r.tiles.w]).toEqual([h, w]);
        expect(r.tiles.data.length).toBe(units * h * w);
        expect(r.tiles.channelMax.length).toBe(units);
        expect(Math.max(...r.tiles.channelMax)).toBeCloseTo(r.tiles.scale, 4);
        expect(r.tiles.data.reduce((a, b) => Math.max(a, b), 0)).toBe(255);
        expect(r.unit.index).toBe(unit);
        expect(r.unit.data.length).toBe(h * w);
        expect(r.engineMs).toBeGreaterThan(0);
      }
    } finally {
      c.close();
    }
  });

  it('answers every frame of a burst (frame or dropped) and always processes the last one', async () => {
    const c = await Client.open(wsUrl(server.token));
    try {
      const frame = (frameId: number) => ({ type: 'frame', frameId, width: 224, height: 224, rgba: dogRgba, layer: 'conv_pw_5_relu', unit: 0 });
      for (let i = 1; i <= 6; i++) c.send(frame(i));
      const replies: Reply[] = [];
      for (let i = 1; i <= 6; i++) replies.push(await c.next());
      const byId = new Map(replies.map((r) => [(r as { frameId: number }).frameId, r]));
      expect([...byId.keys()].sort()).toEqual([1, 2, 3, 4, 5, 6]);
      expect(byId.get(6)!.type).toBe('frame');
      for (const r of replies) expect(['frame', 'dropped']).toContain(r.type);
      const dropped = replies.filter((r) => r.type === 'dropped');
      for (const d of dropped) if (d.type === 'dropped') expect(d.supersededBy).toBeGreaterThan(d.frameId);
    } finally {
      c.close();
    }
  });

  it('refuses a socket without the token or with a wrong one (401)', async () => {
    expect(await expectRefused(wsUrl(null))).toBe(401);
    expect(await expectRefused(wsUrl('wrong'))).toBe(401);
    expect(await expectRefused(wsUrl(server.token.slice(0, -1) + (server.token.endsWith('A') ? 'B' : 'A')))).toBe(401);
  });

  it('refuses a socket from a foreign Origin (403) but accepts its own', async () => {
    expect(await expectRefused(wsUrl(server.token), { origin: 'http://evil.example' })).toBe(403);
    expect(await expectRefused(wsUrl(server.token), { origin: `http://127.0.0.1:${server.port + 1}` })).toBe(403);
    expect(await expectRefused(wsUrl(server.token), { origin: 'null' })).toBe(403);
    for (const origin of [`http://127.0.0.1:${server.port}`, `http://localhost:${server.port}`]) {
      const c = await Client.open(wsUrl(server.token), { origin });
      expect((await c.call({ type: 'hello' })).type).toBe('hello');
      c.close();
    }
  });

  it('answers malformed and schema-invalid messages with errors and keeps the connection working', async () => {
    const c = await Client.open(wsUrl(server.token));
    try {
      c.ws.send(randomBytes(1000));
      expect((await c.next()).type).toBe('error');
      c.ws.send(Buffer.from([1, 2]));
      expect((await c.next()).type).toBe('error');
      const bad = await c.call({ type: 'frame', frameId: 3, width: -1, height: 224, rgba: dogRgba, layer: 'conv1_relu', unit: 0 });
      expect(bad.type).toBe('error');
      if (bad.type === 'error') expect(bad.message).toMatch(/width/);
      const unknown = await c.call({ type: 'format-disk' });
      expect(unknown.type).toBe('error');
      c.ws.send('{"type":"hello"}'); // text frames are not the contract's framing
      expect((await c.next()).type).toBe('error');
      const wrongSize = await c.call({ type: 'frame', frameId: 4, width: 10, height: 10, rgba: dogRgba, layer: 'conv1_relu', unit: 0 });
      expect(wrongSize).toMatchObject({ type: 'error', frameId: 4 });
      const hello = await c.call({ type: 'hello' });
      expect(hello.type).toBe('hello');
    } finally {
      c.close();
    }
  });

  it('serves the renderer build with a strict CSP and nosniff', async () => {
    const r = await rawGet('/');
    expect(r.status).toBe(200);
    expect(r.body).toContain('DeepVis test page');
    expect(r.headers['content-type']).toMatch(/text\/html/);
    expect(r.headers['x-content-type-options']).toBe('nosniff');
    const csp = String(r.headers['content-security-policy']);
    expect(csp).toContain("default-src 'self'");
    expect(csp).toContain(`connect-src 'self' ws://127.0.0.1:${server.port} ws://localhost:${server.port}`);
    expect(csp).toContain("img-src 'self' blob: data:");
    expect(csp).toContain("media-src 'self' blob: mediastream:");
    expect(csp).toContain("style-src 'self' 'unsafe-inline'");
    const js = await rawGet('/assets/app.js');
    expect(js.status).toBe(200);
    expect(js.headers['content-type']).toMatch(/javascript/);
    expect((await rawGet('/index.html?token=x')).status).toBe(200);
  });

  it('serves nothing outside the renderer build', async () => {
    for (const path of [
      '/../package.json',
      '/%2e%2e/package.json',
      '/%2E%2E/secret.txt',
      '/..%2fpackage.json',
      '/assets/../../package.json',
      '/assets/%2e%2e/%2e%2e/package.json',
      '/.%2e/secret.txt',
      '/..\\package.json',
      '/%2e%2e%5cpackage.json',
      '/link.txt',
      '/missing.js',
      '/%00',
      '/%E0%A4%A',
      '//etc/passwd',
    ]) {
      const r = await rawGet(path);
      expect(r.status, path).toBe(404);
      expect(r.body, path).not.toContain('secret');
    }
  });

  it('refuses requests for a foreign Host name (DNS rebinding)', async () => {
    expect((await rawGet('/', { Host: 'evil.example' })).status).toBe(403);
    expect((await rawGet('/', { Host: `localhost:${server.port}` })).status).toBe(200);
  });
});
