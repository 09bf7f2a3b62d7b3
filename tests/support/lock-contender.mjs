// One process contending for a file lock, for the overlapping-starts test. It says it is ready
// (<target>.ready-<pid>), waits for the go signal (<target>.go) so every contender starts at once
// however loaded the machine is, tries the real acquireLock once, prints "got" or "held: <message>",
// and holds a lock it got until told to release it (<target>.release), so every other contender
// meets it held.
import { existsSync, writeFileSync } from 'node:fs';
import { register } from 'tsx/esm/api';

register();
const { acquireLock } = await import('../../main/engine/lock-file.ts');
const [target] = process.argv.slice(2);
const until = async (file) => {
  while (!existsSync(file)) await new Promise((r) => setTimeout(r, 5));
};
writeFileSync(`${target}.ready-${process.pid}`, '');
await until(`${target}.go`);
try {
  const lock = await acquireLock(target);
  process.stdout.write('got\n');
  await until(`${target}.release`);
  process.stdout.write(`released ${await lock.release()}\n`);
} catch (e) {
  process.stdout.write(`held: ${e.message}\n`);
}
