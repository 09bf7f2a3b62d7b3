// Pure pixel work for the layer grid and the enlarged unit: tiling layout, the two display boosts
// and writing RGBA. No DOM here, so it is unit-tested in Node.

export interface GridLayout {
  count: number;
  /** Tile size (the channel map's own resolution). */
  h: number;
  w: number;
  pad: number;
  cols: number;
  rows: number;
  /** Size of the whole tiled image at tile resolution (padding around every tile). */
  width: number;
  height: number;
}

/**
 * Tile `count` maps of h×w so that, scaled to fit a pane of paneW×paneH, the tiles come out as large
 * as possible (DVT used a near-square grid; a wide pane gets more columns).
 */
export function gridLayout(count: number, h: number, w: number, pad: number, paneW = 1, paneH = 1): GridLayout {
  let best = { cols: Math.max(1, Math.ceil(Math.sqrt(count))), score: -1 };
  if (count > 0 && paneW > 0 && paneH > 0) {
    for (let cols = 1; cols <= count; cols++) {
      const rows = Math.ceil(count / cols);
      const score = Math.min(paneW / (cols * (w + pad) + pad), paneH / (rows * (h + pad) + pad));
      // Prefer fewer empty cells on ties (e.g. 32 → 8×4 rather than 9×4).
      if (score > best.score * 1.0001) best = { cols, score };
    }
  }
  const cols = best.cols;
  const rows = Math.max(1, Math.ceil(count / cols));
  return { count, h, w, pad, cols, rows, width: cols * (w + pad) + pad, height: rows * (h + pad) + pad };
}

/** Top-left corner of tile `i` in the tiled image. */
export function tileOrigin(l: GridLayout, i: number): { x: number; y: number } {
  const c = i % l.cols;
  const r = Math.floor(i / l.cols);
  return { x: l.pad + c * (l.w + l.pad), y: l.pad + r * (l.h + l.pad) };
}

/** Which tile is at (x, y) in tiled-image coordinates; -1 on padding or past the last tile. */
export function tileAt(l: GridLayout, x: number, y: number): number {
  const c = Math.floor((x - l.pad / 2) / (l.w + l.pad));
  const r = Math.floor((y - l.pad / 2) / (l.h + l.pad));
  if (c < 0 || r < 0 || c >= l.cols || r >= l.rows) return -1;
  const i = r * l.cols + c;
  return i < l.count ? i : -1;
}

/** Move the cursor like DVT: dx/dy in tiles, clamped to the grid (no wrap-around). */
export function moveCursor(l: GridLayout, cursor: number, dx: number, dy: number): number {
  if (l.count <= 0) return 0;
  let c = (cursor % l.cols) + dx;
  let r = Math.floor(cursor / l.cols) + dy;
  c = Math.max(0, Math.min(l.cols - 1, c));
  r = Math.max(0, Math.min(l.rows - 1, r));
  return Math.min(l.count - 1, r * l.cols + c);
}

export const GAMMA_LUT_SIZE = 4096;

/** x ∈ [0,1] quantised to GAMMA_LUT_SIZE steps → 0..255 after gamma. */
export function gammaLut(gamma: number): Uint8Array {
  const lut = new Uint8Array(GAMMA_LUT_SIZE);
  const n = GAMMA_LUT_SIZE - 1;
  for (let i = 0; i <= n; i++) lut[i] = Math.round(255 * Math.pow(i / n, gamma));
  return lut;
}

/**
 * Per-channel factors taking an activation value v (in the layer's units) to x ∈ [0,1]:
 * x = v · max_c^-b / M with M = max over channels of max_c^(1-b). b = 0 gives v / layer max (the plain
 * view); b = 1 normalises every channel by its own max. Channels that never fire get 0.
 */
export function channelFactors(channelMax: Float32Array, b: number): Float32Array {
  const f = new Float32Array(channelMax.length);
  let M = 0;
  for (let c = 0; c < channelMax.length; c++) {
    const m = channelMax[c]!;
    if (m > 0) M = Math.max(M, Math.pow(m, 1 - b));
  }
  if (!(M > 0)) return f;
  for (let c = 0; c < channelMax.length; c++) {
    const m = channelMax[c]!;
    f[c] = m > 0 ? Math.pow(m, -b) / M : 0;
  }
  return f;
}

export interface TilesLike {
  count: number;
  h: number;
  w: number;
  /** Value 255 in `data` means `scale` in the layer's units. */
  scale: number;
  channelMax: Float32Array;
  data: Uint8Array;
}

export interface Boost {
  gamma: number;
  channel: number;
}

/**
 * Write every channel's tile into `out` (RGBA, layout.width × layout.height, padding already filled
 * or filled here with `background`) applying the boosts. Fast path when both boosts are off.
 */
export function renderTiles(
  tiles: TilesLike,
  layout: GridLayout,
  boost: Boost,
  out: Uint8ClampedArray,
  background: [number, number, number],
  lutCache?: { gamma: number; lut: Uint8Array },
): void {
  const { count, h, w, data } = tiles;
  if (layout.count !== count || layout.h !== h || layout.w !== w) throw new Error('layout does not match the tiles');
  if (out.length !== layout.width * layout.height * 4) throw new Error('output buffer has the wrong size');
  // Background (padding and empty cells).
  const [br, bg, bb] = background;
  const out32 = new Uint32Array(out.buffer, out.byteOffset, out.length / 4);
  const little = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;
  const pack = (r: number, g: number, b: number) => (little ? ((255 << 24) | (b << 16) | (g << 8) | r) >>> 0 : ((r << 24) | (g << 16) | (b << 8) | 255) >>> 0);
  out32.fill(pack(br, bg, bb));
  const grey = new Uint32Array(256);
  for (let v = 0; v < 256; v++) grey[v] = pack(v, v, v);

  const plain = boost.gamma === 1 && boost.channel === 0;
  const lut = plain ? null : lutCache && lutCache.gamma === boost.gamma ? lutCache.lut : gammaLut(boost.gamma);
  const factors = plain ? null : channelFactors(tiles.channelMax, boost.channel);
  const n = GAMMA_LUT_SIZE - 1;
  const hw = h * w;
  const rowStride = layout.width;
  for (let c = 0; c < count; c++) {
    const { x: ox, y: oy } = tileOrigin(layout, c);
    const src = c * hw;
    if (plain) {
      for (let y = 0; y < h; y++) {
        let o = (oy + y) * rowStride + ox;
        let s = src + y * w;
        for (let x = 0; x < w; x++) out32[o++] = grey[data[s++]!]!;
      }
    } else {
      // v8 → value = v8/255·scale → x = value·factor → lut index.
      const k = (tiles.scale / 255) * factors![c]! * n;
      if (hw <= 256) {
        // Small maps: a per-channel table would cost more than the pixels.
        for (let y = 0; y < h; y++) {
          let o = (oy + y) * rowStride + ox;
          let s = src + y * w;
          for (let x = 0; x < w; x++) out32[o++] = grey[lut![Math.min(n, Math.round(data[s++]! * k))]!]!;
        }
        continue;
      }
      const chan = new Uint32Array(256);
      for (let v = 0; v < 256; v++) chan[v] = grey[lut![Math.min(n, Math.round(v * k))]!]!;
      for (let y = 0; y < h; y++) {
        let o = (oy + y) * rowStride + ox;
        let s = src + y * w;
        for (let x = 0; x < w; x++) out32[o++] = chan[data[s++]!]!;
      }
    }
  }
}

/**
 * The selected unit's map enlarged (nearest neighbour) into a size×size RGBA buffer, with the same
 * boosts as the grid: x = v·factor, then gamma. `factor` is channelFactors(...)[unit] for b > 0, or
 * 1/layer max.
 */
export function renderUnit(
  map: { h: number; w: number; data: ArrayLike<number> },
  factor: number,
  gamma: number,
  out: Uint8ClampedArray,
  size: number,
): void {
  if (out.length !== size * size * 4) throw new Error('output buffer has the wrong size');
  const { h, w, data } = map;
  const row = new Uint8Array(size);
  for (let y = 0; y < size; y++) {
    const sy = Math.min(h - 1, Math.floor((y * h) / size));
    for (let x = 0; x < size; x++) {
      const sx = Math.min(w - 1, Math.floor((x * w) / size));
      let v = data[sy * w + sx]! * factor;
      v = v > 0 ? (v >= 1 ? 1 : v) : 0;
      row[x] = gamma === 1 ? Math.round(v * 255) : Math.round(255 * Math.pow(v, gamma));
    }
    let o = y * size * 4;
    for (let x = 0; x < size; x++) {
      const g = row[x]!;
      out[o] = g;
      out[o + 1] = g;
      out[o + 2] = g;
      out[o + 3] = 255;
      o += 4;
    }
  }
}

/** Factor for the unit view of channel c under boost b (matches renderTiles). */
export function unitFactor(tiles: Pick<TilesLike, 'channelMax' | 'scale'>, c: number, b: number): number {
  if (b === 0) {
    let M = 0;
    for (const m of tiles.channelMax) if (m > M) M = m;
    if (!(M > 0)) M = tiles.scale;
    return M > 0 ? 1 / M : 0;
  }
  return channelFactors(tiles.channelMax, b)[c] ?? 0;
}

/** Channel c of the 8-bit tiles as values in the layer's units (used before the float map arrives). */
export function tileAsMap(tiles: TilesLike, c: number): { h: number; w: number; data: Float32Array } {
  const hw = tiles.h * tiles.w;
  const out = new Float32Array(hw);
  const k = tiles.scale / 255;
  for (let i = 0; i < hw; i++) out[i] = tiles.data[c * hw + i]! * k;
  return { h: tiles.h, w: tiles.w, data: out };
}
