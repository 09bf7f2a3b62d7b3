// How the renderer reaches the engine host: Electron IPC through the preload's `window.deepvis`, or a
// WebSocket to web mode (same host, token from the page URL). Both speak contract/messages.ts; every
// reply is validated with parseReply (and every menu event with parseEvent) before anyone sees it.
import { parseEvent, parseReply, type AppEvent, type DeepVisBridge, type Reply, type Request } from '../../../contract/messages';
import { decodeMessage, encodeMessage } from '../../../contract/wire';

export interface Transport {
  readonly kind: 'ipc' | 'websocket';
  /** Send one request; resolves with its (validated) reply, never rejects (failures are error replies). */
  request(msg: Request): Promise<Reply>;
  /** Host-initiated events (Electron menu, synthesis progress), validated; returns an unsubscribe function. */
  onEvent(cb: (event: AppEvent) => void): () => void;
  /** Called when the connection is lost (web mode), with a message for the user. */
  onClose(cb: (message: string) => void): void;
  close(): void;
}

declare global {
  interface Window {
    deepvis?: DeepVisBridge;
  }
}

function invalid(error: string): Reply {
  return { type: 'error', message: `invalid reply from the engine: ${error}` };
}

function failed(msg: Request, e: unknown): Reply {
  return { type: 'error', message: (e as Error)?.message ?? String(e), request: msg.type, ...(msg.type === 'frame' ? { frameId: msg.frameId } : {}) };
}

export function ipcTransport(bridge: DeepVisBridge): Transport {
  return {
    kind: 'ipc',
    async request(msg) {
      try {
        const r = parseReply(await bridge.request(msg));
        return r.ok ? r.reply : invalid(r.error);
      } catch (e) {
        return failed(msg, e);
      }
    },
    onEvent(cb) {
      const off = bridge.onEvent?.((raw: unknown) => {
        const r = parseEvent(raw);
        if (r.ok) cb(r.event);
        else console.warn(`ignoring an invalid event from the app: ${r.error}`);
      });
      return typeof off === 'function' ? off : () => {};
    },
    onClose() {},
    close() {},
  };
}

/**
 * WebSocket transport. Every request carries a fresh `seq` that the host echoes, so replies are
 * matched even when they overtake each other (a stats or hello reply while a frame is computing).
 */
export function webSocketTransport(url: string, WS: typeof WebSocket = WebSocket): Transport {
  const pending = new Map<number, { msg: Request; resolve: (r: Reply) => void }>();
  const closeListeners: ((m: string) => void)[] = [];
  const eventListeners = new Set<(e: AppEvent) => void>();
  let seq = 0;
  let ws: WebSocket | null = null;
  let opened: Promise<WebSocket> | null = null;
  let closedByUs = false;

  const failAll = (message: string) => {
    for (const [k, p] of pending) {
      pending.delete(k);
      p.resolve(failed(p.msg, new Error(message)));
    }
  };

  const connect = (): Promise<WebSocket> => {
    if (opened) return opened;
    opened = new Promise<WebSocket>((resolve, reject) => {
      const sock = new WS(url);
      sock.binaryType = 'arraybuffer';
      let isOpen = false;
      sock.onopen = () => {
        isOpen = true;
        ws = sock;
        resolve(sock);
      };
      sock.onmessage = (ev: MessageEvent) => {
        let reply: Reply;
        // The seq of a reply that fails validation still says whose it is: that request must not wait forever.
        let rawSeq: number | undefined;
        try {
          const data: unknown = typeof ev.data === 'string' ? JSON.parse(ev.data) : decodeMessage(ev.data as ArrayBuffer);
          // Host-initiated events (synthesis progress) share the socket: they carry no seq.
          const isEvent = !!data && typeof data === 'object' && !('seq' in data) && (data as { type?: unknown }).type !== 'error';
          const e = isEvent ? parseEvent(data) : null;
          if (e?.ok) {
            for (const cb of eventListeners) cb(e.event);
            return;
          }
          const s = data && typeof data === 'object' ? (data as { seq?: unknown }).seq : undefined;
          if (typeof s === 'number' && Number.isSafeInteger(s)) rawSeq = s;
          const r = parseReply(data);
          reply = r.ok ? r.reply : invalid(r.error);
        } catch (e) {
          reply = invalid((e as Error).message);
        }
        const key = reply.seq ?? rawSeq;
        const p = key !== undefined ? pending.get(key) : undefined;
        if (p) {
          pending.delete(key!);
          // An invalid reply is answered as its request's error (with its frameId, so the pane moves on).
          p.resolve(reply.seq === undefined && reply.type === 'error' ? { ...failed(p.msg, new Error(reply.message)), seq: key } : reply);
        } else {
          console.warn('engine reply that matches no request:', reply.type === 'error' ? reply.message : reply.type);
        }
      };
      sock.onclose = (ev: CloseEvent) => {
        ws = null;
        opened = null;
        const why = isOpen
          ? `lost the connection to the engine (${ev.code}${ev.reason ? `: ${ev.reason}` : ''}) — restart \`npm run web\` and reload`
          : `cannot connect to the engine at ${url.replace(/token=[^&]*/, 'token=…')} — is \`npm run web\` running, and is the token in the page URL right?`;
        failAll(why);
        if (!isOpen) reject(new Error(why));
        if (!closedByUs) for (const cb of closeListeners) cb(why);
      };
      sock.onerror = () => {
        /* onclose follows with the details */
      };
    });
    return opened;
  };

  return {
    kind: 'websocket',
    async request(msg) {
      let sock: WebSocket;
      try {
        sock = ws ?? (await connect());
      } catch (e) {
        return failed(msg, e);
      }
      const s = ++seq;
      return new Promise<Reply>((resolve) => {
        pending.set(s, { msg, resolve });
        try {
          sock.send(encodeMessage({ ...msg, seq: s }));
        } catch (e) {
          pending.delete(s);
          resolve(failed(msg, e));
        }
      });
    },
    onEvent(cb) {
      eventListeners.add(cb);
      return () => eventListeners.delete(cb);
    },
    onClose(cb) {
      closeListeners.push(cb);
    },
    close() {
      closedByUs = true;
      ws?.close();
    },
  };
}

/** The WebSocket URL for web mode, from the page's own URL (token in the query string). */
export function webSocketUrl(loc: Pick<Location, 'protocol' | 'host' | 'search'>): string {
  const token = new URLSearchParams(loc.search).get('token') ?? '';
  const scheme = loc.protocol === 'https:' ? 'wss:' : 'ws:';
  return `${scheme}//${loc.host}/ws?token=${encodeURIComponent(token)}`;
}

/** Pick the transport at start-up: Electron's preload bridge if present, else web mode. */
export function chooseTransport(win: Window = window): Transport {
  if (win.deepvis && typeof win.deepvis.request === 'function') return ipcTransport(win.deepvis);
  return webSocketTransport(webSocketUrl(win.location));
}
