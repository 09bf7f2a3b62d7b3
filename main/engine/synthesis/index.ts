// Synthesis: the paper's regularised optimisation (settings, regularisers, step sizes, run loop),
// the fast mode, and what-to-synthesise resolution.
export { PRESETS, PRESET_NAMES, presetSettings, SynthSettingsSchema, type PresetName, type SynthSettings, type StepPolicy } from './settings.js';
export { synthesize, toRgbBytes, type SynthRequest, type SynthProgress, type SynthResult, type SynthImage } from './run.js';
export { resolveTarget, isLogitsLayer, type ResolvedTarget } from './target.js';
export { decay, gaussianBlur, clipSmallNorm, clipSmallContribution, regularize } from './regularizers.js';
