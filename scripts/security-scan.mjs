#!/usr/bin/env node
// `npm run security`: Electronegativity (Doyensec's Electron security scanner) over the app's own
// Electron-facing code, judged against the committed allow-list security/electronegativity-allowlist.json.
// Every finding is printed with its severity, confidence and decision; the run fails on any finding
// above INFORMATIONAL that no allow-list entry covers, and on any file the scanner could not parse.
// Report: test-results/security-scan.json.
//
//   node scripts/security-scan.mjs [--root <dir>] [--report <file>]
//
// What is scanned, and why the sources rather than the bundles: the checks match source shapes —
// `new BrowserWindow({ webPreferences: {...} })` by the callee's name, handlers by their call — and
// esbuild's bundle turns the callee into `import_electron.BrowserWindow`, so the window checks find
// nothing there; the renderer bundle does not even parse (Svelte 5's private class fields). So: a
// staging copy of package.json, main/electron/, preload/, renderer/index.html, renderer/src/**/*.ts
// and each .svelte component (its <script> as .ts with lines kept, its markup as .html). The engine,
// web server and CLI never touch Electron APIs and are left out.
//
// Offline: the scanner fetches translations and GitHub's Electron release list with `got`; here
// `got` fails at once, and AVAILABLE_SECURITY_FIXES_GLOBAL_CHECK (the release-list comparison) is
// skipped and reported as such. The Electron version comes from node_modules/electron.
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import Module, { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';

const here = dirname(fileURLToPath(import.meta.url));
const require = createRequire(import.meta.url);

function option(name, fallback) {
  const i = process.argv.indexOf(name);
  return i > 0 && process.argv[i + 1] ? resolve(process.argv[i + 1]) : fallback;
}
const root = option('--root', resolve(here, '..'));
const reportPath = option('--report', join(root, 'test-results', 'security-scan.json'));
const allowlistPath = join(root, 'security', 'electronegativity-allowlist.json');

const SKIPPED_CHECKS = {
  AvailableSecurityFixesGlobalCheck:
    "needs GitHub's Electron release list (network); the Electron version is pinned in package-lock.json — check its release notes for security fixes when upgrading",
};
const SCANNER_SUFFIX = { script: '.__script__.ts', markup: '.__markup__.html' };
const SEVERITY_ORDER = ['INFORMATIONAL', 'LOW', 'MEDIUM', 'HIGH'];

// ---------------------------------------------------------------- allow-list

const Allowlist = z.object({
  entries: z.array(
    z.object({
      check: z.string().regex(/^[A-Z0-9_]+$/, 'a check id such as PRELOAD_JS_CHECK'),
      file: z.string().min(1),
      /** A piece of the flagged line (or of the finding's sample), so entries survive line moves. */
      match: z.string().min(1).optional(),
      reason: z.string().min(20, 'say why, in a sentence a reviewer can check'),
    }),
  ),
});

function readAllowlist() {
  if (!existsSync(allowlistPath)) return [];
  const parsed = Allowlist.safeParse(JSON.parse(readFileSync(allowlistPath, 'utf8')));
  if (!parsed.success) {
    console.error(`security scan: ${relative(root, allowlistPath)} is invalid: ${z.prettifyError(parsed.error)}`);
    process.exit(2);
  }
  return parsed.data.entries;
}

// ---------------------------------------------------------------- staging

function walk(dir, keep) {
  if (!existsSync(dir)) return [];
  const out = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...walk(p, keep));
    else if (keep(p)) out.push(p);
  }
  return out;
}

/** The <script> blocks of a .svelte file as TypeScript, everything else blanked so lines and columns stay put. */
function svelteScripts(source) {
  const blank = (s) => s.replace(/[^\n]/g, ' ');
  let out = '';
  let last = 0;
  for (const m of source.matchAll(/(<script\b[^>]*>)([\s\S]*?)(<\/script>)/g)) {
    const start = m.index + m[1].length;
    out += blank(source.slice(last, start)) + m[2];
    last = start + m[2].length;
  }
  return out + blank(source.slice(last));
}

function stage() {
  const dir = mkdtempSync(join(tmpdir(), 'deepvis-security-'));
  const files = [];
  const copy = (abs) => {
    const rel = relative(root, abs);
    mkdirSync(dirname(join(dir, rel)), { recursive: true });
    cpSync(abs, join(dir, rel));
    files.push(rel);
  };
  const isSource = (p) => /\.(ts|tsx|js|html)$/.test(p) && !/\.(test|spec)\.ts$/.test(p) && !p.endsWith('.d.ts');
  copy(join(root, 'package.json'));
  for (const p of walk(join(root, 'main', 'electron'), isSource)) copy(p);
  for (const p of walk(join(root, 'preload'), isSource)) copy(p);
  copy(join(root, 'renderer', 'index.html'));
  for (const p of walk(join(root, 'renderer', 'src'), isSource)) copy(p);
  for (const p of walk(join(root, 'renderer', 'src'), (f) => f.endsWith('.svelte'))) {
    const rel = relative(root, p);
    const source = readFileSync(p, 'utf8');
    mkdirSync(dirname(join(dir, rel)), { recursive: true });
    writeFileSync(join(dir, rel + SCANNER_SUFFIX.script), svelteScripts(source));
    writeFileSync(join(dir, rel + SCANNER_SUFFIX.markup), source);
    files.push(rel);
  }
  return { dir, files };
}

/** Staged name → the repository file a person would open. */
function originalFile(stagedRel) {
  const rel = stagedRel.split(sep).join('/');
  for (const suffix of Object.values(SCANNER_SUFFIX)) if (rel.endsWith(suffix)) return rel.slice(0, -suffix.length);
  return rel;
}

// ---------------------------------------------------------------- scanner, offline

function electronVersion() {
  for (const base of [root, here]) {
    try {
      return createRequire(join(base, 'package.json'))('electron/package.json').version;
    } catch {
      // not installed under this root: try the next
    }
  }
  return undefined;
}

async function scan(input, version) {
  // Every network call the scanner makes goes through `got`; make it fail at once instead of waiting
  // on a timeout (translations fall back to the bundled English, the release list is skipped anyway).
  const load = Module._load;
  const offline = async () => {
    throw new Error('offline: the security scan makes no network requests');
  };
  offline.head = offline;
  Module._load = function (request, ...rest) {
    return request === 'got' ? offline : load.call(this, request, ...rest);
  };
  // The scanner prints a line about the translation fetch; keep our output to what matters.
  const log = console.log;
  console.log = (...args) => {
    if (!String(args[0]).startsWith('Could not retrieve updated translations')) log(...args);
  };
  const lang = process.env.LANG;
  process.env.LANG = 'en-US';
  try {
    const run = require('@doyensec/electronegativity');
    return await run({
      input,
      isRelative: true,
      electronVersionOverride: version,
      excludeFromScan: Object.keys(SKIPPED_CHECKS),
    });
  } finally {
    Module._load = load;
    console.log = log;
    if (lang === undefined) delete process.env.LANG;
    else process.env.LANG = lang;
  }
}

// ---------------------------------------------------------------- judge and report

/** What csp-evaluator (the scanner's CSP engine) objects to, so a CSP finding says which directive and why. */
function cspRemarks(policy) {
  if (!policy) return [];
  try {
    const csp = require('@doyensec/csp-evaluator');
    const names = Object.fromEntries(Object.entries(csp.severities).map(([k, v]) => [v, k]));
    return new csp.CspEvaluator(new csp.CspParser(policy).csp, csp.Version.CSP3)
      .evaluate()
      .filter((f) => f.severity < csp.severities.INFO)
      .map((f) => `${names[f.severity] ?? f.severity} ${f.directive}${f.value ? ` ${f.value}` : ''}: ${f.description}`);
  } catch (e) {
    return [`not parseable: ${e.message}`];
  }
}

function lineOf(file, line) {
  if (!line || !existsSync(join(root, file))) return '';
  return (readFileSync(join(root, file), 'utf8').split('\n')[line - 1] ?? '').trim();
}

const allowlist = readAllowlist();
const version = electronVersion();
const { dir, files } = stage();
let result;
try {
  result = await scan(dir, version);
} finally {
  rmSync(dir, { recursive: true, force: true });
}

const used = new Set();
const findings = result.issues.map((issue) => {
  const file = issue.file === 'N/A' ? 'N/A' : originalFile(issue.file);
  const line = issue.location?.line ?? 0;
  const text = lineOf(file, line);
  const sample = typeof issue.sample === 'string' ? issue.sample : '';
  const severity = issue.severity.name;
  const entryIndex = allowlist.findIndex(
    (e) => e.check === issue.id && e.file === file && (!e.match || text.includes(e.match) || sample.includes(e.match)),
  );
  let decision = 'info';
  if (SEVERITY_ORDER.indexOf(severity) > 0) decision = entryIndex >= 0 ? 'allowed' : 'fail';
  if (entryIndex >= 0) used.add(entryIndex);
  return {
    check: issue.id,
    severity,
    confidence: issue.confidence.name,
    file,
    line,
    column: issue.location?.column ?? 0,
    text: text || sample,
    description: issue.description,
    url: issue.shortenedURL,
    reviewRequired: !!issue.manualReview,
    ...(issue.id.startsWith('CSP_') && sample ? { policy: sample, cspRemarks: cspRemarks(sample) } : {}),
    decision,
    reason: entryIndex >= 0 ? allowlist[entryIndex].reason : undefined,
  };
});
findings.sort((a, b) => SEVERITY_ORDER.indexOf(b.severity) - SEVERITY_ORDER.indexOf(a.severity) || a.file.localeCompare(b.file) || a.line - b.line);
const stale = allowlist.filter((_, i) => !used.has(i));
const parseErrors = result.errors.filter((e) => !e.tolerable).map((e) => ({ file: originalFile(relative(dir, e.file)), message: e.message }));
const parseWarnings = result.errors.filter((e) => e.tolerable).map((e) => ({ file: originalFile(relative(dir, e.file)), message: e.message }));
const failing = findings.filter((f) => f.decision === 'fail');
const ok = failing.length === 0 && parseErrors.length === 0;

const scannerVersion = require('@doyensec/electronegativity/package.json').version;
console.log(`security scan: electronegativity ${scannerVersion}, Electron ${version ?? 'unknown (not installed)'}, offline`);
console.log(`  scanned ${files.length} files of main/electron, preload, renderer (index.html, src) and package.json`);
console.log(`  checks: ${result.atomicChecks} atomic + ${result.globalChecks} global`);
for (const [check, why] of Object.entries(SKIPPED_CHECKS)) console.log(`  skipped ${check}: ${why}`);
console.log('');
for (const f of findings) {
  const where = f.line ? `${f.file}:${f.line}` : f.file;
  const verdict = f.decision === 'fail' ? 'FAIL — not in the allow-list' : f.decision === 'allowed' ? `allowed: ${f.reason}` : 'informational';
  console.log(`  ${f.severity.padEnd(13)} ${f.confidence.padEnd(9)} ${f.check}  ${where}`);
  if (f.text) console.log(`      ${f.text.length > 140 ? `${f.text.slice(0, 137)}...` : f.text}`);
  console.log(`      ${f.description}${f.reviewRequired ? ' (review required)' : ''}`);
  for (const r of f.cspRemarks ?? []) console.log(`      csp-evaluator: ${r}`);
  console.log(`      → ${verdict}`);
}
for (const e of parseErrors) console.log(`  FAIL  ${e.file}: the scanner could not parse it (${e.message}) — unscanned code is unreviewed code`);
for (const e of parseWarnings) console.log(`  note  ${e.file}: parsed with a tolerable error (${e.message})`);
for (const e of stale) console.warn(`  warning: stale allow-list entry (matches no finding): ${e.check} ${e.file}${e.match ? ` "${e.match}"` : ''}`);
const count = (d) => findings.filter((f) => f.decision === d).length;
console.log(
  `\nsecurity scan: ${findings.length} findings — ${count('fail')} failing, ${count('allowed')} allowed, ${count('info')} informational; ` +
    `${parseErrors.length} unparsed files; ${stale.length} stale allow-list entries → ${ok ? 'PASS' : 'FAIL'}`,
);

mkdirSync(dirname(reportPath), { recursive: true });
writeFileSync(
  reportPath,
  JSON.stringify(
    {
      ok,
      scanner: { name: '@doyensec/electronegativity', version: scannerVersion },
      electronVersion: version ?? null,
      scanned: files,
      checks: { atomic: result.atomicChecks, global: result.globalChecks, skipped: SKIPPED_CHECKS },
      findings,
      parseErrors,
      parseWarnings,
      staleAllowlistEntries: stale,
    },
    null,
    2,
  ) + '\n',
);
process.exit(ok ? 0 : 1);
