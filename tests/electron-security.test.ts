// The Electron shell's security wiring, checked on the REAL built main bundle
// (dist/main/electron-main.cjs, rebuilt here by scripts/build-electron.mjs): the window's settings,
// the permission handlers, the CSP header, the navigation guard and the IPC sender check.
//
// No Electron binary exists on these machines and none can be downloaded, so the bundle is loaded in
// a fresh CommonJS module whose `require('electron')` returns a recording stand-in of Electron's API
// surface (app, BrowserWindow/webContents, session, ipcMain, Menu, dialog, screen, shell). Only that
// API is doubled — the policy, the handlers and the engine behind the IPC channel are the shipped
// code, driven the way Electron would call them. It is the only way to check the bundle's wiring
// without a binary; what Chromium then does with these settings is Electron's own part.
//
// The second part runs the security scan (scripts/security-scan.mjs) on a copy of the sources with a
// weakened window and an eval in a Svelte component, to show the CI gate fails when it should.
import { spawnSync } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import Module from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { IPC_REQUEST } from '../contract/messages.js';
import { writeGraphModel } from './support/graph-model.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const bundle = join(root, 'dist', 'main', 'electron-main.cjs');
const rendererIndex = join(root, 'renderer', 'dist', 'index.html');
const appUrl = pathToFileURL(rendererIndex).href;

// ---------------------------------------------------------------- the recording stand-in

type Listener = (...args: unknown[]) => unknown;
type PermissionRequestHandler = (wc: unknown, permission: string, callback: (ok: boolean) => void, details: object) => void;
type PermissionCheckHandler = (wc: unknown, permission: string, origin: string, details: object) => boolean;
type HeadersListener = (details: { url: string; responseHeaders?: Record<string, string[]> }, callback: (r: { responseHeaders?: Record<string, string[]> }) => void) => void;
type IpcHandler = (event: { senderFrame: unknown; sender?: unknown }, msg: unknown) => Promise<{ type: string; message?: string }>;

let nextContentsId = 1;

class FakeFrame {
  constructor(private readonly owner: FakeWebContents) {}
  get url(): string {
    return this.owner.url;
  }
}

class FakeWebContents extends EventEmitter {
  readonly id = nextContentsId++;
  url = '';
  readonly mainFrame = new FakeFrame(this);
  windowOpenHandler: ((details: { url: string }) => { action: string }) | null = null;
  readonly sent: { channel: string; payload: unknown }[] = [];
  getURL(): string {
    return this.url;
  }
  send(channel: string, payload: unknown): void {
    this.sent.push({ channel, payload });
  }
  setWindowOpenHandler(fn: (details: { url: string }) => { action: string }): void {
    this.windowOpenHandler = fn;
  }
  isDestroyed(): boolean {
    return false;
  }
}

function makeElectron(switches: Record<string, string>, userData: string) {
  const rec = {
    sandboxEnabled: false,
    windows: [] as FakeWindow[],
    ipcHandlers: new Map<string, IpcHandler>(),
    ipcListeners: [] as string[],
    permissionRequest: null as PermissionRequestHandler | null,
    permissionCheck: null as PermissionCheckHandler | null,
    devicePermission: null as ((details: object) => boolean) | null,
    displayMedia: null as ((request: object, callback: (streams: object) => void) => void) | null,
    headers: [] as HeadersListener[],
    openExternal: [] as string[],
    exitCode: null as number | null,
    quits: 0,
  };
  const app = new (class extends EventEmitter {
    isPackaged = false;
    commandLine = {
      hasSwitch: (name: string) => name in switches,
      getSwitchValue: (name: string) => switches[name] ?? '',
      appendSwitch: () => undefined,
    };
    getAppPath = () => root;
    getPath = () => userData;
    getVersion = () => '0.0.0-test';
    getName = () => 'DeepVis';
    enableSandbox = () => {
      rec.sandboxEnabled = true;
    };
    requestSingleInstanceLock = () => true;
    whenReady = () => Promise.resolve();
    quit = () => {
      rec.quits += 1;
      this.emit('quit');
    };
    exit = (code = 0) => {
      rec.exitCode = code;
    };
  })();

  class FakeWindow extends EventEmitter {
    readonly webContents = new FakeWebContents();
    bounds: { x: number; y: number; width: number; height: number };
    loaded: { file?: string; url?: string } = {};
    constructor(readonly options: Record<string, unknown> & { webPreferences?: Record<string, unknown> }) {
      super();
      this.bounds = { x: 0, y: 0, width: Number(options.width ?? 800), height: Number(options.height ?? 600) };
      rec.windows.push(this);
      app.emit('web-contents-created', {}, this.webContents); // as Electron does for every new contents
    }
    loadFile(file: string): Promise<void> {
      this.loaded = { file };
      this.webContents.url = pathToFileURL(file).href;
      return Promise.resolve();
    }
    loadURL(url: string): Promise<void> {
      this.loaded = { url };
      this.webContents.url = url;
      return Promise.resolve();
    }
    isDestroyed = () => false;
    isMinimized = () => false;
    isMaximized = () => false;
    isFullScreen = () => false;
    isVisible = () => true;
    getBounds = () => ({ ...this.bounds });
    getNormalBounds = () => ({ ...this.bounds });
    setBounds = (b: Partial<FakeWindow['bounds']>) => {
      this.bounds = { ...this.bounds, ...b };
    };
    getSize = () => [this.bounds.width, this.bounds.height];
    getPosition = () => [this.bounds.x, this.bounds.y];
    show = () => undefined;
    hide = () => undefined;
    focus = () => undefined;
    restore = () => undefined;
    maximize = () => undefined;
    center = () => undefined;
    close = () => undefined;
    destroy = () => undefined;
    setTitle = () => undefined;
  }

  const display = { id: 1, bounds: { x: 0, y: 0, width: 1920, height: 1080 }, workArea: { x: 0, y: 0, width: 1920, height: 1040 }, scaleFactor: 1 };
  const electron = {
    app,
    BrowserWindow: FakeWindow,
    ipcMain: {
      handle: (channel: string, fn: IpcHandler) => rec.ipcHandlers.set(channel, fn),
      removeHandler: (channel: string) => rec.ipcHandlers.delete(channel),
      on: (channel: string) => rec.ipcListeners.push(channel),
    },
    session: {
      defaultSession: {
        setPermissionRequestHandler: (fn: PermissionRequestHandler) => (rec.permissionRequest = fn),
        setPermissionCheckHandler: (fn: PermissionCheckHandler) => (rec.permissionCheck = fn),
        setDevicePermissionHandler: (fn: (details: object) => boolean) => (rec.devicePermission = fn),
        setDisplayMediaRequestHandler: (fn: (request: object, callback: (streams: object) => void) => void) => (rec.displayMedia = fn),
        webRequest: { onHeadersReceived: (fn: HeadersListener) => rec.headers.push(fn) },
      },
    },
    Menu: { buildFromTemplate: (template: unknown) => ({ template }), setApplicationMenu: () => undefined },
    dialog: {
      showOpenDialog: () => Promise.resolve({ canceled: true, filePaths: [] }),
      showSaveDialog: () => Promise.resolve({ canceled: true }),
      showMessageBox: () => Promise.resolve({ response: 0 }),
      showErrorBox: () => undefined,
    },
    screen: { getPrimaryDisplay: () => display, getAllDisplays: () => [display], getDisplayMatching: () => display, getDisplayNearestPoint: () => display },
    shell: { openExternal: (url: string) => (rec.openExternal.push(url), Promise.resolve()) },
  };
  return { electron, app, rec, FakeWindow };
}

/** Loads the bundle as Electron would run it, except that `require('electron')` is the stand-in. */
function loadBundle(electron: unknown): void {
  const M = Module as unknown as { new (id: string): NodeModule; _nodeModulePaths(dir: string): string[] };
  const m = new M(bundle) as NodeModule & { _compile(code: string, filename: string): void };
  m.filename = bundle;
  m.paths = M._nodeModulePaths(dirname(bundle));
  const realRequire = m.require.bind(m);
  // The module's own `require` calls m.require, so this is the one place to intercept 'electron'.
  m.require = Object.assign((id: string) => (id === 'electron' ? electron : realRequire(id)), realRequire);
  m._compile(readFileSync(bundle, 'utf8'), bundle);
}

function parseCsp(policy: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const part of policy.split(';')) {
    const [name, ...sources] = part.trim().split(/\s+/);
    if (name) out.set(name.toLowerCase(), sources);
  }
  return out;
}

function metaCsp(html: string): string {
  const m = /<meta\s+http-equiv="Content-Security-Policy"\s+content="([^"]+)"/i.exec(html);
  if (!m?.[1]) throw new Error('renderer/index.html has no Content-Security-Policy meta tag');
  return m[1];
}

// ---------------------------------------------------------------- the bundle under the stand-in

describe('Electron main bundle: window, permissions, CSP, navigation, IPC', () => {
  const tmp = mkdtempSync(join(tmpdir(), 'deepvis-electron-security-'));
  const emptyModels = join(tmp, 'models');
  mkdirSync(emptyModels);
  const fake = makeElectron({ backend: 'cpu', 'models-dir': emptyModels }, join(tmp, 'userData'));
  const { rec, app } = fake;
  const win = () => rec.windows[0]!;

  const savedModelsDir = process.env.DEEPVIS_MODELS_DIR;
  beforeAll(async () => {
    const build = spawnSync(process.execPath, ['scripts/build-electron.mjs'], { cwd: root, encoding: 'utf8' });
    expect(build.status, `${build.stdout}\n${build.stderr}`).toBe(0);
    // --models-dir adds to the bundled models; the models folder itself is set here, empty.
    process.env.DEEPVIS_MODELS_DIR = emptyModels;
    loadBundle(fake.electron);
    await app.whenReady();
    await new Promise((r) => setImmediate(r)); // main's whenReady().then(...) has run
  });

  afterAll(async () => {
    // will-quit holds the quit (preventDefault) while it disposes the engine, then quits.
    const quit = new Promise((r) => app.once('quit', r));
    let held = false;
    app.emit('will-quit', { preventDefault: () => (held = true) });
    if (held) await quit;
    if (savedModelsDir === undefined) delete process.env.DEEPVIS_MODELS_DIR;
    else process.env.DEEPVIS_MODELS_DIR = savedModelsDir;
    rmSync(tmp, { recursive: true, force: true });
  });

  it('starts one sandboxed window on the built renderer', () => {
    expect(rec.exitCode).toBeNull();
    expect(rec.sandboxEnabled).toBe(true); // app.enableSandbox(): every renderer, not just this window
    expect(rec.windows).toHaveLength(1);
    expect(win().loaded).toEqual({ file: rendererIndex });
  });

  it('the window: context isolation, sandbox, no Node anywhere, web security on, the bundled preload', () => {
    const wp = win().options.webPreferences ?? {};
    expect(wp).toMatchObject({
      contextIsolation: true,
      sandbox: true,
      nodeIntegration: false,
      nodeIntegrationInWorker: false,
      nodeIntegrationInSubFrames: false,
      webSecurity: true,
      allowRunningInsecureContent: false,
      webviewTag: false,
    });
    for (const risky of ['experimentalFeatures', 'enableBlinkFeatures', 'enableRemoteModule', 'navigateOnDragDrop']) expect(wp[risky], risky).toBeFalsy();
    expect(wp.preload).toBe(join(root, 'dist', 'preload', 'preload.cjs'));
    expect(existsSync(String(wp.preload))).toBe(true);
  });

  it('permission requests: the camera (video only) for the app page in the app window, nothing else', () => {
    const ask = (wc: unknown, permission: string, details: object): boolean => {
      let answer: boolean | undefined;
      rec.permissionRequest!(wc, permission, (ok) => (answer = ok), details);
      expect(answer, `no answer for ${permission}`).toBeTypeOf('boolean');
      return answer!;
    };
    const app = win().webContents;
    expect(ask(app, 'media', { mediaTypes: ['video'], requestingUrl: appUrl })).toBe(true);
    expect(ask(app, 'media', { mediaTypes: ['video'], requestingUrl: `${appUrl}?x=1#top` })).toBe(true);

    expect(ask(app, 'media', { mediaTypes: ['audio'], requestingUrl: appUrl })).toBe(false);
    expect(ask(app, 'media', { mediaTypes: ['video', 'audio'], requestingUrl: appUrl })).toBe(false);
    expect(ask(app, 'media', { mediaTypes: [], requestingUrl: appUrl })).toBe(false);
    expect(ask(app, 'media', { requestingUrl: appUrl })).toBe(false);
    const others = ['geolocation', 'notifications', 'clipboard-read', 'clipboard-sanitized-write', 'midi', 'midiSysex', 'openExternal', 'pointerLock', 'fullscreen', 'display-capture', 'mediaKeySystem', 'idle-detection', 'window-management', 'storage-access', 'unknown'];
    for (const p of others) expect(ask(app, p, { requestingUrl: appUrl, mediaTypes: ['video'] }), p).toBe(false);

    // The camera, but asked by someone else.
    expect(ask(app, 'media', { mediaTypes: ['video'], requestingUrl: 'https://evil.example/' })).toBe(false);
    expect(ask(app, 'media', { mediaTypes: ['video'], requestingUrl: pathToFileURL(join(root, 'README.md')).href })).toBe(false);
    const stranger = new FakeWebContents();
    stranger.url = appUrl;
    expect(ask(stranger, 'media', { mediaTypes: ['video'], requestingUrl: appUrl })).toBe(false);
    expect(ask(null, 'media', { mediaTypes: ['video'], requestingUrl: appUrl })).toBe(false);
  });

  it('permission checks: video for the app page only; devices and screen capture refused', () => {
    const check = (wc: unknown, permission: string, details: object) => rec.permissionCheck!(wc, permission, 'file:///', details);
    const app = win().webContents;
    expect(check(app, 'media', { mediaType: 'video', requestingUrl: appUrl })).toBe(true);
    expect(check(app, 'media', { mediaType: 'audio', requestingUrl: appUrl })).toBe(false);
    expect(check(app, 'media', { mediaType: 'video', requestingUrl: 'https://evil.example/' })).toBe(false);
    for (const p of ['geolocation', 'notifications', 'clipboard-read', 'midi', 'hid', 'serial', 'usb', 'openExternal']) expect(check(app, p, { requestingUrl: appUrl }), p).toBe(false);
    const stranger = new FakeWebContents();
    stranger.url = appUrl;
    expect(check(stranger, 'media', { mediaType: 'video', requestingUrl: appUrl })).toBe(false);
    expect(check(null, 'media', { mediaType: 'video', requestingUrl: appUrl })).toBe(false);

    expect(rec.devicePermission!({ deviceType: 'usb', origin: 'file://' })).toBe(false);
    let streams: object | undefined;
    rec.displayMedia!({ frame: null, videoRequested: true }, (s) => (streams = s));
    expect(streams).toEqual({}); // no source: the request fails
  });

  it('the CSP header is the page policy (renderer/index.html), strict, plus nosniff', () => {
    expect(rec.headers).toHaveLength(1);
    let out: Record<string, string[]> = {};
    rec.headers[0]!({ url: 'https://example.com/', responseHeaders: { 'Content-Type': ['text/html'] } }, (r) => (out = r.responseHeaders ?? {}));
    expect(out['Content-Type']).toEqual(['text/html']); // the response's own headers stay
    expect(out['X-Content-Type-Options']).toEqual(['nosniff']);
    const header = parseCsp(out['Content-Security-Policy']?.[0] ?? '');
    const meta = parseCsp(metaCsp(readFileSync(join(root, 'renderer', 'index.html'), 'utf8')));

    for (const [directive, sources] of meta) expect(header.get(directive), directive).toEqual(sources);
    const headerOnly = [...header.keys()].filter((d) => !meta.has(d));
    expect(headerOnly).toEqual(['frame-ancestors']); // a meta tag cannot carry it
    expect(header.get('frame-ancestors')).toEqual(["'none'"]);

    expect(header.get('default-src')).toEqual(["'self'"]);
    expect(header.get('script-src')).toEqual(["'self'"]); // no unsafe-eval, unsafe-inline, data:, blob: or hosts
    expect(header.get('object-src')).toEqual(["'none'"]);
    expect(header.get('base-uri')).toEqual(["'none'"]);
    for (const src of header.get('connect-src') ?? []) expect(src, 'connect-src reaches only this machine').toMatch(/^('self'|wss?:\/\/(127\.0\.0\.1|localhost)(:\d+|:\*)?)$/);
    for (const [directive, sources] of header) {
      for (const src of sources) expect(src, `${directive} ${src}`).not.toMatch(/^(https?:|\*$|'unsafe-eval'|'unsafe-hashes'|'wasm-unsafe-eval')/);
    }
  });

  it('no contents may navigate, redirect, attach a webview or open a window', () => {
    const guarded = [win().webContents, new FakeWebContents()];
    app.emit('web-contents-created', {}, guarded[1]);
    for (const wc of guarded) {
      for (const event of ['will-navigate', 'will-redirect', 'will-attach-webview']) {
        let prevented = false;
        wc.emit(event, { preventDefault: () => (prevented = true) }, 'https://evil.example/');
        expect(prevented, `${event} on contents ${wc.id}`).toBe(true);
      }
      expect(wc.windowOpenHandler?.({ url: 'https://evil.example/' })).toEqual({ action: 'deny' });
      expect(wc.windowOpenHandler?.({ url: appUrl })).toEqual({ action: 'deny' });
    }
    expect(rec.openExternal).toEqual([]);
  });

  it('IPC: one invoke channel, answered only for the app window’s main frame on the app page', async () => {
    expect([...rec.ipcHandlers.keys()]).toEqual([IPC_REQUEST]);
    expect(rec.ipcListeners).toEqual([]); // no fire-and-forget channels
    const handler = rec.ipcHandlers.get(IPC_REQUEST)!;
    const request = { type: 'listModels', seq: 1 };

    const foreign = new FakeWebContents();
    foreign.url = appUrl;
    const subframe = { url: appUrl }; // right URL, but not the window's main frame
    // Every kind of request, including reading an opened image's bytes, is refused to strangers.
    const fileRead = { type: 'listedImage', listing: 'any', index: 0, seq: 2 };
    for (const senderFrame of [null, foreign.mainFrame, subframe]) {
      for (const msg of [request, fileRead]) {
        const reply = await handler({ senderFrame }, msg);
        expect(reply, JSON.stringify(msg)).toMatchObject({ type: 'error', message: expect.stringMatching(/refused/) });
      }
    }

    // Positive control: the app's own frame reaches the real engine (no models installed here).
    const ok = await handler({ senderFrame: win().webContents.mainFrame }, request);
    expect(ok).toMatchObject({ type: 'models', models: [] });

    // The same frame after it left the app page is a stranger.
    const wc = win().webContents;
    wc.url = 'https://evil.example/';
    try {
      expect(await handler({ senderFrame: wc.mainFrame }, request)).toMatchObject({ type: 'error', message: expect.stringMatching(/refused/) });
    } finally {
      wc.url = appUrl;
    }
  });

  it('IPC: a model folder the user picked or dropped is copied into the run\'s user models and listed; a closed dialog is nothing', async () => {
    const handler = rec.ipcHandlers.get(IPC_REQUEST)!;
    const frame = { senderFrame: win().webContents.mainFrame };
    // The stand-in's dialog is closed without a choice.
    expect(await handler(frame, { type: 'openModelFolder', seq: 3 })).toMatchObject({ type: 'modelAdded', id: null, cancelled: true, seq: 3 });
    const dropped = mkdtempSync(join(tmpdir(), 'deepvis-dropped-'));
    try {
      // A graph model with an op DeepVis does not compile: copied, listed, refused with its reason.
      const graph = join(dropped, 'my-graph');
      writeGraphModel(graph);
      const mj = JSON.parse(readFileSync(join(graph, 'model.json'), 'utf8')) as { modelTopology: { node: { name: string; op: string }[] } };
      mj.modelTopology.node.find((n) => n.name === 'block1/Relu')!.op = 'Erf';
      writeFileSync(join(graph, 'model.json'), JSON.stringify(mj));
      const added = (await handler(frame, { type: 'openModelFolder', path: graph, seq: 4 })) as { type: string; id?: string; problem?: string };
      expect(added).toMatchObject({ type: 'modelAdded', id: 'my-graph', seq: 4 });
      expect(added.problem).toMatch(/user-models\/run-[^/]+\/models\/my-graph\/model\.json.*graph model.*node "block1\/Relu" uses the op Erf.*not supported yet/);
      const listed = (await handler(frame, { type: 'listModels' })) as unknown as { models: { id: string; installed: boolean }[] };
      expect(listed.models).toEqual([expect.objectContaining({ id: 'my-graph', installed: false })]);
      expect(await handler(frame, { type: 'openModelFolder', path: join(dropped, 'gone') })).toMatchObject({ type: 'error', message: expect.stringMatching(/gone cannot be read \(ENOENT\)/) });
    } finally {
      rmSync(dropped, { recursive: true, force: true });
    }
  });
});

// ---------------------------------------------------------------- the CI gate itself

describe('security scan (scripts/security-scan.mjs)', () => {
  const tmp = mkdtempSync(join(tmpdir(), 'deepvis-security-scan-'));
  afterAll(() => rmSync(tmp, { recursive: true, force: true }));

  /** A copy of what the scan reads, optionally edited, scanned; returns exit code, output and report. */
  function scanCopy(name: string, edit: (dir: string) => void) {
    const dir = join(tmp, name);
    for (const p of ['package.json', 'main/electron', 'preload', 'renderer/index.html', 'renderer/src', 'security']) cpSync(join(root, p), join(dir, p), { recursive: true });
    edit(dir);
    const report = join(dir, 'report.json');
    const r = spawnSync(process.execPath, [join(root, 'scripts', 'security-scan.mjs'), '--root', dir, '--report', report], { encoding: 'utf8' });
    const findings = existsSync(report) ? (JSON.parse(readFileSync(report, 'utf8')) as { findings: { check: string; file: string; decision: string }[] }).findings : [];
    return { code: r.status, out: `${r.stdout}\n${r.stderr}`, findings };
  }

  const replaceIn = (file: string, from: string | RegExp, to: string) => {
    const text = readFileSync(file, 'utf8');
    const next = text.replace(from, to);
    expect(next, `${file} no longer contains ${String(from)}`).not.toBe(text);
    writeFileSync(file, next);
  };

  it('passes on the sources as they are', () => {
    const r = scanCopy('as-is', () => undefined);
    expect(r.code, r.out).toBe(0);
    expect(r.out).toMatch(/→ PASS/);
  });

  // nodeIntegration itself is not in the list: for Electron >= 5 the scanner reports an explicit
  // `nodeIntegration: true` as INFORMATIONAL at most — the bundle test above is what guards it.
  it('fails on an unsandboxed, unisolated window and on eval in a Svelte component', () => {
    const r = scanCopy('weakened', (dir) => {
      const main = join(dir, 'main/electron/main.ts');
      replaceIn(main, 'contextIsolation: true', 'contextIsolation: false');
      replaceIn(main, 'sandbox: true', 'sandbox: false'); // the scanner rightly ignores nodeIntegration in a sandbox
      replaceIn(main, 'nodeIntegration: false', 'nodeIntegration: true');
      replaceIn(join(dir, 'renderer/src/App.svelte'), /<script([^>]*)>/, "<script$1>\n  eval('1 + ' + location.hash);");
    });
    expect(r.code, r.out).toBe(1);
    const failing = r.findings.filter((f) => f.decision === 'fail').map((f) => `${f.check} ${f.file}`);
    expect(failing).toEqual(
      expect.arrayContaining([
        'CONTEXT_ISOLATION_JS_CHECK main/electron/main.ts',
        'SANDBOX_JS_CHECK main/electron/main.ts',
        'DANGEROUS_FUNCTIONS_JS_CHECK renderer/src/App.svelte',
      ]),
    );
    expect(r.out).toMatch(/→ FAIL/);
  });
});
