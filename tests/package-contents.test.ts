// The packaged app (`npm run pack`): built for real by scripts/build-electron.mjs and
// electron-builder.yml into a temp folder, then opened up and checked the way a release manager
// would — what is in the asar, what is unpacked beside it, the models and their checksums, the
// atlases chosen at build time, and nothing that should not ship (tests, sources, source maps,
// dev packages). Two builds: the default one, and one with an atlas and --sourcemaps.
//
// No Electron binary can be downloaded here, so the builds use `electronDist` pointed at a stand-in
// folder. For a Linux dir target electron-builder needs exactly one thing there: a file named
// `electron` (it copies the folder and renames that file to the app's executable, `deepvis`); an
// Electron LICENSE would be kept as LICENSE.electron.txt, nothing else is read. The app itself
// cannot be started, so what must hold at run time (the engine finds the packaged models and
// atlases) is checked by running the engine on the packaged resources folder.
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, posix } from 'node:path';
import asar from '@electron/asar';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildRenderer } from '../e2e/global-setup.js';
import { parseChecksums } from '../scripts/model-files.mjs';
import { runDeepvis } from './support/cli.js';
import { REPO } from './support/fixtures.js';

const pkg = JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as {
  main: string;
  devDependencies: Record<string, string>;
};
const ATLAS_MODEL = 'mobilenet-v1-0.25';

interface Build {
  out: string;
  resources: string;
  asarPath: string;
  /** Every path in the asar, relative, with forward slashes (e.g. "dist/main/electron-main.cjs"). */
  files: Set<string>;
  log: string;
}

function pack(out: string, electronDist: string, extra: string[]): Promise<Build> {
  return new Promise((done, fail) => {
    const t0 = Date.now();
    const child = spawn(process.execPath, [join(REPO, 'scripts/build-electron.mjs'), '--pack', '--out', out, ...extra], {
      cwd: REPO,
      env: { ...process.env, DEEPVIS_ELECTRON_DIST: electronDist, DEEPVIS_PACK_ATLAS: '', DEEPVIS_PACK_SOURCEMAPS: '' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let log = '';
    child.stdout.on('data', (b: Buffer) => (log += b.toString()));
    child.stderr.on('data', (b: Buffer) => (log += b.toString()));
    child.on('error', fail);
    child.on('close', (code) => {
      if (code !== 0) return fail(new Error(`build-electron.mjs --pack exited ${code}:\n${log}`));
      console.log(`packaged ${out} in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
      const resources = join(out, 'linux-unpacked', 'resources');
      const asarPath = join(resources, 'app.asar');
      const files = new Set(asar.listPackage(asarPath, { isPack: false }).map((p) => p.replace(/\\/g, '/').replace(/^\//, '')));
      done({ out, resources, asarPath, files, log });
    });
  });
}

function sha256(path: string): string {
  return createHash('sha256').update(readFileSync(path)).digest('hex');
}

/** Files under `dir`, relative, recursively. */
function walk(dir: string, base = ''): string[] {
  return readdirSync(join(dir, base), { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? walk(dir, posix.join(base, e.name)) : [posix.join(base, e.name)],
  );
}

/** The packages in the asar's node_modules (at any depth), as [path, name, version]. */
function packagesIn(b: Build): [string, string, string][] {
  return [...b.files]
    .filter((p) => /(^|\/)node_modules\/(@[^/]+\/)?[^/@]+\/package\.json$/.test(p))
    .map((p): [string, string, string] => {
      const dir = p.slice(0, -'/package.json'.length);
      const name = dir.slice(dir.lastIndexOf('node_modules/') + 'node_modules/'.length);
      const version = (JSON.parse(asar.extractFile(b.asarPath, p).toString()) as { version?: string }).version ?? '';
      return [dir, name, version];
    })
    .filter(([, name]) => !name.includes('/node_modules/'));
}

describe.runIf(process.platform === 'linux')('the packaged app (npm run pack, linux dir target)', () => {
  let work: string;
  let plain: Build;
  let withAtlas: Build;
  let atlasSource: string;

  beforeAll(async () => {
    buildRenderer(); // the package carries renderer/dist; vitest runs before `npm test` builds it
    work = mkdtempSync(join(tmpdir(), 'deepvis-pack-'));
    const electronDist = join(work, 'electron-stand-in');
    mkdirSync(electronDist);
    writeFileSync(join(electronDist, 'electron'), '#!/bin/sh\necho "stand-in for the Electron binary"\nexit 1\n');
    chmodSync(join(electronDist, 'electron'), 0o755);

    // A real (tiny) atlas, as `deepvis atlas` writes it, with a half-written file left behind.
    const atlasRoot = join(work, 'atlas-cache');
    const r = await runDeepvis(['atlas', '--model', ATLAS_MODEL, '--layer', 'pw1', '--units', '0-1', '--preset', 'fast', '--iterations', '2', '--size', '32', '--out', atlasRoot]);
    expect(r.code, r.stderr).toBe(0);
    const modelDir = readdirSync(atlasRoot).find((d) => d.startsWith(`${ATLAS_MODEL}-`))!;
    const layerDir = join(atlasRoot, modelDir, 'conv_pw_1_relu');
    atlasSource = join(layerDir, readdirSync(layerDir)[0]!);
    writeFileSync(join(atlasSource, 'index.json.tmp-99999'), '{"half":');

    // One after the other: each copies the production node_modules (2 cores shared).
    plain = await pack(join(work, 'plain'), electronDist, []);
    withAtlas = await pack(join(work, 'with-atlas'), electronDist, ['--atlas', layerDir, '--sourcemaps']);
  });

  afterAll(() => {
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('is the app for this platform: the executable renamed to deepvis beside resources/app.asar', () => {
    expect(existsSync(join(plain.out, 'linux-unpacked', 'deepvis'))).toBe(true);
    expect(existsSync(plain.asarPath)).toBe(true);
  });

  it('carries the main entry of package.json, the preload and the renderer build with every asset it references', () => {
    const packagedPkg = JSON.parse(asar.extractFile(plain.asarPath, 'package.json').toString()) as { main: string };
    expect(packagedPkg.main).toBe(pkg.main);
    expect(plain.files).toContain(pkg.main.replace(/^\.\//, ''));
    expect(plain.files).toContain('dist/preload/preload.cjs');
    expect(plain.files).toContain('dist/main/engine-worker.cjs'); // the engine's worker threads
    expect(plain.files).toContain('renderer/dist/index.html');

    const html = asar.extractFile(plain.asarPath, 'renderer/dist/index.html').toString();
    const refs = [...html.matchAll(/\b(?:src|href)="([^"]+)"/g)].map((m) => m[1]!);
    expect(refs.some((r) => r.endsWith('.js'))).toBe(true);
    for (const ref of refs) {
      expect(ref, 'the window loads from file://: no remote or absolute references').toMatch(/^\.\//);
      expect(plain.files, `index.html references ${ref}`).toContain(posix.join('renderer/dist', ref));
    }
    // Offline: the page's own policy allows nothing remote (only web mode's local WebSocket).
    expect(html).toMatch(/http-equiv="Content-Security-Policy"[^>]*default-src 'self'/);
    expect(html).not.toMatch(/https?:\/\//);
    // Nor does the main process or the preload open a connection (fetch, http(s), net). The bundle
    // is read module by module (esbuild marks each with its path); a module allowed here has a
    // function named fetch that is no connection, with the reason.
    const NOT_NETWORK: Record<string, string> = {
      'node_modules/protobufjs/src/util/fetch.js': 'reads a .proto file with fs.readFile in Node; the ONNX schema is parsed from a string, so it is never called',
      'node_modules/protobufjs/src/root.js': 'Root.load resolves .proto imports through util/fetch.js; never called, for the same reason',
    };
    const NETWORK = /\bfetch\(|\bnet\.request\(|\bhttps?\.(request|get)\(|require\("(node:)?(https?|net|http2)"\)/;
    for (const bundle of [pkg.main, 'dist/main/engine-worker.cjs', 'dist/preload/preload.cjs']) {
      const js = asar.extractFile(plain.asarPath, bundle).toString();
      const modules = js.split(/^(?=\/\/ (?:node_modules|main|contract)\/\S+$)/m);
      for (const m of modules) {
        const name = /^\/\/ (\S+)/.exec(m)?.[1] ?? '(bundle start)';
        if (NOT_NETWORK[name]) continue;
        expect(m, `${bundle}: ${name}`).not.toMatch(NETWORK);
      }
    }
    // The allow-list names modules that are really there (a stale entry would hide nothing).
    const mainModules = asar.extractFile(plain.asarPath, pkg.main).toString();
    for (const name of Object.keys(NOT_NETWORK)) expect(mainModules, name).toContain(`// ${name}\n`);
    // Packaged, the main process reads the models and bundled atlases beside the asar.
    const mainJs = asar.extractFile(plain.asarPath, pkg.main).toString();
    expect(mainJs).toMatch(/process\.resourcesPath, "models"\)/);
    expect(mainJs).toMatch(/process\.resourcesPath, "atlases"\)/);
  });

  it('has every model beside the asar (not in it), each file matching its SHA256SUMS', () => {
    const ids = readdirSync(join(REPO, 'models')).filter((d) => existsSync(join(REPO, 'models', d, 'deepvis.json')));
    expect(ids.length).toBeGreaterThanOrEqual(3);
    expect([...plain.files].filter((p) => p.startsWith('models/'))).toEqual([]);
    for (const id of ids) {
      const dir = join(plain.resources, 'models', id);
      const entries = parseChecksums(readFileSync(join(dir, 'SHA256SUMS'), 'utf8'));
      expect(entries.map((e) => e.name)).toContain('model.json');
      for (const e of entries) expect(sha256(join(dir, e.name)), `${id}/${e.name}`).toBe(e.sha256);
      // Weights load from the files beside model.json, never from a URL.
      const manifest = JSON.parse(readFileSync(join(dir, 'model.json'), 'utf8')) as { weightsManifest: { paths: string[] }[] };
      for (const p of manifest.weightsManifest.flatMap((g) => g.paths)) {
        expect(p).not.toMatch(/^[a-z]+:|^\/|\.\./);
        expect(entries.map((e) => e.name)).toContain(p);
      }
      // The class names the descriptor points at (shared files one level up) come along.
      const descriptor = JSON.parse(readFileSync(join(dir, 'deepvis.json'), 'utf8')) as { classes?: { names?: string } };
      if (descriptor.classes?.names) expect(existsSync(join(dir, descriptor.classes.names)), `${id}: ${descriptor.classes.names}`).toBe(true);
    }
    const leftovers = walk(join(plain.resources, 'models')).filter((p) => p.split('/').some((s) => s.startsWith('.')));
    expect(leftovers, 'fetch-models temp files').toEqual([]);
  });

  it('ships no tests, sources, scripts or source maps', () => {
    const all = [...plain.files];
    expect(all.filter((p) => /^(tests|e2e|scripts|bin|main|contract|preload|renderer\/src|models|bench|scratch)\//.test(p))).toEqual([]);
    expect(all.filter((p) => /\.(ts|mts|cts|tsx|svelte)$/.test(p) && !(p.includes('node_modules/') && /\.d\.[mc]?ts$/.test(p)))).toEqual([]);
    expect(all.filter((p) => /(^|\/)(test|tests|__tests__)\//.test(p))).toEqual([]);
    expect(all.filter((p) => p.endsWith('.map'))).toEqual([]);
    expect(walk(plain.resources).filter((p) => p.endsWith('.map'))).toEqual([]);
  });

  it('has no development packages in its node_modules', () => {
    const packages = packagesIn(plain);
    const names = new Set(packages.map(([, name]) => name));
    expect(names).toContain('@tensorflow/tfjs-core');
    expect(names).toContain('sharp');
    for (const dev of Object.keys(pkg.devDependencies)) expect(names.has(dev), `devDependency ${dev}`).toBe(false);
    // Transitive ones too: a name@version the lockfile has only as a dev dependency.
    const lock = JSON.parse(readFileSync(join(REPO, 'package-lock.json'), 'utf8')) as { packages: Record<string, { version?: string; dev?: boolean }> };
    const prodVersions = new Set(
      Object.entries(lock.packages)
        .filter(([path, e]) => path.includes('node_modules/') && !e.dev)
        .map(([path, e]) => `${path.slice(path.lastIndexOf('node_modules/') + 'node_modules/'.length)}@${e.version}`),
    );
    const devOnly = packages.filter(([, name, version]) => !prodVersions.has(`${name}@${version}`)).map(([dir, , v]) => `${dir}@${v}`);
    expect(devOnly).toEqual([]);
  });

  it('unpacks what must load from a real path: the wasm binaries, sharp, and the native tfjs packages when installed', () => {
    const wasmSrc = join(REPO, 'node_modules/@tensorflow/tfjs-backend-wasm/dist');
    const wasm = readdirSync(wasmSrc).filter((f) => f.endsWith('.wasm'));
    expect(wasm.length).toBeGreaterThan(0);
    const unpacked = join(plain.resources, 'app.asar.unpacked', 'node_modules');
    for (const f of wasm) {
      const rel = `node_modules/@tensorflow/tfjs-backend-wasm/dist/${f}`;
      expect(existsSync(join(unpacked, '@tensorflow/tfjs-backend-wasm/dist', f)), f).toBe(true);
      expect(sha256(join(unpacked, '@tensorflow/tfjs-backend-wasm/dist', f))).toBe(sha256(join(wasmSrc, f)));
      // Listed in the asar as unpacked: Electron's fs redirects the engine's asar path there.
      expect((asar.statFile(plain.asarPath, rel) as { unpacked?: boolean }).unpacked, rel).toBe(true);
    }
    expect(walk(join(unpacked, '@img')).some((p) => p.endsWith('.node'))).toBe(true);
    for (const native of ['@tensorflow/tfjs-node', '@tensorflow/tfjs-node-gpu']) {
      if (!existsSync(join(REPO, 'node_modules', native, 'package.json'))) continue;
      expect(existsSync(join(unpacked, native, 'package.json')), native).toBe(true);
    }
  });

  it('bundles no atlas unless asked', () => {
    expect(existsSync(join(plain.resources, 'atlases'))).toBe(false);
  });

  it('bundles the chosen atlas in the atlas layout, without half-written files', () => {
    const rel = atlasSource.split('/').slice(-3).join('/'); // <model>-<sum12>/conv_pw_1_relu/<key>
    const dest = join(withAtlas.resources, 'atlases', rel);
    const expected = readdirSync(atlasSource)
      .filter((f) => !f.includes('.tmp-'))
      .sort();
    expect(readdirSync(dest).sort()).toEqual(expected);
    expect(expected).toEqual(expect.arrayContaining(['index.json', 'sprite.png']));
    for (const f of expected) expect(sha256(join(dest, f)), f).toBe(sha256(join(atlasSource, f)));
  });

  it('keeps source maps when asked (--sourcemaps)', () => {
    expect(withAtlas.files).toContain('dist/main/electron-main.cjs.map');
    expect(withAtlas.files).toContain('dist/preload/preload.cjs.map');
  });

  it("the engine runs on the package's own resources: packaged models load, the bundled atlas is found", async () => {
    const { EngineSession } = await import('../main/session/engine-session.js');
    const emptyCache = mkdtempSync(join(work, 'user-atlas-cache-'));
    const session = await EngineSession.create({
      backend: 'wasm',
      model: ATLAS_MODEL,
      modelsDir: join(withAtlas.resources, 'models'),
      atlasDir: emptyCache,
      bundledAtlasDirs: [join(withAtlas.resources, 'atlases')],
    });
    try {
      expect(session.model?.id).toBe(ATLAS_MODEL);
      expect((await session.models()).filter((m) => m.installed).map((m) => m.id).sort()).toEqual(
        readdirSync(join(REPO, 'models'))
          .filter((d) => existsSync(join(REPO, 'models', d, 'deepvis.json')))
          .sort(),
      );
      const found = await session.handle({ type: 'atlas', layer: 'pw1' });
      expect(found).toMatchObject({ type: 'atlas', found: true, layer: 'conv_pw_1_relu', units: [0, 1] });
      const missing = await session.handle({ type: 'atlas', layer: 'pw2' });
      expect(missing).toMatchObject({ type: 'atlas', found: false });
    } finally {
      await session.dispose();
    }
  });
});
