// A fixed-size block of WebAssembly memory that the synthesis's arrays live in, and the SIMD passes
// (synthesis-kernels.wat) that run over them in place. The memory is sized once, at creation, and
// never grows: growing would detach every Float32Array already handed out.
import { SYNTHESIS_KERNELS_WASM } from './synthesis-kernels-wasm.js';

interface KernelExports {
  adam(v: number, g: number, m: number, s: number, n: number, beta1: number, oneMinusBeta1: number, beta2: number, oneMinusBeta2: number, step: number, c2: number): void;
  warp_input(img: number, out: number, h: number, w: number, dy: number, dx: number, cos: number, sin: number, affine: number, grey: number): void;
  unwarp_gradient(g: number, out: number, h: number, w: number, dy: number, dx: number, cos: number, sin: number): void;
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
  /** Each allocation's length by its byte offset: a pass runs over whole vectors, so it takes whole allocations only. */
  private readonly lengths = new Map<number, number>();

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
    this.lengths.set(this.used, length);
    this.used += bytes;
    return a;
  }

  private offset(a: Float32Array, name: string): number {
    if (a.buffer !== this.memory.buffer) throw new Error(`${name} is not an array of this kernel arena`);
    if (this.lengths.get(a.byteOffset) !== a.length) throw new Error(`${name} is part of an allocation, not a whole one`);
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

  /** warpInput's adjoint without the clip: the gradient at the views `g` → at the images, into `out`. */
  unwarpGradient(g: Float32Array, out: Float32Array, n: number, h: number, w: number, views: readonly ViewMap[]): void {
    const size = h * w * 3;
    this.batch('unwarpGradient', n, size, views, g, out);
    const [gi, o] = [this.offset(g, 'g'), this.offset(out, 'out')];
    out.fill(0);
    for (let b = 0; b < n; b++) {
      const v = views[b]!;
      this.kernels.unwarp_gradient(gi + b * size * 4, o + b * size * 4, h, w, v.dy, v.dx, v.cos, v.sin);
    }
  }

  private batch(name: string, n: number, size: number, views: readonly ViewMap[], ...arrays: Float32Array[]): void {
    if (views.length !== n) throw new Error(`${name}: ${views.length} views for ${n} images`);
    for (const a of arrays) if (a.length !== n * size) throw new Error(`${name}: an array of ${a.length} floats for ${n} images of ${size}`);
  }
}
