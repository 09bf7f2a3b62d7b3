// A writer for the kill tests (tests/app-state.test.ts), run as its own process and SIGKILLed at
// random moments:
//   node --import tsx tests/support/state-writer.ts state <path> <run>   saves stateFor(run, 0, 1, …)
//   node --import tsx tests/support/state-writer.ts png <path> <a.png> <b.png>   writes a, b, a, … over path
// Each completed write is reported as one line on stdout (its number), after the write returned.
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeFileAtomic } from '../../main/engine/atomic-file.js';
import { saveAppState, STATE_FORMAT, STATE_VERSION, type AppState } from '../../main/persist/app-state.js';

const PRESETS = ['paper-1', 'paper-2', 'paper-3', 'paper-4', 'fast'] as const;
const MODES = ['backprop', 'deconv', 'guided'] as const;

/** The i-th state of writer run `run`: every field depends on (run, i), so a mix of two is detectable. */
export function stateFor(run: number, i: number): AppState {
  const k = run * 100_003 + i;
  const tag = k.toString(36);
  return {
    format: STATE_FORMAT,
    version: STATE_VERSION,
    view: {
      model: `model-${tag}`.padEnd(120, 'm'),
      // Long names make each file a few hundred bytes more, so kills land inside writes too.
      layer: `layer-${tag}-`.repeat(200).slice(0, 200),
      unit: i,
      gamma: (k % 7) / 7,
      channelBoost: (k % 5) / 5,
      back: k % 3 ? { mode: MODES[k % 3]!, filter: 'norm' } : null,
      grid: k % 2 ? 'backDiffs' : 'activations',
      gradcam: k % 2 === 0,
      gradcamOpacity: (k % 11) / 10,
      showLabels: k % 3 === 0,
      synthPreset: PRESETS[k % PRESETS.length]!,
    },
    window: { x: k % 1000, y: run, width: 800 + (k % 900), height: 600 + (i % 500), maximized: k % 4 === 0 },
  };
}

async function main(): Promise<void> {
  const [mode, path, a, b] = process.argv.slice(2);
  if (mode === 'state' && path && a) {
    const run = Number(a);
    for (let i = 0; ; i++) {
      await saveAppState(path, stateFor(run, i));
      process.stdout.write(`${i}\n`);
    }
  }
  if (mode === 'png' && path && a && b) {
    const files = [readFileSync(a), readFileSync(b)];
    for (let i = 0; ; i++) {
      await writeFileAtomic(path, files[i % 2]!);
      process.stdout.write(`${i}\n`);
    }
  }
  throw new Error('usage: state-writer.ts state <path> <run> | png <path> <a.png> <b.png>');
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().catch((e: unknown) => {
    console.error((e as Error).message);
    process.exit(1);
  });
}
