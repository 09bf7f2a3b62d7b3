// Element-wise nonlinearities that the fused convolution kernels cannot carry (anything beyond
// linear / ReLU / ReLU6 / LeakyReLU): their forward form, their input gradient, and the names
// Keras (Python) and tfjs-layers write for them in model.json.
import * as tf from '@tensorflow/tfjs-core';

export type ElementwiseFn =
  | 'softmax'
  | 'sigmoid'
  | 'tanh'
  | 'swish'
  | 'hard_sigmoid'
  /** x·relu6(x + 3)/6 (MobileNetV3; Keras 3 "hard_swish" / "hard_silu"). */
  | 'hard_swish'
  | 'gelu'
  | 'gelu_tanh'
  | 'elu'
  | 'selu'
  | 'softplus'
  | 'softsign'
  | 'mish'
  /** ReLU clipped at a maximum other than 6 (Keras ReLU(max_value=m)). */
  | 'relu_max';

/**
 * The ElementwiseFn for a Keras / tfjs-layers activation name, or null. tfjs-layers writes
 * camelCase class names ("hardSigmoid"), Keras snake_case ("hard_sigmoid"); "silu" is Keras 3's
 * name for swish, "gelu_new" tfjs' tanh approximation of gelu.
 */
export function elementwiseByName(name: string): ElementwiseFn | null {
  const key = name.toLowerCase().replace(/_/g, '');
  const table: Record<string, ElementwiseFn> = {
    softmax: 'softmax',
    sigmoid: 'sigmoid',
    tanh: 'tanh',
    swish: 'swish',
    silu: 'swish',
    hardsigmoid: 'hard_sigmoid',
    hardswish: 'hard_swish',
    hardsilu: 'hard_swish',
    gelu: 'gelu',
    gelunew: 'gelu_tanh',
    elu: 'elu',
    selu: 'selu',
    softplus: 'softplus',
    softsign: 'softsign',
    mish: 'mish',
  };
  return table[key] ?? null;
}

/** Names accepted for activations outside the fused set (for error messages). */
export const ELEMENTWISE_NAMES = ['softmax', 'sigmoid', 'tanh', 'swish', 'hard_sigmoid', 'hard_swish', 'gelu', 'gelu_new', 'elu', 'selu', 'softplus', 'softsign', 'mish'];

const SELU_ALPHA = 1.6732632423543772;
const SELU_SCALE = 1.0507009873554805;

/** Forward value, exactly as tfjs-layers computes it (so compiled and original models agree). */
export function applyElementwise(fn: ElementwiseFn, x: tf.Tensor, max = 0): tf.Tensor {
  switch (fn) {
    case 'softmax':
      return tf.softmax(x);
    case 'sigmoid':
      return tf.sigmoid(x);
    case 'tanh':
      return tf.tanh(x);
    case 'swish':
      return tf.mul(tf.sigmoid(x), x);
    case 'hard_sigmoid':
      return tf.clipByValue(tf.add(0.5, tf.mul(0.2, x)), 0, 1);
    case 'hard_swish':
      // The order TensorFlow computes it in (x · relu6(x + 3) · 1/6), so graph models agree to the bit.
      return tf.mul(tf.mul(x, tf.relu6(tf.add(x, 3))), 1 / 6);
    case 'gelu':
      return tf.mul(x, tf.mul(0.5, tf.add(1, tf.erf(tf.div(x, Math.SQRT2)))));
    case 'gelu_tanh':
      return tf.mul(0.5, tf.mul(x, tf.add(1, tf.tanh(tf.mul(Math.sqrt(2 / Math.PI), tf.add(x, tf.mul(0.044715, tf.pow(x, 3))))))));
    case 'elu':
      return tf.elu(x);
    case 'selu':
      return tf.selu(x);
    case 'softplus':
      return tf.softplus(x);
    case 'softsign':
      return tf.div(x, tf.add(1, tf.abs(x)));
    case 'mish':
      return tf.mul(x, tf.tanh(tf.softplus(x)));
    case 'relu_max':
      return tf.clipByValue(x, 0, max);
  }
}

/**
 * Input gradient dy·f'(x) from the forward input x and output y, in closed form from forward
 * kernels only (no tape: these run inside GraphNet.backward, on every backend).
 */
export function elementwiseBackward(fn: ElementwiseFn, x: tf.Tensor, y: tf.Tensor, dy: tf.Tensor, max = 0): tf.Tensor {
  switch (fn) {
    case 'softmax':
      return tf.mul(y, tf.sub(dy, tf.sum(tf.mul(dy, y), -1, true)));
    case 'sigmoid':
      return tf.mul(dy, tf.mul(y, tf.sub(1, y)));
    case 'tanh':
      return tf.mul(dy, tf.sub(1, tf.square(y)));
    case 'swish': {
      // d/dx x·σ(x) = σ(x) + y·(1 − σ(x))
      const s = tf.sigmoid(x);
      return tf.mul(dy, tf.add(s, tf.mul(y, tf.sub(1, s))));
    }
    case 'hard_sigmoid':
      return tf.mul(dy, tf.mul(0.2, tf.step(tf.mul(y, tf.sub(1, y)))));
    case 'hard_swish':
      // 0 below −3, 1 above 3, (2x + 3)/6 between.
      return tf.mul(dy, tf.where(tf.less(x, -3), tf.zerosLike(x), tf.where(tf.greater(x, 3), tf.onesLike(x), tf.div(tf.add(tf.mul(x, 2), 3), 6))));
    case 'gelu': {
      // Φ(x) + x·φ(x)
      const cdf = tf.mul(0.5, tf.add(1, tf.erf(tf.div(x, Math.SQRT2))));
      const pdf = tf.mul(1 / Math.sqrt(2 * Math.PI), tf.exp(tf.mul(-0.5, tf.square(x))));
      return tf.mul(dy, tf.add(cdf, tf.mul(x, pdf)));
    }
    case 'gelu_tanh': {
      const k = Math.sqrt(2 / Math.PI);
      const t = tf.tanh(tf.mul(k, tf.add(x, tf.mul(0.044715, tf.pow(x, 3)))));
      const dt = tf.mul(tf.sub(1, tf.square(t)), tf.mul(k, tf.add(1, tf.mul(3 * 0.044715, tf.square(x)))));
      return tf.mul(dy, tf.add(tf.mul(0.5, tf.add(1, t)), tf.mul(tf.mul(0.5, x), dt)));
    }
    case 'elu':
      // x > 0: 1, else e^x = y + 1
      return tf.mul(dy, tf.where(tf.greater(x, 0), tf.onesLike(x), tf.add(y, 1)));
    case 'selu':
      return tf.mul(dy, tf.where(tf.greater(x, 0), tf.fill(x.shape, SELU_SCALE), tf.add(y, SELU_SCALE * SELU_ALPHA)));
    case 'softplus':
      return tf.mul(dy, tf.sigmoid(x));
    case 'softsign':
      return tf.div(dy, tf.square(tf.add(1, tf.abs(x))));
    case 'mish': {
      // tanh(sp) + x·sech²(sp)·σ(x), sp = softplus(x)
      const t = tf.tanh(tf.softplus(x));
      return tf.mul(dy, tf.add(t, tf.mul(x, tf.mul(tf.sub(1, tf.square(t)), tf.sigmoid(x)))));
    }
    case 'relu_max':
      return tf.mul(dy, tf.step(tf.mul(y, tf.sub(max, y))));
  }
}
