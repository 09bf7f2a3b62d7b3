// `npm start` without an Electron binary: one clear reason and the web-mode command, exit 1 —
// not the electron package's download attempt and stack trace.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { REPO } from './support/fixtures.js';

function start(env: Record<string, string>) {
  return spawnSync(process.execPath, [join(REPO, 'scripts/start.mjs'), '--check'], { cwd: REPO, encoding: 'utf8', env: { ...process.env, ...env } });
}

describe('npm start (scripts/start.mjs)', () => {
  it('with no Electron executable: says why and names `npm run web`, exit 1', () => {
    const empty = mkdtempSync(join(tmpdir(), 'deepvis-no-electron-'));
    try {
      const r = start({ ELECTRON_OVERRIDE_DIST_PATH: empty });
      expect(r.status).toBe(1);
      expect(r.stderr).toMatch(/^deepvis: cannot start the desktop app: .*missing/m);
      expect(r.stderr).toContain('npm run web');
      expect(r.stderr).not.toMatch(/Downloading Electron|\n\s+at /);
      expect(r.stdout).toBe('');
    } finally {
      rmSync(empty, { recursive: true, force: true });
    }
  });

  it('with an Electron executable in place: finds it', () => {
    const dir = mkdtempSync(join(tmpdir(), 'deepvis-fake-electron-'));
    try {
      const exe = join(dir, 'electron');
      writeFileSync(exe, '#!/bin/sh\n');
      chmodSync(exe, 0o755);
      const r = start({ ELECTRON_OVERRIDE_DIST_PATH: dir });
      expect(r.stderr).toBe('');
      expect(r.status).toBe(0);
      expect(r.stdout).toContain(exe);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
