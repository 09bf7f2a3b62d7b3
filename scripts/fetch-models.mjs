#!/usr/bin/env node
// Fetch and verify the pretrained weights of the built-in DeepVis models (the package's
// postinstall). Plain Node >= 20 ESM, no npm dependencies.
//
// For every models/<id>/deepvis.json with a `weights` block, the files listed in
// models/<id>/SHA256SUMS (model.json + weight shards) must sit beside the descriptor. Missing or
// corrupt ones are fetched, in order of preference, from
//   1. $DEEPVIS_MODEL_MIRROR/<id>/   (a directory, file: URL or http(s) base URL)
//   2. $DEEPVIS_SHARED_MODELS/<id>/  (default: <project>/../shared/models, used when present)
//   3. the descriptor's public weights.url
// into models/<id>/.fetching-<pid>/, checked against SHA256SUMS and only then moved into place,
// model.json last: the loader treats model.json as "this model is complete".
//
// Usage: node scripts/fetch-models.mjs [--only id1,id2] [--check] [--models-dir DIR]
//   --check        verify only (no fetching); exit 1 if anything is missing or corrupt
//   --only ids     restrict to these model ids (comma-separated)
//   --models-dir   models folder (default $DEEPVIS_MODELS_DIR or <project>/models)
// Env: DEEPVIS_SKIP_MODELS=1 skips everything (exit 0).
// Exit code: 0 when every managed model is present and verified, 1 otherwise, 2 for a usage error.
import { createReadStream, createWriteStream, existsSync, mkdirSync, readdirSync, readFileSync, realpathSync, renameSync, rmSync, statSync, unlinkSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createHash } from 'node:crypto';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { checkFiles, describeProblem, parseChecksums, readWeightsSpec } from './model-files.mjs';

export { verifyModelDir } from './model-files.mjs';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const PREFIX = 'deepvis: models:';
/** Abort an HTTP download when no data arrives for this long. */
const IDLE_TIMEOUT_MS = Number(process.env.DEEPVIS_FETCH_TIMEOUT_MS) || 60_000;
const USAGE = `usage: node scripts/fetch-models.mjs [--only id1,id2] [--check] [--models-dir DIR]
  --check           verify the model files only; exit 1 if any is missing or corrupt
  --only ids        only these model ids (comma-separated)
  --models-dir DIR  models folder (default: $DEEPVIS_MODELS_DIR or ${join(ROOT, 'models')})
Sources, in order: $DEEPVIS_MODEL_MIRROR/<id>/ (folder or http(s) URL), $DEEPVIS_SHARED_MODELS/<id>/
(default ../shared/models), then the public URL in models/<id>/deepvis.json.
DEEPVIS_SKIP_MODELS=1 skips this step.`;

const isTTY = Boolean(process.stdout.isTTY);
/** Temp dir of the model being fetched, removed on Ctrl-C. */
let currentTmp = null;

function parseArgs(argv) {
  const opts = { check: false, only: null, modelsDir: null, help: false };
  for (let i = 0; i < argv.length; i++) {
    let a = argv[i];
    let val = null;
    const eq = a.indexOf('=');
    if (a.startsWith('--') && eq > 0) [a, val] = [a.slice(0, eq), a.slice(eq + 1)];
    const value = () => {
      if (val !== null) return val;
      const v = argv[++i];
      if (v === undefined || v.startsWith('--')) throw new Error(`${a} needs a value`);
      return v;
    };
    if (a === '--check') opts.check = true;
    else if (a === '--only') opts.only = value().split(',').map((s) => s.trim()).filter(Boolean);
    else if (a === '--models-dir') opts.modelsDir = resolve(value());
    else if (a === '-h' || a === '--help') opts.help = true;
    else throw new Error(`unknown argument "${argv[i]}"`);
  }
  return opts;
}

function isDir(p) {
  try {
    return statSync(p).isDirectory();
  } catch {
    return false;
  }
}

function mb(bytes) {
  return `${(bytes / 1e6).toFixed(1)} MB`;
}

/** A path for messages: relative to the project when that is shorter. */
function showPath(p) {
  const rel = relative(ROOT, p);
  return rel && rel.length < p.length ? rel.split(sep).join('/') : p;
}

function status(text) {
  if (isTTY) process.stdout.write(`\r${PREFIX} ${text}\x1b[K`);
}
function clearStatus() {
  if (isTTY) process.stdout.write('\r\x1b[K');
}

/**
 * Where the files of model `id` may come from, in order. Entries of kind 'none' are sources that
 * were asked for but cannot be used (kept so the failure report lists them in order).
 */
function sourcesFor(id, spec) {
  const sources = [];
  const mirror = (process.env.DEEPVIS_MODEL_MIRROR ?? '').trim();
  if (mirror) {
    const label = `mirror ${mirror}`;
    if (/^https?:\/\//i.test(mirror)) {
      sources.push({ kind: 'url', base: `${mirror.replace(/\/+$/, '')}/${encodeURIComponent(id)}/`, label });
    } else {
      const base = mirror.startsWith('file:') ? fileURLToPath(mirror) : resolve(mirror);
      sources.push({ kind: 'dir', dir: join(base, id), label });
    }
  }
  const sharedEnv = (process.env.DEEPVIS_SHARED_MODELS ?? '').trim();
  const shared = sharedEnv ? resolve(sharedEnv) : resolve(ROOT, '..', 'shared', 'models');
  if (isDir(join(shared, id))) sources.push({ kind: 'dir', dir: join(shared, id), label: showPath(shared) });
  else if (sharedEnv) sources.push({ kind: 'none', label: `DEEPVIS_SHARED_MODELS ${sharedEnv}`, reason: `no ${id}/ folder` });
  if (spec.url) {
    let base = null;
    try {
      base = new URL(spec.url.endsWith('/') ? spec.url : `${spec.url}/`);
    } catch {
      /* reported below */
    }
    if (base && /^https?:$/.test(base.protocol)) sources.push({ kind: 'url', base: base.href, label: base.href });
    else sources.push({ kind: 'none', label: `weights.url "${spec.url}"`, reason: 'not an http(s) URL' });
  }
  return sources;
}

class IdleTimeout extends Error {
  constructor() {
    super(`no data for ${IDLE_TIMEOUT_MS >= 1000 ? `${Math.round(IDLE_TIMEOUT_MS / 1000)} s` : `${IDLE_TIMEOUT_MS} ms`}`);
    this.name = 'IdleTimeout';
  }
}

/** Copy/download one file from a source to `dest`, hashing on the way. */
async function fetchInto(source, name, dest) {
  const hash = createHash('sha256');
  let bytes = 0;
  let onData = () => {};
  const tap = new Transform({
    transform(chunk, _enc, cb) {
      hash.update(chunk);
      bytes += chunk.length;
      onData();
      cb(null, chunk);
    },
  });
  if (source.kind === 'dir') {
    const src = join(source.dir, name);
    if (!statSync(src).isFile()) throw Object.assign(new Error(`${src} is not a file`), { code: 'ENOENT' });
    await pipeline(createReadStream(src), tap, createWriteStream(dest));
  } else {
    const url = new URL(name, source.base);
    const ac = new AbortController();
    let timer = null;
    const arm = () => {
      clearTimeout(timer);
      timer = setTimeout(() => ac.abort(new IdleTimeout()), IDLE_TIMEOUT_MS);
    };
    onData = arm;
    arm();
    try {
      const res = await fetch(url, { signal: ac.signal, redirect: 'follow' });
      if (!res.ok || !res.body) {
        res.body?.cancel().catch(() => {});
        throw Object.assign(new Error(`HTTP ${res.status} ${res.statusText}`.trim()), { httpStatus: res.status });
      }
      await pipeline(Readable.fromWeb(res.body), tap, createWriteStream(dest));
    } catch (e) {
      if (ac.signal.aborted && ac.signal.reason instanceof IdleTimeout) throw ac.signal.reason;
      throw e;
    } finally {
      clearTimeout(timer);
    }
  }
  return { sha256: hash.digest('hex'), bytes };
}

const OFFLINE_CODES = new Set(['ENOTFOUND', 'EAI_AGAIN', 'ECONNREFUSED', 'ENETUNREACH', 'EHOSTUNREACH', 'ETIMEDOUT', 'ECONNRESET', 'UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_SOCKET']);

function errorCode(e) {
  let c = e;
  for (let depth = 0; c && depth < 4; depth++) {
    if (c.code) return c.code;
    if (Array.isArray(c.errors) && c.errors[0]?.code) return c.errors[0].code;
    c = c.cause;
  }
  return null;
}

function describeError(e, source, name) {
  if (source.kind === 'dir') {
    if (e.code === 'ENOENT') return `${name}: not found in ${source.dir}`;
    return `${name}: ${e.code ?? ''} ${e.message}`.replace(/\s+/g, ' ');
  }
  const url = new URL(name, source.base);
  if (e instanceof IdleTimeout) return `${name}: ${e.message} from ${url.host} (offline or very slow connection?)`;
  if (e.httpStatus) return `${name}: ${e.message} from ${url.href}`;
  const code = errorCode(e);
  if (code && OFFLINE_CODES.has(code)) return `${name}: cannot reach ${url.host} (${code} — offline?)`;
  let inner = e;
  while (inner?.cause instanceof Error) inner = inner.cause;
  return `${name}: download from ${url.href} failed (${code ?? inner?.message ?? e})`;
}

/** Remove .fetching-<pid> folders left by runs that died (their process no longer exists). */
function removeStaleTemps(dir) {
  for (const name of readdirSync(dir)) {
    const m = name.match(/^\.fetching-(\d+)$/);
    if (!m || Number(m[1]) === process.pid) continue;
    let alive = true;
    try {
      process.kill(Number(m[1]), 0);
    } catch (e) {
      alive = e.code === 'EPERM';
    }
    if (!alive) rmSync(join(dir, name), { recursive: true, force: true });
  }
}

function fixFor(id) {
  return `fix: set DEEPVIS_MODEL_MIRROR to a folder holding ${id}/ or run \`npm run fetch-models\` with internet access`;
}

/** Handle one model folder. Returns `{ ok, line }`; `line` excludes the "deepvis: models:" prefix. */
async function processModel(id, dir, opts) {
  const fail = (msg) => ({ ok: false, line: `${id} … FAILED: ${msg}` });
  let spec;
  try {
    spec = readWeightsSpec(dir);
  } catch (e) {
    return fail(`cannot read descriptor: ${e.message}`);
  }
  if (!spec) return { ok: true, line: `${id} … user model, not managed` };

  let entries;
  const sumsPath = join(dir, spec.checksums);
  try {
    entries = parseChecksums(readFileSync(sumsPath, 'utf8'), showPath(sumsPath));
  } catch (e) {
    const why = e.code === 'ENOENT' ? `${showPath(sumsPath)} is missing` : e.message;
    return fail(`${why} — fix: restore ${spec.checksums} from the DeepVis sources (git checkout -- ${showPath(sumsPath)})`);
  }

  const before = checkFiles(dir, entries);
  const bad = before.filter((f) => f.status !== 'ok');
  if (bad.length === 0) return { ok: true, line: `${id} … ok (cached)` };
  if (opts.check) {
    const shown = bad.slice(0, 3).map(describeProblem).join('; ');
    const more = bad.length > 3 ? `; and ${bad.length - 3} more` : '';
    return fail(`${bad.length} of ${entries.length} files missing or corrupt: ${shown}${more} — fix: run \`npm run fetch-models\``);
  }

  // Nothing in the folder is touched until every replacement is fetched and verified: when the
  // checksum list itself is what is damaged, the sources cannot match it and the working files stay.
  const mjEntry = entries.find((e) => e.name === spec.modelJson);
  const mjPath = join(dir, spec.modelJson);
  /** Files whose local copy is byte-identical to a source's, which still disagrees with SHA256SUMS. */
  const sumsSuspect = new Set();
  let needed = entries.filter((e) => e === mjEntry || bad.some((b) => b.name === e.name));
  const toFetch = needed.length;

  const sources = sourcesFor(id, spec);
  const failures = [];
  const used = [];
  let bytes = 0;
  const tmp = join(dir, `.fetching-${process.pid}`);
  let moveError = null;
  try {
    removeStaleTemps(dir);
    rmSync(tmp, { recursive: true, force: true });
    mkdirSync(tmp);
    currentTmp = tmp;
    for (const src of sources) {
      if (needed.length === 0) break;
      if (src.kind === 'none') {
        failures.push(`${src.label}: ${src.reason}`);
        continue;
      }
      if (src.kind === 'dir' && !isDir(src.dir)) {
        failures.push(`${src.label}: no ${id}/ folder`);
        continue;
      }
      status(`${id} … fetching ${needed.length} file(s) from ${src.label}`);
      let got = 0;
      for (const e of [...needed]) {
        let r;
        try {
          r = await fetchInto(src, e.name, join(tmp, e.name));
        } catch (err) {
          failures.push(`${src.label}: ${describeError(err, src, e.name)}`);
          break;
        }
        if (r.sha256 !== e.sha256) {
          if (r.sha256 === bad.find((b) => b.name === e.name)?.actual) sumsSuspect.add(e.name);
          failures.push(`${src.label}: ${e.name} has wrong sha256 (expected ${e.sha256}, got ${r.sha256})`);
          break;
        }
        bytes += r.bytes;
        got++;
        needed = needed.filter((x) => x !== e);
      }
      if (got) used.push(src.label);
    }
    if (needed.length === 0) {
      // All verified: move into place, model.json (the "complete" marker) out first and back last.
      try {
        if (mjEntry && existsSync(mjPath)) unlinkSync(mjPath);
        const order = entries.filter((e) => e !== mjEntry).concat(mjEntry ? [mjEntry] : []);
        for (const e of order) {
          if (existsSync(join(tmp, e.name))) renameSync(join(tmp, e.name), join(dir, e.name));
        }
      } catch (e) {
        moveError = `cannot move files into ${showPath(dir)}: ${e.message}`;
      }
    }
  } catch (e) {
    moveError = `cannot use ${showPath(tmp)}: ${e.message}`;
  } finally {
    clearStatus();
    rmSync(tmp, { recursive: true, force: true });
    currentTmp = null;
  }

  if (needed.length === 0 && !moveError) {
    const partial = toFetch < entries.length ? `${toFetch} of ${entries.length} files, ` : '';
    return { ok: true, line: `${id} … ok (${partial}${mb(bytes)} from ${used.join(' + ')})` };
  }

  if (sumsSuspect.size) {
    const names = [...sumsSuspect].slice(0, 3).join(', ') + (sumsSuspect.size > 3 ? ` and ${sumsSuspect.size - 3} more` : '');
    return fail(
      `${showPath(sumsPath)} looks damaged: ${names} ${sumsSuspect.size > 1 ? 'match' : 'matches'} the source's copy byte for byte but not the sha256 listed there; ` +
        `no file was changed — restore it (git checkout -- ${showPath(sumsPath)}), then run \`npm run fetch-models\` again`,
    );
  }
  // Failed: never leave a model.json beside an incomplete set. Files that are present stay as they
  // are (the loader names each one that disagrees with the checksums): a failed run deletes no data.
  if (mjEntry && existsSync(mjPath) && checkFiles(dir, entries).some((f) => f.status === 'missing')) {
    try {
      unlinkSync(mjPath);
    } catch {
      /* reported below anyway */
    }
  }
  if (moveError) failures.push(moveError);
  if (!sources.some((s) => s.kind !== 'none')) failures.push('no source to fetch from (no mirror, no shared folder, no weights.url)');
  return fail(`${needed.length} of ${entries.length} files could not be fetched; ${failures.join('; ')} — ${fixFor(id)}`);
}

function listModelIds(modelsDir) {
  if (!isDir(modelsDir)) return [];
  return readdirSync(modelsDir, { withFileTypes: true })
    .filter((d) => d.isDirectory() && !d.name.startsWith('.') && existsSync(join(modelsDir, d.name, 'deepvis.json')))
    .map((d) => d.name)
    .sort();
}

export async function main(argv = process.argv.slice(2)) {
  let opts;
  try {
    opts = parseArgs(argv);
  } catch (e) {
    console.error(`${PREFIX} ${e.message}\n${USAGE}`);
    return 2;
  }
  if (opts.help) {
    console.log(USAGE);
    return 0;
  }
  const skip = (process.env.DEEPVIS_SKIP_MODELS ?? '').trim().toLowerCase();
  if (skip && skip !== '0' && skip !== 'false' && skip !== 'no') {
    console.log(`${PREFIX} DEEPVIS_SKIP_MODELS is set: not checking or fetching model weights (run \`npm run fetch-models\` later)`);
    return 0;
  }
  const modelsDir = opts.modelsDir ?? (process.env.DEEPVIS_MODELS_DIR ? resolve(process.env.DEEPVIS_MODELS_DIR) : join(ROOT, 'models'));
  const present = listModelIds(modelsDir);
  const ids = opts.only ?? present;
  if (ids.length === 0) {
    console.error(`${PREFIX} no models found in ${modelsDir} (expected <id>/deepvis.json folders)`);
    return 1;
  }
  let failed = 0;
  for (const id of ids) {
    let r;
    if (!present.includes(id)) {
      r = { ok: false, line: `${id} … FAILED: no ${join(modelsDir, id, 'deepvis.json')} (models here: ${present.join(', ') || 'none'})` };
    } else {
      try {
        r = await processModel(id, join(modelsDir, id), opts);
      } catch (e) {
        r = { ok: false, line: `${id} … FAILED: ${e.message} — ${fixFor(id)}` };
      }
    }
    if (r.ok) console.log(`${PREFIX} ${r.line}`);
    else {
      failed++;
      console.error(`${PREFIX} ${r.line}`);
    }
  }
  if (failed && !opts.check) {
    console.error(`${PREFIX} ${failed} model(s) not ready; DeepVis cannot load them until fixed (DEEPVIS_SKIP_MODELS=1 skips this step).`);
  }
  return failed ? 1 : 0;
}

function onSignal(sig, code) {
  process.on(sig, () => {
    if (currentTmp) rmSync(currentTmp, { recursive: true, force: true });
    clearStatus();
    process.exit(code);
  });
}

function isEntryPoint() {
  if (!process.argv[1]) return false;
  try {
    return import.meta.url === pathToFileURL(realpathSync(process.argv[1])).href;
  } catch {
    return false;
  }
}

if (isEntryPoint()) {
  onSignal('SIGINT', 130);
  onSignal('SIGTERM', 143);
  main().then(
    (code) => {
      process.exitCode = code;
    },
    (e) => {
      console.error(`${PREFIX} unexpected error: ${e?.stack ?? e}`);
      process.exitCode = 1;
    },
  );
}
