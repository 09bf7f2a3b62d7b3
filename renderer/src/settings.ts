// Every user-facing setting of the renderer in one place (after DVT's settings.py): panes, keys,
// boosts, camera. A user overrides any of them with a JSON object in localStorage under
// `deepvis.settings` (deep-merged onto these defaults; unknown keys and wrong types are ignored), e.g.
//   localStorage.setItem('deepvis.settings', JSON.stringify({ keys: { freeze: ['f', ' '] } }))

import { BACK_PERCENTILE_DEFAULT } from '../../contract/backprojection';

export type Action =
  | 'cursorLeft'
  | 'cursorRight'
  | 'cursorUp'
  | 'cursorDown'
  | 'cursorLeft3'
  | 'cursorRight3'
  | 'cursorUp3'
  | 'cursorDown3'
  | 'prevLayer'
  | 'nextLayer'
  | 'freeze'
  | 'toggleSource'
  | 'nextImage'
  | 'prevImage'
  | 'gammaBoost'
  | 'channelBoost'
  | 'toggleLabels'
  | 'synthesize'
  | 'patternMode'
  | 'help'
  | 'reset'
  | 'quit'
  // back-projection (lib/back.svelte.ts)
  | 'backMode'
  | 'backFreeze'
  | 'backGrid'
  | 'zoom'
  | 'gradcam'
  // the window (lib/layout.svelte.ts, lib/unit-search.svelte.ts)
  | 'presenter'
  | 'search';

export interface Settings {
  /** Model to load at start-up; null keeps whatever the engine host has loaded (or its default). */
  model: string | null;
  /** 'camera' starts the webcam; 'static' waits for an image file. */
  startSource: 'camera' | 'static';
  camera: {
    /** Preferred device (from the camera picker); null: the system default. */
    deviceId: string | null;
    /** Requested capture size (the frame is then centre-cropped and scaled to the model input). */
    width: number;
    height: number;
    /** Show and send the camera image mirrored, like a mirror. */
    mirror: boolean;
  };
  grid: {
    /** Screen pixels between tiles. */
    gap: number;
    /** Colour between tiles. */
    background: [number, number, number];
    cursorColor: string;
    /** Cursor outline width in screen pixels. */
    cursorWidth: number;
    /** Wheel delta (pixels) that changes the layer by one. */
    wheelStep: number;
  };
  unitPane: {
    /** Size of the enlarged unit canvas, in canvas pixels. */
    size: number;
  };
  boosts: {
    /** `t` cycles through these display gammas (DVT: 1, .7, .5, .3). */
    gammas: number[];
    /** `T` cycles through per-channel boosts b: each channel scaled by its max^-b, renormalised. */
    channelBoosts: number[];
  };
  /**
   * Frames out at once. 1: send, wait for the reply, send the newest. 2: the next frame leaves about
   * one engine pass after the previous one, timed to reach the host as the engine frees up, so the
   * engine does not idle during the round trip (still latest-wins: at most one frame in the engine,
   * at most one briefly waiting, never a queue). See lib/pipeline.ts.
   */
  pipelineDepth: number;
  /** Depth 2: how long (ms) a frame should wait at the host for the engine; the send time is steered to this. */
  pipelineTargetWaitMs: number;
  /** Show the top-5 label predictions (`8` toggles). */
  showLabels: boolean;
  stats: {
    /** Window for the fps readout. */
    fpsWindowMs: number;
    /** How many latency samples window.__deepvisStats keeps. */
    keep: number;
  };
  /** Back-projection pane and Grad-CAM overlay (lib/back.svelte.ts). */
  back: {
    /** Grad-CAM overlay on at start (`x` toggles). */
    gradcam: boolean;
    /** Opacity of the Grad-CAM heat over the input, 0…1. */
    gradcamOpacity: number;
    /** Full contrast at this percentile of |value| (or of the norm) in every mode; 100 = the largest value, as DVT. */
    percentile: number;
  };
  keys: Record<Action, string[]>;
}

/** One line of help per action, in the order the help overlay lists them. */
export const ACTION_HELP: Record<Action, string> = {
  cursorLeft: 'move the cursor left',
  cursorRight: 'move the cursor right',
  cursorUp: 'move the cursor up',
  cursorDown: 'move the cursor down',
  cursorLeft3: 'move the cursor 3 left',
  cursorRight3: 'move the cursor 3 right',
  cursorUp3: 'move the cursor 3 up',
  cursorDown3: 'move the cursor 3 down',
  prevLayer: 'previous layer',
  nextLayer: 'next layer',
  freeze: 'freeze / unfreeze the camera frame',
  toggleSource: 'camera ↔ static images',
  nextImage: 'next image (static mode)',
  prevImage: 'previous image (static mode)',
  gammaBoost: 'gamma boost: 1 → .7 → .5 → .3',
  channelBoost: 'per-channel boost: b = 0 → .3 → .5 → .8 → 1',
  toggleLabels: 'show / hide the top-5 labels',
  synthesize: "synthesize the selected unit's preferred image (again, or Esc: cancel)",
  patternMode: "pattern mode: the grid shows each unit's synthesized image (atlas) ↔ activations",
  help: 'this help',
  reset: 'reset: cursor 0, boosts off, close help',
  quit: 'quit (desktop app only)',
  backMode: 'back-projection: off → grad raw → grad norm → deconv raw → guided raw → off',
  backFreeze: 'freeze / unfreeze the back-projection source unit (the cursor moves on)',
  backGrid: 'grid shows activations ↔ back-projected diffs',
  zoom: 'zoom: unit fills the grid → back-projection fills it → off',
  gradcam: 'Grad-CAM heat over the input (top-1 or the chosen class)',
  presenter: 'presenter layout: the grid and the selected unit large, controls hidden',
  search: 'find a unit: class name, WordNet id, index, or layer:unit',
};

export const DEFAULT_SETTINGS: Settings = {
  model: null,
  startSource: 'camera',
  camera: { deviceId: null, width: 640, height: 480, mirror: true },
  grid: { gap: 2, background: [40, 40, 48], cursorColor: '#00ff00', cursorWidth: 2, wheelStep: 60 },
  unitPane: { size: 256 },
  boosts: { gammas: [1, 0.7, 0.5, 0.3], channelBoosts: [0, 0.3, 0.5, 0.8, 1] },
  pipelineDepth: 2,
  pipelineTargetWaitMs: 3,
  showLabels: true,
  back: { gradcam: false, gradcamOpacity: 0.5, percentile: BACK_PERCENTILE_DEFAULT },
  stats: { fpsWindowMs: 1000, keep: 20000 },
  keys: {
    cursorLeft: ['ArrowLeft', 'j'],
    cursorRight: ['ArrowRight', 'l'],
    cursorUp: ['ArrowUp', 'i'],
    cursorDown: ['ArrowDown', 'k'],
    cursorLeft3: ['J'],
    cursorRight3: ['L'],
    cursorUp3: ['I'],
    cursorDown3: ['K'],
    prevLayer: ['u'],
    nextLayer: ['o'],
    freeze: ['f'],
    toggleSource: ['c'],
    nextImage: ['e', 'PageDown'],
    prevImage: ['w', 'PageUp'],
    gammaBoost: ['t'],
    channelBoost: ['T'],
    toggleLabels: ['8'],
    synthesize: ['y'],
    patternMode: ['s'],
    help: ['h', '?'],
    reset: ['Escape'],
    quit: ['q'],
    backMode: ['b'],
    backFreeze: ['d'],
    backGrid: ['a'],
    zoom: ['z'],
    gradcam: ['x'],
    presenter: ['p'],
    search: ['/'],
  },
};

export const SETTINGS_STORAGE_KEY = 'deepvis.settings';

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * Deep-merge `override` onto `base`, keeping only keys that exist in `base` with a value of the same
 * kind (arrays replace arrays, objects merge, primitives replace primitives of the same type; null is
 * accepted where the default is null or a string).
 */
export function mergeSettings<T>(base: T, override: unknown): T {
  if (!isPlainObject(override) || !isPlainObject(base)) return base;
  const out: Record<string, unknown> = { ...(base as Record<string, unknown>) };
  for (const [k, v] of Object.entries(override)) {
    if (!(k in out)) continue;
    const cur = out[k];
    if (isPlainObject(cur)) out[k] = mergeSettings(cur, v);
    else if (Array.isArray(cur)) {
      if (Array.isArray(v) && v.every((x) => cur.length === 0 || typeof x === typeof cur[0])) out[k] = v.slice();
    } else if (cur === null || typeof cur === 'string') {
      if (v === null || typeof v === 'string') out[k] = v;
    } else if (typeof v === typeof cur) out[k] = v;
  }
  return out as T;
}

/** Defaults with the user's localStorage overrides applied (bad JSON is ignored with a warning). */
export function loadSettings(storage: Pick<Storage, 'getItem'> | null = globalThis.localStorage ?? null): Settings {
  let override: unknown = null;
  try {
    const raw = storage?.getItem(SETTINGS_STORAGE_KEY);
    if (raw) override = JSON.parse(raw);
  } catch (e) {
    console.warn(`ignoring ${SETTINGS_STORAGE_KEY}: ${(e as Error).message}`);
  }
  const s = mergeSettings(structuredClone(DEFAULT_SETTINGS), override);
  if (!s.boosts.gammas.length) s.boosts.gammas = [1];
  if (!s.boosts.channelBoosts.length) s.boosts.channelBoosts = [0];
  return s;
}

/** KeyboardEvent.key → action, from the settings' key table (first binding wins). */
export function keyMap(keys: Settings['keys']): Map<string, Action> {
  const m = new Map<string, Action>();
  for (const [action, list] of Object.entries(keys) as [Action, string[]][]) {
    for (const k of list) if (!m.has(k)) m.set(k, action);
  }
  return m;
}
