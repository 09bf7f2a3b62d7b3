// Input gradients are the heart of the product: for each bundled model, an early layer, a middle
// layer (after a max-pool or a strided depthwise convolution) and a class logit, our backward pass
// on wasm must agree with central finite differences on wasm and with tfjs' own autodiff of the
// unfused network on the cpu backend, and never compute a filter gradient.
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  inputGradient,
  loadImageForModel,
  loadModel,
  objectiveFunction,
  selectBackend,
  tapedInputGradient,
  type Model,
  type UnitObjective,
} from '../main/engine/index.js';
import { photo } from './support/fixtures.js';
import { CASES, cosine, direction, dot, gradientObjectives, type LabelledObjective } from './support/gradient-cases.js';

describe.each(Object.keys(CASES))('%s input gradients', (id) => {
  let wasmModel: Model;
  let cpuModel: Model;
  let x: tf.Tensor4D;
  const objectives: LabelledObjective[] = [];

  beforeAll(async () => {
    await selectBackend('cpu');
    cpuModel = await loadModel(id);
    await selectBackend('wasm');
    wasmModel = await loadModel(id);
    // A real photo plus a little noise: flat regions (snow, sky) would otherwise tie in max-pools,
    // where the function has no gradient and finite differences measure a one-sided slope.
    const px = await loadImageForModel(photo('dog'), wasmModel.inputSize);
    x = tf.tidy(() => wasmModel.preprocess(tf.add(px, tf.randomNormal(px.shape, 0, 2, 'float32', 11)) as tf.Tensor4D));
    px.dispose();
    objectives.push(...gradientObjectives(wasmModel, x));
  });

  it('agrees with central finite differences along random directions (rel. error ≤ 2e-2)', async () => {
    await selectBackend('wasm');
    let worst = 0;
    for (const { label, o } of objectives) {
      const { grad, value } = inputGradient(wasmModel, x, o);
      const f = objectiveFunction(wasmModel, o, 'taped');
      for (const seed of [1, 2, 3]) {
        const d = direction(grad, seed);
        // 1e-3 in input units: at 1e-2 the step already crosses ReLU kinks (FD 2–3% low), at 1e-4 float32
        // rounding dominates; at 1e-3 every case agrees within 1%.
        const eps = 1e-3;
        const fd = tf.tidy(() => {
          const up = f(tf.add(x, tf.mul(d, eps)) as tf.Tensor4D).dataSync()[0]!;
          const down = f(tf.sub(x, tf.mul(d, eps)) as tf.Tensor4D).dataSync()[0]!;
          return (up - down) / (2 * eps);
        });
        const analytic = dot(grad, d);
        const rel = Math.abs(fd - analytic) / Math.max(Math.abs(analytic), Math.abs(fd), 1e-12);
        expect(rel, `${label} seed ${seed}: fd ${fd} vs g·d ${analytic}`).toBeLessThanOrEqual(2e-2);
        worst = Math.max(worst, rel);
        d.dispose();
      }
      expect(tf.norm(grad).dataSync()[0], `${label}: gradient is not zero`).toBeGreaterThan(0);
      tf.dispose([grad, value]);
    }
    console.log(`${id}: worst finite-difference relative error ${worst.toExponential(2)} over ${objectives.length} objectives × 3 directions`);
  });

  it('agrees with tfjs autodiff of the unfused network on the cpu backend (cosine ≥ 0.999)', async () => {
    let worstCos = 1;
    for (const { label, o } of objectives) {
      await selectBackend('wasm');
      const { grad, value } = inputGradient(wasmModel, x, o);
      const ours = grad.dataSync().slice();
      tf.dispose([grad, value]);
      await selectBackend('cpu');
      const xc = tf.tensor4d(x.dataSync().slice(), x.shape);
      const ref = tapedInputGradient(cpuModel, xc, o, 'reference');
      const oursCpu = tf.tensor4d(ours, x.shape);
      const cos = cosine(oursCpu, ref);
      const ratio = tf.tidy(() => tf.norm(oursCpu).div(tf.norm(ref)).dataSync()[0]!);
      expect(cos, `${label}: cosine`).toBeGreaterThanOrEqual(0.999);
      worstCos = Math.min(worstCos, cos);
      expect(ratio, `${label}: norm ratio`).toBeCloseTo(1, 2);
      tf.dispose([xc, ref, oursCpu]);
    }
    console.log(`${id}: lowest cosine to the cpu reference ${worstCos.toFixed(6)}`);
    await selectBackend('wasm');
  });

  it('gives each batch item its own gradient (batch of 3 = three singles)', async () => {
    await selectBackend('wasm');
    const o = objectives[1]!.o;
    const flipped = tf.reverse(x, 2) as tf.Tensor4D;
    const noisy = tf.add(x, tf.randomNormal(x.shape, 0, 0.1, 'float32', 7)) as tf.Tensor4D;
    const batch = tf.concat([x, flipped, noisy]) as tf.Tensor4D;
    const b = inputGradient(wasmModel, batch, o);
    [x, flipped, noisy].forEach((xi, i) => {
      const s = inputGradient(wasmModel, xi, o);
      const slice = tf.slice(b.grad, [i, 0, 0, 0], [1, -1, -1, -1]);
      expect(tf.tidy(() => tf.max(tf.abs(tf.sub(slice, s.grad))).dataSync()[0]!)).toBeLessThan(1e-4);
      expect(b.value.dataSync()[i]).toBeCloseTo(s.value.dataSync()[0]!, 4);
      tf.dispose([slice, s.grad, s.value]);
    });
    tf.dispose([flipped, noisy, batch, b.grad, b.value]);
  });

  it('computes no filter gradient on the way', async () => {
    await selectBackend('wasm');
    for (const { o } of objectives) {
      const prof = await tf.profile(() => {
        const r = inputGradient(wasmModel, x, o);
        r.grad.dataSync();
        tf.dispose([r.grad, r.value]);
      });
      const names = new Set(prof.kernelNames);
      for (const k of ['Conv2DBackpropFilter', 'DepthwiseConv2dNativeBackpropFilter', 'Conv2DBackpropInput', 'MaxPoolGrad']) {
        expect(names.has(k), `kernel ${k} ran`).toBe(false);
      }
    }
  });
});
