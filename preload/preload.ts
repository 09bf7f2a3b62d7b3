// The only bridge between the sandboxed renderer and Electron main: `window.deepvis` with exactly
// `request` (one contract request → its reply) and `onEvent` (menu events). Bundled to CommonJS
// (dist/preload/preload.cjs) because sandboxed preloads cannot be ES modules.
import { contextBridge, ipcRenderer, webUtils, type IpcRendererEvent } from 'electron';
import { z } from 'zod';
import { IPC_EVENT, IPC_REQUEST, parseEvent, type AppEvent, type DeepVisBridge, type Reply, type Request } from '../contract/messages.js';

// The page's CSP forbids eval; stop zod from probing for it (the probe is reported as a violation).
z.config({ jitless: true });

/**
 * A folder dropped on the window arrives as a File; only here can its path be read. The page sends
 * `openModelFolder` with the File as `path`, and main receives the path string (main checks it).
 */
function withDroppedPath(msg: Request): Request {
  const path = (msg as { type?: unknown; path?: unknown }).path;
  if ((msg as { type?: unknown }).type !== 'openModelFolder' || !(path instanceof File)) return msg;
  return { ...msg, path: webUtils.getPathForFile(path) } as Request;
}

const bridge: DeepVisBridge = {
  request: (msg: Request): Promise<Reply> => ipcRenderer.invoke(IPC_REQUEST, withDroppedPath(msg)) as Promise<Reply>,
  onEvent: (callback: (event: AppEvent) => void): (() => void) => {
    if (typeof callback !== 'function') throw new TypeError('deepvis.onEvent needs a function');
    // The IpcRendererEvent (with its sender) never reaches the page: only the validated event.
    const listener = (_e: IpcRendererEvent, raw: unknown) => {
      const r = parseEvent(raw);
      if (r.ok) callback(r.event);
      else console.warn(`deepvis: ignoring an invalid event (${r.error})`);
    };
    ipcRenderer.on(IPC_EVENT, listener);
    return () => {
      ipcRenderer.removeListener(IPC_EVENT, listener);
    };
  },
};

contextBridge.exposeInMainWorld('deepvis', bridge);
