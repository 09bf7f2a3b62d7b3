// ONNX Runtime (onnxruntime-node): its execution providers, whether a machine has hardware for
// them, and synchronous sessions. The package's InferenceSession.run() is a Promise around the
// native binding's synchronous run; the engine's gradient paths are synchronous (they live in
// tf.tidy and in worker threads that do nothing else), so the binding is used directly.
import { existsSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

const require = createRequire(import.meta.url);

export const ORT_PROVIDERS = ['cpu', 'cuda', 'webgpu', 'coreml', 'dml'] as const;
export type OrtProvider = (typeof ORT_PROVIDERS)[number];

export interface OrtTensor {
  readonly data: Float32Array | BigInt64Array;
  readonly dims: readonly number[];
}

interface BindingSession {
  loadModel(buffer: ArrayBuffer, byteOffset: number, byteLength: number, options: object): void;
  run(feeds: Record<string, unknown>, fetches: Record<string, null>, options: object): Record<string, OrtTensor>;
  dispose(): void;
}

interface OrtModules {
  Session: new () => BindingSession;
  Tensor: new (type: 'float32', data: Float32Array, dims: readonly number[]) => unknown;
  supported: Array<{ name: string; bundled: boolean }>;
}

let modules: OrtModules | null = null;

/** Load the native addon once (throws a one-line reason when it is missing or cannot load). */
export function ort(): OrtModules {
  if (modules) return modules;
  let bindingMod: { binding: { InferenceSession: new () => BindingSession; listSupportedBackends(): OrtModules['supported'] }; initOrt(): void };
  let common: { Tensor: OrtModules['Tensor']; env: { logLevel?: string } };
  try {
    bindingMod = require('onnxruntime-node/dist/binding.js');
    common = require('onnxruntime-common');
  } catch (e) {
    const msg = e instanceof Error ? e.message.split('\n')[0]! : String(e);
    if (/Cannot find module/.test(msg)) throw new Error('onnxruntime-node is not installed (it is a dependency: run npm install)');
    throw new Error(`onnxruntime-node's native library could not be loaded on ${process.platform}-${process.arch}: ${msg}`);
  }
  // Warnings (e.g. which nodes a GPU provider leaves to the CPU) would flood every log.
  common.env.logLevel = 'error';
  bindingMod.initOrt();
  modules = { Session: bindingMod.binding.InferenceSession, Tensor: common.Tensor, supported: bindingMod.binding.listSupportedBackends() };
  return modules;
}

/** The folder holding the native addon and ORT's shared libraries for this platform. */
function addonDir(): string {
  return join(dirname(require.resolve('onnxruntime-node/package.json')), 'bin', 'napi-v6', process.platform, process.arch);
}

const PLATFORM_ONLY: Partial<Record<OrtProvider, NodeJS.Platform>> = { coreml: 'darwin', dml: 'win32' };

/** Why a provider cannot run here, or null when the addon carries it. */
export function providerUnavailable(p: OrtProvider): string | null {
  const only = PLATFORM_ONLY[p];
  if (only && process.platform !== only) return `only on ${only === 'darwin' ? 'macOS' : 'Windows'}`;
  const m = ort();
  const entry = m.supported.find((s) => s.name === p);
  if (!entry) return `this onnxruntime-node build has no ${p} execution provider`;
  if (p === 'cuda' && !existsSync(join(addonDir(), process.platform === 'win32' ? 'onnxruntime_providers_cuda.dll' : 'libonnxruntime_providers_cuda.so'))) {
    return 'the CUDA provider libraries are not installed (README › Backends: ONNXRUNTIME_NODE_INSTALL=cuda12)';
  }
  return null;
}

/**
 * Whether WebGPU would run on real hardware. Software Vulkan (SwiftShader, lavapipe) runs WebGPU
 * code exactly but slower than the CPU provider, so it is used only when named. On Linux a GPU
 * shows as a DRM render node; macOS (Metal) and Windows (D3D12) always have a hardware adapter.
 * `icd`: the Vulkan driver the host's environment names (VK_ICD_FILENAMES), '' when none.
 */
export function hardwareGpuHint(icd = ''): string | null {
  if (/swiftshader|lvp_icd|lavapipe/i.test(icd)) return `the Vulkan driver named by VK_ICD_FILENAMES is a software renderer (${icd})`;
  if (process.platform !== 'linux') return null;
  let render = false;
  try {
    render = readdirSync('/dev/dri').some((d) => d.startsWith('renderD'));
  } catch {
    render = false;
  }
  if (!render) return 'no GPU render device (/dev/dri/renderD*) on this machine';
  if (!existsSync('/usr/share/vulkan/icd.d') && !existsSync('/etc/vulkan/icd.d') && !icd) return 'no Vulkan driver installed (/usr/share/vulkan/icd.d is empty)';
  return null;
}

export interface SessionConfig {
  provider: OrtProvider;
  /** Intra-op threads (ORT's own pool; 1 runs the graph on the calling thread). */
  threads: number;
}

function sessionOptions(c: SessionConfig): object {
  return {
    executionProviders: c.provider === 'cpu' ? ['cpu'] : [c.provider, 'cpu'],
    intraOpNumThreads: c.threads,
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: 'all',
    // The arena keeps the largest run's buffers; a worker that switches sizes would hold several.
    enableCpuMemArena: true,
  };
}

/** One ONNX Runtime session over an exported graph, run synchronously. */
export class OrtSession {
  private readonly s: BindingSession;
  private closed = false;

  constructor(bytes: Uint8Array, readonly config: SessionConfig) {
    const m = ort();
    this.s = new m.Session();
    // The binding reads the bytes in place: give it an exact ArrayBuffer view.
    const copy = bytes.slice();
    this.s.loadModel(copy.buffer, copy.byteOffset, copy.byteLength, sessionOptions(config));
  }

  run(feeds: Record<string, { data: Float32Array; dims: readonly number[] }>, outputs: readonly string[]): Record<string, OrtTensor> {
    if (this.closed) throw new Error('ONNX Runtime session already disposed');
    const m = ort();
    const f: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(feeds)) f[k] = new m.Tensor('float32', v.data, v.dims);
    const fetches: Record<string, null> = {};
    for (const o of outputs) fetches[o] = null;
    return this.s.run(f, fetches, {});
  }

  dispose(): void {
    if (this.closed) return;
    this.closed = true;
    this.s.dispose();
  }
}
