// "Save view" and "save unit": what is on screen, as files a person can put in a paper or a bug
// report. Save view writes every visible pane as PNG (as drawn: boosts, filters and overlays
// included) plus one JSON of the settings and the unit; save unit writes the selected unit's
// activation map, back-projection, synthesized seeds and top patches with their source paths.

export interface PaneImage {
  /** File name suffix, e.g. "grid" → <base>_grid.png. */
  name: string;
  canvas: HTMLCanvasElement;
}

/** The canvas of a test id, when it is on screen and has pixels. */
export function visibleCanvas(testId: string, root: ParentNode = document): HTMLCanvasElement | null {
  const c = root.querySelector<HTMLCanvasElement>(`[data-testid="${testId}"]`);
  if (!c || !c.width || !c.height) return null;
  const r = c.getBoundingClientRect();
  if (r.width < 1 || r.height < 1 || getComputedStyle(c).visibility === 'hidden') return null;
  return c;
}

/** The synthesis pane's seed images as drawn, named <prefix>1, <prefix>2, … */
export function synthImages(prefix: string): PaneImage[] {
  const out: PaneImage[] = [];
  document.querySelectorAll<HTMLCanvasElement>('[data-testid="synth-image"]').forEach((c, i) => {
    if (c.width && c.height) out.push({ name: `${prefix}${i + 1}`, canvas: c });
  });
  return out;
}

/** The input as the engine saw it: the live video (mirrored like the pane) or the frame canvas, with the Grad-CAM heat over it when shown. */
export function inputImage(video: HTMLVideoElement | null, mirror: boolean): HTMLCanvasElement | null {
  const frame = visibleCanvas('input-canvas');
  const live = video && video.videoWidth && getComputedStyle(video).visibility !== 'hidden' ? video : null;
  const src: CanvasImageSource | null = live ?? frame;
  if (!src) return null;
  const w = live ? live.videoWidth : frame!.width;
  const h = live ? live.videoHeight : frame!.height;
  const side = Math.min(w, h);
  const out = document.createElement('canvas');
  out.width = out.height = live ? Math.min(side, 448) : side;
  const ctx = out.getContext('2d')!;
  if (live && mirror) {
    ctx.translate(out.width, 0);
    ctx.scale(-1, 1);
  }
  // The pane shows the centre square (object-fit: cover); so does the file.
  ctx.drawImage(src, (w - side) / 2, (h - side) / 2, side, side, 0, 0, out.width, out.height);
  ctx.setTransform(1, 0, 0, 1, 0, 0);
  const cam = visibleCanvas('gradcam-overlay');
  if (cam && getComputedStyle(cam).display !== 'none') ctx.drawImage(cam, 0, 0, out.width, out.height);
  return out;
}

/** Save files one after another (browsers drop downloads started in the same tick). */
export async function download(files: { name: string; blob: Blob }[]): Promise<void> {
  for (const f of files) {
    const url = URL.createObjectURL(f.blob);
    const a = document.createElement('a');
    a.href = url;
    a.download = f.name;
    a.click();
    await new Promise((r) => setTimeout(r, 120));
    URL.revokeObjectURL(url);
  }
}

export function pngBlob(canvas: HTMLCanvasElement): Promise<Blob> {
  return new Promise((resolve, reject) => canvas.toBlob((b) => (b ? resolve(b) : reject(new Error('the canvas could not be encoded as PNG'))), 'image/png'));
}

export async function paneFiles(base: string, panes: PaneImage[], json: { name: string; value: unknown }): Promise<{ name: string; blob: Blob }[]> {
  const files: { name: string; blob: Blob }[] = [];
  for (const p of panes) files.push({ name: `${base}_${p.name}.png`, blob: await pngBlob(p.canvas) });
  files.push({ name: `${base}_${json.name}.json`, blob: new Blob([JSON.stringify(json.value, null, 2) + '\n'], { type: 'application/json' }) });
  return files;
}

/** A file-name-safe form of a label (layer names can hold '/' and ':'). */
export function safeName(s: string): string {
  return s.replace(/[^A-Za-z0-9._-]+/g, '-').replace(/^-+|-+$/g, '') || 'unit';
}
