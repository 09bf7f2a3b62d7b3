// Step-size policies: the paper's constant and "progress" rates, and Adam for the fast mode.
// All take the gradient with respect to the parameters and return the update to ADD.
import * as tf from '@tensorflow/tfjs-core';
import type { StepPolicy } from './settings.js';
import type { KernelArena } from '../kernels/synthesis-kernels.js';

export interface Stepper {
  /** The update for gradient g (ascent direction), per batch item where the policy is per image. */
  update(g: tf.Tensor4D): tf.Tensor4D;
  dispose(): void;
}

export function makeStepper(policy: StepPolicy): Stepper {
  switch (policy.kind) {
    case 'constant':
      return { update: (g) => tf.mul(g, policy.eta), dispose: () => {} };
    case 'progress':
      // η = min(η_max, progress / ‖g‖²), per image: each seed moves by `progress` in objective
      // terms (to first order) unless that would need a step larger than η_max·g.
      return {
        update: (g) =>
          tf.tidy(() => {
            const sq = tf.sum(tf.square(g), [1, 2, 3], true);
            const eta = tf.minimum(policy.etaMax, tf.div(policy.progress, tf.maximum(sq, 1e-30)));
            return tf.mul(g, eta) as tf.Tensor4D;
          }),
        dispose: () => {},
      };
    case 'adam': {
      let m: tf.Tensor4D | null = null;
      let v: tf.Tensor4D | null = null;
      let t = 0;
      const { lr, beta1, beta2 } = policy;
      return {
        update: (g) => {
          t += 1;
          const [m1, v1, u] = tf.tidy(() => {
            const mNew = m ? tf.add(tf.mul(m, beta1), tf.mul(g, 1 - beta1)) : tf.mul(g, 1 - beta1);
            const vNew = v ? tf.add(tf.mul(v, beta2), tf.mul(tf.square(g), 1 - beta2)) : tf.mul(tf.square(g), 1 - beta2);
            const mHat = tf.div(mNew, 1 - beta1 ** t);
            const vHat = tf.div(vNew, 1 - beta2 ** t);
            return [mNew, vNew, tf.mul(tf.div(mHat, tf.add(tf.sqrt(vHat), 1e-8)), lr)] as tf.Tensor4D[];
          });
          m?.dispose();
          v?.dispose();
          m = m1!;
          v = v1!;
          return u!;
        },
        dispose: () => {
          m?.dispose();
          v?.dispose();
          m = v = null;
        },
      };
    }
  }
}

/** A policy on one variable held as a plain array: the update is added in place, in one pass. */
export interface ArrayStepper {
  /** v += update(g); `n` batch items split v and g evenly (the progress policy is per image). */
  step(v: Float32Array, g: Float32Array, n: number): void;
  /**
   * Whether the update of each element depends on that element alone (not the progress policy,
   * whose rate is per image): then one step over several variables laid end to end is the same as
   * a step of each.
   */
  readonly elementwise: boolean;
}

/**
 * Adam keeps its moments in `arena`, and v and g must be arrays of it (the step is one SIMD pass
 * there); the other policies step any arrays.
 */
export function makeArrayStepper(policy: StepPolicy, arena: KernelArena): ArrayStepper {
  switch (policy.kind) {
    case 'constant':
      return {
        elementwise: true,
        step: (v, g) => {
          for (let i = 0; i < v.length; i++) v[i]! += policy.eta * g[i]!;
        },
      };
    case 'progress':
      return {
        elementwise: false,
        step: (v, g, n) => {
          const per = v.length / n;
          for (let b = 0; b < n; b++) {
            let sq = 0;
            for (let i = b * per; i < (b + 1) * per; i++) sq += g[i]! * g[i]!;
            const eta = Math.min(policy.etaMax, policy.progress / Math.max(sq, 1e-30));
            for (let i = b * per; i < (b + 1) * per; i++) v[i]! += eta * g[i]!;
          }
        },
      };
    case 'adam': {
      let moments: { m: Float32Array; s: Float32Array } | null = null;
      let t = 0;
      const { lr, beta1, beta2 } = policy;
      return {
        elementwise: true,
        step: (v, g) => {
          moments ??= { m: arena.alloc(v.length), s: arena.alloc(v.length) };
          t += 1;
          arena.adam(v, g, moments.m, moments.s, t, lr, beta1, beta2);
        },
      };
    }
  }
}
