// Renderer build: Svelte 5 (runes) + Vite. `vite build --config renderer/vite.config.ts` writes
// renderer/dist/, served by web mode and loaded by the Electron window (relative paths: base './').
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';
import { svelte } from '@sveltejs/vite-plugin-svelte';

const root = fileURLToPath(new URL('.', import.meta.url));

export default defineConfig({
  root,
  base: './',
  plugins: [svelte({ configFile: false, compilerOptions: { runes: true } })],
  build: {
    outDir: fileURLToPath(new URL('./dist', import.meta.url)),
    emptyOutDir: true,
    target: 'es2022',
    sourcemap: true,
    // One small app: no need for a modulepreload polyfill (it would be an inline-script risk under CSP).
    modulePreload: { polyfill: false },
  },
  server: {
    // The contract lives one level up (contract/), shared with main/ and the web server.
    fs: { allow: [fileURLToPath(new URL('..', import.meta.url))] },
  },
});
