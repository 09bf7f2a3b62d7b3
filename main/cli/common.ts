// Shared pieces of the command line: global options, model lookup, backend start-up, and the
// output rules (stdout carries only the result — JSON with --json —; messages go to stderr as
// one line each, "deepvis: <message>").
import { InvalidArgumentError, type Command } from 'commander';
import { oneLine } from '../engine/errors.js';
import * as tf from '@tensorflow/tfjs-core';
import {
  describeBackend,
  listModels,
  loadModel,
  modelsDir,
  withModelsDir,
  readClasses,
  selectBackend,
  type BackendReport,
  type ClassInfo,
  type Model,
  type ModelEntry,
} from '../engine/index.js';
import { readHostConfig, type HostConfig } from '../host-config.js';

let config: HostConfig | null = null;

/** The environment's settings (host-config.ts), read on first use: one command, one reading. */
export function hostConfig(): HostConfig {
  return (config ??= readHostConfig());
}

/** Exit codes: 0 success; 1 the environment failed (no backend, model files missing or corrupt,
 *  internal error); 2 the user's input was bad (unknown option/model/class, unreadable image). */
export const EXIT_FAILURE = 1;
export const EXIT_BAD_INPUT = 2;

/** An error whose message is shown as is (one line) with a chosen exit code. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: number = EXIT_FAILURE,
  ) {
    super(message);
    this.name = 'CliError';
  }
}

export interface GlobalOptions {
  backend?: string;
  modelsDir?: string;
  verbose?: boolean;
}

export function globals(cmd: Command): GlobalOptions {
  return cmd.optsWithGlobals<GlobalOptions>();
}

/** The model folders: the bundled ones (or $DEEPVIS_MODELS_DIR) plus --models-dir. */
export function modelsDirOf(g: GlobalOptions): string {
  return withModelsDir(g.modelsDir, modelsDir(hostConfig().modelsDir));
}

/** The first line of an error's message, whitespace-collapsed: every message we print is one line. */
export { oneLine };

export function warn(message: string): void {
  process.stderr.write(`deepvis: ${oneLine(message)}\n`);
}

export function verbose(g: GlobalOptions, message: string): void {
  if (g.verbose) warn(message);
}

/** Write to stdout and wait until it is flushed (so exiting right after loses nothing). */
export function out(text: string): Promise<void> {
  return new Promise((resolve, reject) => {
    process.stdout.write(text, (err) => (err ? reject(err) : resolve()));
  });
}

export function outJson(value: unknown): Promise<void> {
  return out(JSON.stringify(value) + '\n');
}

/**
 * Find a model by id. Unknown id → one line naming it and the installed models (exit 2).
 * With `requireInstalled`, a model whose files are missing is an error too (exit 1).
 */
export async function findModel(id: string, dir: string, requireInstalled: boolean): Promise<ModelEntry> {
  const entries = await listModels(dir);
  const entry = entries.find((m) => m.id === id);
  if (!entry) {
    const installed = entries.filter((m) => !m.problem).map((m) => m.id);
    const others = entries.filter((m) => m.problem).map((m) => m.id);
    throw new CliError(
      `unknown model "${id}" — installed: ${installed.join(', ') || 'none'}` +
        (others.length ? `; not installed: ${others.join(', ')}` : '') +
        ` (in ${dir})`,
      EXIT_BAD_INPUT,
    );
  }
  if (requireInstalled && (entry.problem || !entry.descriptor)) {
    // Absent files are an install step not taken; damaged or foreign ones need a different fix.
    const state = entry.fault === 'missing' ? 'is not installed' : 'cannot be loaded';
    throw new CliError(`model ${id} ${state}: ${oneLine(entry.problem ?? 'no descriptor')}`, EXIT_FAILURE);
  }
  return entry;
}

/** The process-wide handlers the wasm module installs rethrow, which makes Node print the whole
 *  minified module source. Replace them with one-line reports. */
function guardProcess(): void {
  process.removeAllListeners('uncaughtException');
  process.removeAllListeners('unhandledRejection');
  const report = (e: unknown) => {
    warn(`internal error: ${oneLine(e)}`);
    if (hostConfig().debug && e instanceof Error && e.stack) process.stderr.write(e.stack + '\n');
    process.exit(EXIT_FAILURE);
  };
  process.on('uncaughtException', report);
  process.on('unhandledRejection', report);
}

/** Start the TF.js backend: --backend, else $DEEPVIS_BACKEND, else the automatic order. */
export async function startBackend(g: GlobalOptions): Promise<BackendReport> {
  let report: BackendReport;
  // A tfjs-node package whose native addon is absent still registers its kernels before failing,
  // so trying the next one prints ~150 "kernel … already registered" warnings. Keep stderr clean:
  // collect console noise during start-up and show it only with --verbose.
  // Prod mode also silences tfjs's own warnings (the cpu backend's "install tfjs-node" banner).
  tf.enableProdMode();
  const noise: string[] = [];
  const saved = { warn: console.warn, log: console.log, info: console.info };
  console.warn = console.log = console.info = (...args: unknown[]) => void noise.push(args.map(String).join(' '));
  try {
    const c = hostConfig();
    report = await selectBackend(g.backend ?? c.backend, { ortThreads: c.ortThreads, vulkanDriver: c.vulkanDriver });
  } catch (e) {
    const msg = oneLine(e);
    throw new CliError(msg, /^unknown backend/.test(msg) ? EXIT_BAD_INPUT : EXIT_FAILURE);
  } finally {
    Object.assign(console, saved);
    guardProcess();
    if (noise.length) verbose(g, `${noise.length} message(s) from TensorFlow.js during backend start-up, first: ${oneLine(noise[0])}`);
  }
  verbose(g, describeBackend(report));
  return report;
}

/** What the CLI says about a model whose head has no softmax (Model.softmaxHead: probabilities are then ours). */
export function noSoftmaxNote(model: Model): string {
  return `note: ${model.id}'s head has no softmax — probabilities shown are a softmax of ${model.logitsLayer}'s outputs`;
}

/** Load an installed model (backend must be running). Load failures (corrupt files…) exit 1. */
export async function openModel(entry: ModelEntry, dir: string): Promise<Model> {
  try {
    return await loadModel(entry.id, dir);
  } catch (e) {
    throw new CliError(oneLine(e), EXIT_FAILURE);
  }
}

/**
 * A model's classes in its own order, read from its class files only (no weights, no backend):
 * enough for class lookups and for listing a model whose weights are missing.
 */
export async function readModelClasses(entry: ModelEntry): Promise<ClassInfo[]> {
  const d = entry.descriptor;
  if (!d) throw new CliError(`model ${entry.id}: ${oneLine(entry.problem ?? 'no descriptor')}`, EXIT_FAILURE);
  try {
    return await readClasses(entry.dir, d);
  } catch (e) {
    throw new CliError(`model ${entry.id}: cannot read its classes (${oneLine(e)})`, EXIT_FAILURE);
  }
}

/** commander argument parser for a positive integer option value. */
export function positiveInt(value: string): number {
  if (!/^\d+$/.test(value.trim()) || Number(value) < 1) throw new InvalidArgumentError('expected a positive integer.');
  return Number(value);
}
