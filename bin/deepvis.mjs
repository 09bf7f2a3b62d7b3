#!/usr/bin/env node
// `deepvis` command: runs the TypeScript CLI (main/cli/main.ts) through tsx's ESM loader, so
// `npx deepvis …` works straight after `npm install`, with no build step.
import { register } from 'tsx/esm/api';

register();
try {
  await import('../main/cli/main.ts');
} catch (e) {
  // The CLI reports its own errors; this only catches a failure to load it (a broken install or
  // a syntax error in a source file). One line, unless DEEPVIS_DEBUG is set.
  const msg = (e instanceof Error ? e.message : String(e)).split('\n').map((l) => l.trim()).filter(Boolean);
  process.stderr.write(`deepvis: cannot start: ${msg.slice(0, 2).join(' ').slice(0, 400)}\n`);
  if (process.env.DEEPVIS_DEBUG && e instanceof Error) process.stderr.write(`${e.stack}\n`);
  process.exit(1);
}
