// The house's rooms and what each may import, checked on every import of every source file — the
// same idea as VS Code's layer checks. A rule broken here is a design decision to discuss, not a
// test to loosen: a renderer that imports engine code would ship Node modules to the browser, an
// engine that imports the session could no longer run in a worker or the CLI on its own.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');

/** A room: a folder prefix (relative to the repo root, with '/') and the rooms it may import. */
const ROOMS: { room: string; prefix: string; mayImport: string[] }[] = [
  { room: 'contract', prefix: 'contract/', mayImport: ['contract'] },
  { room: 'engine', prefix: 'main/engine/', mayImport: ['engine', 'contract'] },
  { room: 'persist', prefix: 'main/persist/', mayImport: ['persist', 'engine', 'contract'] },
  { room: 'session', prefix: 'main/session/', mayImport: ['session', 'engine', 'persist', 'contract'] },
  // The environment, read once by a host; it names the engine's and persist's default folders.
  { room: 'host-config', prefix: 'main/host-config.ts', mayImport: ['engine', 'persist', 'contract'] },
  { room: 'web', prefix: 'main/web/', mayImport: ['web', 'host-config', 'session', 'engine', 'persist', 'contract'] },
  { room: 'electron', prefix: 'main/electron/', mayImport: ['electron', 'host-config', 'session', 'engine', 'persist', 'contract'] },
  { room: 'cli', prefix: 'main/cli/', mayImport: ['cli', 'host-config', 'session', 'engine', 'persist', 'contract'] },
  { room: 'preload', prefix: 'preload/', mayImport: ['preload', 'contract'] },
  { room: 'renderer', prefix: 'renderer/', mayImport: ['renderer', 'contract'] },
];

const SOURCE = /\.(ts|mts|cts|mjs|js|svelte)$/;
const SKIP = new Set(['node_modules', 'dist', 'build', 'out', '.git', 'test-results', '.artifacts']);

function walk(dir: string, out: string[] = []): string[] {
  for (const name of readdirSync(dir)) {
    if (SKIP.has(name)) continue;
    const p = join(dir, name);
    if (statSync(p).isDirectory()) walk(p, out);
    else if (SOURCE.test(name) && !/\.(test|spec)\.ts$/.test(name) && !name.endsWith('.d.ts')) out.push(p);
  }
  return out;
}

function roomOf(rel: string): string | null {
  return ROOMS.find((r) => rel.startsWith(r.prefix))?.room ?? null;
}

/** A relative import of a file, resolved to a repo-relative path; `typeOnly` when it is erased at compile time. */
interface Edge {
  to: string;
  typeOnly: boolean;
}

function resolveSpec(file: string, spec: string): string {
  const abs = resolve(dirname(file), spec);
  const candidates = [abs, abs.replace(/\.js$/, '.ts'), abs.replace(/\.mjs$/, '.mts'), `${abs}.ts`, join(abs, 'index.ts'), abs.replace(/\.js$/, '.svelte.ts')];
  const hit = candidates.find((c) => {
    try {
      return statSync(c).isFile();
    } catch {
      return false;
    }
  });
  return relative(ROOT, hit ?? abs).split(sep).join('/');
}

/** Relative imports of a file (Svelte files: their script blocks), from the TypeScript syntax tree. */
function importsOf(file: string): Edge[] {
  let text = readFileSync(file, 'utf8');
  if (file.endsWith('.svelte')) text = [...text.matchAll(/<script[^>]*>([\s\S]*?)<\/script>/g)].map((m) => m[1]).join('\n');
  const src = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, false, ts.ScriptKind.TS);
  const out = new Map<string, boolean>();
  const add = (spec: string, typeOnly: boolean) => {
    if (!spec.startsWith('.')) return;
    const to = resolveSpec(file, spec);
    out.set(to, (out.get(to) ?? true) && typeOnly);
  };
  const visit = (n: ts.Node): void => {
    if (ts.isImportDeclaration(n) && ts.isStringLiteral(n.moduleSpecifier)) {
      const c = n.importClause;
      const named = c?.namedBindings && ts.isNamedImports(c.namedBindings) ? c.namedBindings.elements : null;
      const typeOnly = !!c && (c.isTypeOnly || (!c.name && !!named && named.length > 0 && named.every((e) => e.isTypeOnly)));
      add(n.moduleSpecifier.text, typeOnly);
    } else if (ts.isExportDeclaration(n) && n.moduleSpecifier && ts.isStringLiteral(n.moduleSpecifier)) {
      add(n.moduleSpecifier.text, n.isTypeOnly);
    } else if (ts.isCallExpression(n) && n.expression.kind === ts.SyntaxKind.ImportKeyword && n.arguments[0] && ts.isStringLiteral(n.arguments[0])) {
      add(n.arguments[0].text, false);
    }
    ts.forEachChild(n, visit);
  };
  visit(src);
  return [...out].map(([to, typeOnly]) => ({ to, typeOnly }));
}

/** Whether a file reads the environment: `process.env`, `process['env']` or `const { env } = process` (comments do not count). */
function readsProcessEnv(file: string): boolean {
  let text = readFileSync(file, 'utf8');
  if (file.endsWith('.svelte')) text = [...text.matchAll(/<script[^>]*>([\s\S]*?)<\/script>/g)].map((m) => m[1]).join('\n');
  const src = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, false, ts.ScriptKind.TS);
  const isProcess = (n: ts.Node) => ts.isIdentifier(n) && n.text === 'process';
  let found = false;
  const visit = (n: ts.Node): void => {
    if (ts.isPropertyAccessExpression(n) && isProcess(n.expression) && n.name.text === 'env') found = true;
    else if (ts.isElementAccessExpression(n) && isProcess(n.expression) && ts.isStringLiteral(n.argumentExpression) && n.argumentExpression.text === 'env') found = true;
    else if (ts.isVariableDeclaration(n) && n.initializer && isProcess(n.initializer) && ts.isObjectBindingPattern(n.name)) {
      if (n.name.elements.some((e) => (e.propertyName ?? e.name).getText(src) === 'env')) found = true;
    }
    if (!found) ts.forEachChild(n, visit);
  };
  visit(src);
  return found;
}

const files = ['contract', 'main', 'preload', 'renderer/src'].flatMap((d) => walk(join(ROOT, d)));
const graph = new Map(files.map((f) => [relative(ROOT, f).split(sep).join('/'), importsOf(f)]));

describe('layering', () => {
  it('finds the source files of every room', () => {
    const rooms = new Set([...graph.keys()].map(roomOf));
    for (const r of ['contract', 'engine', 'session', 'host-config', 'web', 'electron', 'cli', 'preload', 'renderer', 'persist']) expect(rooms, r).toContain(r);
  });

  it('each room imports only the rooms it may', () => {
    const broken: string[] = [];
    for (const [from, deps] of graph) {
      const room = roomOf(from);
      if (!room) continue;
      const allowed = ROOMS.find((r) => r.room === room)!.mayImport;
      for (const { to } of deps) {
        const target = roomOf(to);
        if (target && !allowed.includes(target)) broken.push(`${from} (${room}) imports ${to} (${target})`);
        if (!target && !to.startsWith('node_modules')) broken.push(`${from} (${room}) imports ${to}, which belongs to no room`);
      }
    }
    expect(broken).toEqual([]);
  });

  // Type-only imports count too: they fix no load order, but two modules that name each other's
  // types are one concept in two places — its types belong to the module that owns it.
  it('has no import cycles between files, type-only imports included', () => {
    const cycles: string[] = [];
    const state = new Map<string, 'open' | 'done'>();
    const stack: string[] = [];
    const visit = (f: string): void => {
      state.set(f, 'open');
      stack.push(f);
      for (const { to: d } of graph.get(f) ?? []) {
        if (!graph.has(d)) continue;
        if (state.get(d) === 'open') cycles.push([...stack.slice(stack.indexOf(d)), d].join(' → '));
        else if (!state.has(d)) visit(d);
      }
      stack.pop();
      state.set(f, 'done');
    };
    for (const f of graph.keys()) if (!state.has(f)) visit(f);
    expect(cycles).toEqual([]);
  });

  // The environment is read in one place: an engine that read it would behave differently in a
  // worker thread, a test or a script than in the host that configured it.
  it('reads process.env only in main/host-config.ts', () => {
    const readers = [...graph.keys()].filter((f) => f !== 'main/host-config.ts' && readsProcessEnv(join(ROOT, f)));
    expect(readers).toEqual([]);
    // The check sees a real read.
    expect(readsProcessEnv(join(ROOT, 'main/host-config.ts'))).toBe(true);
  });

  it('the checker resolves real imports (it cannot pass by resolving nothing)', () => {
    const fake = importsOf(join(ROOT, 'renderer/src/main.ts'));
    expect(fake.length).toBeGreaterThan(0);
    const engineImports = [...graph.entries()].filter(([f]) => roomOf(f) === 'session').flatMap(([, d]) => d).filter((d) => roomOf(d.to) === 'engine');
    expect(engineImports.length).toBeGreaterThan(0);
  });
});
