// Development entry of an engine worker: the TypeScript sources run under tsx (web mode, the CLI,
// vitest), so the worker registers tsx's loader before importing its TypeScript entry. The bundled
// Electron app starts dist/main/engine-worker.cjs directly instead.
import { register } from 'tsx/esm/api';
import { workerData } from 'node:worker_threads';

register();
await import(workerData.entry);
