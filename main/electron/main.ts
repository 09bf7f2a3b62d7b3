// The Electron shell: one window on the built renderer (file://), the application menu, the
// permission policy (camera only) and one IPC channel into the engine session. Thin on purpose:
// the engine lives in main/engine, the request handling in main/session, the UI in renderer/.
//
// Bundled to dist/main/electron-main.cjs by scripts/build-electron.mjs (CommonJS; electron,
// @tensorflow/* and sharp stay external). Command-line switches: --backend=…, --model=…,
// --models-dir=… (or $DEEPVIS_BACKEND / $DEEPVIS_MODELS_DIR).
import { readdir, readFile, stat } from 'node:fs/promises';
import { basename, extname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  app,
  BrowserWindow,
  dialog,
  ipcMain,
  Menu,
  session as electronSession,
  type MenuItemConstructorOptions,
  type WebContents,
  type WebFrameMain,
} from 'electron';
import { IPC_EVENT, IPC_REQUEST, parseEvent, type AppEvent, type Reply } from '../../contract/messages.js';
import { EngineSession } from '../session/engine-session.js';

/** The renderer's own policy; renderer/index.html carries the same as a meta tag (file:// has no headers). */
export const ELECTRON_CSP = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self' 'unsafe-inline'",
  "img-src 'self' blob: data:",
  "media-src 'self' blob: mediastream:",
  "connect-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

const IMAGE_EXTENSIONS = ['jpg', 'jpeg', 'png', 'webp', 'gif', 'bmp', 'avif', 'tif', 'tiff'];
/** Open Folder… limits: the images travel to the renderer in one event. */
const MAX_IMAGES = 500;
const MAX_IMAGE_BYTES = 64 << 20;
const MAX_TOTAL_BYTES = 512 << 20;

const appRoot = app.getAppPath();
const rendererIndex = resolve(appRoot, 'renderer/dist/index.html');
const preloadPath = resolve(appRoot, 'dist/preload/preload.cjs');

let mainWindow: BrowserWindow | null = null;
let engine: EngineSession | null = null;
let engineError: string | null = null;
let engineReady: Promise<void> | null = null;

function switchValue(name: string): string | undefined {
  return app.commandLine.hasSwitch(name) ? app.commandLine.getSwitchValue(name) || undefined : undefined;
}

// ---------------------------------------------------------------- who may talk to us

/** True for the app's own page: a file:// URL of renderer/dist/index.html (query/hash ignored). */
function isAppUrl(url: string | undefined | null): boolean {
  if (!url) return false;
  try {
    const u = new URL(url);
    if (u.protocol !== 'file:') return false;
    u.search = '';
    u.hash = '';
    return resolve(fileURLToPath(u)) === rendererIndex;
  } catch {
    return false;
  }
}

function isAppFrame(frame: WebFrameMain | null): boolean {
  if (!frame || !mainWindow || mainWindow.isDestroyed()) return false;
  return frame === mainWindow.webContents.mainFrame && isAppUrl(frame.url);
}

function isAppContents(wc: WebContents | null): boolean {
  return !!wc && !!mainWindow && !mainWindow.isDestroyed() && wc === mainWindow.webContents && isAppUrl(wc.getURL());
}

// ---------------------------------------------------------------- events to the renderer

function sendEvent(event: AppEvent): void {
  const checked = parseEvent(event);
  if (!checked.ok) throw new Error(`internal error: invalid event (${checked.error})`);
  if (mainWindow && !mainWindow.isDestroyed()) mainWindow.webContents.send(IPC_EVENT, checked.event);
}

async function readImages(paths: string[], source: 'file' | 'folder'): Promise<void> {
  const images: { name: string; bytes: Uint8Array<ArrayBuffer> }[] = [];
  const skipped: string[] = [];
  let total = 0;
  for (const p of paths) {
    if (images.length >= MAX_IMAGES) {
      skipped.push(`${paths.length - MAX_IMAGES} more (limit ${MAX_IMAGES} images)`);
      break;
    }
    try {
      const st = await stat(p);
      if (!st.isFile()) continue;
      if (st.size > MAX_IMAGE_BYTES || total + st.size > MAX_TOTAL_BYTES) {
        skipped.push(`${basename(p)} (too large)`);
        continue;
      }
      const buf = await readFile(p);
      total += buf.byteLength;
      images.push({ name: basename(p), bytes: new Uint8Array(buf.buffer as ArrayBuffer, buf.byteOffset, buf.byteLength) });
    } catch (e) {
      skipped.push(`${basename(p)} (${(e as Error).message})`);
    }
  }
  if (!images.length) {
    await dialog.showMessageBox(mainWindow!, { type: 'warning', message: 'No images to open', detail: skipped.join('\n') || `No ${IMAGE_EXTENSIONS.join('/')} files there.` });
    return;
  }
  sendEvent({ type: 'menu', action: 'openImages', source, images });
  if (skipped.length) console.warn(`open ${source}: skipped ${skipped.join('; ')}`);
}

async function openImage(): Promise<void> {
  if (!mainWindow) return;
  const r = await dialog.showOpenDialog(mainWindow, {
    title: 'Open Image',
    properties: ['openFile', 'multiSelections'],
    filters: [{ name: 'Images', extensions: IMAGE_EXTENSIONS }],
  });
  if (!r.canceled && r.filePaths.length) await readImages(r.filePaths, 'file');
}

async function openFolder(): Promise<void> {
  if (!mainWindow) return;
  const r = await dialog.showOpenDialog(mainWindow, { title: 'Open Folder of Images', properties: ['openDirectory'] });
  const dir = r.filePaths[0];
  if (r.canceled || !dir) return;
  const names = (await readdir(dir))
    .filter((n) => !n.startsWith('.') && IMAGE_EXTENSIONS.includes(extname(n).slice(1).toLowerCase()))
    .sort((a, b) => a.localeCompare(b, undefined, { numeric: true, sensitivity: 'base' }));
  await readImages(
    names.map((n) => join(dir, n)),
    'folder',
  );
}

async function about(): Promise<void> {
  if (!mainWindow) return;
  const lines = [
    `Version ${app.getVersion()} — Electron ${process.versions.electron}, Chromium ${process.versions.chrome}, Node ${process.versions.node}`,
    engine ? `Engine: ${engine.stats().backend}${engine.model ? `, model ${engine.model.id}` : ''}` : `Engine: ${engineError ?? 'starting…'}`,
    'After Yosinski, Clune, Nguyen, Fuchs and Lipson, "Understanding Neural Networks Through Deep Visualization" (2015).',
  ];
  await dialog.showMessageBox(mainWindow, { type: 'info', title: 'About DeepVis', message: 'DeepVis', detail: lines.join('\n') });
}

// ---------------------------------------------------------------- menu

function buildMenu(): void {
  const currentModel = engine?.model?.id ?? null;
  const models = engine ? engine.models() : [];
  const run = (fn: () => Promise<void>) => () => {
    fn().catch((e: unknown) => dialog.showErrorBox('DeepVis', (e as Error).message));
  };
  const modelItems: MenuItemConstructorOptions[] = models.length
    ? models.map((m) => ({
        label: m.installed ? m.title : `${m.title} (not installed)`,
        sublabel: m.id,
        type: 'radio',
        checked: m.id === currentModel,
        enabled: m.installed,
        toolTip: m.problem ?? undefined,
        click: () => sendEvent({ type: 'menu', action: 'selectModel', modelId: m.id }),
      }))
    : [{ label: engine ? 'No models installed (npm run fetch-models)' : 'Loading…', enabled: false }];
  const template: MenuItemConstructorOptions[] = [
    {
      label: 'File',
      submenu: [
        { label: 'Open Image…', accelerator: 'CmdOrCtrl+O', click: run(openImage) },
        { label: 'Open Folder…', accelerator: 'CmdOrCtrl+Shift+O', click: run(openFolder) },
        { type: 'separator' },
        { label: 'Export View as PNG…', accelerator: 'CmdOrCtrl+E', click: () => sendEvent({ type: 'menu', action: 'exportPng' }) },
        { type: 'separator' },
        { label: 'Quit', role: 'quit', accelerator: 'CmdOrCtrl+Q' },
      ],
    },
    {
      label: 'View',
      submenu: [
        // Single keys are the renderer's (DESIGN §5): shown here, not registered, so they still reach it.
        { label: 'Camera On/Off', accelerator: 'C', registerAccelerator: false, click: () => sendEvent({ type: 'menu', action: 'toggleCamera' }) },
        { label: 'Help', accelerator: 'H', registerAccelerator: false, click: () => sendEvent({ type: 'menu', action: 'help' }) },
        { type: 'separator' },
        { label: 'Model', submenu: modelItems },
        { type: 'separator' },
        { role: 'togglefullscreen' },
        ...(app.isPackaged ? [] : ([{ role: 'reload' }, { role: 'toggleDevTools' }] as MenuItemConstructorOptions[])),
      ],
    },
    {
      label: 'Help',
      role: 'help',
      submenu: [
        { label: 'Keyboard Shortcuts', accelerator: 'H', registerAccelerator: false, click: () => sendEvent({ type: 'menu', action: 'help' }) },
        { label: 'About DeepVis', click: run(about) },
      ],
    },
  ];
  Menu.setApplicationMenu(Menu.buildFromTemplate(template));
}

// ---------------------------------------------------------------- security policy

function hardenSession(): void {
  const ses = electronSession.defaultSession;
  // Camera (video) for the app's own page; nothing else, ever.
  ses.setPermissionRequestHandler((wc, permission, callback, details) => {
    const media = permission === 'media' && 'mediaTypes' in details ? (details.mediaTypes ?? []) : [];
    const ok = permission === 'media' && isAppContents(wc) && isAppUrl(details.requestingUrl) && media.length > 0 && media.every((t) => t === 'video');
    callback(ok);
  });
  ses.setPermissionCheckHandler((wc, permission, _origin, details) => {
    if (permission !== 'media' || details.mediaType === 'audio') return false;
    return isAppContents(wc) && (details.requestingUrl === undefined || isAppUrl(details.requestingUrl));
  });
  ses.setDevicePermissionHandler(() => false);
  ses.setDisplayMediaRequestHandler((_request, callback) => callback({}));
  // Headers for anything served over a network scheme (the app loads none; file:// gets the meta tag).
  ses.webRequest.onHeadersReceived((details, callback) => {
    callback({
      responseHeaders: {
        ...details.responseHeaders,
        'Content-Security-Policy': [ELECTRON_CSP],
        'X-Content-Type-Options': ['nosniff'],
      },
    });
  });
  // Nothing leaves the app: no navigation, no new windows, no webviews.
  app.on('web-contents-created', (_e, contents) => {
    contents.on('will-navigate', (e) => e.preventDefault());
    contents.on('will-redirect', (e) => e.preventDefault());
    contents.on('will-attach-webview', (e) => e.preventDefault());
    contents.setWindowOpenHandler(() => ({ action: 'deny' }));
  });
}

// ---------------------------------------------------------------- engine and IPC

function startEngine(): void {
  engineReady = EngineSession.create({
    backend: switchValue('backend') ?? null,
    model: switchValue('model') ?? null,
    modelsDir: switchValue('models-dir') ? resolve(switchValue('models-dir')!) : (process.env.DEEPVIS_MODELS_DIR ?? join(appRoot, 'models')),
    log: (line) => console.log(`[engine] ${line}`),
  }).then(
    (s) => {
      engine = s;
      s.on('modelChange', () => buildMenu());
      buildMenu();
    },
    (e: unknown) => {
      engineError = `the engine did not start: ${(e as Error).message}`;
      console.error(engineError);
    },
  );
}

function registerIpc(): void {
  ipcMain.handle(IPC_REQUEST, async (e, msg: unknown): Promise<Reply> => {
    if (!isAppFrame(e.senderFrame)) return { type: 'error', message: 'refused: requests are accepted only from the DeepVis window' };
    await engineReady;
    if (!engine) return { type: 'error', message: engineError ?? 'the engine is not running' };
    // One window, one client: synthesis progress goes back over the event channel.
    return engine.handle(msg, { id: 'window', emit: sendEvent }); // validates msg against the contract; never throws
  });
}

function createWindow(): void {
  mainWindow = new BrowserWindow({
    width: 1400,
    height: 900,
    minWidth: 800,
    minHeight: 600,
    title: 'DeepVis',
    backgroundColor: '#111111',
    show: false,
    webPreferences: {
      preload: preloadPath,
      contextIsolation: true,
      sandbox: true,
      nodeIntegration: false,
      nodeIntegrationInWorker: false,
      nodeIntegrationInSubFrames: false,
      webSecurity: true,
      allowRunningInsecureContent: false,
      webviewTag: false,
      spellcheck: false,
      devTools: !app.isPackaged,
    },
  });
  mainWindow.once('ready-to-show', () => mainWindow?.show());
  mainWindow.on('closed', () => {
    mainWindow = null;
  });
  void mainWindow.loadFile(rendererIndex).catch((e: unknown) => {
    dialog.showErrorBox('DeepVis', `Cannot load the user interface (${rendererIndex}): ${(e as Error).message}\nRun \`npm run build\` first.`);
  });
}

// ---------------------------------------------------------------- lifecycle

app.enableSandbox();
if (!app.requestSingleInstanceLock()) {
  app.quit();
} else {
  app.on('second-instance', () => {
    if (mainWindow) {
      if (mainWindow.isMinimized()) mainWindow.restore();
      mainWindow.focus();
    }
  });
  app.whenReady().then(
    () => {
      hardenSession();
      registerIpc();
      buildMenu();
      startEngine();
      createWindow();
      app.on('activate', () => {
        if (!mainWindow) createWindow();
      });
    },
    (e: unknown) => {
      console.error(e);
      app.exit(1);
    },
  );
  app.on('window-all-closed', () => app.quit());
  let disposing = false;
  app.on('will-quit', (e) => {
    if (disposing || !engine) return;
    disposing = true;
    e.preventDefault();
    void engine.dispose().finally(() => app.quit());
  });
}
