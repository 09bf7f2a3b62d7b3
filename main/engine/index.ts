// The engine's public surface: everything main/, web mode and the CLI may use.
export { selectBackend, describeBackend, currentBackend, BACKEND_ORDER, type BackendReport, type BackendChoice } from './backend.js';
export { listModels, loadModel, modelsDir, DEFAULT_MODEL_ID, type ModelEntry } from './model-store.js';
export { Model, type ClassInfo, type LayerInfo, type TopK, type ForwardOptions, type ForwardResult } from './model.js';
export { resolveClass } from './classes.js';
export {
  inputGradient,
  tapedInputGradient,
  objectiveFunction,
  objectiveNode,
  objectiveValue,
  describeObjective,
  type UnitObjective,
  type Position,
  type GradientResult,
} from './objectives.js';
export { decodeImage, loadImageForModel, rgbaToModelPixels, cropResize, encodePng, type RgbImage } from './images.js';
