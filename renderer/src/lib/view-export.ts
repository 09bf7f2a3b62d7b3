// What the window's save buttons write (the file helpers are in export.ts): "save view" — every
// visible pane plus the settings and unit as JSON; "save unit" — the selected unit's activation,
// back-projection, synthesized seeds and top patches with their source paths; and one synthesized
// image with the settings it was made with.
import type { FrameReplyT, LayerInfoT, ModelInfo } from '../../../contract/messages';
import type { FolderPatchT } from '../../../contract/topk';
import type { Settings } from '../settings';
import type { BackController } from './back.svelte';
import { download, inputImage, paneFiles, pngBlob, safeName, synthImages, visibleCanvas, type PaneImage } from './export';
import { rgbCanvasElement } from './pixels';
import type { SynthController } from './synth.svelte';

/** What the exports read from the app. */
export interface ExportHost {
  readonly settings: Pick<Settings, 'camera'>;
  readonly backend: string;
  readonly model: ModelInfo | null;
  readonly layer: LayerInfoT | null;
  readonly cursor: number;
  readonly unitClassName: string | null;
  readonly top5: FrameReplyT['top5'];
  /** The selected unit's folder patches as shown. */
  readonly topPatches: FolderPatchT[];
  readonly input: { readonly source: string; readonly frozen: boolean; readonly imageName: string | null; readonly camera: { readonly video: HTMLVideoElement | null } };
  readonly panes: { readonly gamma: number; readonly channelBoost: number; readonly unitMax: number | null };
  readonly back: Pick<BackController, 'setting' | 'lastSource' | 'grid' | 'gradcam'>;
}

function baseName(h: ExportHost): string | null {
  const l = h.layer;
  const m = h.model;
  return l && m ? `${safeName(m.id)}_${safeName(l.display)}-${h.cursor}` : null;
}

function viewJson(h: ExportHost) {
  const l = h.layer!;
  return {
    app: 'DeepVis',
    savedAt: new Date().toISOString(),
    model: h.model!.id,
    layer: l.name,
    layerDisplay: l.display,
    unit: h.cursor,
    className: h.unitClassName,
    source: h.input.source,
    image: h.input.imageName,
    frozen: h.input.frozen,
    gamma: h.panes.gamma,
    channelBoost: h.panes.channelBoost,
    back: h.back.setting,
    backSource: h.back.lastSource,
    grid: h.back.grid,
    gradcam: h.back.gradcam,
    top5: h.top5,
    backend: h.backend,
  };
}

/** Every visible pane as PNG plus the settings and unit as JSON. */
export async function saveView(h: ExportHost): Promise<void> {
  const base = baseName(h);
  if (!base) return;
  const panes: PaneImage[] = [];
  const input = inputImage(h.input.camera.video, h.settings.camera.mirror);
  if (input) panes.push({ name: 'input', canvas: input });
  for (const [id, name] of [['grid-canvas', 'grid'], ['unit-canvas', 'unit'], ['back-canvas', 'back'], ['zoom-canvas', 'zoom']] as const) {
    const c = visibleCanvas(id);
    if (c && (id !== 'back-canvas' || h.back.setting)) panes.push({ name, canvas: c });
  }
  panes.push(...synthImages('synth'));
  await download(await paneFiles(base, panes, { name: 'view', value: viewJson(h) }));
}

/** The selected unit: activation map, back-projection, synthesized seeds and top patches with their source paths. */
export async function saveUnit(h: ExportHost): Promise<void> {
  const base = baseName(h);
  if (!base) return;
  const panes: PaneImage[] = [];
  const unit = visibleCanvas('unit-canvas');
  if (unit) panes.push({ name: 'activation', canvas: unit });
  const back = h.back.setting ? visibleCanvas('back-canvas') : null;
  if (back) panes.push({ name: 'back', canvas: back });
  panes.push(...synthImages('seed'));
  document.querySelectorAll<HTMLElement>('[data-testid="patch-folder"]').forEach((el, i) => {
    const crop = el.querySelector<HTMLCanvasElement>('canvas.crop');
    const deconv = el.querySelector<HTMLCanvasElement>('canvas.deconv');
    if (crop?.width) panes.push({ name: `top${i + 1}`, canvas: crop });
    if (deconv?.width) panes.push({ name: `top${i + 1}_deconv`, canvas: deconv });
  });
  const value = {
    ...viewJson(h),
    unitMax: h.panes.unitMax,
    topPatches: h.topPatches.map((p, i) => ({ rank: i + 1, image: p.image, box: p.box, activation: p.activation })),
  };
  await download(await paneFiles(base, panes, { name: 'unit', value }));
}

/** The selected seed's best image as PNG plus a JSON of what made it. */
export async function saveSynthImage(synth: Pick<SynthController, 'result' | 'selected' | 'label' | 'jobLayer' | 'jobUnit' | 'preset'>, modelId: string | null): Promise<void> {
  const r = synth.result;
  const im = r?.images[synth.selected];
  if (!r || !im) return;
  const base = `${modelId ?? 'model'}_${synth.label.replace(/[^A-Za-z0-9_.-]+/g, '_')}_seed${im.seed}`;
  const sidecar = {
    model: modelId,
    layer: synth.jobLayer,
    unit: synth.jobUnit,
    label: r.label,
    preset: synth.preset,
    settings: r.settings,
    seed: im.seed,
    width: im.width,
    height: im.height,
    objective_start: im.objectiveStart,
    objective_best: im.objectiveBest,
    best_iteration: im.bestIteration,
    target_prob: im.targetProb,
    top5: im.top5,
    seconds: r.seconds,
    seconds_to_target: r.secondsToTarget,
    objective_curve: Array.from(im.curve),
  };
  await download([
    { name: `${base}.png`, blob: await pngBlob(rgbCanvasElement(im)) },
    { name: `${base}.json`, blob: new Blob([JSON.stringify(sidecar, null, 2)], { type: 'application/json' }) },
  ]);
}
