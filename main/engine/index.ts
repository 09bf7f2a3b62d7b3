// The engine's public surface: everything main/, web mode and the CLI may use.
export { selectBackend, describeBackend, currentBackend, BACKEND_ORDER, type BackendReport, type BackendChoice } from './backend.js';
export { listModels, loadModel, readModelFiles, modelFromFiles, modelFilesFrom, preprocessInfoOf, modelIdentity, readClasses, modelsDir, withModelsDir, DEFAULT_MODEL_ID, type ModelEntry, type ModelFiles } from './model-store.js';
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
export { decodeImage, loadImageForModel, rgbaToModelPixels, cropResize, cropGeometry, encodePng, type RgbImage, type CropGeometry } from './images.js';
// Back-projection and attribution.
export { backproject, backwardRule, describeTarget, targetNode, targetSeed, BACK_MODES, type BackMode, type BackTarget, type BackprojectOptions } from './backprojection.js';
export { gradCam, defaultGradCamLayer, jet, overlayHeat, type GradCamOptions, type GradCamResult } from './gradcam.js';
export {
  filterMap,
  displayBytes,
  toByteRange,
  rgbBytes,
  pixelNorm,
  gaussianBlur,
  DISPLAY_FILTERS,
  type DisplayFilter,
  type FilterOptions,
} from './display-filters.js';
// Receptive fields and the top-k image-patch index.
export {
  receptiveFields,
  regionOf,
  boxToOriginal,
  ReceptiveFields,
  type LayerField,
  type AxisField,
  type Box,
  type Region,
} from './receptive-field.js';
export { TopKIndex, defaultIndexDir, indexPath, lockIndex, DEFAULT_TOPK, type TopKHit, type ScannedFile, type UnreadableFile, type IndexedLayer } from './topk/index-file.js';
export { TopKIndexer, prepareImage, type OpenResult } from './topk/indexer.js';
export { TopKTable } from './topk/scoring.js';
export { startIndexing, indexFiles, type IndexJob, type IndexProgress, type IndexRunOptions, type IndexRunResult } from './topk/indexing.js';
export { listImageFiles, IMAGE_EXTENSIONS } from './topk/walk.js';
export { SessionTopK, type SessionTopKOptions, type SessionHit, type SessionCrop, type FramePixels } from './topk/session-memory.js';
