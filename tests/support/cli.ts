// Runs the real command line (bin/deepvis.mjs) as a child process, as a user would.
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { REPO } from './fixtures.js';

export const BIN = join(REPO, 'bin/deepvis.mjs');

export interface CliRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** `deepvis --models-dir <repo>/models ARGS…` (with `env` added to ours); resolves (never rejects) with exit code and output. */
export function runDeepvis(args: string[], timeout = 60_000, env: Record<string, string> = {}): Promise<CliRun> {
  return new Promise((done) => {
    execFile(
      process.execPath,
      [BIN, '--models-dir', join(REPO, 'models'), ...args],
      { cwd: REPO, timeout, maxBuffer: 64 << 20, env: { ...process.env, DEEPVIS_DEBUG: '', ...env } },
      (err, stdout, stderr) => {
        const code: unknown = err ? (err as { code?: unknown }).code : 0;
        const signal = (err as { signal?: NodeJS.Signals } | null)?.signal ?? null;
        done({ code: typeof code === 'number' ? code : null, signal, stdout, stderr });
      },
    );
  });
}
