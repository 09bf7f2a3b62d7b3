// The presets beyond the paper and what a person relies on while one runs: the fast presets stop
// when the class is recognised (or at the user's time budget); the first step already shows a
// visible image; every θ a preset offers changes its result and the others are refused; MACO keeps
// its amplitude spectrum; "from this frame" stays near the person's picture while raising the unit.
import * as tf from '@tensorflow/tfjs-core';
import sharp from 'sharp';
import { beforeAll, describe, expect, it } from 'vitest';
import { PRESETS, PRESET_NAMES, SynthStartRequest, THETAS, type SynthOverrides, type SynthSettings, type Theta } from '../contract/synthesis.js';
import { loadModel, resolveClass, selectBackend, type Model } from '../main/engine/index.js';
import { prepareSynthJob, runSynthJob, type SynthJobSpec } from '../main/engine/synthesis/jobs.js';
import { decorrelate, macoParam, presetSettings, synthesize, type SynthProgress } from '../main/engine/synthesis/index.js';
import { photo } from './support/fixtures.js';

let model: Model;
beforeAll(async () => {
  await selectBackend('wasm');
  model = await loadModel('mobilenet-v1-0.25');
});

const classOf = (wnid: string) => ({ kind: 'class' as const, index: resolveClass(model.classes, wnid, model.id).index });

/** A photo as centred-free 0…255 pixels [1,h,w,3] and as RGBA bytes (what the renderer sends). */
async function photoPixels(name: 'dog' | 'eagle', size: number): Promise<{ pixels: tf.Tensor4D; rgba: Uint8Array }> {
  const { data } = await sharp(photo(name)).resize(size, size).ensureAlpha().raw().toBuffer({ resolveWithObject: true });
  const rgba = new Uint8Array(data);
  const rgb = new Float32Array(size * size * 3);
  for (let i = 0; i < size * size; i++) for (let c = 0; c < 3; c++) rgb[i * 3 + c] = rgba[i * 4 + c]!;
  return { pixels: tf.tensor4d(rgb, [1, size, size, 3]), rgba };
}

function std(bytes: Uint8Array): number {
  let m = 0;
  for (const b of bytes) m += b;
  m /= bytes.length;
  let v = 0;
  for (const b of bytes) v += (b - m) ** 2;
  return Math.sqrt(v / bytes.length);
}

describe('stop rule and time budget', () => {
  /** The step at which the last `window` probabilities first all reached `prob`, or −1. */
  const heldAt = (probs: number[], prob: number, window: number) => {
    let run = 0;
    return probs.findIndex((p) => (run = p >= prob ? run + 1 : 0) >= window);
  };

  it('a fast run stops a fixed number of steps after every seed has held p ≥ 0.9 for the rule’s window, before its iteration cap', async () => {
    const probs: number[] = [];
    const s = presetSettings('fast');
    const r = await synthesize({ model, objective: classOf('n02279972'), settings: s, seeds: [3], size: [160, 160], onProgress: (p) => probs.push(p.targetProb![0]!) });
    expect(r.stopReason).toBe('recognised');
    expect(r.iterations).toBe(probs.length);
    const { prob, window, after } = s.stop!;
    const held = heldAt(probs, prob, window);
    expect(held).toBeGreaterThanOrEqual(0);
    // It went on exactly `after` steps past the first held window (the images transfer better), then stopped.
    expect(r.iterations).toBe(held + 1 + after);
    expect(r.iterations).toBeLessThan(s.iterations);
    expect(r.images[0]!.top5![0]!.name).toMatch(/^monarch/);
  });

  it('the rule’s `after` only lengthens the run: with 0 it stops as soon as the window holds, with 7 seven steps later on the same path', async () => {
    const run = async (after: number) => {
      const probs: number[] = [];
      const s = presetSettings('fast');
      s.stop = { ...s.stop!, after };
      const r = await synthesize({ model, objective: classOf('n02279972'), settings: s, seeds: [3], size: [128, 128], onProgress: (p) => probs.push(p.targetProb![0]!) });
      return { r, probs, s };
    };
    const a = await run(0);
    const b = await run(7);
    const held = heldAt(a.probs, a.s.stop!.prob, a.s.stop!.window);
    expect(a.r.stopReason).toBe('recognised');
    expect(a.r.iterations).toBe(held + 1);
    expect(b.r.stopReason).toBe('recognised');
    expect(b.r.iterations).toBe(held + 1 + 7);
    expect(b.probs.slice(0, a.probs.length)).toEqual(a.probs);
  });

  it('a channel’s fast run stops once its best objective has plateaued over the rule’s window, with nearly all that 150 steps reach', async () => {
    const s = presetSettings('fast');
    const objective = { kind: 'channel' as const, layer: 'conv_dw_7_relu', channel: 2 };
    const r = await synthesize({ model, objective, settings: s, seeds: [1], size: [160, 160] });
    expect(r.stopReason).toBe('plateau');
    expect(r.iterations).toBeLessThan(s.iterations);
    const best: number[] = [];
    for (const v of r.images[0]!.curve) best.push(Math.max(best.at(-1) ?? -Infinity, v));
    const { plateau, plateauWindow } = s.stop!;
    const last = best.at(-1)!;
    expect(last - best.at(-1 - plateauWindow)!).toBeLessThanOrEqual(plateau * Math.abs(last));
    // The same seed run on without the rule: it had not stopped while the image was still forming
    // (a 4-step window at 2 % stopped this channel after 15 steps at 70 % of this).
    const longer = await synthesize({ model, objective, settings: { ...s, stop: null, iterations: 150 }, seeds: [1], size: [160, 160] });
    expect(longer.images[0]!.curve.slice(0, r.iterations)).toEqual(r.images[0]!.curve);
    expect(r.images[0]!.objectiveBest).toBeGreaterThan(0.9 * longer.images[0]!.objectiveBest);
  });

  it('the user’s time budget ends a run that would otherwise go on', async () => {
    const s: SynthSettings = { ...presetSettings('fast'), stop: null, timeBudgetS: 1.5, iterations: 10_000 };
    const r = await synthesize({ model, objective: classOf('n07753592'), settings: s, seeds: [1], size: [128, 128] });
    expect(r.stopReason).toBe('budget');
    expect(r.seconds).toBeGreaterThanOrEqual(1.5);
    expect(r.iterations).toBeLessThan(10_000);
  });

  it('paper presets keep the paper’s count', async () => {
    const s = presetSettings('paper-3');
    expect(s.stop).toBeNull();
    s.iterations = 12;
    const r = await synthesize({ model, objective: classOf('n02007558'), settings: s, seeds: [1], size: [96, 96] });
    expect(r.stopReason).toBe('iterations');
    expect(r.iterations).toBe(12);
  });
});

describe('preview', () => {
  it.each(['fast', 'paper-3', 'maco'] as const)('%s: the first step already carries a preview of every seed, not a grey field', async (preset) => {
    // As an engine worker runs it: prepared from the spec, then run to its end.
    const spec: SynthJobSpec = { layer: 'logits', unit: 'n02007558', preset, seeds: 2, size: 128, iterations: 3 };
    const seen: SynthProgress[] = [];
    const result = await runSynthJob(model, spec, prepareSynthJob(model, spec), new AbortController().signal, (p) => seen.push(p));
    const p = seen[0]!;
    // Sent before the first gradient: the start image.
    expect(p.iteration).toBe(0);
    expect(p.objective).toEqual([]);
    expect(p.preview!.images).toHaveLength(2);
    expect(p.preview!.width).toBe(128);
    for (const im of p.preview!.images) {
      expect(im.length).toBe(128 * 128 * 3);
      expect(std(im), 'preview pixel spread in grey levels').toBeGreaterThan(15);
    }
    // And the first step's own event carries the image after it, too.
    const step0 = seen[1]!;
    expect(step0.iteration).toBe(0);
    expect(step0.objective).toHaveLength(2);
    expect(result.cancelled).toBe(false);
    expect(result.images).toHaveLength(2);
  });

  it('progress says "recognised" once the class passes the threshold', async () => {
    const seen: SynthProgress[] = [];
    await synthesize({ model, objective: classOf('n02279972'), settings: presetSettings('fast'), seeds: [3], size: [160, 160], onProgress: (p) => seen.push(p) });
    const firstHit = seen.findIndex((p) => p.targetProb![0]! >= 0.9);
    expect(firstHit).toBeGreaterThan(0);
    expect(seen.slice(0, firstHit).every((p) => !p.recognised)).toBe(true);
    expect(seen[firstHit]!.recognised).toBe(true);
  });
});

describe('θ sliders mean what they say', () => {
  // For each θ: two override sets that differ only in it (with the partner θ a blur needs to act).
  const CHANGE: Record<Theta, [SynthOverrides, SynthOverrides]> = {
    decay: [{ decay: 0 }, { decay: 0.3 }],
    blurWidth: [{ blurEvery: 1, blurWidth: 0.5 }, { blurEvery: 1, blurWidth: 2 }],
    blurEvery: [{ blurWidth: 1, blurEvery: 1 }, { blurWidth: 1, blurEvery: 3 }],
    normPct: [{ normPct: 0 }, { normPct: 50 }],
    contribPct: [{ contribPct: 0 }, { contribPct: 80 }],
    jitter: [{ jitter: 0 }, { jitter: 8 }],
    closeness: [{ closeness: 0 }, { closeness: 0.5 }],
    timeBudgetS: [{ timeBudgetS: 0 }, { timeBudgetS: 0.001 }],
  };
  const run = async (preset: keyof typeof PRESETS, o: SynthOverrides, start?: tf.Tensor4D) => {
    const settings: SynthSettings = { ...presetSettings(preset), ...o, iterations: 4, stop: null };
    const r = await synthesize({ model, objective: classOf('n02007558'), settings, seeds: [1], size: [64, 64], start });
    return Buffer.from(r.images[0]!.rgb);
  };

  for (const preset of PRESET_NAMES) {
    const def = PRESETS[preset];
    it(`${preset}: each declared θ (${def.thetas.join(', ')}) changes the image`, async () => {
      const start = def.kind === 'frame' ? (await photoPixels('dog', 64)).pixels : undefined;
      for (const k of def.thetas) {
        const [a, b] = CHANGE[k];
        expect(Buffer.compare(await run(preset, a, start), await run(preset, b, start)), `${preset} ${k}`).not.toBe(0);
      }
      start?.dispose();
    });

    it(`${preset}: every other θ is refused by the contract and by the engine`, () => {
      const others = THETAS.filter((k) => !(def.thetas as readonly string[]).includes(k));
      for (const k of others) {
        const overrides = { [k]: CHANGE[k][1][k] } as SynthOverrides;
        const frame = def.kind === 'frame' ? { width: 2, height: 2, rgba: new Uint8Array(16) } : undefined;
        const parsed = SynthStartRequest.safeParse({ type: 'synthStart', layer: 'logits', unit: 1, preset, seeds: 1, overrides, frame });
        expect(parsed.success, `${preset} ${k}`).toBe(false);
        expect(parsed.error!.issues[0]!.message).toMatch(new RegExp(`${k} does not apply to preset ${preset}`));
        expect(() => prepareSynthJob(model, { layer: 'logits', unit: 1, preset, seeds: 1, overrides, frame })).toThrow(/does not apply/);
      }
    });
  }

  it('the seed limit is one number: the contract and the engine refuse the same count', () => {
    const ok = SynthStartRequest.safeParse({ type: 'synthStart', layer: 'logits', unit: 1, preset: 'fast', seeds: 9 });
    const tooMany = SynthStartRequest.safeParse({ type: 'synthStart', layer: 'logits', unit: 1, preset: 'fast', seeds: 10 });
    expect(ok.success).toBe(true);
    expect(tooMany.success).toBe(false);
    expect(() => prepareSynthJob(model, { layer: 'logits', unit: 1, preset: 'fast', seeds: 10 })).toThrow(/seeds must be 1…9/);
  });
});

describe('parameterisations', () => {
  it('MACO: optimising the phase leaves the amplitude spectrum of each colour component unchanged', async () => {
    const h = 64;
    const w = 64;
    const p = macoParam(1, h, w, [5]);
    // The decorrelated components, recovered from the image: their spectrum is what MACO fixes.
    const spectrum = (img: tf.Tensor4D) => {
      const d = tf.reshape(decorrelate(img), [-1, 3]).arraySync() as number[][];
      const amps: number[] = [];
      // |DFT| at the interior bins (1 ≤ v ≤ band), channel 0, computed directly.
      for (let u = 0; u <= 4; u++) for (let v = 1; v <= 4; v++) {
        let re = 0;
        let im = 0;
        for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) {
          const a = (-2 * Math.PI * (u * y)) / h + (-2 * Math.PI * (v * x)) / w;
          re += d[y * w + x]![0]! * Math.cos(a);
          im += d[y * w + x]![0]! * Math.sin(a);
        }
        amps.push(Math.hypot(re, im));
      }
      return amps;
    };
    const img0 = p.image();
    const a0 = spectrum(img0);
    // A large phase change, as many optimiser steps would make.
    const phase = p.params[0]!;
    phase.assign(tf.add(phase, tf.randomUniform(phase.shape, -2, 2, 'float32', 9)));
    const img1 = p.image();
    const a1 = spectrum(img1);
    const moved = tf.mean(tf.abs(tf.sub(img1, img0))).dataSync()[0]!;
    expect(moved, 'the image itself changed').toBeGreaterThan(10);
    a0.forEach((a, i) => expect(Math.abs(a1[i]! - a) / a, `bin ${i}`).toBeLessThan(1e-3));
    // And the amplitude follows 1/f: bin (0,1) carries twice the amplitude of bin (0,2).
    expect(a0[0]! / a0[1]!).toBeCloseTo(2, 2);
    tf.dispose([img0, img1]);
    p.dispose();
  });

  it('MACO: raises the class and makes it the model’s top-1', async () => {
    const s = presetSettings('maco');
    const r = await synthesize({ model, objective: classOf('n02279972'), settings: s, seeds: [2], size: [160, 160] });
    const im = r.images[0]!;
    expect(im.objectiveBest).toBeGreaterThan(im.objectiveStart + 10);
    expect(im.top5![0]!.name).toMatch(/^monarch/);
  });
});

describe('from this frame', () => {
  it('starts at the photo, stays close to it (mean |Δ| ≤ 12 grey levels) and raises the unit', async () => {
    const size = 160;
    const { pixels, rgba } = await photoPixels('dog', size);
    const target = classOf('n02007558'); // flamingo, in a photo of a dog
    const r = await synthesize({ model, objective: target, settings: presetSettings('frame'), seeds: [1], size: [size, size], start: pixels });
    const im = r.images[0]!;
    let diff = 0;
    for (let i = 0; i < size * size; i++) for (let c = 0; c < 3; c++) diff += Math.abs(im.rgb[i * 3 + c]! - rgba[i * 4 + c]!);
    diff /= size * size * 3;
    expect(diff, 'mean absolute difference from the photo').toBeLessThanOrEqual(12);
    expect(diff, 'it did change the photo').toBeGreaterThan(1);
    expect(im.objectiveBest).toBeGreaterThan(im.objectiveStart + 5);
    pixels.dispose();
  });

  it('the request carries the frame; a wrong byte count is refused by the contract', () => {
    const good = SynthStartRequest.safeParse({ type: 'synthStart', layer: 'logits', unit: 1, preset: 'frame', seeds: 1, frame: { width: 4, height: 2, rgba: new Uint8Array(32) } });
    expect(good.success).toBe(true);
    const bad = SynthStartRequest.safeParse({ type: 'synthStart', layer: 'logits', unit: 1, preset: 'frame', seeds: 1, frame: { width: 4, height: 2, rgba: new Uint8Array(31) } });
    expect(bad.success).toBe(false);
    const missing = SynthStartRequest.safeParse({ type: 'synthStart', layer: 'logits', unit: 1, preset: 'frame', seeds: 1 });
    expect(missing.error!.issues[0]!.message).toMatch(/starts from a frame/);
    const huge = SynthStartRequest.safeParse({ type: 'synthStart', layer: 'logits', unit: 1, preset: 'frame', seeds: 1, frame: { width: 5000, height: 1, rgba: new Uint8Array(20000) } });
    expect(huge.success).toBe(false);
  });
});
