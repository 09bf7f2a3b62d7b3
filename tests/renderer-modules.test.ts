// The renderer's state lives in small controllers (input, live loop, panes, back-projection,
// synthesis, pattern mode, keys, saved view, …), each a module a newcomer reads in one sitting. A
// module that outgrows the limit holds two subjects: split it by subject rather than raise the limit.
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const LIB = resolve(dirname(fileURLToPath(import.meta.url)), '..', 'renderer', 'src', 'lib');
const MAX_LINES = 300;

function modules(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = join(dir, e.name);
    if (e.isDirectory()) return modules(p);
    return /\.ts$/.test(e.name) && !/\.(test|spec)\.ts$/.test(e.name) && !e.name.endsWith('.d.ts') ? [p] : [];
  });
}

describe('renderer controllers', () => {
  const files = modules(LIB);

  it('finds the controller modules', () => {
    // The walk itself must see the modules, or the limit below checks nothing.
    expect(files.map((f) => f.slice(LIB.length + 1))).toEqual(expect.arrayContaining(['app.svelte.ts', 'input.svelte.ts', 'live-loop.svelte.ts', 'panes.svelte.ts', 'keys.ts', 'saved-view.svelte.ts', 'synth.svelte.ts', 'pixels.ts']));
  });

  it(`keeps every module in renderer/src/lib at most ${MAX_LINES} lines`, () => {
    const long = files.map((f) => ({ file: f.slice(LIB.length + 1), lines: readFileSync(f, 'utf8').split('\n').length })).filter((m) => m.lines > MAX_LINES);
    expect(long, 'split these by subject').toEqual([]);
  });
});
