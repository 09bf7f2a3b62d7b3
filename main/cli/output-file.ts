// The rules every command that writes files follows: an output never replaces one of the
// command's inputs, never goes through a symbolic link (a link at the output name is refused, not
// replaced or followed), is written atomically (temp file + rename, persist/atomic-file.ts), and the
// files a failed run already wrote are removed again, so a failure leaves no partial result. A
// failed write is one line naming the file and what to do, with the exit code of its cause: the
// user's path (read-only folder, no permission, not a folder) is bad input, a full disk a runtime
// failure.
import { constants } from 'node:fs';
import { access, lstat, mkdir, realpath, rm, stat } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { writeFileAtomic } from '../engine/atomic-file.js';
import { CliError, EXIT_BAD_INPUT, EXIT_FAILURE, oneLine } from './common.js';

function code(e: unknown): string | undefined {
  return (e as NodeJS.ErrnoException).code;
}

/** One line for a failed write of `path`, with the exit code of its cause. */
export function writeError(path: string, e: unknown): CliError {
  switch (code(e)) {
    case 'ENOSPC':
    case 'EDQUOT':
      return new CliError(`cannot write ${path}: no space left on the device (${code(e)}) — free some space or choose another --out`, EXIT_FAILURE);
    case 'EROFS':
      return new CliError(`cannot write ${path}: ${dirname(path)} is on a read-only file system (EROFS) — choose another --out`, EXIT_BAD_INPUT);
    case 'EACCES':
    case 'EPERM':
      return new CliError(`cannot write ${path}: permission denied in ${dirname(path)} (${code(e)}) — the folder is read-only for you; choose another --out`, EXIT_BAD_INPUT);
    case 'ENOENT':
      return new CliError(`cannot write ${path}: the folder ${dirname(path)} does not exist`, EXIT_BAD_INPUT);
    case 'ENOTDIR':
    case 'EEXIST':
      return new CliError(`cannot write ${path}: a file is in the way (${code(e)}) — ${dirname(path)} must be a folder`, EXIT_BAD_INPUT);
    case 'EISDIR':
      return new CliError(`cannot write ${path}: it is a folder — name a file`, EXIT_BAD_INPUT);
    default:
      return new CliError(`cannot write ${path}: ${oneLine(e)}`, EXIT_FAILURE);
  }
}

/** Where `p` really is (its folder's links resolved; the last component taken as named). */
async function realTarget(p: string): Promise<string> {
  const abs = resolve(p);
  try {
    return resolve(await realpath(dirname(abs)), basename(abs));
  } catch {
    return abs;
  }
}

/**
 * Refuse `path` as an output when it is one of `inputs` (by real path or by inode), is a symbolic
 * link, or exists as something other than a regular file.
 */
export async function checkOutputPath(path: string, inputs: readonly string[]): Promise<void> {
  const target = await realTarget(path);
  const st = await lstat(target).catch(() => null);
  if (st?.isSymbolicLink()) throw new CliError(`refusing to write ${path}: it is a symbolic link (not followed) — remove it or choose another name`, EXIT_BAD_INPUT);
  if (st && !st.isFile()) throw new CliError(`refusing to write ${path}: it exists and is not a regular file`, EXIT_BAD_INPUT);
  for (const input of inputs) {
    const inReal = await realpath(input).catch(() => resolve(input));
    const inSt = await stat(input).catch(() => null);
    if (inReal === target || (st && inSt && st.ino === inSt.ino && st.dev === inSt.dev)) {
      throw new CliError(`refusing to write ${path}: it is the input ${input} — choose another output name`, EXIT_BAD_INPUT);
    }
  }
}

/** A folder to write into, created when absent; a file (or link) in its place is a usage error. */
export async function ensureOutputFolder(dir: string): Promise<string> {
  const abs = resolve(dir);
  const st = await lstat(abs).catch(() => null);
  if (st?.isSymbolicLink()) {
    const real = await stat(abs).catch(() => null);
    if (!real?.isDirectory()) throw new CliError(`cannot use ${dir} as the output folder: it is a symbolic link to no folder`, EXIT_BAD_INPUT);
  } else if (st && !st.isDirectory()) {
    throw new CliError(`cannot use ${dir} as the output folder: it is a file (EEXIST) — name a folder`, EXIT_BAD_INPUT);
  }
  try {
    await mkdir(abs, { recursive: true });
    // Before any work: a read-only folder should not cost a whole synthesis to find out.
    await access(abs, constants.W_OK);
  } catch (e) {
    throw writeError(join(abs, '…'), e);
  }
  return abs;
}

/**
 * The files one run writes: each checked (checkOutputPath) and written atomically; `discard`
 * removes those already written when the run fails, so no partial result is left.
 */
export class OutputFiles {
  private readonly written: string[] = [];

  constructor(private readonly inputs: readonly string[] = []) {}

  /** Check every output name before any work is done (a refusal costs no computation). */
  async checkAll(paths: readonly string[]): Promise<void> {
    for (const p of paths) await checkOutputPath(p, this.inputs);
  }

  async write(path: string, data: string | Uint8Array): Promise<void> {
    await checkOutputPath(path, this.inputs);
    try {
      await writeFileAtomic(path, data);
    } catch (e) {
      throw writeError(path, e);
    }
    this.written.push(path);
  }

  get files(): readonly string[] {
    return this.written;
  }

  async discard(): Promise<void> {
    for (const p of this.written.splice(0)) await rm(p, { force: true });
  }

  /** Run `body`; on any failure remove what it wrote, then rethrow. */
  async run<T>(body: (files: this) => Promise<T>): Promise<T> {
    try {
      return await body(this);
    } catch (e) {
      await this.discard();
      throw e;
    }
  }
}
