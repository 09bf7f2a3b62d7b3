// Build the renderer when its build is missing or stale, start web mode (`main/web/server.ts`, in its
// own process through tsx) on a free port with the fast model, and hand its URL to the tests in
// DEEPVIS_E2E_URL. Set DEEPVIS_E2E_URL yourself to test against a server you started.
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');

function newestMtime(dir: string): number {
  let t = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    if (e.name === 'node_modules' || e.name === 'dist' || e.name.startsWith('.')) continue;
    const p = join(dir, e.name);
    t = Math.max(t, e.isDirectory() ? newestMtime(p) : statSync(p).mtimeMs);
  }
  return t;
}

export function buildRenderer(): void {
  const index = join(ROOT, 'renderer/dist/index.html');
  const sources = Math.max(newestMtime(join(ROOT, 'renderer')), newestMtime(join(ROOT, 'contract')));
  if (existsSync(index) && statSync(index).mtimeMs >= sources) return;
  execFileSync(process.execPath, [join(ROOT, 'node_modules/vite/bin/vite.js'), 'build', '--config', 'renderer/vite.config.ts', '--logLevel', 'warn'], {
    cwd: ROOT,
    stdio: 'inherit',
  });
}

/** Start `main/web/server.ts` and resolve with its URL (the line it prints once it listens). */
export type WebServerProcess = { url: string; child: ChildProcess; stop: () => Promise<void> };

/**
 * Web mode on a random port with `model` (and $DEEPVIS_BACKEND when set). `env` adds variables
 * for this server only (e.g. DEEPVIS_ATLAS_DIR, DEEPVIS_CACHE_DIR, DEEPVIS_STATE_DIR for a test's
 * temp folders).
 */
export function startModelServer(model: string, env: Record<string, string> = {}): Promise<WebServerProcess> {
  const backend = process.env.DEEPVIS_BACKEND ? ['--backend', process.env.DEEPVIS_BACKEND] : [];
  // Saved view state would carry one spec's layer/unit/back mode into the next: only a test that
  // gives its own DEEPVIS_STATE_DIR (e2e/state.spec.ts) keeps state.
  const state = env.DEEPVIS_STATE_DIR ? [] : ['--no-state'];
  return startServer(['--port', '0', '--model', model, ...backend, ...state], 180_000, env);
}

export function startServer(args: string[], timeoutMs = 180_000, env: Record<string, string> = {}): Promise<WebServerProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'main/web/server.ts'), ...args], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...env },
  });
  let log = '';
  return new Promise((resolveUrl, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`web server did not start within ${timeoutMs} ms:\n${log}`));
    }, timeoutMs);
    const onData = (b: Buffer) => {
      log += b.toString();
      const m = /DeepVis web mode: (http:\/\/\S+)/.exec(log);
      if (m) {
        clearTimeout(timer);
        const stop = () =>
          new Promise<void>((r) => {
            if (child.exitCode !== null || child.signalCode !== null) return r();
            child.once('exit', () => r());
            child.kill('SIGTERM');
            setTimeout(() => child.kill('SIGKILL'), 5000).unref();
          });
        resolveUrl({ url: m[1]!, child, stop });
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', (b: Buffer) => {
      log += b.toString();
      if (process.env.DEEPVIS_E2E_VERBOSE) process.stderr.write(b);
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`web server exited with ${code} before listening:\n${log}`));
    });
  });
}

export default async function globalSetup(): Promise<(() => Promise<void>) | void> {
  buildRenderer();
  if (process.env.DEEPVIS_E2E_URL) return;
  const server = await startModelServer('mobilenet-v1-0.25');
  process.env.DEEPVIS_E2E_URL = server.url;
  return server.stop;
}
