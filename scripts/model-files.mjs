// Checksum helpers for DeepVis model folders (models/<id>/). Plain Node ESM, no dependencies:
// used by scripts/fetch-models.mjs (the package's postinstall) and importable by the engine.
//
// A model folder holds deepvis.json (descriptor), SHA256SUMS (`<sha256>  <file>` per line, as
// written by `sha256sum`) and the files listed there: model.json plus its weight shards.
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';

export const DEFAULT_CHECKSUMS = 'SHA256SUMS';
export const DEFAULT_MODEL_JSON = 'model.json';

/** A file name listed in SHA256SUMS must be a plain name inside the model folder. */
const SAFE_NAME = /^[A-Za-z0-9_][A-Za-z0-9._-]*$/;

/**
 * Parse SHA256SUMS text into `[{ name, sha256 }]`. Accepts `sha256sum` text and binary (`*name`)
 * forms, ignores blank lines and `#` comments. Throws on a malformed line or an unsafe file name.
 */
export function parseChecksums(text, label = DEFAULT_CHECKSUMS) {
  const out = [];
  const seen = new Set();
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.trim();
    if (!line || line.startsWith('#')) return;
    const m = line.match(/^([0-9a-fA-F]{64})\s+\*?(.+)$/);
    if (!m) throw new Error(`${label}:${i + 1}: expected "<sha256>  <file>", got "${line.slice(0, 80)}"`);
    const name = m[2].trim();
    if (!SAFE_NAME.test(name)) throw new Error(`${label}:${i + 1}: refusing file name "${name}" (must be a plain file name)`);
    if (seen.has(name)) throw new Error(`${label}:${i + 1}: "${name}" is listed twice`);
    seen.add(name);
    out.push({ name, sha256: m[1].toLowerCase() });
  });
  if (out.length === 0) throw new Error(`${label}: lists no files`);
  return out;
}

export function sha256Buffer(buf) {
  return createHash('sha256').update(buf).digest('hex');
}

/** sha256 of a file, or null when it does not exist / is not a regular file. */
export function sha256FileSync(path) {
  try {
    if (!statSync(path).isFile()) return null;
    return sha256Buffer(readFileSync(path));
  } catch (e) {
    if (e && (e.code === 'ENOENT' || e.code === 'ENOTDIR')) return null;
    throw e;
  }
}

/**
 * The `weights` block of models/<id>/deepvis.json, normalised, or null when the descriptor has none
 * (a user's own model that fetch-models does not manage). Throws when deepvis.json is unreadable.
 */
export function readWeightsSpec(dir) {
  const path = join(dir, 'deepvis.json');
  let d;
  try {
    d = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new Error(`${path}: ${e.message}`);
  }
  const w = d && typeof d === 'object' ? d.weights : undefined;
  if (!w || typeof w !== 'object') return null;
  return {
    id: typeof d.id === 'string' ? d.id : null,
    modelJson: typeof w.modelJson === 'string' ? w.modelJson : DEFAULT_MODEL_JSON,
    checksums: typeof w.checksums === 'string' ? w.checksums : DEFAULT_CHECKSUMS,
    url: typeof w.url === 'string' && w.url ? w.url : null,
  };
}

/** Check each listed file in `dir`: `[{ name, sha256, actual, status: 'ok'|'missing'|'corrupt' }]`. */
export function checkFiles(dir, entries) {
  return entries.map((e) => {
    const actual = sha256FileSync(join(dir, e.name));
    const status = actual === null ? 'missing' : actual === e.sha256 ? 'ok' : 'corrupt';
    return { ...e, actual, status };
  });
}

export function describeProblem(f) {
  return f.status === 'missing'
    ? `${f.name}: missing`
    : `${f.name}: wrong sha256 (expected ${f.sha256}, got ${f.actual})`;
}

/**
 * Verify a model folder against its checksum list (the descriptor's `weights.checksums`, default
 * SHA256SUMS). Synchronous; hashing a ~10 MB model takes a few tens of milliseconds.
 * @returns {{ ok: boolean, problems: string[] }} problems name each missing or corrupt file.
 */
export function verifyModelDir(dir, options = {}) {
  let checksums = options.checksums;
  if (!checksums) {
    try {
      checksums = (existsSync(join(dir, 'deepvis.json')) && readWeightsSpec(dir)?.checksums) || DEFAULT_CHECKSUMS;
    } catch (e) {
      return { ok: false, problems: [e.message] };
    }
  }
  const sumsPath = join(dir, checksums);
  let entries;
  try {
    entries = parseChecksums(readFileSync(sumsPath, 'utf8'), sumsPath);
  } catch (e) {
    return { ok: false, problems: [e.code === 'ENOENT' ? `${checksums}: missing (${sumsPath})` : e.message] };
  }
  const problems = checkFiles(dir, entries).filter((f) => f.status !== 'ok').map(describeProblem);
  return { ok: problems.length === 0, problems };
}
