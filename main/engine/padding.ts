// TensorFlow's padding arithmetic, shared by the forward ops, their input gradients and the
// receptive-field computation, so the three can never disagree.

export type PaddingMode = 'same' | 'valid';

export interface Pad1D {
  out: number;
  before: number;
  after: number;
}

export function pad1d(size: number, kernel: number, stride: number, mode: PaddingMode, dilation = 1): Pad1D {
  const k = (kernel - 1) * dilation + 1;
  if (mode === 'valid') {
    const out = Math.ceil((size - k + 1) / stride);
    return { out: Math.max(out, 0), before: 0, after: 0 };
  }
  const out = Math.ceil(size / stride);
  const total = Math.max((out - 1) * stride + k - size, 0);
  const before = Math.floor(total / 2);
  return { out, before, after: total - before };
}
