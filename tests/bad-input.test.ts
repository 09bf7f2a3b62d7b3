// What a hostile or clumsy user can open or send, each met where it is met in use: a model folder
// holding a FIFO, a device, links and paths out of it, a duplicate id (the engine keeps listing and
// serving the other models, within bounded time); two index runs on one folder (exactly one gets
// the lock, neither loses the other's images); outputs that would overwrite an input or follow a
// link (refused, nothing outside the output changes). Real files, real processes, real models.
import { execFile, execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, truncateSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { listModels, loadModel, selectBackend, type ModelEntry } from '../main/engine/index.js';
import { mulberry32 } from '../main/engine/synthesis/run.js';
import { acquireLock, LockHeld } from '../main/engine/lock-file.js';
import { EngineSession } from '../main/session/engine-session.js';
import { runDeepvis } from './support/cli.js';
import { copyModel, linkedModelsDir, photo, REPO } from './support/fixtures.js';
import { validReply } from './support/replies.js';
import { collector } from './support/synth-events.js';
import { saveBareFolder } from './support/user-models.js';

const CONTENDER = join(REPO, 'tests/support/lock-contender.mjs');

let work: string;
beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'deepvis-bad-input-'));
});
afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

/** The pid of a process that has exited (so a lock naming it is stale). */
function deadPid(): number {
  const r = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
  return Number(r.stdout);
}

function run(args: string[]): Promise<string> {
  return new Promise((done, fail) => execFile(process.execPath, args, { cwd: REPO, timeout: 120_000 }, (err, stdout) => (err ? fail(err) : done(stdout))));
}

describe('the index lock', () => {
  it('20 overlapping starts in separate processes over a stale lock: exactly one gets in, the others are told who holds it', async () => {
    const target = join(work, 'procs.json');
    writeFileSync(`${target}.lock`, JSON.stringify({ token: 'd'.repeat(32), pid: deadPid(), host: hostname(), started: 1 }));
    // All start at one signal once every process has loaded; the winner holds until the others have answered.
    let answered = 0;
    const runs = Array.from({ length: 20 }, () =>
      run([CONTENDER, target]).then((o) => {
        if (o.startsWith('held') && ++answered === 19) writeFileSync(`${target}.release`, '');
        return o;
      }),
    );
    while (readdirSync(work).filter((f) => f.startsWith('procs.json.ready-')).length < 20) await new Promise((r) => setTimeout(r, 20));
    writeFileSync(`${target}.go`, '');
    const outs = await Promise.all(runs);
    for (const f of readdirSync(work)) if (/^procs\.json\.(ready-\d+|go|release)$/.test(f)) rmSync(join(work, f));
    const got = outs.filter((o) => o.startsWith('got'));
    expect(got, outs.join('')).toHaveLength(1);
    expect(got[0]).toContain('released true');
    for (const o of outs.filter((x) => !x.startsWith('got'))) expect(o).toMatch(/^held: .*procs\.json is being written by process \d+, since .*; wait for it to finish or stop it/);
    expect(readdirSync(work).filter((f) => f.startsWith('procs.json'))).toEqual([]); // no lock, breaker or temp left
  }, 120_000);

  it('20 overlapping starts in one process over a stale lock: exactly one gets in', async () => {
    const target = join(work, 'inproc.json');
    writeFileSync(`${target}.lock`, String(deadPid())); // the old format: a bare pid
    const results = await Promise.allSettled(Array.from({ length: 20 }, () => acquireLock(target)));
    const got = results.filter((r) => r.status === 'fulfilled');
    expect(got).toHaveLength(1);
    for (const r of results) if (r.status === 'rejected') expect(r.reason).toBeInstanceOf(LockHeld);
    await (got[0] as PromiseFulfilledResult<Awaited<ReturnType<typeof acquireLock>>>).value.release();
  });

  it('is released only by its owner: a run whose lock was taken over does not remove the new owner’s lock', async () => {
    const target = join(work, 'owner.json');
    const first = await acquireLock(target);
    // The first run's process is presumed dead and its lock taken over (simulated by rewriting it).
    writeFileSync(`${target}.lock`, JSON.stringify({ token: 'n'.repeat(32), pid: process.pid, host: hostname(), started: Date.now() }));
    expect(await first.release()).toBe(false);
    expect(JSON.parse(readFileSync(`${target}.lock`, 'utf8')).token).toBe('n'.repeat(32));
    await expect(acquireLock(target)).rejects.toThrow(/is being written by process/);
    rmSync(`${target}.lock`);
  });

  it('a lock held by a live process on another host is never taken over', async () => {
    const target = join(work, 'remote.json');
    writeFileSync(`${target}.lock`, JSON.stringify({ token: 'r'.repeat(32), pid: 1, host: 'elsewhere.example', started: Date.now() }));
    await expect(acquireLock(target)).rejects.toThrow(/process 1 on elsewhere\.example.*remove .*remote\.json\.lock if that host is down/);
    rmSync(`${target}.lock`);
  });

  it('a lock file that is a symlink is not followed when released', async () => {
    const victim = join(work, 'victim.txt');
    writeFileSync(victim, 'keep');
    const target = join(work, 'linked.json');
    symlinkSync(victim, `${target}.lock`);
    await expect(acquireLock(target)).rejects.toThrow(LockHeld); // unreadable and fresh: held
    expect(readFileSync(victim, 'utf8')).toBe('keep');
    rmSync(`${target}.lock`);
  });
});

const GOOD = 'mobilenet-v1-0.25';
const SLED_DOG = /dogsled|malamute|husky|eskimo dog/i;

/** Resolve with `p`, or fail the test when it takes longer than `ms` (a blocked thread never answers). */
function within<T>(ms: number, what: string, p: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([p, new Promise<T>((_, fail) => (timer = setTimeout(() => fail(new Error(`${what} did not answer within ${ms} ms`)), ms)))]).finally(() => clearTimeout(timer));
}

function mkfifo(path: string): void {
  execFileSync('mkfifo', [path]);
}

function editDescriptor(dir: string, edit: (d: { weights?: { modelJson?: string; checksums?: string }; classes: { names: string } }) => void): void {
  const d = JSON.parse(readFileSync(join(dir, 'deepvis.json'), 'utf8'));
  edit(d);
  writeFileSync(join(dir, 'deepvis.json'), JSON.stringify(d));
}

async function rgbaOf(name: Parameters<typeof photo>[0]): Promise<Uint8Array> {
  const { data } = await sharp(photo(name)).resize(224, 224, { fit: 'cover' }).ensureAlpha().raw().toBuffer({ resolveWithObject: true });
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

/**
 * Model folders a hostile or clumsy user leaves in models/: what was done, and what its one-line
 * problem must say. Each is a full copy of the good model, then broken one way.
 */
const HOSTILE: Record<string, { make: (dir: string) => void; why: RegExp }> = {
  'fifo-model-json': { make: (d) => (rmSync(join(d, 'model.json')), mkfifo(join(d, 'model.json'))), why: /model\.json is a FIFO \(named pipe\), not a regular file/ },
  'fifo-descriptor': { make: (d) => (rmSync(join(d, 'deepvis.json')), mkfifo(join(d, 'deepvis.json'))), why: /deepvis\.json is a FIFO/ },
  'fifo-sums': { make: (d) => (rmSync(join(d, 'SHA256SUMS')), mkfifo(join(d, 'SHA256SUMS'))), why: /SHA256SUMS is a FIFO/ },
  'shard-to-dev-zero': { make: (d) => (rmSync(join(d, 'group5-shard1of1')), symlinkSync('/dev/zero', join(d, 'group5-shard1of1'))), why: /group5-shard1of1 is a symlink to \/dev\/zero, outside the model folder/ },
  'shard-linked-out': {
    make: (d) => (rmSync(join(d, 'group5-shard1of1')), symlinkSync(join(REPO, 'models', GOOD, 'group5-shard1of1'), join(d, 'group5-shard1of1'))),
    why: /group5-shard1of1 is a symlink to .*models\/mobilenet-v1-0\.25\/group5-shard1of1, outside the model folder/,
  },
  'model-json-dotdot': { make: (d) => editDescriptor(d, (x) => ((x.weights ??= {}).modelJson = `../${GOOD}/model.json`)), why: /"\.\.\/mobilenet-v1-0\.25\/model\.json" points outside/ },
  'sums-names-etc': {
    make: (d) => {
      const h = createHash('sha256').update(readFileSync('/etc/hostname')).digest('hex');
      writeFileSync(join(d, 'SHA256SUMS'), `${h}  /etc/hostname\n` + readFileSync(join(d, 'SHA256SUMS'), 'utf8'));
    },
    why: /SHA256SUMS:1: .*"\/etc\/hostname" is an absolute path/,
  },
  'sums-dotdot': {
    make: (d) => {
      const h = createHash('sha256').update(readFileSync('/etc/hostname')).digest('hex');
      writeFileSync(join(d, 'SHA256SUMS'), `${h}  ../../../../../../../../etc/hostname\n`);
    },
    why: /SHA256SUMS:1: .*points outside/,
  },
  'classes-dev-zero': { make: (d) => editDescriptor(d, (x) => (x.classes.names = '/dev/zero')), why: /"\/dev\/zero" is an absolute path/ },
  'huge-model-json': { make: (d) => truncateSync(join(d, 'model.json'), 200 * 1024 * 1024), why: /model\.json is 200\.0 MiB, over the 64 MiB limit/ },
  'model-json-folder': { make: (d) => (rmSync(join(d, 'model.json')), mkdirSync(join(d, 'model.json'))), why: /model\.json is a folder, not a regular file/ },
  'dangling-shard': { make: (d) => (rmSync(join(d, 'group5-shard1of1')), symlinkSync(join(d, 'nowhere'), join(d, 'group5-shard1of1'))), why: /group5-shard1of1 is a link to nothing/ },
  // Claims the good model's id: the folder named after the id keeps it, this one is listed with the clash.
  'dup-of-good': { make: (d) => editDescriptor(d, (x) => ((x as unknown as { id: string }).id = GOOD)), why: /id "mobilenet-v1-0\.25" is already used by .*\/mobilenet-v1-0\.25 — give this model its own id/ },
};

describe('two index runs on one index', () => {
  it('started together: one runs, the other is refused naming the holder; run again after, the index holds both runs’ images', { timeout: 300_000 }, async () => {
    const { TopKIndex, indexPath } = await import('../main/engine/topk/index-file.js');
    const folders = { a: join(work, 'photos-a'), b: join(work, 'photos-b') };
    const sets = { a: ['dog', 'eagle', 'giraffe'], b: ['horses', 'kite', 'person'] } as const;
    for (const k of ['a', 'b'] as const) {
      mkdirSync(folders[k]);
      for (const p of sets[k]) writeFileSync(join(folders[k], `${p}.jpg`), readFileSync(photo(p)));
    }
    const indexDir = join(work, 'two-runs-index');
    const index = (k: 'a' | 'b') => runDeepvis(['index', '--model', GOOD, folders[k], '--index-dir', indexDir, '--json'], 240_000);
    const [ra, rb] = await Promise.all([index('a'), index('b')]);
    const refused = [ra, rb].filter((r) => r.code !== 0);
    expect(refused.length, `${ra.stderr}\n${rb.stderr}`).toBeLessThanOrEqual(1);
    for (const r of refused) {
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/is being written by process \d+, since .*; wait for it to finish or stop it/);
    }
    // The refused run, run again once the other is done.
    for (const [k, r] of [['a', ra], ['b', rb]] as const) if (r.code !== 0) expect((await index(k)).code).toBe(0);
    const idx = await TopKIndex.read(indexPath(indexDir, GOOD));
    const names = idx.files.filter((f) => f).map((f) => f!.path.split('/').pop()).sort();
    expect(names).toEqual([...sets.a, ...sets.b].map((p) => `${p}.jpg`).sort());
    expect(readdirSync(indexDir).filter((f) => f.endsWith('.lock') || f.endsWith('.tmp') || f.endsWith('.break'))).toEqual([]);
  });
});

describe('a hostile model folder', () => {
  let models: string;
  let dogRgba: Uint8Array;
  beforeAll(async () => {
    models = linkedModelsDir('deepvis-hostile-models-', [GOOD]);
    for (const [id, { make }] of Object.entries(HOSTILE)) make(copyModel(models, id));
    dogRgba = await rgbaOf('dog');
    await selectBackend(process.env.DEEPVIS_BACKEND ?? 'wasm');
  });
  afterAll(() => rmSync(models, { recursive: true, force: true }));

  it('is listed within seconds, each bad model with its one-line reason naming the file; the good one is fine', async () => {
    const t0 = performance.now();
    const entries = new Map((await within(20_000, 'listModels', listModels(models))).map((e) => [e.id, e]));
    expect(performance.now() - t0).toBeLessThan(20_000);
    expect([...entries.keys()].sort()).toEqual([GOOD, ...Object.keys(HOSTILE)].sort());
    expect(entries.get(GOOD)).toMatchObject({ problem: null, dir: join(models, GOOD) });
    for (const [id, { why }] of Object.entries(HOSTILE)) {
      const e = entries.get(id)!;
      expect(e.problem, id).toMatch(why);
      expect(e.problem, id).toContain(join(models, id));
      expect(e.problem, id).not.toContain('\n');
    }
  });

  it('refuses to load each of them with that reason, and the good model loads and classifies', async () => {
    for (const [id, { why }] of Object.entries(HOSTILE)) {
      const err = await within(20_000, `loadModel ${id}`, loadModel(id, models)).then(
        (m) => (m.dispose(), null),
        (e: Error) => e,
      );
      expect(err?.message, id).toMatch(why);
    }
    const m = await loadModel(GOOD, models);
    m.dispose();
  });

  it('a running session lists them and still answers the next frame with the good model', { timeout: 120_000 }, async () => {
    const session = await EngineSession.create({ backend: process.env.DEEPVIS_BACKEND ?? 'wasm', model: GOOD, modelsDir: models });
    try {
      const hello = validReply(await within(20_000, 'hello', session.handle({ type: 'hello', seq: 1 })));
      if (hello.type !== 'hello') throw new Error(hello.type);
      expect(hello.models.filter((m) => m.installed).map((m) => m.id)).toEqual([GOOD]);
      const load = validReply(await session.handle({ type: 'loadModel', id: 'fifo-model-json', seq: 2 }));
      expect(load).toMatchObject({ type: 'error', seq: 2, message: expect.stringMatching(/FIFO.*still running mobilenet-v1-0\.25/) });
      const f = validReply(await within(20_000, 'frame', session.handle({ type: 'frame', frameId: 1, width: 224, height: 224, rgba: dogRgba, layer: 'pw5', unit: 3 })));
      if (f.type !== 'frame') throw new Error(JSON.stringify(f).slice(0, 300));
      expect(f.top5[0]!.name).toMatch(SLED_DOG);
    } finally {
      await session.dispose();
    }
  });
});

describe('fuzzing the model folder', () => {
  const SEED = Number(process.env.DEEPVIS_FUZZ_SEED ?? 20151203);
  const ROUNDS = Number(process.env.DEEPVIS_FUZZ_ROUNDS ?? 40);

  it(`${ROUNDS} random folders (descriptors, checksum lines, links, FIFOs, special files; seed ${SEED}): listing never hangs or throws, and never hides the good model`, { timeout: 300_000 }, async () => {
    const rand = mulberry32(SEED);
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
    const names = ['model.json', 'SHA256SUMS', 'deepvis.json', 'group1-shard1of1', 'classes.json', 'sub/model.json', '../model.json', '../../etc/hostname', '/etc/hostname', '/dev/zero', 'a\u0000b', '.', '..', '', 'x'.repeat(300), 'group1-shard1of1/../model.json'];
    const specials: ((p: string) => void)[] = [
      (p) => mkfifo(p),
      (p) => symlinkSync('/dev/zero', p),
      (p) => symlinkSync('/etc/hostname', p),
      (p) => symlinkSync(p, p), // a loop
      (p) => symlinkSync(join(REPO, 'models', GOOD, 'model.json'), p),
      (p) => mkdirSync(p),
      (p) => writeFileSync(p, ''),
      (p) => writeFileSync(p, '{"id": 1'),
      (p) => truncateSync((writeFileSync(p, ''), p), 80 * 1024 * 1024),
    ];
    const models = linkedModelsDir('deepvis-fuzz-models-', [GOOD]);
    try {
      const good = readFileSync(join(REPO, 'models', GOOD, 'deepvis.json'), 'utf8');
      for (let round = 0; round < ROUNDS; round++) {
        const dir = join(models, `fuzz-${round}`);
        mkdirSync(dir);
        const d = JSON.parse(good);
        d.id = rand() < 0.2 ? GOOD : rand() < 0.1 ? `fuzz-${round - 1}` : `fuzz-${round}`;
        if (rand() < 0.5) d.weights = { modelJson: pick(names), checksums: pick(names) };
        if (rand() < 0.3) d.classes.names = pick(names);
        if (rand() < 0.2) d.inputSize = pick([[0, 0], [6000, 6000], ['a', 1], null]);
        const descriptor = rand() < 0.1 ? pick(['', '[]', 'null', '{', JSON.stringify(d).slice(0, 40)]) : JSON.stringify(d);
        if (rand() < 0.15) pick(specials)(join(dir, 'deepvis.json'));
        else writeFileSync(join(dir, 'deepvis.json'), descriptor);
        for (const file of ['model.json', 'SHA256SUMS', 'group1-shard1of1', 'classes.json']) {
          const r = rand();
          if (r < 0.35) pick(specials)(join(dir, file));
          else if (r < 0.6 && file === 'SHA256SUMS') {
            const lines = Array.from({ length: 1 + Math.floor(rand() * 4) }, () => `${rand() < 0.5 ? 'f'.repeat(64) : 'zz'}  ${pick(names)}`);
            writeFileSync(join(dir, file), lines.join(pick(['\n', '\r\n'])));
          } else if (r < 0.8) writeFileSync(join(dir, file), readFileSync(join(REPO, 'models', GOOD, file === 'classes.json' ? 'model.json' : file)));
        }
        let entries: ModelEntry[];
        try {
          entries = await within(20_000, `listModels (seed ${SEED}, round ${round})`, listModels(models));
        } catch (e) {
          throw new Error(`seed ${SEED}, round ${round}: listModels failed: ${(e as Error).message}`);
        }
        expect(entries.find((e) => e.id === GOOD), `round ${round}`).toMatchObject({ problem: null, dir: join(models, GOOD) });
        expect(new Set(entries.map((e) => e.id)).size, `round ${round}: ids are unique`).toBe(entries.length);
        for (const e of entries) if (e.problem !== null) expect(e.problem, `round ${round} ${e.id}`).not.toMatch(/\n/);
        const bad = entries.find((e) => e.id === `fuzz-${round}`);
        if (bad && bad.problem === null) {
          // It happens to be a working model: it must then really load.
          (await loadModel(bad.id, models)).dispose();
        }
      }
    } finally {
      rmSync(models, { recursive: true, force: true });
    }
  });
});

describe('stopping an index run during its folder walk', () => {
  it('returns within 1 s, reports the walk’s progress meanwhile, and indexes nothing', { timeout: 180_000 }, async () => {
    const { startIndexing } = await import('../main/engine/topk/indexing.js');
    const { TopKIndexer } = await import('../main/engine/topk/indexer.js');
    // 30 × 30 × 30 folders, one photo at the bottom: a walk of 27,931 folders.
    const tree = join(work, 'tree');
    for (let a = 0; a < 30; a++) for (let b = 0; b < 30; b++) for (let c = 0; c < 30; c++) mkdirSync(join(tree, `a${a}`, `b${b}`, `c${c}`), { recursive: true });
    writeFileSync(join(tree, 'a29', 'b29', 'c29', 'dog.jpg'), readFileSync(photo('dog')));
    await selectBackend(process.env.DEEPVIS_BACKEND ?? 'wasm');
    const model = await loadModel(GOOD);
    try {
      const indexer = TopKIndexer.create(model, 4);
      const seen: { folders: number }[] = [];
      const job = startIndexing(indexer, [tree], { onListing: (w) => seen.push(w) });
      let finished = false;
      void job.done.finally(() => (finished = true));
      while (seen.length < 1 && !finished) await new Promise((r) => setTimeout(r, 10));
      expect(finished, 'the walk reported no progress before it ended').toBe(false);
      const t0 = performance.now();
      const r = await job.stop();
      const stopMs = performance.now() - t0;
      expect(stopMs).toBeLessThan(1000);
      expect(r.aborted).toBe(true);
      expect(r.added).toBe(0);
      expect(seen.at(-1)!.folders).toBeGreaterThan(0);
      expect(seen.at(-1)!.folders).toBeLessThan(27_931); // stopped mid-walk, not after it
      indexer.dispose();
    } finally {
      model.dispose();
    }
  });
});

/** Rewrite one weight shard of a copied model (SHA256SUMS removed: a user's own edited model). */
function rewriteShard(dir: string, shard: string, fill: (v: Float32Array) => void): void {
  rmSync(join(dir, 'SHA256SUMS'));
  const b = readFileSync(join(dir, shard));
  const v = new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
  fill(v);
  writeFileSync(join(dir, shard), Buffer.from(v.buffer));
}

describe('a model declaring an input the engine cannot run', () => {
  let models: string;
  beforeAll(async () => {
    models = linkedModelsDir('deepvis-huge-input-', [GOOD]);
    // A real tfjs-layers model whose input is 6000×6000 (tiny weights: building it allocates no activation).
    const tfl = await import('@tensorflow/tfjs');
    const net = tfl.sequential({
      layers: [
        tfl.layers.conv2d({ inputShape: [6000, 6000, 3], filters: 2, kernelSize: 3, activation: 'relu', name: 'conv1', kernelInitializer: tfl.initializers.heNormal({ seed: 1 }) }),
        tfl.layers.globalAveragePooling2d({ name: 'gap' }),
        tfl.layers.dense({ units: 3, activation: 'softmax', name: 'head', kernelInitializer: tfl.initializers.glorotUniform({ seed: 2 }) }),
      ],
    });
    await saveBareFolder(net, join(models, 'huge-inferred'));
    // The same files with a written descriptor saying so.
    const written = join(models, 'huge-written');
    mkdirSync(written);
    for (const f of readdirSync(join(models, 'huge-inferred'))) writeFileSync(join(written, f), readFileSync(join(models, 'huge-inferred', f)));
    writeFileSync(
      join(written, 'deepvis.json'),
      JSON.stringify({ id: 'huge-written', title: 'huge', inputSize: [6000, 6000], preprocess: { scale: 1 / 255, offset: 0 }, layers: [{ name: 'conv1', display: 'conv1' }] }),
    );
    net.dispose();
    await selectBackend(process.env.DEEPVIS_BACKEND ?? 'wasm');
  });
  afterAll(() => rmSync(models, { recursive: true, force: true }));

  const WHY = /the model's input is 6000×6000 px, larger than the 1024 px per side the engine runs .* — export the model with an input of at most 1024×1024$/;

  it('is listed with a one-line reason naming the file and what fits, inferred or written; refused at load; the good model still loads', async () => {
    const entries = new Map((await within(20_000, 'listModels', listModels(models))).map((e) => [e.id, e]));
    expect(entries.get(GOOD)).toMatchObject({ problem: null });
    for (const [id, file] of [['huge-inferred', 'model.json'], ['huge-written', 'deepvis.json']] as const) {
      const e = entries.get(id);
      expect(e, id).toBeDefined();
      expect(e!.problem, id).toMatch(WHY);
      expect(e!.problem, id).toContain(join(models, id, file));
      await expect(loadModel(id, models), id).rejects.toThrow(WHY);
    }
    (await loadModel(GOOD, models)).dispose();
  });

  it('`deepvis models` lists it with that reason; `deepvis classify` with it exits 1 (model cannot be loaded) saying so', { timeout: 120_000 }, async () => {
    const list = await runDeepvis(['--models-dir', models, 'models']);
    expect(list.code, list.stderr).toBe(0);
    expect(list.stdout).toMatch(/huge-inferred[^\n]*\n\s*CANNOT BE READ: .*huge-inferred\/model\.json: the model's input is 6000×6000 px/);
    const r = await runDeepvis(['--models-dir', models, 'classify', '--model', 'huge-inferred', photo('dog')]);
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr.trim().split('\n')).toEqual([expect.stringMatching(/^deepvis: model huge-inferred cannot be loaded: .*the model's input is 6000×6000 px, larger than the 1024 px per side/)]);
  });
});

describe('non-finite numbers', () => {
  let models: string;
  let dogRgba: Uint8Array;
  beforeAll(async () => {
    models = linkedModelsDir('deepvis-nan-models-', [GOOD]);
    // Finite weights whose logits overflow: ±3e38 alternating in the classifier's kernel sum to ±Infinity and NaN.
    rewriteShard(copyModel(models, 'overflow'), 'group29-shard1of1', (v) => v.forEach((_, i) => (v[i] = i % 2 ? 3e38 : -3e38)));
    rewriteShard(copyModel(models, 'nan-weights'), 'group1-shard1of1', (v) => (v[5] = NaN));
    dogRgba = await rgbaOf('dog');
    await selectBackend(process.env.DEEPVIS_BACKEND ?? 'wasm');
  });
  afterAll(() => rmSync(models, { recursive: true, force: true }));

  it('a model with NaN weights is refused at load, naming the weight', async () => {
    await expect(loadModel('nan-weights', models)).rejects.toThrow(/^model nan-weights: weight conv1\/kernel in the files of .*nan-weights\/model\.json holds NaN — the weights are damaged/);
  });

  it('a frame whose results overflow gets a valid error reply naming the model and layer; the session answers the next frames', { timeout: 120_000 }, async () => {
    const session = await EngineSession.create({ backend: process.env.DEEPVIS_BACKEND ?? 'wasm', model: 'overflow', modelsDir: models });
    try {
      const frame = (frameId: number) => ({ type: 'frame', frameId, width: 224, height: 224, rgba: dogRgba, layer: 'pw5', unit: 3, seq: 100 + frameId }) as const;
      for (const id of [1, 2]) {
        const r = validReply(await within(20_000, 'frame', session.handle(frame(id))));
        expect(r).toMatchObject({ type: 'error', request: 'frame', frameId: id, seq: 100 + id, message: expect.stringMatching(/model overflow produced NaN or Infinity in its logits/) });
      }
      expect(validReply(await session.handle({ type: 'loadModel', id: GOOD, seq: 9 }))).toMatchObject({ type: 'loadModel', seq: 9 });
      const ok = validReply(await session.handle(frame(3)));
      if (ok.type !== 'frame') throw new Error(JSON.stringify(ok).slice(0, 300));
      expect(ok.top5[0]!.name).toMatch(SLED_DOG);
    } finally {
      await session.dispose();
    }
  });

  it('a synthesis on it (the window’s synthStart, on the job pool) ends with an error event naming the model and step, never a NaN preview or result', { timeout: 180_000 }, async () => {
    const session = await EngineSession.create({ backend: process.env.DEEPVIS_BACKEND ?? 'wasm', model: 'overflow', modelsDir: models });
    try {
      const c = collector();
      const started = await session.handle({ type: 'synthStart', layer: 'logits', unit: 'flamingo', preset: 'fast', seeds: 2, iterations: 20 }, c.client('nan'));
      if (started.type !== 'synthStarted') throw new Error(JSON.stringify(started));
      const end = await within(120_000, 'synthesis', c.until((e) => e.jobId === started.jobId && e.phase !== 'progress'));
      expect(end.phase).toBe('error');
      expect(end.message).toMatch(/^model overflow produced NaN or Infinity in its logits at step 1 of the synthesis — /);
      // No step's objective or probability reached the window as a number it cannot show.
      for (const e of c.events) for (const v of [...(e.objective ?? []), ...(e.targetProb ?? [])]) expect(Number.isFinite(v)).toBe(true);
      // The job pool is not broken by it: the next synthesis on the good model runs to the end.
      expect(validReply(await session.handle({ type: 'loadModel', id: GOOD, seq: 1 }))).toMatchObject({ type: 'loadModel' });
      const next = await session.handle({ type: 'synthStart', layer: 'logits', unit: 'flamingo', preset: 'fast', seeds: 1, iterations: 3 }, c.client('nan'));
      if (next.type !== 'synthStarted') throw new Error(JSON.stringify(next));
      const done = await within(120_000, 'synthesis', c.until((e) => e.jobId === next.jobId && e.phase !== 'progress'));
      expect(done.phase, done.message).toBe('done');
    } finally {
      await session.dispose();
    }
  });

  it('`deepvis classify` with it exits 1 with one line naming the layer, and prints no NaN%', { timeout: 120_000 }, async () => {
    const r = await runDeepvis(['--models-dir', models, 'classify', '--model', 'overflow', photo('dog')]);
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr.trim().split('\n')).toEqual([expect.stringMatching(/^deepvis: model overflow produced NaN or Infinity in its logits/)]);
    expect(r.stdout).not.toContain('NaN');
  });
});

describe('commands that write', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(work, 'out-'));
  });
  const snapshot = (d: string) => readdirSync(d).sort().map((f) => [f, readFileSync(join(d, f)).toString('base64').slice(0, 200), statSync(join(d, f)).size]);

  it('`deepvis explain --out` refuses the input photo itself and a symlink, and changes no file', { timeout: 120_000 }, async () => {
    const input = join(dir, 'dog.png');
    writeFileSync(input, await sharp(photo('dog')).png().toBuffer());
    const victim = join(dir, 'victim.txt');
    writeFileSync(victim, 'keep me');
    symlinkSync(victim, join(dir, 'link.png'));
    const before = snapshot(dir);
    const cases: [string, RegExp][] = [
      [input, /refusing to write .*dog\.png: it is the input .*dog\.png — choose another output name/],
      [join(dir, '.', 'sub', '..', 'dog.png'), /it is the input/],
      [join(dir, 'link.png'), /refusing to write .*link\.png: it is a symbolic link \(not followed\)/],
    ];
    for (const [out, why] of cases) {
      const r = await runDeepvis(['explain', '--model', GOOD, '--mode', 'backprop', '--out', out, input]);
      expect(r.code, `${out}: ${r.stderr}`).toBe(2);
      const lines = r.stderr.trim().split('\n');
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatch(/^deepvis: refusing to write /);
      expect(lines[0]).toMatch(why);
    }
    // Grad-CAM's second output (<out>.overlay.png) is checked as well.
    const overlayTarget = join(dir, 'cam.png');
    symlinkSync(victim, join(dir, 'cam.overlay.png'));
    const r = await runDeepvis(['explain', '--model', GOOD, '--mode', 'gradcam', '--out', overlayTarget, input]);
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr).toMatch(/cam\.overlay\.png: it is a symbolic link/);
    rmSync(join(dir, 'cam.overlay.png'));
    expect(snapshot(dir)).toEqual(before);
    expect(readFileSync(victim, 'utf8')).toBe('keep me');
  });

  it('`deepvis synth`: --seed-base abc and a file where the output folder should be are usage errors (exit 2); nothing is written', { timeout: 120_000 }, async () => {
    const before = snapshot(dir);
    const seed = await runDeepvis(['synth', '--model', GOOD, '--layer', 'logits', '--unit', '1', '--seed-base', 'abc', '--out', join(dir, 'synth')]);
    expect(seed.code, seed.stderr).toBe(2);
    expect(seed.stderr).toMatch(/--seed-base.*expected a whole number/);
    const file = join(dir, 'victim.txt');
    const eexist = await runDeepvis(['synth', '--model', GOOD, '--layer', 'logits', '--unit', '1', '--iterations', '1', '--out', file]);
    expect(eexist.code, eexist.stderr).toBe(2);
    expect(eexist.stderr.trim().split('\n')).toEqual([expect.stringMatching(/^deepvis: cannot use .*victim\.txt as the output folder: it is a file \(EEXIST\)/)]);
    expect(snapshot(dir)).toEqual(before);
  });

  it('`deepvis synth --seeds 9 --size 1024` on darknet-tiny is refused before it runs (exit 2), saying what fits; nothing is written', { timeout: 120_000 }, async () => {
    const before = snapshot(dir);
    const out = join(dir, 'big-synth');
    const t0 = Date.now();
    const r = await runDeepvis(['synth', '--model', 'darknet-tiny', '--layer', 'logits', '--unit', '1', '--seeds', '9', '--size', '1024', '--out', out]);
    expect(r.code, r.stderr).toBe(2);
    const lines = r.stderr.trim().split('\n').filter((l) => !l.startsWith('deepvis: note:'));
    expect(lines).toEqual([expect.stringMatching(/^deepvis: 9 seeds at 1024 px need ~\d+(\.\d)? GB on darknet-tiny, more than .*; (at most \d seeds fit|not even one fits) at 1024 px, or \d at 224 px \(--seeds 9, --size 1024\)$/)]);
    expect(Date.now() - t0).toBeLessThan(60_000); // refused up front, not after a trap part-way
    expect(snapshot(dir)).toEqual(before);
    // What the line says fits does run.
    const fits = await runDeepvis(['synth', '--model', 'darknet-tiny', '--layer', 'logits', '--unit', '1', '--seeds', '1', '--size', '224', '--iterations', '1', '--out', out, '--json']);
    expect(fits.code, fits.stderr).toBe(0);
    rmSync(out, { recursive: true, force: true });
  });

  // Root writes anywhere: the read-only case runs the CLI as an unprivileged user where that is
  // possible — and where that user can read the checkout (a clone inside a 0700 mktemp folder cannot).
  const asNobody = ['--reuid=65534', '--regid=65534', '--clear-groups'];
  const canDrop =
    process.getuid?.() === 0 &&
    spawnSync('setpriv', ['--version']).status === 0 &&
    spawnSync('setpriv', [...asNobody, 'test', '-r', join(REPO, 'bin/deepvis.mjs')]).status === 0;
  it.skipIf(!canDrop)('a read-only output folder is reported as such (EACCES, exit 2) before any work, not as ENOENT', { timeout: 120_000 }, async () => {
    const ro = mkdtempSync(join(tmpdir(), 'deepvis-ro-'));
    try {
      chmodSync(ro, 0o555);
      const r = spawnSync(
        'setpriv',
        [...asNobody, process.execPath, join(REPO, 'bin/deepvis.mjs'), '--models-dir', join(REPO, 'models'), 'synth', '--model', GOOD, '--layer', 'logits', '--unit', '1', '--out', ro],
        { encoding: 'utf8', env: { ...process.env, HOME: tmpdir() }, timeout: 100_000 },
      );
      expect(r.status, r.stderr).toBe(2);
      expect(r.stderr.trim().split('\n')).toEqual([expect.stringMatching(new RegExp(`^deepvis: cannot write ${ro}/…: permission denied in ${ro} \\(EACCES\\) — the folder is read-only for you`))]);
      expect(readdirSync(ro)).toEqual([]);
    } finally {
      rmSync(ro, { recursive: true, force: true });
    }
  });

  it('write errors name the file and their cause, with the exit code of the cause', async () => {
    const { writeError } = await import('../main/cli/output-file.js');
    const err = (code: string) => Object.assign(new Error(`${code}: something`), { code });
    const f = '/data/out/x.png';
    expect(writeError(f, err('ENOSPC'))).toMatchObject({ exitCode: 1, message: 'cannot write /data/out/x.png: no space left on the device (ENOSPC) — free some space or choose another --out' });
    expect(writeError(f, err('EROFS'))).toMatchObject({ exitCode: 2, message: expect.stringMatching(/\/data\/out is on a read-only file system \(EROFS\)/) });
    expect(writeError(f, err('EACCES'))).toMatchObject({ exitCode: 2, message: expect.stringMatching(/permission denied in \/data\/out \(EACCES\) — the folder is read-only for you/) });
  });

  it('a failed run removes what it already wrote (no partial result), and the error names the file', async () => {
    const { OutputFiles } = await import('../main/cli/output-file.js');
    const out = mkdtempSync(join(work, 'partial-'));
    const files = new OutputFiles();
    // The second write fails: its name is taken by a folder (as a full disk would fail it mid-run).
    mkdirSync(join(out, 'b.png'));
    await expect(files.run(async (f) => {
      await f.write(join(out, 'a.png'), 'first');
      await f.write(join(out, 'b.png'), 'second');
    })).rejects.toThrow(/b\.png: it exists and is not a regular file/);
    expect(readdirSync(out)).toEqual(['b.png']);
  });
});

describe('images', () => {
  it('a transparent PNG is classified as shown over white, not by its hidden RGB; an RGBA frame likewise', async () => {
    const { decodeImage, rgbaToModelPixels } = await import('../main/engine/images.js');
    // Fully transparent pixels hiding pure red, and half-transparent black.
    const hidden = await sharp({ create: { width: 64, height: 64, channels: 4, background: { r: 255, g: 0, b: 0, alpha: 0 } } }).png().toBuffer();
    const img = await decodeImage(hidden, 'hidden.png');
    expect([...img.data.subarray(0, 3)]).toEqual([255, 255, 255]);
    const half = await decodeImage(await sharp({ create: { width: 8, height: 8, channels: 4, background: { r: 0, g: 0, b: 0, alpha: 0.5 } } }).png().toBuffer());
    expect(Math.abs(half.data[0]! - 128)).toBeLessThanOrEqual(1);
    const rgba = new Uint8Array(224 * 224 * 4); // a canvas of a transparent image: all zeros
    const px = rgbaToModelPixels(rgba, 224, 224, [224, 224]);
    expect(Array.from(px.dataSync().slice(0, 3))).toEqual([255, 255, 255]);
    px.dispose();
  });

  it('a 100-megapixel JPEG is classified with bounded memory (reduced while decoded)', { timeout: 180_000 }, async () => {
    const big = join(work, '100mp.jpg');
    await sharp({ create: { width: 10_000, height: 10_000, channels: 3, background: { r: 120, g: 80, b: 40 } } }).jpeg().toFile(big);
    // In a child process, so its peak resident memory is its own.
    const script = `import { loadImageForModel, selectBackend } from ${JSON.stringify(join(REPO, 'main/engine/index.ts'))};
      await selectBackend('cpu');
      const t = await loadImageForModel(process.argv[1], [224, 224]); await t.data();
      process.stdout.write(JSON.stringify({ peakMB: process.resourceUsage().maxRSS / 1024 }));`;
    const out = await run(['--import', 'tsx', '--input-type=module', '-e', script, big]);
    const { peakMB } = JSON.parse(out) as { peakMB: number };
    // A full raster would be 300 MB and its float tensors 2.4 GB more (3.0 GB measured before).
    expect(peakMB).toBeLessThan(800);
  });
});
