/** The text of synthesis-kernels-wasm.ts as synthesis-kernels.wat assembles now. */
export function assembleKernels(): Promise<string>;
