// Bundle the Electron side with esbuild:
//   main/electron/main.ts → dist/main/electron-main.cjs  (Node, CommonJS; electron, @tensorflow/*, sharp external)
//   preload/preload.ts    → dist/preload/preload.cjs     (CommonJS: sandboxed preloads cannot be ES modules)
//
//   node scripts/build-electron.mjs           bundle only
//   node scripts/build-electron.mjs --dist    bundle, then electron-builder --dir (electron-builder.yml);
//                                             the Electron binary comes from $DEEPVIS_ELECTRON_DIST or
//                                             $ELECTRON_OVERRIDE_DIST_PATH when set (no download here)
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');

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
  sourcemap: true,
  logLevel: 'warning',
  absWorkingDir: root,
  legalComments: 'none',
};

await build({
  ...common,
  ...importMetaShim,
  entryPoints: ['main/electron/main.ts'],
  outfile: 'dist/main/electron-main.cjs',
  external: ['electron', '@tensorflow/*', 'sharp'],
});

await build({
  ...common,
  entryPoints: ['preload/preload.ts'],
  outfile: 'dist/preload/preload.cjs',
  external: ['electron'],
  // The sandboxed preload runs in a renderer: no Node built-ins beyond what Electron polyfills.
  platform: 'browser',
  mainFields: ['module', 'main'],
  minify: true, // zod's classic API is most of it
});

console.log('electron bundles: dist/main/electron-main.cjs, dist/preload/preload.cjs');

if (process.argv.includes('--dist')) {
  for (const f of ['renderer/dist/index.html', 'dist/main/electron-main.cjs', 'dist/preload/preload.cjs']) {
    if (!existsSync(join(root, f))) throw new Error(`${f} is missing — run \`npm run build\` first`);
  }
  const electronDist = process.env.DEEPVIS_ELECTRON_DIST || process.env.ELECTRON_OVERRIDE_DIST_PATH || '';
  const { build: builder } = await import('electron-builder');
  const out = await builder({
    projectDir: root,
    dir: true,
    config: {
      extends: join(root, 'electron-builder.yml'),
      ...(electronDist ? { electronDist: resolve(electronDist) } : {}),
    },
  });
  console.log(`packaged: ${out.join(', ') || join(root, 'out')}`);
}
