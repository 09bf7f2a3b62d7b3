#!/usr/bin/env node
// `npm test`: every suite in order — type-check, the Electron security scan, vitest (engine, CLI, web mode, renderer units),
// Playwright end-to-end in Chromium — then one closing line "tests: N passed, N failed, N skipped"
// that CI and people can read at a glance. Exits non-zero if anything failed.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const out = join(root, 'test-results');
mkdirSync(out, { recursive: true });
const only = process.argv.slice(2); // steps: types, security, unit, e2e — e.g. `npm test -- unit` or `npm test -- e2e`
const want = (step) => only.length === 0 || only.includes(step);

let passed = 0;
let failed = 0;
let skipped = 0;
const problems = [];

function run(label, cmd, args, env = {}) {
  console.log(`\n── ${label}: ${cmd} ${args.join(' ')}`);
  const r = spawnSync(cmd, args, { cwd: root, stdio: 'inherit', env: { ...process.env, ...env } });
  return r.status ?? 1;
}

if (want('types')) {
  const code = run('type-check', 'npx', ['tsc', '--noEmit', '-p', 'tsconfig.json']);
  if (code === 0) passed += 1;
  else {
    failed += 1;
    problems.push('type-check failed');
  }
  if (existsSync(join(root, 'renderer', 'tsconfig.json'))) {
    const sc = run('svelte-check', 'npx', ['svelte-check', '--tsconfig', 'renderer/tsconfig.json', '--fail-on-warnings=false']);
    if (sc === 0) passed += 1;
    else {
      failed += 1;
      problems.push('svelte-check failed');
    }
  }
}

if (want('security')) {
  // Electronegativity over the Electron-facing sources, judged against security/electronegativity-allowlist.json.
  const code = run('security scan (electronegativity)', 'node', ['scripts/security-scan.mjs']);
  if (code === 0) passed += 1;
  else {
    failed += 1;
    problems.push('security scan failed (test-results/security-scan.json)');
  }
}

if (want('unit')) {
  const json = join(out, 'vitest.json');
  const code = run('unit and integration tests (vitest)', 'npx', ['vitest', 'run', '--reporter=default', '--reporter=json', `--outputFile=${json}`]);
  if (existsSync(json)) {
    const r = JSON.parse(readFileSync(json, 'utf8'));
    passed += r.numPassedTests ?? 0;
    failed += r.numFailedTests ?? 0;
    skipped += (r.numPendingTests ?? 0) + (r.numTodoTests ?? 0);
    if ((r.numFailedTestSuites ?? 0) > 0 && (r.numFailedTests ?? 0) === 0) {
      failed += r.numFailedTestSuites;
      problems.push('a vitest file failed to load');
    }
  } else if (code !== 0) {
    failed += 1;
    problems.push('vitest did not run');
  }
  if (code !== 0 && !problems.length) problems.push('vitest exited non-zero');
}

if (want('e2e') && existsSync(join(root, 'e2e', 'playwright.config.ts'))) {
  const build = run('renderer build', 'npx', ['vite', 'build', '--config', 'renderer/vite.config.ts']);
  if (build !== 0) {
    failed += 1;
    problems.push('renderer build failed');
  } else {
    const json = join(out, 'playwright.json');
    const code = run('end-to-end tests (Playwright + Chromium)', 'npx', ['playwright', 'test', '-c', 'e2e/playwright.config.ts', '--reporter=list,json'], {
      PLAYWRIGHT_JSON_OUTPUT_NAME: json,
    });
    if (existsSync(json)) {
      const s = JSON.parse(readFileSync(json, 'utf8')).stats ?? {};
      passed += (s.expected ?? 0) + (s.flaky ?? 0);
      failed += s.unexpected ?? 0;
      skipped += s.skipped ?? 0;
    } else if (code !== 0) {
      failed += 1;
      problems.push('playwright did not run');
    }
    if (code !== 0 && (JSON.parse(existsSync(json) ? readFileSync(json, 'utf8') : '{}').stats?.unexpected ?? 0) === 0) {
      failed += 1;
      problems.push('playwright exited non-zero');
    }
  }
}

if (problems.length) console.log(`\n${problems.join('; ')}`);
console.log(`\ntests: ${passed} passed, ${failed} failed, ${skipped} skipped`);
process.exit(failed > 0 || passed === 0 ? 1 : 0);
