// The camera as a feed: which cameras there are, opening the chosen one into the input pane's video
// element, its status (starting, denied, unplugged, …) with a message a user can act on, and a
// callback per new video frame. Whether the frames are used (not frozen, camera chosen) is the
// input controller's business.
import type { Settings } from '../settings';
import { listCameras, onVideoFrames, openCamera, stopStream, type CameraDevice, type CameraStatus } from './camera';

export class CameraFeed {
  status = $state<CameraStatus>('off');
  message = $state<string | null>(null);
  devices = $state.raw<CameraDevice[]>([]);
  deviceId = $state<string | null>(null);
  /** The input pane's video element (also read by "save view"). */
  video: HTMLVideoElement | null = null;

  private stream: MediaStream | null = null;
  private stopFrames: (() => void) | null = null;
  private token = 0;

  constructor(
    private readonly settings: Pick<Settings, 'camera'>,
    /** A new video frame is ready. */
    private readonly onFrame: () => void,
  ) {}

  get on(): boolean {
    return this.status === 'on';
  }

  attachVideo(v: HTMLVideoElement): void {
    this.video = v;
    if (this.stream) this.play();
  }

  async start(): Promise<void> {
    const token = ++this.token;
    this.status = 'starting';
    this.message = null;
    stopStream(this.stream);
    this.stream = null;
    const cam = this.settings.camera;
    const r = await openCamera(this.deviceId ?? cam.deviceId, cam.width, cam.height);
    if (token !== this.token) {
      stopStream(r.stream);
      return;
    }
    this.status = r.status;
    this.message = r.message;
    if (!r.stream) return;
    this.stream = r.stream;
    const track = r.stream.getVideoTracks()[0];
    if (track) {
      this.deviceId = track.getSettings().deviceId ?? this.deviceId;
      track.addEventListener('ended', () => {
        if (this.stream !== r.stream) return;
        this.status = 'unplugged';
        this.message = 'The camera was disconnected. Plug it back in and press c twice (or pick a camera), or open images instead.';
        this.stopFrames?.();
        this.stopFrames = null;
      });
    }
    await this.refresh();
    this.play();
  }

  private play(): void {
    const v = this.video;
    if (!v || !this.stream) return;
    v.srcObject = this.stream;
    v.muted = true;
    v.playsInline = true;
    void v.play().catch(() => {});
    this.stopFrames?.();
    this.stopFrames = onVideoFrames(v, this.onFrame);
  }

  stop(): void {
    this.token++;
    this.stopFrames?.();
    this.stopFrames = null;
    stopStream(this.stream);
    this.stream = null;
    if (this.video) this.video.srcObject = null;
    if (this.status === 'on' || this.status === 'starting') this.status = 'off';
  }

  async refresh(): Promise<void> {
    try {
      this.devices = await listCameras();
    } catch {
      this.devices = [];
    }
  }
}
