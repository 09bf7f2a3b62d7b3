// What each toolbox key does (the key table itself is in settings.ts, user-overridable) and the
// desktop app's menu, which acts as if the user had pressed the key. App.svelte decides whether a
// key press is for the toolbox at all (not while typing in a form control).
import type { AppEvent } from '../../../contract/messages';
import { ACTION_HELP, keyMap, type Action, type Settings } from '../settings';
import type { BackAction } from './back.svelte';

/** What the keys drive (the app's controllers, as far as a key reaches them). */
export interface KeysHost {
  readonly settings: Pick<Settings, 'keys'>;
  readonly transport: { readonly kind: 'ipc' | 'websocket' };
  readonly layerIndex: number;
  showHelp: boolean;
  searchRequested: number;
  engineNotice: string | null;
  moveBy(dx: number, dy: number): void;
  selectLayer(i: number): void;
  selectUnit(i: number): void;
  switchModel(id: string): Promise<boolean>;
  exportView(): Promise<void>;
  readonly input: {
    toggleFreeze(): void;
    toggleSource(): Promise<void>;
    step(by: number): Promise<void>;
    openListing(listing: string, names: string[]): Promise<void>;
  };
  readonly panes: { showLabels: boolean; nextGamma(): void; nextChannelBoost(): void; resetBoosts(): void; redraw(): void };
  readonly back: { act(action: BackAction): void };
  readonly synth: { readonly running: boolean; toggle(): Promise<void>; cancel(): Promise<void>; onEvent(e: AppEvent): void };
  readonly atlas: { toggle(): void };
  readonly layout: { presenter: boolean };
  readonly modelFolder: { openInDesktop(): Promise<void> };
}

const MOVES: Partial<Record<Action, [number, number]>> = {
  cursorLeft: [-1, 0],
  cursorRight: [1, 0],
  cursorUp: [0, -1],
  cursorDown: [0, 1],
  cursorLeft3: [-3, 0],
  cursorRight3: [3, 0],
  cursorUp3: [0, -3],
  cursorDown3: [0, 3],
};

export class KeyCommands {
  readonly keys: Map<string, Action>;
  /** The help overlay's lines: each action's keys and what it does. */
  readonly help: { keys: string[]; text: string }[];

  constructor(private readonly host: KeysHost) {
    this.keys = keyMap(host.settings.keys);
    this.help = (Object.keys(ACTION_HELP) as Action[]).map((a) => ({ keys: host.settings.keys[a], text: ACTION_HELP[a] }));
  }

  /** Handle a key; returns true when it was one of ours. */
  key(e: Pick<KeyboardEvent, 'key' | 'ctrlKey' | 'metaKey' | 'altKey'>): boolean {
    if (e.ctrlKey || e.metaKey || e.altKey) return false;
    const action = this.keys.get(e.key);
    if (!action) return false;
    void this.act(action);
    return true;
  }

  async act(action: Action): Promise<void> {
    const h = this.host;
    const move = MOVES[action];
    if (move) return h.moveBy(move[0], move[1]);
    switch (action) {
      case 'prevLayer':
        return h.selectLayer(h.layerIndex - 1);
      case 'nextLayer':
        return h.selectLayer(h.layerIndex + 1);
      case 'freeze':
        return h.input.toggleFreeze();
      case 'toggleSource':
        return h.input.toggleSource();
      case 'nextImage':
        return h.input.step(1);
      case 'prevImage':
        return h.input.step(-1);
      case 'gammaBoost':
        return h.panes.nextGamma();
      case 'channelBoost':
        return h.panes.nextChannelBoost();
      case 'toggleLabels':
        h.panes.showLabels = !h.panes.showLabels;
        return;
      case 'backMode':
      case 'backFreeze':
      case 'backGrid':
      case 'zoom':
      case 'gradcam':
        return h.back.act(action);
      case 'help':
        h.showHelp = !h.showHelp;
        return;
      case 'presenter':
        h.layout.presenter = !h.layout.presenter;
        return;
      case 'search':
        h.searchRequested++;
        return;
      case 'synthesize':
        return h.synth.toggle();
      case 'patternMode':
        return h.atlas.toggle();
      case 'reset':
        // Esc while a synthesis runs cancels it (and only that).
        if (h.synth.running) return h.synth.cancel();
        h.showHelp = false;
        h.panes.resetBoosts();
        h.selectUnit(0);
        h.panes.redraw();
        return;
      case 'quit':
        // Only the desktop app quits; a browser tab is the user's to close.
        if (h.transport.kind === 'ipc') window.close();
        return;
    }
  }

  /** Events from the engine host: synthesis progress, notices and the desktop app's menu. */
  async onAppEvent(e: AppEvent): Promise<void> {
    const h = this.host;
    // Synthesis events belong to the synthesis pane (not part of the live view).
    if (e.type === 'synth') return h.synth.onEvent(e);
    if (e.type === 'notice') {
      h.engineNotice = e.message;
      return;
    }
    if (e.type !== 'menu') return;
    switch (e.action) {
      case 'openImages':
        if (e.skipped.length) console.warn(`open ${e.source}: ${e.skipped.join('; ')}`);
        return h.input.openListing(e.listing, e.names);
      case 'exportPng':
        return h.exportView();
      case 'toggleCamera':
        return h.input.toggleSource();
      case 'help':
        h.showHelp = !h.showHelp;
        return;
      case 'selectModel':
        await h.switchModel(e.modelId);
        return;
      case 'openModelFolder':
        return h.modelFolder.openInDesktop();
    }
  }
}
