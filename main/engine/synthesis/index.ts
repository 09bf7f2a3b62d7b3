// Synthesis: the paper's regularised optimisation (settings, regularisers, step sizes, run loop),
// the fast mode, and what-to-synthesise resolution.
export { PRESETS, PRESET_NAMES, DEFAULT_PRESET, SYNTH_LIMITS, presetDef, presetSettings, undeclaredThetas, SynthSettingsSchema, type PresetName, type PresetDef, type SynthSettings, type StepPolicy, type StopReason } from './settings.js';
export { synthesize, toRgbBytes, previewBytes, type SynthRequest, type SynthProgress, type SynthResult, type SynthImage } from './run.js';
export { resolveTarget, isLogitsLayer, type ResolvedTarget } from './target.js';
export { decay, gaussianBlur, clipSmallNorm, clipSmallContribution, pullToward, regularize } from './regularizers.js';
export { pixelParam, macoParam, decorrelate, type Parameterization } from './parameterization.js';
export { Pyramid } from './pyramid.js';
