// The state a user comes back to: the renderer's view (model, layer, unit, boosts, back mode,
// synthesis preset, pane toggles — contract/app-state.ts), the desktop window's bounds and the
// input convention picked per model, in one small JSON file (state.json) in the user's config folder.
//
// Loading never fails: a missing file gives the defaults; a file that cannot be read or is not a
// valid state gives the defaults plus a one-line warning, and the bad file is renamed to
// `state.json.corrupt-<time>` so nothing is silently lost. Unknown (e.g. newer) fields are dropped.
// Saving is atomic (persist/atomic-file.ts): a crash or kill mid-write leaves the old file or the
// new one. The store coalesces bursts of changes (a held arrow key) into one write.
import { existsSync, readFileSync, renameSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { z } from 'zod';
import { ViewStateSchema, type ViewState } from '../../contract/app-state.js';
import { PREPROCESS_NAMES, type PreprocessName } from '../../contract/user-models.js';
import { writeFileAtomic, writeFileAtomicSync } from '../engine/atomic-file.js';

export const STATE_FORMAT = 'deepvis-state';
export const STATE_VERSION = 1;
export const STATE_FILE = 'state.json';

/** The desktop window's last normal (un-maximised) bounds and whether it was maximised. */
export const WindowStateSchema = z.object({
  x: z.number().int().min(-1_000_000).max(1_000_000),
  y: z.number().int().min(-1_000_000).max(1_000_000),
  width: z.number().int().min(1).max(100_000),
  height: z.number().int().min(1).max(100_000),
  maximized: z.boolean(),
});
export type WindowState = z.infer<typeof WindowStateSchema>;

export const AppStateSchema = z.object({
  format: z.literal(STATE_FORMAT),
  // A newer version is read as far as this one understands it (its extra fields are dropped).
  version: z.number().int().min(1),
  /** null: the renderer has not saved anything yet. */
  view: ViewStateSchema.nullable(),
  window: WindowStateSchema.nullable(),
  /** The input convention the user picked per model id (models without deepvis.json only). */
  preprocess: z.record(z.string().min(1).max(200), z.enum(PREPROCESS_NAMES)).optional(),
});
export type AppState = z.infer<typeof AppStateSchema>;

export function defaultAppState(): AppState {
  return { format: STATE_FORMAT, version: STATE_VERSION, view: null, window: null };
}

/**
 * Where web mode keeps state in a config home (the host names it: DEEPVIS_STATE_DIR moves it,
 * XDG_CONFIG_HOME is the home). The desktop app uses Electron's userData folder.
 */
export function defaultStateDir(configHome = join(homedir(), '.config')): string {
  return join(configHome, 'deepvis');
}

export interface LoadedAppState {
  state: AppState;
  /** Why the saved file was not used (one line), or null. */
  warning: string | null;
  /** Where the unusable file was moved, or null. */
  keptAs: string | null;
}

function firstIssue(e: z.ZodError): string {
  const i = e.issues[0];
  return i ? `${i.path.join('.') || '(root)'}: ${i.message}` : 'invalid';
}

/** Parse a state file's text; throws a one-line reason when it is not a usable state. */
export function parseAppState(text: string): AppState {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new Error(`not JSON (${(e as Error).message})`);
  }
  const r = AppStateSchema.safeParse(raw);
  if (!r.success) throw new Error(`not a DeepVis state file (${firstIssue(r.error)})`);
  return { ...r.data, version: STATE_VERSION };
}

function stamp(): string {
  return new Date().toISOString().replace(/[:.]/g, '-');
}

/** Read the state at `path` (see the top of this file). Synchronous: the window needs it before it opens. */
export function loadAppState(path: string): LoadedAppState {
  if (!existsSync(path)) return { state: defaultAppState(), warning: null, keptAs: null };
  let why: string;
  try {
    return { state: parseAppState(readFileSync(path, 'utf8')), warning: null, keptAs: null };
  } catch (e) {
    why = (e as Error).message.split('\n')[0]!;
  }
  const kept = `${path}.corrupt-${stamp()}`;
  try {
    renameSync(path, kept);
  } catch (e) {
    return { state: defaultAppState(), warning: `saved state ${path} is unusable (${why}) and could not be moved aside (${(e as Error).message}); using defaults`, keptAs: null };
  }
  return { state: defaultAppState(), warning: `saved state ${path} is unusable (${why}); using defaults — the file was kept as ${kept}`, keptAs: kept };
}

function serialize(state: AppState): string {
  return JSON.stringify(AppStateSchema.parse(state), null, 2) + '\n';
}

/** Write a state file atomically (validated first: an invalid state is never written). */
export async function saveAppState(path: string, state: AppState): Promise<void> {
  await writeFileAtomic(path, serialize(state));
}

export function saveAppStateSync(path: string, state: AppState): void {
  writeFileAtomicSync(path, serialize(state));
}

export interface AppStateStoreOptions {
  /** Quiet time before a change is written (later changes restart it, up to maxWaitMs). Default 300. */
  debounceMs?: number;
  /** Longest a change waits while changes keep coming. Default 2000. */
  maxWaitMs?: number;
  /** Warnings (unusable file, failed write), one line each. */
  log?: (line: string) => void;
}

/** The state of one running app: loaded once, updated in memory, written coalesced and atomically. */
export class AppStateStore {
  /** Why the saved file was not used at start (one line), or null. */
  readonly warning: string | null;
  /** Completed writes (tests and diagnostics). */
  writes = 0;
  private current: AppState;
  private lastWritten: string | null;
  private timer: ReturnType<typeof setTimeout> | null = null;
  private firstChange = 0;
  private dirty = false;
  private writing: Promise<void> | null = null;
  private readonly debounceMs: number;
  private readonly maxWaitMs: number;
  private readonly log: (line: string) => void;

  private constructor(
    readonly path: string,
    loaded: LoadedAppState,
    opts: AppStateStoreOptions,
  ) {
    this.current = loaded.state;
    this.warning = loaded.warning;
    this.lastWritten = loaded.warning ? null : serialize(loaded.state);
    this.debounceMs = opts.debounceMs ?? 300;
    this.maxWaitMs = opts.maxWaitMs ?? 2000;
    this.log = opts.log ?? (() => {});
    if (loaded.warning) this.log(loaded.warning);
  }

  static open(path: string, opts: AppStateStoreOptions = {}): AppStateStore {
    return new AppStateStore(path, loadAppState(path), opts);
  }

  get state(): AppState {
    return this.current;
  }

  setView(view: ViewState): void {
    this.current = { ...this.current, view: ViewStateSchema.parse(view) };
    this.changed();
  }

  /** The input convention picked for a model, or null (its own). */
  preprocessFor(modelId: string): PreprocessName | null {
    return this.current.preprocess?.[modelId] ?? null;
  }

  /** Remember (or with null, forget) the input convention picked for a model. */
  setPreprocess(modelId: string, preset: PreprocessName | null): void {
    const next = { ...(this.current.preprocess ?? {}) };
    if (preset) next[modelId] = preset;
    else delete next[modelId];
    this.current = { ...this.current, preprocess: next };
    this.changed();
  }

  setWindow(window: WindowState): void {
    this.current = { ...this.current, window: WindowStateSchema.parse(window) };
    this.changed();
  }

  private changed(): void {
    const now = Date.now();
    if (!this.dirty) this.firstChange = now;
    this.dirty = true;
    if (this.timer) clearTimeout(this.timer);
    const wait = Math.max(0, Math.min(this.debounceMs, this.firstChange + this.maxWaitMs - now));
    this.timer = setTimeout(() => void this.flush(), wait);
    this.timer.unref?.();
  }

  /** Write pending changes now (one write at a time; resolves when nothing is pending). */
  async flush(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    for (;;) {
      if (this.writing) {
        await this.writing;
        continue;
      }
      if (!this.dirty) return;
      this.dirty = false;
      const text = serialize(this.current);
      if (text === this.lastWritten) continue;
      this.writing = writeFileAtomic(this.path, text).then(
        () => {
          this.writing = null;
          this.lastWritten = text;
          this.writes++;
        },
        (e: unknown) => {
          this.writing = null;
          this.log(`could not save the app state to ${this.path}: ${(e as Error).message}`);
        },
      );
      await this.writing;
    }
  }

  /**
   * Write pending changes before the process goes away (a closing window, exit). A write already in
   * flight is left to finish or die: either way the file stays whole.
   */
  flushSync(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    if (!this.dirty) return;
    this.dirty = false;
    const text = serialize(this.current);
    if (text === this.lastWritten) return;
    try {
      writeFileAtomicSync(this.path, text);
      this.lastWritten = text;
      this.writes++;
    } catch (e) {
      this.log(`could not save the app state to ${this.path}: ${(e as Error).message}`);
    }
  }

  /** Flush and stop. */
  async close(): Promise<void> {
    await this.flush();
  }
}
