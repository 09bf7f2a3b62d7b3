// `npm start`: build and launch the desktop app — but first make sure there is an Electron binary
// to launch. The electron package fetches its binary on first use; on an offline or locked-down
// machine that fails deep inside a stack trace, so say plainly why and what works instead.
//   node scripts/start.mjs [--check]   (--check: only report whether Electron can start)
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const WEB = 'npm run web';

/** The Electron executable the electron package would run, or why there is none (without downloading). */
export function findElectron(env = process.env) {
  let pkgDir;
  try {
    pkgDir = dirname(createRequire(join(ROOT, 'package.json')).resolve('electron/package.json'));
  } catch {
    return { path: null, why: 'the electron package is not installed (run `npm install`)' };
  }
  const pathFile = join(pkgDir, 'path.txt');
  const name = existsSync(pathFile) ? readFileSync(pathFile, 'utf8').trim() : null;
  if (env.ELECTRON_OVERRIDE_DIST_PATH) {
    const p = join(env.ELECTRON_OVERRIDE_DIST_PATH, name || 'electron');
    return existsSync(p) ? { path: p, why: null } : { path: null, why: `ELECTRON_OVERRIDE_DIST_PATH has no Electron executable (${p} is missing)` };
  }
  if (!name) return { path: null, why: 'the Electron binary was never downloaded (electron ≥ 42 fetches it on first use, and installing offline leaves it out)' };
  const p = join(pkgDir, 'dist', name);
  return existsSync(p) ? { path: p, why: null } : { path: null, why: `the Electron binary is missing (${p})` };
}

function main() {
  const check = process.argv.includes('--check');
  const found = findElectron();
  if (!found.path) {
    process.stderr.write(
      `deepvis: cannot start the desktop app: ${found.why}.\n` +
        `deepvis: the same app runs in your browser: ${WEB}  (it prints a http://127.0.0.1:PORT/?token=… address to open)\n` +
        `deepvis: to get the desktop app, download Electron's binary where the internet is reachable: npx install-electron, or set ELECTRON_OVERRIDE_DIST_PATH to an unpacked Electron.\n`,
    );
    process.exit(1);
  }
  if (check) {
    process.stdout.write(`Electron: ${found.path}\n`);
    return;
  }
  const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
  const build = spawnSync(npm, ['run', 'build'], { cwd: ROOT, stdio: 'inherit' });
  if (build.status !== 0) process.exit(build.status ?? 1);
  const run = spawnSync(found.path, ['.', ...process.argv.slice(2)], { cwd: ROOT, stdio: 'inherit' });
  process.exit(run.status ?? 1);
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) main();
