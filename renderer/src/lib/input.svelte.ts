// What the network looks at: the camera (camera-feed.svelte.ts; frozen here) or a list of static images
// (files, a dropped folder, the desktop app's listing, a top patch's source opened aside with Back),
// scaled to the model's input by one FrameGrabber. The live loop asks pixels() for the frame to send;
// the input pane shows the live video or, frozen and static, the frame that was sent.
import type { Reply, Request } from '../../../contract/messages';
import type { Settings } from '../settings';
import { FrameGrabber } from './camera';
import { CameraFeed } from './camera-feed.svelte';
import { decodeEntry, fileEntries, imageMimeType, listingEntries, sortImages, type ImageEntry } from './images';
import { FrameView } from './views';

export type Source = 'camera' | 'static';

/** What the input needs from the app. */
export interface InputHost {
  readonly transport: { request(message: Request): Promise<Reply> };
  readonly settings: Pick<Settings, 'camera'>;
  /** A new input is ready (an image shown, a frame unfrozen): send a frame for it now. */
  inputChanged(): void;
  /** The camera delivered a new video frame. */
  cameraFrame(): void;
  /** The input could not be read: drop the last result from every view. */
  forgetResult(): void;
}

export class InputController {
  source = $state<Source>('camera');
  frozen = $state(false);
  /** The static images being stepped through (browser files or the desktop app's listing), fetched when shown. */
  images = $state.raw<ImageEntry[]>([]);
  imageIndex = $state(0);
  imageError = $state<string | null>(null);
  /** What "Back" returns to after a patch's source image was opened: the user's own list and place. */
  returnTo = $state.raw<{ images: ImageEntry[]; index: number; source: Source } | null>(null);
  /** The camera, its devices and status (lib/camera-feed.svelte.ts). */
  readonly camera: CameraFeed;

  private frameView: FrameView | null = null;
  private grabber: FrameGrabber | null = null;
  private frozenRgba: Uint8Array<ArrayBuffer> | null = null;
  private staticRgba: Uint8Array<ArrayBuffer> | null = null;
  private lastSent: Uint8Array<ArrayBuffer> | null = null;
  private staticToken = 0;

  constructor(private readonly host: InputHost) {
    this.camera = new CameraFeed(host.settings, () => {
      if (this.isLiveCamera) host.cameraFrame();
    });
  }

  /** The input pane shows the live video (true) or the frame that was sent (frozen / static). */
  get liveVideo(): boolean {
    return this.isLiveCamera && this.camera.on;
  }

  /** A camera frame that is neither frozen nor static: the live loop paces these. */
  get isLiveCamera(): boolean {
    return this.source === 'camera' && !this.frozen;
  }

  get modeText(): string {
    if (this.source === 'camera') {
      if (this.frozen) return 'camera (frozen)';
      return this.camera.on ? 'camera' : `camera (${this.camera.status})`;
    }
    const f = this.images[this.imageIndex];
    return f ? `static ${this.imageIndex + 1}/${this.images.length} ${f.name}` : 'static (no image)';
  }

  /** The static image shown, or null (camera, or none). */
  get imageName(): string | null {
    return this.source === 'static' ? (this.images[this.imageIndex]?.name ?? null) : null;
  }

  attachFrame(canvas: HTMLCanvasElement): void {
    this.frameView = new FrameView(canvas);
  }

  /** A model with input height × width: grab at that size; a static image or frozen frame is grabbed again. */
  resize(width: number, height: number): void {
    if (this.grabber) this.grabber.resize(width, height);
    else this.grabber = new FrameGrabber(width, height);
    if (this.source === 'static') void this.showImage(this.imageIndex);
    else if (this.frozen) this.frozen = false;
  }

  // ---------------------------------------------------------------- what is sent

  /** The pixels to send now at the model's input size, or null when there are none. */
  pixels(): { rgba: Uint8Array<ArrayBuffer>; width: number; height: number } | null {
    const g = this.grabber;
    if (!g) return null;
    const v = this.camera.video;
    let rgba: Uint8Array<ArrayBuffer> | null = null;
    if (this.source === 'camera') {
      if (this.frozen) rgba = this.frozenRgba;
      else if (v && this.camera.on && v.readyState >= 2) {
        rgba = g.grab(v, v.videoWidth, v.videoHeight, this.host.settings.camera.mirror);
        if (rgba) this.lastSent = rgba;
      }
    } else rgba = this.staticRgba;
    return rgba ? { rgba, width: g.width, height: g.height } : null;
  }

  /** A reply for these pixels is for an input no longer shown (the previous static image). */
  isStale(rgba: Uint8Array): boolean {
    return this.source === 'static' && rgba !== this.staticRgba;
  }

  /** The frame the input pane shows, for synthesis "from this frame" (null before one). */
  currentFrame(): { width: number; height: number; rgba: Uint8Array<ArrayBuffer> } | null {
    const rgba = this.source === 'camera' ? (this.frozen ? this.frozenRgba : this.lastSent) : this.staticRgba;
    return rgba && this.grabber ? { width: this.grabber.width, height: this.grabber.height, rgba } : null;
  }

  // ---------------------------------------------------------------- camera

  async startCamera(): Promise<void> {
    this.source = 'camera';
    this.frozen = false;
    await this.camera.start();
  }

  stopCamera(): void {
    this.camera.stop();
  }

  async chooseCamera(deviceId: string): Promise<void> {
    this.camera.deviceId = deviceId;
    await this.startCamera();
  }

  toggleFreeze(): void {
    if (this.source !== 'camera') return;
    if (this.frozen) {
      this.frozen = false;
      this.frozenRgba = null;
      this.host.inputChanged();
      return;
    }
    if (!this.lastSent || !this.grabber) return;
    this.frozenRgba = this.lastSent;
    this.frozen = true;
    this.frameView?.show(this.frozenRgba, this.grabber.width, this.grabber.height);
  }

  async toggleSource(): Promise<void> {
    if (this.source === 'camera') {
      this.stopCamera();
      this.source = 'static';
      this.frozen = false;
      if (this.images.length) await this.showImage(this.imageIndex);
    } else {
      await this.startCamera();
    }
  }

  // ---------------------------------------------------------------- static images

  async openFiles(files: Iterable<File>): Promise<void> {
    return this.openImages(fileEntries(sortImages(files)));
  }

  /** The desktop app's listing of the images a user picked (main reads only those). */
  async openListing(listing: string, names: string[]): Promise<void> {
    return this.openImages(listingEntries(names, (i) => this.fetchListed(listing, i, names[i]!)));
  }

  /** Open images for a look (a top patch's source) without losing the user's list: Back returns to it. */
  async openAside(files: File[]): Promise<void> {
    if (!this.returnTo) this.returnTo = { images: this.images, index: this.imageIndex, source: this.source };
    await this.openImages(fileEntries(sortImages(files)), true);
  }

  /** Back to the list (or the camera) the user had before opening a patch's source image. */
  async goBack(): Promise<void> {
    const r = this.returnTo;
    if (!r) return;
    this.returnTo = null;
    this.images = r.images;
    if (r.source === 'camera') {
      this.imageIndex = r.index;
      await this.startCamera();
      return;
    }
    if (!r.images.length) {
      this.staticRgba = null;
      this.frameView?.clear();
      this.host.forgetResult();
      return;
    }
    await this.showImage(r.index);
  }

  /** Static-image mode on this list, showing its first image; the one path for files and listings. */
  async openImages(list: ImageEntry[], aside = false): Promise<void> {
    if (!list.length) {
      this.imageError = 'None of those files is an image.';
      return;
    }
    // A list the user opens replaces the one Back would return to.
    if (!aside) this.returnTo = null;
    this.images = list;
    if (this.source === 'camera') this.stopCamera();
    this.source = 'static';
    this.frozen = false;
    await this.showImage(0);
  }

  async showImage(i: number): Promise<void> {
    const n = this.images.length;
    if (!n || !this.grabber) return;
    const idx = ((i % n) + n) % n;
    this.imageIndex = idx;
    const entry = this.images[idx]!;
    const token = ++this.staticToken;
    try {
      const bmp = await decodeEntry(entry);
      if (token !== this.staticToken) return bmp.close();
      const rgba = this.grabber.grabImage(bmp);
      bmp.close();
      if (!rgba) throw new Error(`${entry.name}: empty image`);
      this.staticRgba = rgba;
      this.imageError = null;
      this.frameView?.show(rgba, this.grabber.width, this.grabber.height);
      this.host.inputChanged();
    } catch (e) {
      if (token !== this.staticToken) return;
      this.imageError = (e as Error).message;
      // Show nothing rather than the previous image's input, layer and classes under this one's name.
      this.staticRgba = null;
      this.frameView?.clear();
      this.host.forgetResult();
    }
  }

  /** Step through the static images (n/p); nothing on the camera. */
  async step(by: number): Promise<void> {
    if (this.source === 'static') await this.showImage(this.imageIndex + by);
  }

  /** One image's bytes from the desktop app's listing. */
  private async fetchListed(listing: string, index: number, name: string): Promise<Blob> {
    const r = await this.host.transport.request({ type: 'listedImage', listing, index });
    if (r.type === 'listedImage') return new Blob([r.bytes as BlobPart], { type: imageMimeType(r.name) });
    const msg = r.type === 'error' ? r.message : `unexpected reply ${r.type}`;
    throw new Error(msg.startsWith(`${name}: `) ? msg : `${name}: ${msg}`);
  }

  dispose(): void {
    this.stopCamera();
  }
}
