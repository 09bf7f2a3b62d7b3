// Bundle the Electron side with esbuild, and optionally package the app with electron-builder:
//   main/electron/main.ts → dist/main/electron-main.cjs  (Node, CommonJS; electron, @tensorflow/*, sharp external)
//   main/session/engine-worker.ts → dist/main/engine-worker.cjs (the engine's worker threads, started by the main bundle)
//   preload/preload.ts    → dist/preload/preload.cjs     (CommonJS: sandboxed preloads cannot be ES modules)
//
//   node scripts/build-electron.mjs            bundle only
//   node scripts/build-electron.mjs --pack     bundle, then the unpacked app for this platform (npm run pack)
//   node scripts/build-electron.mjs --dist     bundle, then this platform's installers (npm run dist)
// Packaging options (electron-builder.yml holds the rest):
//   --out DIR       output folder (default out/)
//   --atlas DIR     bundle this atlas (repeatable): an atlas root, a <model>-<sum> folder, a layer
//                   folder or one settings folder; also $DEEPVIS_PACK_ATLAS (path-delimiter separated)
//   --sourcemaps    keep the main, preload and renderer source maps (also $DEEPVIS_PACK_SOURCEMAPS=1)
// The Electron binary comes from $DEEPVIS_ELECTRON_DIST or $ELECTRON_OVERRIDE_DIST_PATH (an unpacked
// Electron of the installed version) when set; otherwise electron-builder downloads it.
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, delimiter, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { build } from 'esbuild';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');

const { values: args } = parseArgs({
  options: {
    pack: { type: 'boolean', default: false },
    dist: { type: 'boolean', default: false },
    out: { type: 'string' },
    atlas: { type: 'string', multiple: true, default: [] },
    sourcemaps: { type: 'boolean', default: false },
  },
});

// The engine's ES modules use import.meta.url (model folder, wasm files); in a CommonJS bundle it
// has to come from __filename.
const importMetaShim = {
  define: { 'import.meta.url': '__deepvis_import_meta_url' },
  banner: { js: "const __deepvis_import_meta_url = require('node:url').pathToFileURL(__filename).href;" },
};

const common = {
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node20',
  // Always written for development; the package leaves them out unless --sourcemaps.
  sourcemap: true,
  logLevel: 'warning',
  absWorkingDir: root,
  legalComments: 'none',
};

/**
 * esbuild, then each output written to a temp file and renamed into place: tests that rebuild the
 * bundles while another test reads them (vitest runs files in parallel) never see half a file.
 */
async function bundle(options) {
  const { outputFiles } = await build({ ...options, write: false });
  for (const f of outputFiles) {
    mkdirSync(dirname(f.path), { recursive: true });
    const tmp = `${f.path}.tmp-${process.pid}`;
    writeFileSync(tmp, f.contents);
    renameSync(tmp, f.path);
  }
}

await bundle({
  ...common,
  ...importMetaShim,
  entryPoints: ['main/electron/main.ts'],
  outfile: 'dist/main/electron-main.cjs',
  external: ['electron', '@tensorflow/*', 'sharp'],
});

await bundle({
  ...common,
  ...importMetaShim,
  entryPoints: ['main/session/engine-worker.ts'],
  outfile: 'dist/main/engine-worker.cjs',
  external: ['@tensorflow/*', 'sharp'],
});

await bundle({
  ...common,
  entryPoints: ['preload/preload.ts'],
  outfile: 'dist/preload/preload.cjs',
  external: ['electron'],
  // The sandboxed preload runs in a renderer: no Node built-ins beyond what Electron polyfills.
  platform: 'browser',
  mainFields: ['module', 'main'],
  minify: true, // zod's classic API is most of it
});

console.log('electron bundles: dist/main/electron-main.cjs, dist/main/engine-worker.cjs, dist/preload/preload.cjs');

if (args.pack || args.dist) {
  try {
    await packageApp();
  } catch (e) {
    console.error(`packaging failed: ${e.message}`);
    process.exit(1);
  }
}

/**
 * Copy the chosen atlases into `staging`, in the atlas layout (<model>-<sum12>/<layer>/<key>/, see
 * main/engine/synthesis/atlas.ts) whatever level of it the user pointed at. Only atlases with a
 * sprite go in: that is what the app shows.
 */
function stageAtlases(dirs, staging) {
  const found = [];
  for (const dir of dirs.map((d) => resolve(d))) {
    if (!existsSync(dir)) throw new Error(`--atlas ${dir}: no such folder`);
    const indexes = [];
    const walk = (d, depth) => {
      if (existsSync(join(d, 'index.json'))) indexes.push(d);
      else if (depth < 3) for (const e of readdirSync(d, { withFileTypes: true })) if (e.isDirectory()) walk(join(d, e.name), depth + 1);
    };
    walk(dir, 0);
    const before = found.length;
    for (const d of indexes) {
      let index;
      try {
        index = JSON.parse(readFileSync(join(d, 'index.json'), 'utf8'));
      } catch (e) {
        throw new Error(`--atlas: ${join(d, 'index.json')} is not readable JSON (${e.message})`);
      }
      if (!index.sprite || typeof index.model !== 'string' || typeof index.modelChecksum !== 'string' || typeof index.layer !== 'string') continue;
      const rel = join(`${index.model}-${index.modelChecksum.slice(0, 12)}`, index.layer, basename(d));
      // Half-written files of an interrupted build (writeAtomic's *.tmp-<pid>) stay behind.
      cpSync(d, join(staging, rel), { recursive: true, filter: (src) => !/\.tmp-\d+$/.test(src) });
      found.push(rel);
    }
    if (found.length === before) throw new Error(`--atlas ${dir}: no finished atlas there (an index.json with a sprite, as \`deepvis atlas\` writes)`);
  }
  return found;
}

async function packageApp() {
  for (const f of ['renderer/dist/index.html', 'dist/main/electron-main.cjs', 'dist/preload/preload.cjs']) {
    if (!existsSync(join(root, f))) throw new Error(`${f} is missing — run \`npm run build\` first`);
  }
  // A package with a half-fetched or corrupt model would fail on the demo machine, offline.
  const check = spawnSync(process.execPath, [join(root, 'scripts/fetch-models.mjs'), '--check', '--models-dir', join(root, 'models')], { stdio: 'inherit' });
  if (check.status !== 0) throw new Error('the models are incomplete or corrupt — run `npm run fetch-models` before packaging');

  const atlasDirs = [...args.atlas, ...(process.env.DEEPVIS_PACK_ATLAS ?? '').split(delimiter).filter(Boolean)];
  const sourcemaps = args.sourcemaps || process.env.DEEPVIS_PACK_SOURCEMAPS === '1';
  const electronDist = process.env.DEEPVIS_ELECTRON_DIST || process.env.ELECTRON_OVERRIDE_DIST_PATH || '';
  const staging = atlasDirs.length ? mkdtempSync(join(tmpdir(), 'deepvis-pack-atlases-')) : null;
  try {
    const config = {
      extends: join(root, 'electron-builder.yml'),
      ...(electronDist ? { electronDist: resolve(electronDist) } : {}),
      ...(args.out ? { directories: { output: resolve(args.out) } } : {}),
      // Appended after the yml's `files` patterns, so these win over its "!**/*.map".
      ...(sourcemaps ? { files: ['dist/main/*.map', 'dist/preload/*.map', 'renderer/dist/**/*.map'] } : {}),
      ...(staging ? { extraResources: [{ from: staging, to: 'atlases' }] } : {}),
    };
    if (staging) {
      const staged = stageAtlases(atlasDirs, staging);
      console.log(`atlases: ${staged.join(', ')}`);
    }
    const { build: builder } = await import('electron-builder');
    const artifacts = await builder({ projectDir: root, ...(args.pack ? { dir: true } : {}), publish: 'never', config });
    const out = args.out ? resolve(args.out) : join(root, 'out');
    console.log(args.pack ? `packaged: ${out}` : `installers: ${artifacts.filter((a) => !a.endsWith('.blockmap')).join(', ') || out}`);
  } finally {
    if (staging) rmSync(staging, { recursive: true, force: true });
  }
}
