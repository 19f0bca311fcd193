#!/usr/bin/env bash
# On the GPU machine, in one call (prepared by tools/device/prepare.sh):
#   1. the Vulkan adapter wgpu sees,
#   2. every WGSL kernel against the CPU oracle + a toy training run (`cliptune check`),
#   3. kernel timings: `cliptune bench --kernel` (every kernel at CLIP's shapes, WGSL, GPU
#      timestamps) next to PyTorch CUDA fp32 (cuBLAS with TF32 off, SDPA), and the ratios,
#   4. the issue-5 workloads, ours on wgpu vs PyTorch on CUDA, alternating (tools/compare.sh).
# Logs go to $OUT (the device tool brings them back), else target/device-out. Each step has
# its own timeout so one slow step cannot eat the others' time: at most ~9.5 minutes.
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-target/device-out}
mkdir -p "$OUT"
export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-/tmp}
if ls .gl/*.deb >/dev/null 2>&1; then
  for f in .gl/*.deb; do dpkg -x "$f" /; done
  ldconfig
fi
icd=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
if [ -f "$icd" ]; then
  export VK_DRIVER_FILES=$icd
  export __EGL_VENDOR_LIBRARY_FILENAMES=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
fi
BIN=${BIN:-dist/cliptune}
PY=${PYTHON:-python3}
step() { echo; echo "== $1 (at ${SECONDS}s)"; }

step "adapter"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>&1 | tee "$OUT/gpu.txt"
"$BIN" devices 2>&1 | tee "$OUT/devices.txt"

step "every WGSL kernel vs the CPU"
timeout 120 "$BIN" check --device gpu 2>&1 | tee "$OUT/check.txt"
echo "check exit: ${PIPESTATUS[0]}" | tee -a "$OUT/check.txt"

step "kernel timings: WGSL (cliptune bench --kernel, GPU timestamps)"
: >"$OUT/kernels_wgsl.jsonl"
for k in matmul attention layernorm softmax contrastive adamw; do
  timeout 60 "$BIN" bench --kernel "$k" --device gpu --iters "${KITERS:-10}" --warmup 2 --json --quiet \
    2>>"$OUT/kernels_wgsl.err" | tee -a "$OUT/kernels_wgsl.jsonl"
done
# The first kernel on the same shapes, for the before/after of the matmul rewrite.
timeout 60 "$BIN" bench --kernel matmul --variant naive --device gpu --iters 5 --warmup 1 --json --quiet \
  2>>"$OUT/kernels_wgsl.err" | tee -a "$OUT/kernels_wgsl.jsonl"

step "kernel timings: PyTorch CUDA fp32, TF32 off"
timeout 90 "$PY" tools/bench_kernels_torch.py --device cuda --json 2>&1 | tee "$OUT/kernels_torch.jsonl"

step "kernel ratios (PyTorch time / ours: 1.0 = as fast as PyTorch)"
"$PY" tools/device/kernel_ratios.py "$OUT/kernels_wgsl.jsonl" "$OUT/kernels_torch.jsonl" 2>&1 | tee "$OUT/kernel_ratios.txt"

step "workloads: ours on wgpu vs PyTorch on CUDA"
BIN=$BIN DEVICE=gpu PYTHON=$PY ROUNDS=${ROUNDS:-2} ITERS=${ITERS:-5} OUT="$OUT/compare.jsonl" \
  timeout 240 tools/compare.sh ${PAIRS:-embed-image:32 embed-text:32 lora-step:32 coop-step:32} 2>&1 | tee "$OUT/compare.txt"

step "done"
