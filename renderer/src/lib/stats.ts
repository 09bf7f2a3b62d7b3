// What the app counts about its live loop, exposed as window.__deepvisStats for the end-to-end
// tests, bench:live and the soak (e2e/harness.ts reads it with this same type). Plain TS, no Svelte,
// so Node-side code can import the type.
export interface DeepVisStats {
  /** Distinct engine results drawn. */
  framesDrawn: number;
  lastFrameId: number;
  /** The layer of the last frame drawn (the engine's name): a frame sent before a layer change may still be drawn after the key. */
  lastLayer: string | null;
  /** ms from grabbing a frame's pixels to drawing its grid, one per drawn frame. */
  latencies: number[];
  /** Engine time per drawn frame, as reported by the host. */
  engineMs: number[];
  /** Where the latency goes, per drawn frame: taking the pixels, request → reply, drawing. */
  grabMs: number[];
  roundTripMs: number[];
  drawMs: number[];
  /** New camera frames seen (requestVideoFrameCallback), sent or not. */
  cameraFrames: number;
  /** Camera frames the renderer never sent because a newer one replaced them (engine busy). */
  framesSkipped: number;
  /** Pipeline depth 2: current send lead (ms after the previous send), null until estimated. */
  leadMs: number | null;
  /** Frames the host answered `dropped`. */
  framesDropped: number;
  errors: number;
}
