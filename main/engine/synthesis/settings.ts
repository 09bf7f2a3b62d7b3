// Synthesis settings and the named presets are defined once, in contract/synthesis.ts (the window's
// sliders and the CLI's choices read the same table); the engine re-exports them.
//
// Step-size mapping. The paper's rates were tuned for CaffeNet, whose input WAS mean-subtracted
// pixels (one input unit = one grey level). Our models scale their input (MobileNet: x/127.5 − 1,
// Darknet: x/255), so "η × gradient" is ambiguous. We take the step in pixel units as
//     Δpixels = η · ∂a/∂(network input)  =  η · s · ∂a/∂pixels,   s = pixels per input unit
// (s = 127.5 for the MobileNets, 255 for darknet-tiny; Model.pixelScale). This keeps what η meant
// for Caffe — a step measured against the gradient in the network's own input units — and, as
// measured on these models, makes every tested class its model's top-1 under paper-3, whereas η
// applied literally to the pixel gradient leaves faint images (±9 grey levels) after 1000 steps.
// The "progress" policy uses the same gradient: η = min(η_max, progress / ‖∂a/∂input‖²).
export {
  PRESETS,
  PRESET_NAMES,
  DEFAULT_PRESET,
  SYNTH_LIMITS,
  StepPolicySchema,
  SynthSettingsSchema,
  presetDef,
  presetSettings,
  undeclaredThetas,
  type PresetDef,
  type PresetName,
  type StepPolicy,
  type StopRule,
  type StopReason,
  type SynthSettings,
  type SynthOverrides,
} from '../../../contract/synthesis.js';
