// Does an execution provider start here? A two-node graph (Conv + Relu, so a GPU provider takes
// real work rather than leaving it all to the CPU) is built, run once and checked.
import { attr, GraphBuilder } from './graph-builder.js';
import { OrtSession, type SessionConfig } from './runtime.js';

export function probeProvider(config: SessionConfig): void {
  const b = new GraphBuilder();
  const x = b.input('x', [1, 1, 2, 2]);
  const w = b.floats(new Float32Array([1, -1, 2, 0.5]), [1, 1, 2, 2]);
  const y = b.op('Relu', [b.op('Conv', [x, w], [attr.ints('kernel_shape', [2, 2])])]);
  b.output('y', y, [1, 1, 1, 1]);
  let s: OrtSession;
  try {
    s = new OrtSession(b.encode('probe'), config);
  } catch (e) {
    throw new Error(`the ${config.provider} execution provider did not start: ${(e instanceof Error ? e.message : String(e)).split('\n')[0]}`);
  }
  try {
    const out = s.run({ x: { data: new Float32Array([1, 2, 3, 4]), dims: [1, 1, 2, 2] } }, ['y']);
    const v = out.y!.data[0];
    // 1·1 + 2·(−1) + 3·2 + 4·0.5 = 7
    if (v !== 7) throw new Error(`the ${config.provider} execution provider computed ${String(v)} for a 2×2 convolution (expected 7)`);
  } finally {
    s.dispose();
  }
}
