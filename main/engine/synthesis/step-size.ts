// Step-size policies: the paper's constant and "progress" rates, and Adam for the fast mode.
// All take the gradient with respect to the parameters and return the update to ADD.
import * as tf from '@tensorflow/tfjs-core';
import type { StepPolicy } from './settings.js';

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
