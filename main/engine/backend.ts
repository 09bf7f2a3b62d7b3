// Backend selection, each tried in turn and the reason for every failure kept, so the app and the
// CLI can say what runs and why. Without a preference: a GPU provider of ONNX Runtime that finds
// a hardware adapter (CUDA when its libraries were added, CoreML on macOS, DirectML on Windows,
// WebGPU), tfjs-node's CUDA build, ONNX
// Runtime on the CPU, tfjs-node's CPU build, wasm, cpu. The onnx backends run the network (forward
// and every backward pass) in ONNX Runtime and everything around it on tfjs' wasm backend.
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { existsSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { nativeEngine, setNativeEngine } from './onnx/native-net.js';
import { hardwareGpuHint, providerUnavailable, type OrtProvider } from './onnx/runtime.js';
import { probeProvider } from './onnx/probe.js';

export const BACKEND_ORDER = ['onnx-cuda', 'onnx-coreml', 'onnx-directml', 'onnx-webgpu', 'tensorflow-gpu', 'onnx', 'tensorflow', 'wasm', 'cpu'] as const;
export type BackendChoice = (typeof BACKEND_ORDER)[number];

export interface BackendAttempt {
  name: BackendChoice;
  ok: boolean;
  reason: string;
}

export interface BackendReport {
  /**
   * The tfjs backend that runs ("tensorflow", "wasm", "cpu"); "tensorflow" covers GPU and CPU
   * builds. For the onnx choices it is "wasm" (what runs around the network).
   */
  backend: string;
  choice: BackendChoice;
  attempts: BackendAttempt[];
}

const require = createRequire(import.meta.url);

export function isBackendChoice(s: string): s is BackendChoice {
  return (BACKEND_ORDER as readonly string[]).includes(s);
}

function hasNativeBinding(pkg: string): boolean {
  let dir: string;
  try {
    dir = dirname(require.resolve(`${pkg}/package.json`));
  } catch {
    throw new Error('not installed (optional dependency; its install needs to download libtensorflow)');
  }
  const lib = join(dir, 'lib');
  const found = existsSync(lib) && readdirSync(lib).some((d) => existsSync(join(lib, d, 'tfjs_binding.node')));
  if (!found) throw new Error('installed without its native binding (libtensorflow could not be downloaded at install time)');
  return true;
}

async function tryNode(pkg: string): Promise<string> {
  // The tfjs-node packages register the "tensorflow" backend on import; they are optional
  // dependencies whose install downloads libtensorflow, so they are usually absent offline.
  // Check for the native binding first: a failed require still registers ~150 kernels and
  // makes the next attempt print a warning for each.
  hasNativeBinding(pkg);
  require(pkg);
  if (!(await tf.setBackend('tensorflow'))) throw new Error(`${pkg} loaded but the tensorflow backend failed to initialise`);
  return pkg === '@tensorflow/tfjs-node-gpu' ? 'CUDA build of libtensorflow' : 'CPU build of libtensorflow';
}

async function tryWasm(): Promise<string> {
  const wasm = await import('@tensorflow/tfjs-backend-wasm');
  const dir = require.resolve('@tensorflow/tfjs-backend-wasm/package.json').replace(/package\.json$/, 'dist/');
  wasm.setWasmPaths(dir);
  // The Emscripten module installs process-wide handlers that rethrow any uncaught error with
  // the module's whole minified source as context. Errors are ours to report: drop them.
  type Listener = (...args: unknown[]) => void;
  const events = ['uncaughtException', 'unhandledRejection'];
  const listeners = () => events.flatMap((ev) => (process.listeners as (e: string) => Listener[])(ev).map((l) => [ev, l] as const));
  const before = new Set(listeners().map(([, l]) => l));
  const ok = await tf.setBackend('wasm');
  for (const [ev, l] of listeners()) if (!before.has(l)) (process.removeListener as (e: string, l: Listener) => void)(ev, l);
  if (!ok) throw new Error('the wasm backend failed to initialise');
  return 'WebAssembly (XNNPACK), one thread in Node';
}

async function tryCpu(): Promise<string> {
  if (!(await tf.setBackend('cpu'))) throw new Error('the cpu backend failed to initialise');
  return 'plain JavaScript kernels (slow)';
}

export interface SelectOptions {
  /**
   * ONNX Runtime's intra-op threads for this thread (a worker): the host's DEEPVIS_ORT_THREADS,
   * else 1 — each engine worker is one thread, and two workers on two cores use both.
   */
  ortThreads?: number | null;
  /** The Vulkan driver the host names (VK_ICD_FILENAMES): a software one keeps onnx-webgpu from being chosen automatically. */
  vulkanDriver?: string;
}

function ortThreads(opts: SelectOptions): number {
  const n = opts.ortThreads ?? 1;
  if (!Number.isInteger(n) || n < 1) throw new Error(`ONNX Runtime threads must be a whole number ≥ 1 (got ${String(n)}; check DEEPVIS_ORT_THREADS)`);
  return n;
}

const ORT_PROVIDER: Record<string, OrtProvider> = { onnx: 'cpu', 'onnx-cuda': 'cuda', 'onnx-webgpu': 'webgpu', 'onnx-coreml': 'coreml', 'onnx-directml': 'dml' };

/**
 * An ONNX Runtime backend: the provider must load and run a small graph; a GPU provider chosen
 * automatically must also see hardware (software Vulkan is exact but slower than the CPU).
 */
async function tryOnnx(choice: BackendChoice, named: boolean, opts: SelectOptions): Promise<string> {
  const provider = ORT_PROVIDER[choice]!;
  const threads = ortThreads(opts);
  const missing = providerUnavailable(provider);
  if (missing) throw new Error(missing);
  if (provider === 'webgpu' && !named) {
    const noHw = hardwareGpuHint(opts.vulkanDriver);
    if (noHw) throw new Error(`${noHw}; not chosen automatically (name onnx-webgpu to use it)`);
  }
  probeProvider({ provider, threads });
  await tryWasm();
  setNativeEngine({ provider, threads });
  const where = provider === 'cpu' ? `CPU, ${threads} thread${threads === 1 ? '' : 's'}` : `${provider} execution provider`;
  return `ONNX Runtime (${where}) for the network, WebAssembly around it`;
}

const attemptFns: Record<BackendChoice, (named: boolean, opts: SelectOptions) => Promise<string>> = {
  'onnx-cuda': (named, o) => tryOnnx('onnx-cuda', named, o),
  'onnx-coreml': (named, o) => tryOnnx('onnx-coreml', named, o),
  'onnx-directml': (named, o) => tryOnnx('onnx-directml', named, o),
  'onnx-webgpu': (named, o) => tryOnnx('onnx-webgpu', named, o),
  onnx: (named, o) => tryOnnx('onnx', named, o),
  'tensorflow-gpu': () => tryNode('@tensorflow/tfjs-node-gpu'),
  tensorflow: () => tryNode('@tensorflow/tfjs-node'),
  wasm: tryWasm,
  cpu: tryCpu,
};

function firstLine(e: unknown): string {
  const msg = e instanceof Error ? e.message : String(e);
  const line = msg.split('\n')[0] ?? msg;
  if (/Cannot find module/.test(line)) return 'not installed (optional dependency; its install needs to download libtensorflow)';
  return line;
}

let current: BackendReport | null = null;

/**
 * Select a backend. `preferred` (the host's --backend or DEEPVIS_BACKEND) forces one; without it
 * the order above is tried. Selecting again with the same preference is free.
 */
export async function selectBackend(preferred?: string | null, opts: SelectOptions = {}): Promise<BackendReport> {
  const want = preferred ?? null;
  if (want && !isBackendChoice(want)) {
    throw new Error(`unknown backend "${want}": choose one of ${BACKEND_ORDER.join(', ')}`);
  }
  if (current && (!want || current.choice === want)) return current;
  const order: BackendChoice[] = want ? [want as BackendChoice] : [...BACKEND_ORDER];
  const attempts: BackendAttempt[] = [];
  const before = nativeEngine();
  for (const name of order) {
    try {
      setNativeEngine(null);
      const reason = await attemptFns[name](!!want, opts);
      attempts.push({ name, ok: true, reason });
      current = { backend: tf.getBackend(), choice: name, attempts };
      return current;
    } catch (e) {
      attempts.push({ name, ok: false, reason: firstLine(e) });
    }
  }
  setNativeEngine(before);
  const why = attempts.map((a) => `${a.name}: ${a.reason}`).join('; ');
  throw new Error(`no TensorFlow.js backend could start (${why})`);
}

export function currentBackend(): BackendReport | null {
  return current;
}

/** One line for logs and the status bar. */
export function describeBackend(r: BackendReport): string {
  const failed = r.attempts.filter((a) => !a.ok).map((a) => `${a.name}: ${a.reason}`);
  const ok = r.attempts.find((a) => a.ok);
  return `backend ${r.choice} (${ok?.reason ?? ''})` + (failed.length ? `; not used — ${failed.join('; ')}` : '');
}
