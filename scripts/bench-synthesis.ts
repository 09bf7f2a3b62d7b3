// Synthesis figures for `npm run bench` (issue: synthesis targets):
//  synth_paper3_224_s      paper-3, 1000 iterations, one seed, 224 px (flamingo)
//  synth_fast_to_target_s  fast mode: seconds until the target class is top-1 with p ≥ 0.9,
//                          median over flamingo, bald eagle, monarch, school bus, banana
//  synth_step_ms           per preset, ms per step (20 steps), to compare with grad_ms_logit
import { resolveClass, type Model } from '../main/engine/index.js';
import { PRESET_NAMES, presetSettings, synthesize } from '../main/engine/synthesis/index.js';

export const TARGET_CLASSES = ['n02007558', 'n01614925', 'n02279972', 'n04146614', 'n07753592'];

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

const round = (x: number, d = 2) => Math.round(x * 10 ** d) / 10 ** d;

export async function benchSynthesis(m: Model, opts: { paper3Iterations?: number } = {}): Promise<Record<string, unknown>> {
  const flamingo = resolveClass(m.classes, TARGET_CLASSES[0]!, m.id).index;
  const stepMs: Record<string, number> = {};
  for (const p of PRESET_NAMES) {
    const s = presetSettings(p);
    s.iterations = 20;
    s.stopAtProb = 0;
    await synthesize({ model: m, objective: { kind: 'class', index: flamingo }, settings: s, seeds: [1] }); // warm-up
    const r = await synthesize({ model: m, objective: { kind: 'class', index: flamingo }, settings: s, seeds: [1] });
    stepMs[p] = round((r.seconds * 1000) / r.iterations);
  }
  const p3 = presetSettings('paper-3');
  if (opts.paper3Iterations) p3.iterations = opts.paper3Iterations;
  const paper3 = await synthesize({ model: m, objective: { kind: 'class', index: flamingo }, settings: p3, seeds: [1] });
  const toTarget: Record<string, number | null> = {};
  for (const wnid of TARGET_CLASSES) {
    const c = resolveClass(m.classes, wnid, m.id);
    const s = presetSettings('fast');
    s.stopAtProb = 0.9;
    const r = await synthesize({ model: m, objective: { kind: 'class', index: c.index }, settings: s, seeds: [1] });
    toTarget[c.name.split(',')[0]!] = r.secondsToTarget === null ? null : round(r.secondsToTarget);
  }
  const reached = Object.values(toTarget).filter((v): v is number => v !== null);
  return {
    synth_paper3_224_s: round(paper3.seconds, 1),
    synth_paper3_iterations: p3.iterations,
    synth_paper3_top1: paper3.images[0]!.top5![0]!.name.split(',')[0],
    synth_fast_to_target_s: reached.length === TARGET_CLASSES.length ? round(median(reached)) : null,
    synth_fast_to_target_per_class_s: toTarget,
    synth_step_ms: stepMs,
  };
}
