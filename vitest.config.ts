import { defineConfig } from 'vitest/config';

// Engine and server tests run in Node against the real models; renderer component tests opt into
// jsdom per file. Two workers: the machines have two cores and wasm runs one thread per process.
export default defineConfig({
  test: {
    include: ['tests/**/*.test.ts', 'renderer/src/**/*.test.ts'],
    environment: 'node',
    testTimeout: 300_000,
    hookTimeout: 300_000,
    pool: 'forks',
    maxWorkers: 2,
    reporters: ['default'],
  },
});
