// One process contending for a file lock, for the overlapping-starts test: waits until the shared
// start time, tries the real acquireLock once, prints "got" or "held: <message>", and holds a lock
// it got for HOLD ms before releasing it (so every contender meets it held, not released).
import { register } from 'tsx/esm/api';

register();
const { acquireLock } = await import('../../main/persist/lock-file.ts');
const [target, startAt, hold] = process.argv.slice(2);
await new Promise((r) => setTimeout(r, Math.max(0, Number(startAt) - Date.now())));
try {
  const lock = await acquireLock(target);
  process.stdout.write('got\n');
  await new Promise((r) => setTimeout(r, Number(hold)));
  process.stdout.write(`released ${await lock.release()}\n`);
} catch (e) {
  process.stdout.write(`held: ${e.message}\n`);
}
