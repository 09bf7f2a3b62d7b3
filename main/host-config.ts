// The host's configuration from the environment, read in this one place: each host (the CLI, web
// mode, the Electron shell) reads it once at start-up and passes the values down as options. The
// engine and the session never look at the environment, so a worker thread, a test or a script
// gets exactly the configuration it is handed. Every variable here is in README's "Configuration"
// table; a command-line option of the host wins over its variable.
import { resolve } from 'node:path';
import { defaultAtlasRoot } from './engine/synthesis/atlas.js';
import { defaultIndexDir } from './engine/topk/index-file.js';
import { defaultStateDir } from './persist/app-state.js';

export interface HostConfig {
  /** DEEPVIS_MODELS_DIR: model folders (PATH-style list) instead of the bundled models/; null: unset. */
  modelsDir: string | null;
  /** DEEPVIS_BACKEND: the backend to force when no --backend is given; null: the first that starts. */
  backend: string | null;
  /** DEEPVIS_ORT_THREADS: ONNX Runtime's threads per engine thread; null: unset (1). Checked by the engine. */
  ortThreads: number | null;
  /** DEEPVIS_WORKERS: job workers; null: unset or not a positive whole number (scheduler.ts poolSize). */
  workers: number | null;
  /** DEEPVIS_JOB_LIVE_FPS: the live view's frame-rate ceiling while jobs contend with it for the cores; null: unset or not a positive number (the session's default). */
  jobLiveFps: number | null;
  /** Top-k indexes: $DEEPVIS_CACHE_DIR/index, else $XDG_CACHE_HOME/deepvis/index, else ~/.cache/deepvis/index. */
  indexDir: string;
  /** Atlases: $DEEPVIS_ATLAS_DIR, else $XDG_CACHE_HOME/deepvis/atlas, else ~/.cache/deepvis/atlas. */
  atlasDir: string;
  /** DEEPVIS_STATE_DIR: where the view state is kept; null: the host's default (stateHome, or Electron's userData). */
  stateDir: string | null;
  /** Web mode's default state folder: $XDG_CONFIG_HOME/deepvis, else ~/.config/deepvis. */
  stateHome: string;
  /** DEEPVIS_NO_STATE=1: keep no state across restarts. */
  noState: boolean;
  /** DEEPVIS_PORT: web mode's port as written (the server checks it); null: unset or empty. */
  port: string | null;
  /** DEEPVIS_DEBUG: the CLI prints the stack of an error after its one-line message. */
  debug: boolean;
  /** VK_ICD_FILENAMES, else VK_DRIVER_FILES: the Vulkan driver, to tell a software renderer from a GPU ('' when unset). */
  vulkanDriver: string;
}

type Env = Readonly<Record<string, string | undefined>>;

/** Read the configuration from `env` (the process's environment unless a caller names another). */
export function readHostConfig(env: Env = process.env): HostConfig {
  const workers = Number(env.DEEPVIS_WORKERS);
  const cacheHome = env.XDG_CACHE_HOME;
  return {
    modelsDir: env.DEEPVIS_MODELS_DIR || null,
    backend: env.DEEPVIS_BACKEND ?? null,
    ortThreads: env.DEEPVIS_ORT_THREADS ? Number(env.DEEPVIS_ORT_THREADS) : null,
    workers: Number.isInteger(workers) && workers > 0 ? workers : null,
    jobLiveFps: Number(env.DEEPVIS_JOB_LIVE_FPS) > 0 ? Number(env.DEEPVIS_JOB_LIVE_FPS) : null,
    indexDir: defaultIndexDir(env.DEEPVIS_CACHE_DIR ? resolve(env.DEEPVIS_CACHE_DIR) : cacheHome ? resolve(cacheHome, 'deepvis') : undefined),
    atlasDir: env.DEEPVIS_ATLAS_DIR || defaultAtlasRoot(cacheHome),
    stateDir: env.DEEPVIS_STATE_DIR || null,
    stateHome: defaultStateDir(env.XDG_CONFIG_HOME || undefined),
    noState: env.DEEPVIS_NO_STATE === '1',
    port: env.DEEPVIS_PORT || null,
    debug: !!env.DEEPVIS_DEBUG,
    vulkanDriver: env.VK_ICD_FILENAMES ?? env.VK_DRIVER_FILES ?? '',
  };
}
