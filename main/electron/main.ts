// The Electron shell: one window on the built renderer (file://), the application menu, the
// permission policy (camera only) and one IPC channel into the engine session. Thin on purpose:
// the engine lives in main/engine, the request handling in main/session, the UI in renderer/.
//
// Bundled to dist/main/electron-main.cjs by scripts/build-electron.mjs (CommonJS; electron,
// @tensorflow/* and sharp stay external). Command-line switches: --backend=…, --model=…,
// --models-dir=…, --workers=N (or the variables of README's Configuration table: host-config.ts).
import { join, resolve } from 'node:path';
import {
  app,
  BrowserWindow,
  dialog,
  ipcMain,
  Menu,
  screen,
  session as electronSession,
  type MenuItemConstructorOptions,
  type WebContents,
  type WebFrameMain,
} from 'electron';
import { IPC_EVENT, IPC_REQUEST, parseEvent, type AppEvent, type Reply } from '../../contract/messages.js';
import { ListedImageRequest } from '../../contract/images.js';
import { OpenModelFolderRequest } from '../../contract/user-models.js';
import { EngineSession } from '../session/engine-session.js';
import { withModelsDir } from '../engine/model-store.js';
import { readHostConfig, type HostConfig } from '../host-config.js';
import { AppStateStore, STATE_FILE } from '../persist/app-state.js';
import { placeWindow } from '../persist/window-bounds.js';
import { IMAGE_EXTENSIONS, ImageListings, type ImageListing } from './image-list.js';
import { allowPermissionCheck, allowPermissionRequest, confineWebContents, ELECTRON_CSP, isAppPageUrl } from './security.js';

/** What the user opened (names only; the renderer fetches each image's bytes when it shows it). */
const listings = new ImageListings();

const appRoot = app.getAppPath();
const rendererIndex = resolve(appRoot, 'renderer/dist/index.html');
const preloadPath = resolve(appRoot, 'dist/preload/preload.cjs');

let mainWindow: BrowserWindow | null = null;
let engine: EngineSession | null = null;
let engineError: string | null = null;
let engineReady: Promise<void> | null = null;
/** The view and window state kept across restarts (userData/state.json). */
let appState: AppStateStore | null = null;
/** The environment's settings, read once as the shell starts. */
const config: HostConfig = readHostConfig();

function switchValue(name: string): string | undefined {
  return app.commandLine.hasSwitch(name) ? app.commandLine.getSwitchValue(name) || undefined : undefined;
}

// ---------------------------------------------------------------- who may talk to us

function isAppUrl(url: string | undefined | null): boolean {
  return isAppPageUrl(url, rendererIndex);
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

async function showListing(listing: ImageListing, source: 'file' | 'folder', where: string): Promise<void> {
  if (!listing.names.length) {
    await dialog.showMessageBox(mainWindow!, { type: 'warning', message: 'No images to open', detail: `No ${IMAGE_EXTENSIONS.join('/')} files in ${where}.` });
    return;
  }
  sendEvent({ type: 'menu', action: 'openImages', source, listing: listing.id, names: listing.names, skipped: listing.skipped });
}

async function openImage(): Promise<void> {
  if (!mainWindow) return;
  const r = await dialog.showOpenDialog(mainWindow, {
    title: 'Open Image',
    properties: ['openFile', 'multiSelections'],
    filters: [{ name: 'Images', extensions: [...IMAGE_EXTENSIONS] }],
  });
  if (!r.canceled && r.filePaths.length) await showListing(listings.listFiles(r.filePaths), 'file', 'the selection');
}

async function openFolder(): Promise<void> {
  if (!mainWindow) return;
  const r = await dialog.showOpenDialog(mainWindow, { title: 'Open Folder of Images', properties: ['openDirectory'] });
  const dir = r.filePaths[0];
  if (r.canceled || !dir) return;
  await showListing(await listings.listFolder(dir), 'folder', dir);
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

async function buildMenu(): Promise<void> {
  const currentModel = engine?.model?.id ?? null;
  const models = engine ? await engine.models() : [];
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
        { label: 'Open Model Folder…', click: () => sendEvent({ type: 'menu', action: 'openModelFolder' }) },
        { type: 'separator' },
        { label: 'Export View as PNG…', accelerator: 'CmdOrCtrl+E', click: () => sendEvent({ type: 'menu', action: 'exportPng' }) },
        { type: 'separator' },
        { label: 'Quit', role: 'quit', accelerator: 'CmdOrCtrl+Q' },
      ],
    },
    {
      label: 'View',
      submenu: [
        // Single keys are the renderer's: shown here, not registered, so they still reach it.
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
  // Camera (video) for the app's own page; nothing else, ever (the decisions live in security.ts).
  ses.setPermissionRequestHandler((wc, permission, callback, details) => {
    const mediaTypes = 'mediaTypes' in details ? details.mediaTypes : undefined;
    callback(allowPermissionRequest({ permission, fromAppWindow: isAppContents(wc), requestingUrl: details.requestingUrl, mediaTypes }, rendererIndex));
  });
  ses.setPermissionCheckHandler((wc, permission, _origin, details) =>
    allowPermissionCheck({ permission, fromAppWindow: isAppContents(wc), requestingUrl: details.requestingUrl, mediaType: details.mediaType }, rendererIndex),
  );
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
  app.on('web-contents-created', (_e, contents) => confineWebContents(contents));
}

// ---------------------------------------------------------------- engine and IPC

function startEngine(): void {
  engineReady = EngineSession.create({
    appState,
    backend: switchValue('backend') ?? config.backend,
    ortThreads: config.ortThreads,
    jobLiveFps: config.jobLiveFps,
    vulkanDriver: config.vulkanDriver,
    model: switchValue('model') ?? null,
    // Packaged, the models and the atlases chosen at build time are extra resources beside the
    // asar (electron-builder.yml), read-only; the user's atlas cache is still searched first.
    // --models-dir adds a folder of the user's models to the bundled ones.
    // Model folders opened in the window are copied into this run's folder (removed at exit).
    userModelsDir: join(app.getPath('userData'), 'user-models', `run-${new Date().toISOString().replace(/[:.]/g, '-')}-${process.pid}`),
    modelsDir: withModelsDir(
      switchValue('models-dir'),
      config.modelsDir ?? (app.isPackaged ? join(process.resourcesPath, 'models') : join(appRoot, 'models')),
    ),
    bundledAtlasDirs: app.isPackaged ? [join(process.resourcesPath, 'atlases')] : [],
    atlasDir: config.atlasDir,
    topk: { indexDir: config.indexDir },
    // --workers=N, else $DEEPVIS_WORKERS, else cores − 1 (scheduler.ts poolSize).
    workers: Number(switchValue('workers')) > 0 ? Number(switchValue('workers')) : config.workers,
    log: (line) => console.log(`[engine] ${line}`),
  }).then(
    (s) => {
      engine = s;
      s.on('modelChange', () => void buildMenu());
      void buildMenu();
    },
    (e: unknown) => {
      engineError = `the engine did not start: ${(e as Error).message}`;
      console.error(engineError);
    },
  );
}

async function readListedImage(msg: unknown): Promise<Reply> {
  const req = ListedImageRequest.safeParse(msg);
  if (!req.success) return { type: 'error', message: `invalid message: ${req.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`, request: 'listedImage' };
  const { listing, index, seq } = req.data;
  try {
    const { name, bytes } = await listings.read(listing, index);
    return { type: 'listedImage', listing, index, name, bytes, ...(seq === undefined ? {} : { seq }) };
  } catch (e) {
    return { type: 'error', message: (e as Error).message, request: 'listedImage', ...(seq === undefined ? {} : { seq }) };
  }
}

/** A model folder: the dropped folder's path the preload found, else the one the user picks in a dialog. */
async function openModelFolder(msg: unknown): Promise<Reply> {
  const req = OpenModelFolderRequest.safeParse(msg);
  if (!req.success) return { type: 'error', message: `invalid message: ${req.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`, request: 'openModelFolder' };
  const { seq } = req.data;
  let path = req.data.path;
  if (!path) {
    if (!mainWindow) return { type: 'error', message: 'no window to open a dialog on', request: 'openModelFolder' };
    const r = await dialog.showOpenDialog(mainWindow, { title: 'Open Model Folder', properties: ['openDirectory'], message: 'A folder holding model.json (and its weight files, perhaps labels.txt)' });
    if (r.canceled || !r.filePaths[0]) return { type: 'modelAdded', id: null, problem: null, cancelled: true, ...(seq === undefined ? {} : { seq }) };
    path = r.filePaths[0];
  }
  await engineReady;
  if (!engine) return { type: 'error', message: engineError ?? 'the engine is not running', request: 'openModelFolder' };
  const reply = await engine.addModelFolder(path, seq);
  void buildMenu();
  return reply;
}

function registerIpc(): void {
  ipcMain.handle(IPC_REQUEST, async (e, msg: unknown): Promise<Reply> => {
    if (!isAppFrame(e.senderFrame)) return { type: 'error', message: 'refused: requests are accepted only from the DeepVis window' };
    // Opened images are main's (only what the user picked in a dialog); everything else is the engine's.
    if (msg && typeof msg === 'object' && (msg as { type?: unknown }).type === 'listedImage') return readListedImage(msg);
    // So are folders on disk: a dialog's choice, or the folder the user dropped on the window.
    if (msg && typeof msg === 'object' && (msg as { type?: unknown }).type === 'openModelFolder') return openModelFolder(msg);
    await engineReady;
    if (!engine) return { type: 'error', message: engineError ?? 'the engine is not running' };
    // One window, one client: synthesis progress goes back over the event channel.
    return engine.handle(msg, { id: 'window', emit: sendEvent }); // validates msg against the contract; never throws
  });
}

/** userData/state.json; $DEEPVIS_STATE_DIR moves it (as in web mode), DEEPVIS_NO_STATE=1 keeps nothing (tests). */
function openAppState(): AppStateStore | null {
  if (config.noState) return null;
  try {
    const dir = config.stateDir ?? app.getPath('userData');
    return AppStateStore.open(join(dir, STATE_FILE), { log: (line) => console.warn(`[state] ${line}`) });
  } catch (e) {
    console.warn(`[state] not kept this run: ${(e as Error).message}`);
    return null;
  }
}

/** Remember the window's bounds as it moves and resizes (the store coalesces) and as it closes. */
function trackWindowState(win: BrowserWindow): void {
  const save = () => {
    if (!appState || win.isDestroyed() || win.isMinimized() || win.isFullScreen()) return;
    const b = win.getNormalBounds();
    appState.setWindow({ x: b.x, y: b.y, width: b.width, height: b.height, maximized: win.isMaximized() });
  };
  win.on('resize', save);
  win.on('move', save);
  win.on('maximize', save);
  win.on('unmaximize', save);
  win.on('close', () => {
    save();
    appState?.flushSync();
  });
}

function createWindow(): void {
  // Reopen where the user left it, moved onto a display that exists now (persist/window-bounds.ts).
  const primary = screen.getPrimaryDisplay();
  const displays = [primary, ...screen.getAllDisplays().filter((d) => d.id !== primary.id)].map((d) => d.workArea);
  const { maximized, ...bounds } = placeWindow(appState?.state.window ?? null, displays);
  mainWindow = new BrowserWindow({
    ...bounds,
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
  if (maximized) mainWindow.maximize();
  trackWindowState(mainWindow);
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
      void buildMenu();
      appState = openAppState();
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
    appState?.flushSync();
    if (disposing || !engine) return;
    disposing = true;
    e.preventDefault();
    void engine.dispose().finally(() => app.quit());
  });
}
