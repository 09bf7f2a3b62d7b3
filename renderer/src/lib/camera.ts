// Webcam access and frame grabbing: getUserMedia with messages a person understands when it fails,
// the device list for the picker, and crop/mirror/scale of the newest video frame to the model input.

import { centreCrop as sharedCentreCrop, cropResizeBytes } from '../../../contract/resample';

export type CameraStatus = 'off' | 'starting' | 'on' | 'denied' | 'absent' | 'unplugged' | 'busy' | 'error';

export interface CameraDevice {
  deviceId: string;
  label: string;
}

export interface CameraResult {
  status: CameraStatus;
  message: string | null;
  stream: MediaStream | null;
}

/** A camera error → status and a sentence for the input pane. */
export function describeCameraError(e: unknown): { status: CameraStatus; message: string } {
  const name = (e as { name?: string })?.name ?? '';
  const detail = (e as { message?: string })?.message ?? String(e);
  switch (name) {
    case 'NotAllowedError':
    case 'SecurityError':
    case 'PermissionDeniedError':
      return { status: 'denied', message: 'Camera access was denied. Allow the camera for this page (or in the app settings), or open images instead.' };
    case 'NotFoundError':
    case 'DevicesNotFoundError':
    case 'OverconstrainedError':
      return { status: 'absent', message: 'No camera found. Plug one in, or open images instead.' };
    case 'NotReadableError':
    case 'TrackStartError':
    case 'AbortError':
      return { status: 'busy', message: `The camera could not be started — another program may be using it (${detail}).` };
    default:
      return { status: 'error', message: `Camera error: ${name ? `${name}: ` : ''}${detail}` };
  }
}

export async function listCameras(): Promise<CameraDevice[]> {
  if (!navigator.mediaDevices?.enumerateDevices) return [];
  const all = await navigator.mediaDevices.enumerateDevices();
  return all
    .filter((d) => d.kind === 'videoinput')
    .map((d, i) => ({ deviceId: d.deviceId, label: d.label || `Camera ${i + 1}` }));
}

export async function openCamera(deviceId: string | null, width: number, height: number): Promise<CameraResult> {
  if (!navigator.mediaDevices?.getUserMedia) {
    return {
      status: 'absent',
      message: 'This page cannot use a camera (the browser offers no camera API here — use http://127.0.0.1 or https). Open images instead.',
      stream: null,
    };
  }
  try {
    const stream = await navigator.mediaDevices.getUserMedia({
      audio: false,
      video: {
        ...(deviceId ? { deviceId: { exact: deviceId } } : {}),
        width: { ideal: width },
        height: { ideal: height },
      },
    });
    return { status: 'on', message: null, stream };
  } catch (e) {
    return { ...describeCameraError(e), stream: null };
  }
}

export function stopStream(stream: MediaStream | null): void {
  stream?.getTracks().forEach((t) => t.stop());
}

/** Centre crop of a srcW×srcH source to the aspect of dstW×dstH. */
/** The source rectangle drawn for a camera frame: the shared centre crop (contract/resample.ts). */
export function centreCrop(srcW: number, srcH: number, dstW: number, dstH: number): { sx: number; sy: number; sw: number; sh: number } {
  const c = sharedCentreCrop(srcW, srcH, dstW, dstH);
  return { sx: c.left, sy: c.top, sw: c.width, sh: c.height };
}

type Ctx2D = OffscreenCanvasRenderingContext2D | CanvasRenderingContext2D;

/** An OffscreenCanvas at the model's input size that crops, mirrors and scales sources into RGBA. */
export class FrameGrabber {
  private canvas: OffscreenCanvas | HTMLCanvasElement;
  private ctx: Ctx2D;

  constructor(
    public width: number,
    public height: number,
  ) {
    this.canvas = typeof OffscreenCanvas !== 'undefined' ? new OffscreenCanvas(width, height) : Object.assign(document.createElement('canvas'), { width, height });
    const ctx = this.canvas.getContext('2d', { willReadFrequently: true, alpha: false }) as Ctx2D | null;
    if (!ctx) throw new Error('no 2D canvas context');
    this.ctx = ctx;
    this.ctx.imageSmoothingQuality = 'high';
  }

  resize(width: number, height: number): void {
    if (width === this.width && height === this.height) return;
    this.width = this.canvas.width = width;
    this.height = this.canvas.height = height;
    this.ctx.imageSmoothingQuality = 'high';
  }

  /**
   * An image file's pixels for the engine: decoded at full size, then the same crop and
   * area-average resize the engine applies to files (contract/resample.ts), so the window and the
   * command line see identical input pixels. Camera frames keep the canvas scaler (grab), which is
   * fast enough for every frame.
   */
  grabImage(source: ImageBitmap): Uint8Array<ArrayBuffer> | null {
    const { width, height } = source;
    if (!width || !height) return null;
    const full = typeof OffscreenCanvas !== 'undefined' ? new OffscreenCanvas(width, height) : Object.assign(document.createElement('canvas'), { width, height });
    const ctx = full.getContext('2d', { willReadFrequently: true }) as Ctx2D | null;
    if (!ctx) throw new Error('no 2D canvas context');
    ctx.drawImage(source, 0, 0);
    const img = ctx.getImageData(0, 0, width, height);
    return cropResizeBytes({ width, height, data: img.data }, 4, this.width, this.height, 4);
  }

  /** Draw `source` (srcW×srcH) centre-cropped, optionally mirrored, and read the RGBA back. */
  grab(source: CanvasImageSource, srcW: number, srcH: number, mirror: boolean): Uint8Array<ArrayBuffer> | null {
    if (!srcW || !srcH) return null;
    const { sx, sy, sw, sh } = centreCrop(srcW, srcH, this.width, this.height);
    const ctx = this.ctx;
    ctx.setTransform(mirror ? -1 : 1, 0, 0, 1, mirror ? this.width : 0, 0);
    ctx.drawImage(source, sx, sy, sw, sh, 0, 0, this.width, this.height);
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    const img = ctx.getImageData(0, 0, this.width, this.height);
    return new Uint8Array(img.data.buffer, img.data.byteOffset, img.data.byteLength);
  }
}

/**
 * Call `cb` for every new frame the video presents (requestVideoFrameCallback where available,
 * otherwise requestAnimationFrame polling on the media time). Returns a stop function.
 */
export function onVideoFrames(video: HTMLVideoElement, cb: () => void): () => void {
  let stopped = false;
  type RVFC = (cb: () => void) => number;
  const rvfc = (video as unknown as { requestVideoFrameCallback?: RVFC }).requestVideoFrameCallback;
  if (typeof rvfc === 'function') {
    const loop = () => {
      if (stopped) return;
      cb();
      rvfc.call(video, loop);
    };
    rvfc.call(video, loop);
  } else {
    let last = -1;
    const loop = () => {
      if (stopped) return;
      if (video.readyState >= 2 && video.currentTime !== last) {
        last = video.currentTime;
        cb();
      }
      requestAnimationFrame(loop);
    };
    requestAnimationFrame(loop);
  }
  return () => {
    stopped = true;
  };
}
