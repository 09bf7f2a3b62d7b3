#!/usr/bin/env bash
# The GPU path on whatever GPU this machine has, in at most ~5 minutes, as one JSON document on
# stdout (progress on stderr): which GPU backend starts and why others do not, the WebGPU
# provider's gradient tests (forward, input gradients, back-projection in every mode against the
# CPU provider, finite differences), and the per-backend benchmark with ratios to wasm.
# Without a hardware GPU the WebGPU tests run on SwiftShader (Debian's chromium) and the benchmark
# compares wasm and onnx only.
#   bash scripts/gpu-check.sh > gpu-check.json
set -uo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$tmp/xdg}"
mkdir -p -m 700 "$XDG_RUNTIME_DIR"

# A hardware GPU uses the system's Vulkan/Metal/D3D12 driver; otherwise SwiftShader when present.
hw=$(npx tsx -e "import('./main/engine/onnx/runtime.ts').then((r) => console.log(r.hardwareGpuHint() ?? ''))" 2>/dev/null)
if [ -z "$hw" ]; then
  export DEEPVIS_WEBGPU_DRIVER=system
elif [ -z "${VK_ICD_FILENAMES:-}" ] && [ -f /usr/lib/chromium/vk_swiftshader_icd.json ]; then
  export VK_ICD_FILENAMES=/usr/lib/chromium/vk_swiftshader_icd.json
fi

export DEEPVIS_WEBGPU_ALL=1
echo "gpu-check: WebGPU provider gradient tests…" >&2
timeout 180 npx vitest run tests/engine-onnx-webgpu.test.ts --reporter=json --outputFile="$tmp/tests.json" >"$tmp/tests.log" 2>&1
tests_rc=$?
echo "gpu-check: benchmark per backend…" >&2
timeout 150 npx tsx scripts/bench-backends.ts --runs 5 >"$tmp/bench.json" 2>"$tmp/bench.log"
bench_rc=$?

HW="$hw" TESTS_RC=$tests_rc BENCH_RC=$bench_rc TMP="$tmp" node -e '
const fs = require("fs");
const read = (f) => { try { return JSON.parse(fs.readFileSync(process.env.TMP + "/" + f, "utf8")); } catch { return null; } };
const t = read("tests.json");
const tail = (f) => { try { return fs.readFileSync(process.env.TMP + "/" + f, "utf8").split("\n").slice(-15).join("\n"); } catch { return ""; } };
const tests = t && {
  passed: t.numPassedTests, failed: t.numFailedTests, skipped: t.numPendingTests,
  results: t.testResults.flatMap((f) => f.assertionResults.map((a) => ({ name: a.fullName, status: a.status, ms: a.duration, failure: a.failureMessages?.[0]?.split("\n")[0] }))),
};
const doc = {
  date: new Date().toISOString(),
  gpu: process.env.HW ? { hardware: false, reason: process.env.HW, webgpu_driver: process.env.VK_ICD_FILENAMES ?? null } : { hardware: true, webgpu_driver: "system" },
  tests: tests ?? { error: `vitest exited ${process.env.TESTS_RC}`, log: tail("tests.log") },
  bench: read("bench.json") ?? { error: `bench exited ${process.env.BENCH_RC}`, log: tail("bench.log") },
};
console.log(JSON.stringify(doc, null, 2));
process.exit(process.env.TESTS_RC === "0" && process.env.BENCH_RC === "0" ? 0 : 1);
'
