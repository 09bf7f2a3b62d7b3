// The host's configuration: every variable of README's Configuration table read into its typed
// setting (with the defaults the table gives), and the command line honouring them through the one
// reading in main/host-config.ts — the engine itself reads no environment (tests/layering.test.ts).
import { mkdtempSync, rmSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { readHostConfig } from '../main/host-config.js';
import { runDeepvis } from './support/cli.js';

describe('readHostConfig', () => {
  it('with nothing set: the documented defaults', () => {
    const c = readHostConfig({});
    expect(c).toEqual({
      modelsDir: null,
      backend: null,
      ortThreads: null,
      workers: null,
      jobLiveFps: null,
      indexDir: join(homedir(), '.cache', 'deepvis', 'index'),
      atlasDir: join(homedir(), '.cache', 'deepvis', 'atlas'),
      stateDir: null,
      stateHome: join(homedir(), '.config', 'deepvis'),
      noState: false,
      port: null,
      debug: false,
      vulkanDriver: '',
    });
  });

  it('each variable lands in its setting', () => {
    const c = readHostConfig({
      DEEPVIS_MODELS_DIR: '/m1:/m2',
      DEEPVIS_BACKEND: 'onnx',
      DEEPVIS_ORT_THREADS: '3',
      DEEPVIS_WORKERS: '2',
      DEEPVIS_JOB_LIVE_FPS: '25',
      DEEPVIS_CACHE_DIR: '/c',
      DEEPVIS_ATLAS_DIR: '/a',
      DEEPVIS_STATE_DIR: '/s',
      XDG_CONFIG_HOME: '/cfg',
      DEEPVIS_NO_STATE: '1',
      DEEPVIS_PORT: '6000',
      DEEPVIS_DEBUG: '1',
      VK_ICD_FILENAMES: '/usr/share/vulkan/icd.d/lvp_icd.json',
    });
    expect(c).toEqual({
      modelsDir: '/m1:/m2',
      backend: 'onnx',
      ortThreads: 3,
      workers: 2,
      jobLiveFps: 25,
      indexDir: resolve('/c', 'index'),
      atlasDir: '/a',
      stateDir: '/s',
      stateHome: join('/cfg', 'deepvis'),
      noState: true,
      port: '6000',
      debug: true,
      vulkanDriver: '/usr/share/vulkan/icd.d/lvp_icd.json',
    });
  });

  it('the XDG homes place the caches when DeepVis’s own variables are unset; bad numbers are not settings', () => {
    const c = readHostConfig({ XDG_CACHE_HOME: '/xc', DEEPVIS_WORKERS: 'many', DEEPVIS_NO_STATE: 'yes', VK_DRIVER_FILES: '/vk.json' });
    expect(c.indexDir).toBe(resolve('/xc', 'deepvis', 'index'));
    expect(c.atlasDir).toBe(join('/xc', 'deepvis', 'atlas'));
    expect(c.workers).toBeNull();
    expect(readHostConfig({ DEEPVIS_JOB_LIVE_FPS: '0' }).jobLiveFps).toBeNull();
    expect(c.noState).toBe(false);
    expect(c.vulkanDriver).toBe('/vk.json');
    // A bad thread count is kept: selectBackend names it (and the variable) when ONNX Runtime starts.
    expect(readHostConfig({ DEEPVIS_ORT_THREADS: 'two' }).ortThreads).toBeNaN();
  });
});

describe('the command line honours the environment', () => {
  const work = mkdtempSync(join(tmpdir(), 'deepvis-host-config-'));
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  it('DEEPVIS_CACHE_DIR: `deepvis top` looks for the index in <dir>/index', { timeout: 60_000 }, async () => {
    const r = await runDeepvis(['top', '--model', 'mobilenet-v1-0.25', '--layer', 'pw5', '--unit', '0'], 60_000, { DEEPVIS_CACHE_DIR: work });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`no index for mobilenet-v1-0.25 in ${join(work, 'index')}`);
  });

  it('DEEPVIS_BACKEND: a backend that does not exist is refused by name, exit 2', { timeout: 60_000 }, async () => {
    const r = await runDeepvis(['classify', '--model', 'mobilenet-v1-0.25', join(work, 'none.jpg')], 60_000, { DEEPVIS_BACKEND: 'abacus' });
    expect(r.stderr).toContain('unknown backend "abacus"');
    expect(r.code).toBe(2);
  });
});
