// Receptive fields computed from the compiled network: for every node, per spatial axis, the input
// interval that output position i sees, as an affine map i → [offset + i·stride, offset +
// i·stride + size). Every op on the path contributes its kernel, stride and padding, the padding
// taken from pad1d (padding.ts) — the same arithmetic the forward ops and their input gradients
// use, so the three cannot disagree. Nothing is hard-coded per model.
//
// DAGs: where paths merge (add, concat) the field is the union over the paths. Paths with the same
// stride merge into one affine interval; paths with different strides are kept as separate parts
// and a position's region is the bounding box of its parts.
//
// Also here: with the centre-crop geometry of images.ts (cropResize), mapping a box in model-input
// pixels back to the ORIGINAL image's pixels.
import { cropGeometry, type CropGeometry } from './images.js';
import type { Model } from './model.js';
import type { GraphNet, NetNode } from './network.js';
import { pad1d } from './padding.js';

/** One affine interval along an axis: position i sees input [offset + i·stride, … + size). */
export interface AxisPart {
  offset: number;
  size: number;
  stride: number;
}

/** Receptive field along one axis (y or x). offset/size/stride describe it exactly when `parts`
 *  has one entry; with several (paths of different strides) they are those of the first part and
 *  regions use every part. */
export interface AxisField extends AxisPart {
  parts: AxisPart[];
}

export interface LayerField {
  /** Layer (node) name, as in the model's descriptor. */
  layer: string;
  /** Output map size [h, w] at the model's input size. */
  mapSize: [number, number];
  /** Model input size [H, W]. */
  inputSize: [number, number];
  /** True when every output position sees the whole input (after a global pool, flatten, dense…). */
  global: boolean;
  y: AxisField;
  x: AxisField;
}

/** A box in pixels: [x, x + w) × [y, y + h). */
export interface Box {
  x: number;
  y: number;
  w: number;
  h: number;
}

export interface Region {
  /** The receptive field clipped to the input. */
  clipped: Box;
  /** The full receptive field, which may extend past the input into the zero padding. */
  unclipped: Box;
}

/** Per-axis field of one node during propagation: the affine parts and the map length. */
interface AxisState {
  parts: AxisPart[];
  len: number;
}

interface NodeState {
  global: boolean;
  axes: [AxisState, AxisState];
}

function unionParts(lists: AxisPart[][]): AxisPart[] {
  const byStride = new Map<number, AxisPart>();
  for (const list of lists) {
    for (const p of list) {
      const q = byStride.get(p.stride);
      if (!q) byStride.set(p.stride, { ...p });
      else {
        const lo = Math.min(p.offset, q.offset);
        const hi = Math.max(p.offset + p.size, q.offset + q.size);
        q.offset = lo;
        q.size = hi - lo;
      }
    }
  }
  return [...byStride.values()];
}

/** A sliding window (conv or pool) of kernel k and stride s over an axis of length len. */
function slide(a: AxisState, k: number, s: number, padding: 'same' | 'valid'): AxisState {
  const pad = pad1d(a.len, k, s, padding);
  return {
    len: pad.out,
    parts: a.parts.map((p) => ({
      // Output position i reads input positions i·s − before … i·s − before + k − 1.
      offset: p.offset - pad.before * p.stride,
      size: p.size + (k - 1) * p.stride,
      stride: p.stride * s,
    })),
  };
}

function step(op: NetNode, ins: NodeState[]): NodeState {
  const a = ins[0]!;
  const global = (len: [number, number]): NodeState => ({
    global: true,
    axes: [
      { len: len[0], parts: a.axes[0].parts },
      { len: len[1], parts: a.axes[1].parts },
    ],
  });
  switch (op.kind) {
    case 'input':
      throw new Error('input node has no inputs');
    case 'conv': {
      const [kh, kw] = op.spec.filter.shape;
      const [sh, sw] = op.spec.strides;
      return { global: a.global, axes: [slide(a.axes[0], kh, sh, op.spec.padding), slide(a.axes[1], kw, sw, op.spec.padding)] };
    }
    case 'pool': {
      const [kh, kw] = op.spec.size;
      const [sh, sw] = op.spec.strides;
      return { global: a.global, axes: [slide(a.axes[0], kh, sh, op.spec.padding), slide(a.axes[1], kw, sw, op.spec.padding)] };
    }
    case 'act':
    case 'affine':
    case 'nonlinear':
      return a;
    case 'zeroPad':
    case 'mirrorPad': {
      const shift = (s: AxisState, before: number, after: number): AxisState => ({
        len: s.len + before + after,
        parts: s.parts.map((p) => ({ ...p, offset: p.offset - before * p.stride })),
      });
      return { global: a.global, axes: [shift(a.axes[0], ...op.pads[0]), shift(a.axes[1], ...op.pads[1])] };
    }
    case 'globalPool':
      return global([1, 1]);
    case 'reshape': {
      const t = op.target;
      return global(t.length === 3 ? [t[0]!, t[1]!] : [1, 1]);
    }
    case 'flatten':
    case 'dense':
      return global([1, 1]);
    case 'add':
    case 'mul':
      return {
        global: ins.some((s) => s.global),
        axes: [0, 1].map((d) => ({ len: a.axes[d]!.len, parts: unionParts(ins.map((s) => s.axes[d]!.parts)) })) as [AxisState, AxisState],
      };
    case 'concat': {
      // Negative axes count from the end; a map's channels are its last axis.
      const axis = op.axis < 0 ? op.axis + 4 : op.axis;
      if (axis === 3) {
        return {
          global: ins.some((s) => s.global),
          axes: [0, 1].map((d) => ({ len: a.axes[d]!.len, parts: unionParts(ins.map((s) => s.axes[d]!.parts)) })) as [AxisState, AxisState],
        };
      }
      // Concatenating along space: positions no longer line up with one window; be conservative.
      const len = [0, 1].map((d) => (axis === d + 1 ? ins.reduce((n, s) => n + s.axes[d]!.len, 0) : a.axes[d]!.len));
      return global(len as [number, number]);
    }
  }
}

/** Receptive fields of every node of a network for a given input size (index = node index). */
export function networkFields(net: GraphNet, inputSize: [number, number]): NodeState[] {
  const states: NodeState[] = [];
  net.nodes.forEach((node, i) => {
    if (node.op.kind === 'input') {
      states[i] = {
        global: false,
        axes: [
          { len: inputSize[0], parts: [{ offset: 0, size: 1, stride: 1 }] },
          { len: inputSize[1], parts: [{ offset: 0, size: 1, stride: 1 }] },
        ],
      };
      return;
    }
    states[i] = step(node.op, node.inputs.map((j) => states[j]!));
  });
  return states;
}

function axisField(s: AxisState): AxisField {
  const first = s.parts[0]!;
  return { offset: first.offset, size: first.size, stride: first.stride, parts: s.parts.map((p) => ({ ...p })) };
}

/** Interval [lo, hi) that position i sees along one axis (unclipped). */
function interval(a: AxisField, i: number): [number, number] {
  let lo = Infinity;
  let hi = -Infinity;
  for (const p of a.parts) {
    lo = Math.min(lo, p.offset + i * p.stride);
    hi = Math.max(hi, p.offset + i * p.stride + p.size);
  }
  return [lo, hi];
}

/** The region of input pixels that position (y, x) of a layer's map sees. */
export function regionOf(f: LayerField, y: number, x: number): Region {
  const [H, W] = f.inputSize;
  if (!Number.isInteger(y) || !Number.isInteger(x) || y < 0 || x < 0 || y >= f.mapSize[0] || x >= f.mapSize[1]) {
    throw new Error(`position ${y},${x} is outside the ${f.mapSize[0]}×${f.mapSize[1]} map of ${f.layer}`);
  }
  if (f.global) {
    const all = { x: 0, y: 0, w: W, h: H };
    return { clipped: all, unclipped: { ...all } };
  }
  const [y0, y1] = interval(f.y, y);
  const [x0, x1] = interval(f.x, x);
  const cy0 = Math.max(0, y0);
  const cx0 = Math.max(0, x0);
  const cy1 = Math.min(H, y1);
  const cx1 = Math.min(W, x1);
  return {
    unclipped: { x: x0, y: y0, w: x1 - x0, h: y1 - y0 },
    clipped: { x: cx0, y: cy0, w: Math.max(0, cx1 - cx0), h: Math.max(0, cy1 - cy0) },
  };
}

/** Receptive fields of a loaded model's displayed layers (computed once per model). */
export class ReceptiveFields {
  private readonly fields = new Map<string, LayerField>();

  constructor(readonly model: Model) {
    const net = model.compiled.net;
    const states = networkFields(net, model.inputSize);
    for (const l of model.layers) {
      const s = states[net.nodeIndex(l.name)]!;
      const mapSize: [number, number] = [s.axes[0].len, s.axes[1].len];
      // The shapes measured by a real forward pass must agree with our arithmetic.
      if (mapSize[0] !== l.shape[0] || mapSize[1] !== l.shape[1]) {
        throw new Error(
          `receptive field of ${model.id}/${l.name}: computed a ${mapSize.join('×')} map but the network gives ${l.shape[0]}×${l.shape[1]}`,
        );
      }
      this.fields.set(l.name, {
        layer: l.name,
        mapSize,
        inputSize: [...model.inputSize],
        global: s.global,
        y: axisField(s.axes[0]),
        x: axisField(s.axes[1]),
      });
    }
  }

  /** The field of a displayed layer (by layer name or display name). */
  layer(nameOrDisplay: string): LayerField {
    const name = this.model.layer(nameOrDisplay).name;
    return this.fields.get(name)!;
  }

  all(): LayerField[] {
    return [...this.fields.values()];
  }

  /** Input region (model-input pixels) seen by position (y, x) of a displayed layer. */
  regionFor(layer: string, y: number, x: number): Region {
    return regionOf(this.layer(layer), y, x);
  }
}

const cache = new WeakMap<Model, ReceptiveFields>();

/** The model's receptive fields, computed on first use. */
export function receptiveFields(model: Model): ReceptiveFields {
  let r = cache.get(model);
  if (!r) {
    r = new ReceptiveFields(model);
    cache.set(model, r);
  }
  return r;
}

/**
 * A box in model-input pixels → the original image's pixels (outward-rounded, integer), clipped
 * to the image unless `clip` is false. Parts of the box outside the model input (padding) map
 * outside the crop, which, clipped, may still fall inside the image's cropped-away margins: we clip
 * to the crop's footprint first, since padding is zeros, not the image's margin.
 */
export function boxToOriginal(box: Box, g: CropGeometry, clip = true): Box {
  let x0 = g.left + box.x * g.scaleX;
  let y0 = g.top + box.y * g.scaleY;
  let x1 = g.left + (box.x + box.w) * g.scaleX;
  let y1 = g.top + (box.y + box.h) * g.scaleY;
  if (clip) {
    x0 = Math.max(x0, g.left, 0);
    y0 = Math.max(y0, g.top, 0);
    x1 = Math.min(x1, g.left + g.cropWidth, g.imageWidth);
    y1 = Math.min(y1, g.top + g.cropHeight, g.imageHeight);
  }
  // Tolerate float noise before rounding outward (e.g. 37.99999999 → 38, not 37).
  const fl = (v: number) => Math.floor(v + 1e-9);
  const cl = (v: number) => Math.ceil(v - 1e-9);
  const bx = fl(x0);
  const by = fl(y0);
  return { x: bx, y: by, w: Math.max(0, cl(x1) - bx), h: Math.max(0, cl(y1) - by) };
}

