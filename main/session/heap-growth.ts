// Engine threads allocate about a megabyte per synthesis step or live frame in buffers that die at
// once (ONNX Runtime's binding copies every output into a new ArrayBuffer, and a step reads the
// gradient and drops it). V8's adaptive heap growth judges its collections cheap and keeps each
// isolate's heap tight, so a job worker ran a full mark-compact every ~35 steps. Its marking runs on
// V8's helper threads: free while a core idles, taken from the other workers once every core
// works — which is what held two job workers to ~1.6× one. A fixed growth factor of 2 (limit = twice
// the live heap) made those collections ~6× rarer (19 → 3 in a 24-unit atlas over two workers) for
// no measurable change in peak RSS.
//
// V8's flags are the process's, not one isolate's: this sets it for the host and every worker.
import { setFlagsFromString } from 'node:v8';

const PERCENT = 100;
let applied = false;

/** Once per process, before engine threads start: read by V8 whenever it sets a heap's next limit. */
export function relaxHeapGrowth(): void {
  if (applied) return;
  applied = true;
  setFlagsFromString(`--heap-growing-percent=${PERCENT}`);
}
