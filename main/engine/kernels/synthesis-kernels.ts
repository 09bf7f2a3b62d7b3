// A fixed-size block of WebAssembly memory that the synthesis's arrays live in, and the SIMD passes
// (synthesis-kernels.wat) that run over them in place. The memory is sized once, at creation, and
// never grows: growing would detach every Float32Array already handed out.
import { SYNTHESIS_KERNELS_WASM } from './synthesis-kernels-wasm.js';

interface KernelExports {
  adam(v: number, g: number, m: number, s: number, n: number, beta1: number, oneMinusBeta1: number, beta2: number, oneMinusBeta2: number, step: number, c2: number): void;
  warp_input(img: number, out: number, h: number, w: number, dy: number, dx: number, cos: number, sin: number, affine: number, grey: number): void;
  unwarp_gradient(g: number, out: number, h: number, w: number, dy: number, dx: number, cos: number, sin: number): void;
  scale(dst: number, src: number, n: number, wt: number): void;
  up2x(prev: number, half: number, ph: number, pw: number): void;
  up2y_add(half: number, sum: number, level: number, ph: number, w3: number, wt: number): void;
  down2y(sum: number, half: number, ph: number, w3: number): void;
  down2x(half: number, prev: number, ph: number, pw: number): void;
  colour(g: number, gs: number, d: number, pixels: number, m: number): number;
}

/**
 * A view of an image: rolled by (dy, dx), then read at R·(p − c) + c about the centre c, where
 * R = [[cos, sin], [−sin, cos]] turns and scales (R(−angle) / scale: the view → image map).
 */
export interface ViewMap {
  dy: number;
  dx: number;
  cos: number;
  sin: number;
}

const PAGE = 65536;
/**
 * Bytes per vector: every allocation starts on one and is padded to whole ones, plus one vector of
 * guard that a pass reading or writing a pixel's three channels as four lanes may touch at the end.
 */
const VECTOR = 16;

let compiled: WebAssembly.Module | null = null;

function kernelModule(): WebAssembly.Module {
  // Synchronous compilation: the module is a few hundred bytes, and Node allows it on any thread.
  compiled ??= new WebAssembly.Module(Buffer.from(SYNTHESIS_KERNELS_WASM, 'base64'));
  return compiled;
}

export class KernelArena {
  private readonly memory: WebAssembly.Memory;
  private readonly kernels: KernelExports;
  private used = 0;
  /** Each allocation's length in floats and the end of its padding (bytes), by its byte offset. */
  private readonly allocations = new Map<number, { length: number; end: number }>();

  /** Room for `floats` float32 values in all, each allocation's padding included (floatsFor). */
  constructor(readonly floats: number) {
    this.memory = new WebAssembly.Memory({ initial: Math.max(1, Math.ceil((floats * 4) / PAGE)) });
    this.kernels = new WebAssembly.Instance(kernelModule(), { env: { memory: this.memory } }).exports as unknown as KernelExports;
  }

  /** What an allocation of `length` floats takes of an arena: rounded up to whole vectors, and the guard. */
  static floatsFor(length: number): number {
    return (Math.ceil(length / (VECTOR / 4)) + 1) * (VECTOR / 4);
  }

  /** `length` zeros, followed by zeros to the vector's end that belong to no one else. */
  alloc(length: number): Float32Array {
    const bytes = KernelArena.floatsFor(length) * 4;
    if (this.used + bytes > this.floats * 4) {
      throw new Error(`kernel arena of ${this.floats} floats is full (${this.used / 4} used, ${length} asked for)`);
    }
    const a = new Float32Array(this.memory.buffer, this.used, length);
    this.allocations.set(this.used, { length, end: this.used + bytes });
    this.used += bytes;
    return a;
  }

  /** Whether `a` lies in one allocation of this arena (a whole one or a part). */
  holds(a: Float32Array): boolean {
    return this.inOne(a, 0);
  }

  /** Whether `a` and the `past` floats after it lie in one allocation (its next values or its padding). */
  private inOne(a: Float32Array, past: number): boolean {
    if (a.buffer !== this.memory.buffer) return false;
    const end = a.byteOffset + (a.length + past) * 4;
    for (const [start, at] of this.allocations) if (a.byteOffset >= start && end <= at.end) return true;
    return false;
  }

  /** `a`'s byte offset, checked to lie in one allocation with `past` floats after it there too (for a pass whose last store reaches past it). */
  private within(a: Float32Array, name: string, past = 0): number {
    if (!this.inOne(a, past)) throw new Error(`${name} is not within one allocation of this kernel arena${past ? ` with ${past} floats after it` : ''}`);
    return a.byteOffset;
  }

  /** `a`'s byte offset, checked to be a whole allocation: a pass over whole vectors takes nothing less. */
  private offset(a: Float32Array, name: string): number {
    if (a.buffer !== this.memory.buffer) throw new Error(`${name} is not an array of this kernel arena`);
    if (this.allocations.get(a.byteOffset)?.length !== a.length) throw new Error(`${name} is part of an allocation, not a whole one`);
    return a.byteOffset;
  }

  /**
   * One Adam step on every element, in place (the state m and s is the caller's, zeros at first;
   * t counts from 1): the update is added to v. All four arrays are this arena's, of one length.
   */
  adam(v: Float32Array, g: Float32Array, m: Float32Array, s: Float32Array, t: number, lr: number, beta1: number, beta2: number): void {
    const n = v.length;
    if (g.length !== n || m.length !== n || s.length !== n) throw new Error(`adam: lengths ${n}, ${g.length}, ${m.length}, ${s.length} differ`);
    this.kernels.adam(this.offset(v, 'v'), this.offset(g, 'g'), this.offset(m, 'm'), this.offset(s, 's'), n, beta1, 1 - beta1, beta2, 1 - beta2, lr / (1 - beta1 ** t), 1 / (1 - beta2 ** t));
  }

  /**
   * The network input of n views ([n, h, w, 3] each): view b of image b by views[b], every source
   * pixel clipped to ±grey (centred pixels in) and shifted to 0…255, bilinear, wrapping round the
   * borders, then x = A·p + o (`affine`: A's three columns and o, each four floats, the fourth 0).
   */
  warpInput(img: Float32Array, out: Float32Array, n: number, h: number, w: number, views: readonly ViewMap[], affine: Float32Array, grey: number): void {
    const size = h * w * 3;
    this.batch('warpInput', n, size, views, img, out);
    if (affine.length !== 16) throw new Error(`warpInput: an affine map of ${affine.length} floats, not 16`);
    const [i, o, a] = [this.offset(img, 'img'), this.offset(out, 'out'), this.offset(affine, 'affine')];
    for (let b = 0; b < n; b++) {
      const v = views[b]!;
      this.kernels.warp_input(i + b * size * 4, o + b * size * 4, h, w, v.dy, v.dx, v.cos, v.sin, a, grey);
    }
  }

  /**
   * warpInput's adjoint without the clip: the gradient at the views `g` ([n, h, w, 3]) → at the
   * images, into `out` with four floats a pixel ([n, h, w, 4], the fourth 0).
   */
  unwarpGradient(g: Float32Array, out: Float32Array, n: number, h: number, w: number, views: readonly ViewMap[]): void {
    const size = h * w * 3;
    this.batch('unwarpGradient', n, size, views, g);
    if (out.length !== n * h * w * 4) throw new Error(`unwarpGradient: an output of ${out.length} floats for ${n} images of ${h}×${w}×4`);
    const [gi, o] = [this.offset(g, 'g'), this.offset(out, 'out')];
    out.fill(0);
    for (let b = 0; b < n; b++) {
      const v = views[b]!;
      this.kernels.unwarp_gradient(gi + b * size * 4, o + b * h * w * 16, h, w, v.dy, v.dx, v.cos, v.sin);
    }
  }

  /** dst = wt · src, exactly dst's values written (a level beside others may be one). */
  scale(dst: Float32Array, src: Float32Array, wt: number): void {
    if (dst.length !== src.length) throw new Error(`scale: lengths ${dst.length} and ${src.length} differ`);
    this.kernels.scale(this.within(dst, 'dst'), this.within(src, 'src'), dst.length, wt);
  }

  /**
   * One ×2 step of a pyramid's cascade: `prev` ([ph, pw, 3]) upsampled along x into `half`
   * ([ph, 2pw, 3]), then along y into `sum` ([2ph, 2pw, 3]) with wt · `level` added. `half` and
   * `sum` are whole allocations (their passes' last stores reach into their padding).
   */
  upsample2(prev: Float32Array, half: Float32Array, sum: Float32Array, level: Float32Array, ph: number, pw: number, wt: number): void {
    const size = ph * pw * 3;
    if (prev.length !== size || half.length !== 2 * size || sum.length !== 4 * size || level.length !== 4 * size) {
      throw new Error(`upsample2: arrays of ${prev.length}, ${half.length}, ${sum.length}, ${level.length} floats for ${ph}×${pw} pixels`);
    }
    const [p, h, s, l] = [this.within(prev, 'prev', 1), this.offset(half, 'half'), this.offset(sum, 'sum'), this.within(level, 'level', 3)];
    this.kernels.up2x(p, h, ph, pw);
    this.kernels.up2y_add(h, s, l, ph, pw * 6, wt);
  }

  /** upsample2's transpose without the level: `sum` ([2ph, 2pw, 3]) → `half` → `prev` ([ph, pw, 3]); `half` and `prev` whole allocations. */
  downsample2(sum: Float32Array, half: Float32Array, prev: Float32Array, ph: number, pw: number): void {
    const size = ph * pw * 3;
    if (prev.length !== size || half.length !== 2 * size || sum.length !== 4 * size) {
      throw new Error(`downsample2: arrays of ${sum.length}, ${half.length}, ${prev.length} floats for ${ph}×${pw} pixels`);
    }
    const [s, h, p] = [this.within(sum, 'sum', 3), this.offset(half, 'half'), this.offset(prev, 'prev')];
    this.kernels.down2y(s, h, ph, pw * 6);
    this.kernels.down2x(h, p, ph, pw);
  }

  /**
   * out = M · d per pixel, M's columns the first three vectors of `m` (16 floats). The last store
   * reaches one float past `out`: an image of a batch is written before the next one.
   */
  colour(d: Float32Array, out: Float32Array, m: Float32Array): void {
    if (d.length !== out.length || d.length % 3 || m.length !== 16) throw new Error(`colour: arrays of ${d.length}, ${out.length}, ${m.length} floats`);
    this.kernels.colour(this.within(d, 'd', 1), 12, this.within(out, 'out', 1), d.length / 3, this.offset(m, 'm'));
  }

  /**
   * d = Mᵀ · g per pixel (M's rows the vectors of `m`), as colour writes, g's pixels `stride` floats
   * apart (3, or 4 as unwarpGradient writes them); whether every value of g is finite.
   */
  colourTranspose(g: Float32Array, d: Float32Array, m: Float32Array, stride: 3 | 4 = 3): boolean {
    if (d.length % 3 || g.length !== (d.length / 3) * stride || m.length !== 16) throw new Error(`colourTranspose: arrays of ${g.length}, ${d.length}, ${m.length} floats`);
    return this.kernels.colour(this.within(g, 'g', stride === 3 ? 1 : 0), stride * 4, this.within(d, 'd', 1), d.length / 3, this.offset(m, 'm')) === 1;
  }

  private batch(name: string, n: number, size: number, views: readonly ViewMap[], ...arrays: Float32Array[]): void {
    if (views.length !== n) throw new Error(`${name}: ${views.length} views for ${n} images`);
    for (const a of arrays) if (a.length !== n * size) throw new Error(`${name}: an array of ${a.length} floats for ${n} images of ${size}`);
  }
}
