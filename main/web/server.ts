// Web mode: the built renderer (static files from renderer/dist only) and the contract over a
// WebSocket at /ws, on 127.0.0.1, guarded by a per-run token and an Origin check.
//
//   npm run web -- [--port N] [--backend wasm] [--model ID] [--models-dir DIR] [--state-dir DIR | --no-state] [--workers N] [--open]
//
// Prints `DeepVis web mode: http://127.0.0.1:PORT/?token=TOKEN` once it listens.
import { spawn } from 'node:child_process';
import { tmpdir } from 'node:os';
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { realpath, stat } from 'node:fs/promises';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { dirname, extname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { WebSocketServer, type RawData, type WebSocket } from 'ws';
import { MAX_FRAME_SIDE, type AppEvent, type Reply } from '../../contract/messages.js';
import { decodeMessage, encodeMessage, MAX_HEADER_BYTES } from '../../contract/wire.js';
import { EngineSession, type EngineSessionOptions } from '../session/engine-session.js';
import { modelsDir, withModelsDir } from '../engine/model-store.js';
import { readHostConfig } from '../host-config.js';
import { AppStateStore, STATE_FILE } from '../persist/app-state.js';

export const DEFAULT_STATIC_DIR = resolve(dirname(fileURLToPath(import.meta.url)), '../../renderer/dist');
export const DEFAULT_PORT = 5273;
/**
 * Largest WebSocket message accepted: the largest legitimate one is a frame of the contract's
 * largest side (4 MB of RGBA at 1024²) with a full header. Anything bigger closes the connection
 * (1009, "Max payload size exceeded") before it is buffered whole, so a client cannot make the
 * server hold hundreds of MB per message.
 */
export const MAX_MESSAGE_BYTES = MAX_FRAME_SIDE * MAX_FRAME_SIDE * 4 + MAX_HEADER_BYTES + (64 << 10);
/** Replies queued for a client that is not reading them (a live layer's tiles are ~1 MB a frame). */
export const MAX_UNREAD_REPLY_BYTES = 64 << 20;

export interface WebServerOptions extends EngineSessionOptions {
  /** 0 (default) = a random free port. */
  port?: number;
  /** Folder served at / (default renderer/dist). Nothing outside it is ever served. */
  staticDir?: string;
  /** Use this session instead of creating one (it is not disposed by close()). */
  session?: EngineSession;
  /** Fixed token (tests); default: 24 random bytes, base64url. */
  token?: string;
  /** Close a client's socket once this many reply bytes wait unread (default MAX_UNREAD_REPLY_BYTES). */
  maxUnreadReplyBytes?: number;
}

export interface WebServer {
  /** http://127.0.0.1:PORT/?token=TOKEN */
  url: string;
  token: string;
  port: number;
  session: EngineSession;
  close(): Promise<void>;
}

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.jpeg': 'image/jpeg',
  '.gif': 'image/gif',
  '.webp': 'image/webp',
  '.ico': 'image/x-icon',
  '.wasm': 'application/wasm',
  '.woff2': 'font/woff2',
  '.woff': 'font/woff',
  '.txt': 'text/plain; charset=utf-8',
};

export function contentSecurityPolicy(port: number): string {
  return [
    "default-src 'self'",
    `connect-src 'self' ws://127.0.0.1:${port} ws://localhost:${port}`,
    "img-src 'self' blob: data:",
    "media-src 'self' blob: mediastream:",
    "style-src 'self' 'unsafe-inline'",
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
  ].join('; ');
}

function sameToken(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

/** Resolve a URL path to a file inside root, or null (traversal, encoded tricks, symlinks out, dirs without index). */
async function resolveStatic(root: string, rawPath: string): Promise<string | null> {
  let path: string;
  try {
    path = decodeURIComponent(rawPath);
  } catch {
    return null;
  }
  if (path.includes('\0') || path.includes('\\')) return null;
  // Any ".." segment is refused outright (after decoding, so %2e%2e is caught too).
  if (path.split('/').some((seg) => seg === '..')) return null;
  let full = resolve(root, '.' + (path.startsWith('/') ? path : '/' + path));
  const inside = (p: string, r: string) => {
    const rel = relative(r, p);
    return rel === '' || (!rel.startsWith('..' + sep) && rel !== '..' && !isAbsolute(rel));
  };
  if (!inside(full, root)) return null;
  try {
    let st = await stat(full);
    if (st.isDirectory()) {
      full = join(full, 'index.html');
      st = await stat(full);
    }
    if (!st.isFile()) return null;
    const [realFull, realRoot] = await Promise.all([realpath(full), realpath(root)]);
    if (!inside(realFull, realRoot)) return null;
    return realFull;
  } catch {
    return null;
  }
}

function reject(socket: Duplex, status: number, text: string): void {
  socket.end(`HTTP/1.1 ${status} ${text}\r\nConnection: close\r\nContent-Type: text/plain\r\nContent-Length: ${text.length}\r\n\r\n${text}`);
}

export async function startWebServer(opts: WebServerOptions = {}): Promise<WebServer> {
  const ownSession = !opts.session;
  const session = opts.session ?? (await EngineSession.create(opts));
  const staticDir = resolve(opts.staticDir ?? DEFAULT_STATIC_DIR);
  const token = opts.token ?? randomBytes(24).toString('base64url');
  let port = 0;
  const allowedHosts = () => new Set([`127.0.0.1:${port}`, `localhost:${port}`]);
  const allowedOrigins = () => new Set([`http://127.0.0.1:${port}`, `http://localhost:${port}`]);

  const baseHeaders = (): Record<string, string> => ({
    'X-Content-Type-Options': 'nosniff',
    'Referrer-Policy': 'no-referrer', // the token is in the page URL
    'Cross-Origin-Opener-Policy': 'same-origin',
    'Cross-Origin-Resource-Policy': 'same-origin',
    'Cache-Control': 'no-store',
  });

  const send = (res: ServerResponse, status: number, text: string) => {
    res.writeHead(status, { ...baseHeaders(), 'Content-Type': 'text/plain; charset=utf-8', 'Content-Length': Buffer.byteLength(text) });
    res.end(res.req.method === 'HEAD' ? undefined : text);
  };

  const onRequest = async (req: IncomingMessage, res: ServerResponse) => {
    // DNS rebinding guard: only our own host names.
    if (!allowedHosts().has(req.headers.host ?? '')) return send(res, 403, 'forbidden host');
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('Allow', 'GET, HEAD');
      return send(res, 405, 'method not allowed');
    }
    const rawUrl = req.url ?? '/';
    // Look at the raw path as sent: URL parsing would normalise "/../x" to "/x" before we see it.
    const rawPath = rawUrl.split('?')[0]!.split('#')[0]!;
    if (!rawPath.startsWith('/')) return send(res, 404, 'not found');
    const file = await resolveStatic(staticDir, rawPath);
    if (!file) {
      if (rawPath === '/') return send(res, 404, `not found: the renderer is not built (${staticDir} has no index.html) — run \`npm run build:renderer\``);
      return send(res, 404, 'not found');
    }
    const type = TYPES[extname(file).toLowerCase()] ?? 'application/octet-stream';
    const headers: Record<string, string> = { ...baseHeaders(), 'Content-Type': type };
    if (type.startsWith('text/html')) headers['Content-Security-Policy'] = contentSecurityPolicy(port);
    try {
      const st = await stat(file);
      headers['Content-Length'] = String(st.size);
    } catch {
      return send(res, 404, 'not found');
    }
    res.writeHead(200, headers);
    if (req.method === 'HEAD') return res.end();
    const stream = createReadStream(file);
    stream.on('error', () => res.destroy());
    stream.pipe(res);
  };

  const server = createServer((req, res) => {
    onRequest(req, res).catch(() => {
      if (!res.headersSent) send(res, 500, 'internal error');
      else res.destroy();
    });
  });

  const wss = new WebSocketServer({ noServer: true, maxPayload: MAX_MESSAGE_BYTES, perMessageDeflate: false });

  server.on('upgrade', (req, socket, head) => {
    socket.on('error', () => socket.destroy());
    let url: URL;
    try {
      url = new URL(req.url ?? '/', 'http://127.0.0.1');
    } catch {
      return reject(socket, 400, 'Bad Request');
    }
    if (url.pathname !== '/ws') return reject(socket, 404, 'Not Found');
    if (!allowedHosts().has(req.headers.host ?? '')) return reject(socket, 403, 'Forbidden');
    // Browsers always send Origin; only our own page may connect. (Non-browser clients that send
    // no Origin still need the token.)
    const origin = req.headers.origin;
    if (origin !== undefined && !allowedOrigins().has(origin)) return reject(socket, 403, 'Forbidden');
    const given = url.searchParams.get('token') ?? '';
    if (!sameToken(given, token)) return reject(socket, 401, 'Unauthorized');
    wss.handleUpgrade(req, socket, head, (ws) => wss.emit('connection', ws, req));
  });

  let clients = 0;
  const maxUnread = opts.maxUnreadReplyBytes ?? MAX_UNREAD_REPLY_BYTES;
  wss.on('connection', (ws: WebSocket) => {
    const reply = (r: Reply | AppEvent) => {
      if (ws.readyState !== ws.OPEN) return;
      // A client that sends but never reads would make us hold its replies for ever.
      if (ws.bufferedAmount > maxUnread) {
        ws.close(1008, 'too many unread replies');
        return;
      }
      ws.send(encodeMessage(r), { binary: true });
    };
    // Each connection is a client: its synthesis events come back on its own socket, and its
    // jobs stop when it goes away.
    const client = { id: `ws-${++clients}`, emit: reply };
    ws.on('close', () => session.disconnect(client.id));
    ws.on('error', () => ws.terminate());
    ws.on('message', (data: RawData, isBinary: boolean) => {
      if (!isBinary) {
        reply({ type: 'error', message: 'invalid message: expected a binary message (contract/wire.ts framing)' });
        return;
      }
      let msg: unknown;
      try {
        const bytes = Buffer.isBuffer(data) ? data : Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data);
        msg = decodeMessage(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength));
      } catch (e) {
        reply({ type: 'error', message: `invalid message: cannot decode (${(e as Error).message})` });
        return;
      }
      void session.handle(msg, client).then(reply);
    });
  });

  const listen = (p: number) =>
    new Promise<void>((res, rej) => {
      const onError = (e: Error) => {
        server.off('listening', onListening);
        rej(e);
      };
      const onListening = () => {
        server.off('error', onError);
        res();
      };
      server.once('error', onError);
      server.once('listening', onListening);
      server.listen(p, '127.0.0.1');
    });
  try {
    await listen(opts.port ?? 0);
  } catch (e) {
    if (ownSession) await session.dispose();
    throw e;
  }
  port = (server.address() as AddressInfo).port;

  let closing: Promise<void> | null = null;
  const close = () =>
    (closing ??= (async () => {
      for (const c of wss.clients) c.terminate();
      await new Promise<void>((r) => wss.close(() => r()));
      await new Promise<void>((r) => {
        server.close(() => r());
        server.closeAllConnections();
      });
      if (ownSession) await session.dispose();
    })());

  return { url: `http://127.0.0.1:${port}/?token=${token}`, token, port, session, close };
}

// ---------------------------------------------------------------- command line

function openBrowser(url: string): void {
  const cmd = process.platform === 'darwin' ? 'open' : process.platform === 'win32' ? 'cmd' : 'xdg-open';
  const args = process.platform === 'win32' ? ['/c', 'start', '""', url] : [url];
  const child = spawn(cmd, args, { stdio: 'ignore', detached: true });
  child.on('error', (e) => console.error(`could not open a browser (${e.message}); open the URL above yourself`));
  child.unref();
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      port: { type: 'string' },
      backend: { type: 'string' },
      model: { type: 'string' },
      'models-dir': { type: 'string' },
      'state-dir': { type: 'string' },
      'no-state': { type: 'boolean', default: false },
      'static-dir': { type: 'string' },
      workers: { type: 'string' },
      open: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
  });
  if (values.help) {
    console.log(`usage: npm run web -- [--port N] [--backend tensorflow-gpu|tensorflow|wasm|cpu] [--model ID] [--models-dir DIR] [--state-dir DIR | --no-state] [--workers N] [--open]
  --port N     port on 127.0.0.1 (default $DEEPVIS_PORT, else ${DEFAULT_PORT}, else a free one; 0 = random)
  --state-dir  where the view state (model, layer, unit, …) is kept (default $DEEPVIS_STATE_DIR, else ~/.config/deepvis)
  --no-state   keep nothing across restarts (also $DEEPVIS_NO_STATE=1)
  --workers N  job workers for synthesis (default $DEEPVIS_WORKERS, else cores − 1, at least 1)`);
    return;
  }
  const config = readHostConfig();
  const portText = values.port ?? config.port ?? undefined;
  const explicit = portText !== undefined && portText !== '';
  const port = explicit ? Number(portText) : DEFAULT_PORT;
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`--port: "${portText}" is not a port number (0–65535)`);
  // The renderer's view (model, layer, unit, boosts, …) comes back after a restart: <dir>/state.json.
  const noState = values['no-state'] || config.noState;
  const stateDir = values['state-dir'] ? resolve(values['state-dir']) : (config.stateDir ?? config.stateHome);
  const appState = noState ? null : AppStateStore.open(join(stateDir, STATE_FILE), { log: (line) => console.error(line) });
  // Model folders opened in the browser are uploaded into this run's folder (removed at exit).
  const userModelsDir = join(noState ? join(tmpdir(), 'deepvis') : stateDir, 'user-models', `run-${new Date().toISOString().replace(/[:.]/g, '-')}-${process.pid}`);
  const workers = values.workers === undefined ? undefined : Number(values.workers);
  if (workers !== undefined && !(Number.isInteger(workers) && workers > 0)) throw new Error(`--workers: "${values.workers}" is not a positive whole number`);
  const session = await EngineSession.create({
    appState,
    userModelsDir,
    workers: workers ?? config.workers,
    ortThreads: config.ortThreads,
    jobLiveFps: config.jobLiveFps,
    vulkanDriver: config.vulkanDriver,
    backend: values.backend ?? config.backend,
    model: values.model ?? null,
    // Adds a folder of the user's models to the bundled ones.
    modelsDir: withModelsDir(values['models-dir'], modelsDir(config.modelsDir)),
    atlasDir: config.atlasDir,
    topk: { indexDir: config.indexDir },
    log: (line) => console.error(line),
  });
  const common = { session, staticDir: values['static-dir'] ? resolve(values['static-dir']) : undefined };
  let server: WebServer;
  try {
    server = await startWebServer({ ...common, port });
  } catch (e) {
    if (explicit || (e as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw e;
    console.error(`port ${port} is busy; using a free one`);
    server = await startWebServer({ ...common, port: 0 });
  }
  console.log(`DeepVis web mode: ${server.url}`);
  if (values.open) openBrowser(server.url);
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) process.exit(130); // a second Ctrl-C: don't wait
    stopping = true;
    console.error(`${signal}: shutting down`);
    void server
      .close()
      .then(() => session.dispose())
      .then(() => appState?.close())
      .then(() => process.exit(0));
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
}

const isMain = process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url);
if (isMain) {
  main().catch((e: unknown) => {
    console.error(`deepvis web: ${(e as Error).message}`);
    process.exit(1);
  });
}
