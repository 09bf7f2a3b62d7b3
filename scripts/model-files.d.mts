// Types for scripts/model-files.mjs (plain ESM so the postinstall needs no build step).
export declare const DEFAULT_CHECKSUMS: 'SHA256SUMS';
export declare const DEFAULT_MODEL_JSON: 'model.json';

export interface ChecksumEntry {
  name: string;
  /** Lower-case hex. */
  sha256: string;
}
export interface FileCheck extends ChecksumEntry {
  /** sha256 of the file on disk, or null when it is missing. */
  actual: string | null;
  status: 'ok' | 'missing' | 'corrupt';
}
export interface WeightsSpec {
  id: string | null;
  modelJson: string;
  checksums: string;
  url: string | null;
}

export declare function parseChecksums(text: string, label?: string): ChecksumEntry[];
export declare function sha256Buffer(buf: Uint8Array): string;
export declare function sha256FileSync(path: string): string | null;
export declare function readWeightsSpec(dir: string): WeightsSpec | null;
export declare function checkFiles(dir: string, entries: ChecksumEntry[]): FileCheck[];
export declare function describeProblem(f: FileCheck): string;
/** Verify a model folder against its SHA256SUMS (or the descriptor's weights.checksums). */
export declare function verifyModelDir(dir: string, options?: { checksums?: string }): { ok: boolean; problems: string[] };
