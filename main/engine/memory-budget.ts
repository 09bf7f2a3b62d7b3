// Will a job fit? Before a synthesis (or an atlas batch, or a model load) starts, its memory is
// estimated from the model's own activations — one batched forward and backward pass keeps every
// activation of the batch, so the footprint grows with seeds × pixels — and compared with what the
// backend can hold. tfjs-wasm grows one linear heap that can never exceed 4 GiB (wasm32), and once
// grown it traps ("memory access out of bounds") instead of failing cleanly: a job that cannot fit
// is refused up front with what would fit instead.
import os from 'node:os';
import * as tf from '@tensorflow/tfjs-core';
import type { Model } from './model.js';
import type { WorkerFootprintT } from '../../contract/worker.js';

const GIB = 2 ** 30;
/** wasm32's address space: tfjs-wasm's heap grows up to here and no further. */
export const WASM_HEAP_BYTES = 4 * GIB;
/** Headroom for the regularisers' temporaries, previews and allocator fragmentation. */
const MARGIN = 1.5;

/** What a job's estimate scales: per image at the model's input size, and what is resident. */
export type Footprint = WorkerFootprintT;
/**
 * Measured once per model's weights and backend: a job's own size and seeds only scale it, and a
 * reload of the same model (another input convention) has the same activations.
 */
const footprints = new Map<string, Promise<Footprint>>();

/**
 * Peak tensor bytes of one input-gradient pass of one image at the model's input size, measured
 * with tf.profile on the running backend (the engine tracks every tensor's bytes whatever the
 * backend), to the logits — the deepest objective, so the worst case. The measurement is a full
 * pass in this thread, up to a second or more: an interactive host asks a job worker for it
 * (JobScheduler.footprint) when a model is chosen, so its own event loop never runs it.
 */
export function measureFootprint(model: Model): Promise<Footprint> {
  const key = `${model.checksum}|${model.id}|${tf.getBackend()}`;
  let known = footprints.get(key);
  if (!known) {
    known = profileFootprint(model);
    // A failed measurement is not kept: the next job measures again.
    known.catch(() => footprints.delete(key));
    footprints.set(key, known);
  }
  return known;
}

async function profileFootprint(model: Model): Promise<Footprint> {
  const [h, w] = model.inputSize;
  const resident = tf.memory().numBytes;
  const info = await tf.profile(() =>
    tf.tidy(() => {
      const node = model.compiled.logitsNode;
      const values = model.compiled.net.run(tf.zeros([1, h, w, 3]), { until: node });
      const pre = model.compiled.net.preActivation(values, node);
      model.compiled.net.backward(values, node, tf.onesLike(pre), { linearStart: true });
    }),
  );
  return { perImage: Math.max(info.peakBytes - resident, 1), resident };
}

/** What one job may use on this backend, and a name for it. */
export function jobMemoryLimit(backend: string): { bytes: number; what: string } {
  const free = os.totalmem() * 0.75;
  if (backend === 'wasm') return free < WASM_HEAP_BYTES ? { bytes: free, what: 'three quarters of this machine’s memory' } : { bytes: WASM_HEAP_BYTES, what: 'the 4 GiB heap of a wasm engine' };
  return { bytes: free, what: 'three quarters of this machine’s memory' };
}

export interface FitQuery {
  model: Model;
  backend: string;
  /** Images optimised together (seeds, or units × seeds of an atlas batch). */
  images: number;
  size: [number, number];
  /** Override the limit (bytes), e.g. a user's setting. */
  limitBytes?: number;
  /** The model's footprint (measureFootprint, here or on the worker that runs the job). */
  footprint: Footprint;
}

export type FitAnswer = { ok: true; bytes: number } | { ok: false; bytes: number; message: string; maxImages: number; maxImagesAtInput: number };

const gb = (b: number) => (b / GIB >= 10 ? `${Math.round(b / GIB)}` : (b / GIB).toFixed(1));

/** Estimate a job's memory and say whether it fits; when not, the message says what would. */
export function checkJobFits(q: FitQuery, noun = 'seeds'): FitAnswer {
  const { perImage: per, resident } = q.footprint;
  const [ih, iw] = q.model.inputSize;
  const scale = (q.size[0] * q.size[1]) / (ih * iw);
  const limit = q.limitBytes ?? jobMemoryLimit(q.backend).bytes;
  const what = q.limitBytes ? `the ${gb(limit)} GB allowed` : jobMemoryLimit(q.backend).what;
  const room = limit - resident;
  const need = (n: number, s: number) => n * per * s * MARGIN;
  const bytes = need(q.images, scale) + resident;
  if (need(q.images, scale) <= room) return { ok: true, bytes };
  const maxImages = Math.max(0, Math.floor(room / need(1, scale)));
  const maxImagesAtInput = Math.max(0, Math.floor(room / need(1, 1)));
  const px = `${q.size[0]}${q.size[1] === q.size[0] ? '' : `×${q.size[1]}`} px`;
  const alt = [maxImages > 0 ? `at most ${maxImages} ${noun} fit at ${px}` : `not even one fits at ${px}`];
  if (scale > 1 && maxImagesAtInput > 0) alt.push(`or ${Math.min(q.images, maxImagesAtInput)} at ${ih} px`);
  return {
    ok: false,
    bytes,
    maxImages,
    maxImagesAtInput,
    message: `${q.images} ${noun} at ${px} need ~${gb(bytes)} GB on ${q.model.id}, more than ${what}; ${alt.join(', ')}`,
  };
}
