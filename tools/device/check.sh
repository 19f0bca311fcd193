#!/usr/bin/env bash
# On the GPU machine, in one call (prepared by tools/device/prepare.sh):
#   1. the Vulkan adapter wgpu sees,
#   2. every WGSL kernel against the CPU oracle + a toy training run (`cliptune check`),
#   3. kernel timings: our WGSL kernels (criterion, GPU half) vs PyTorch CUDA fp32, TF32 off,
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
KERNELS=${KERNELS:-dist/kernels}
PY=${PYTHON:-python3}
step() { echo; echo "== $1 (at ${SECONDS}s)"; }

step "adapter"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>&1 | tee "$OUT/gpu.txt"
"$BIN" devices 2>&1 | tee "$OUT/devices.txt"

step "every WGSL kernel vs the CPU"
timeout 120 "$BIN" check --device gpu 2>&1 | tee "$OUT/check.txt"
echo "check exit: ${PIPESTATUS[0]}" | tee -a "$OUT/check.txt"

step "kernel timings: WGSL (criterion, GPU only)"
timeout 120 "$KERNELS" --bench "${KFILTER:-gpu}" 2>&1 | grep -v "^Benchmarking\|^$" | tee "$OUT/kernels_wgsl.txt"

step "kernel timings: PyTorch CUDA fp32, TF32 off"
timeout 60 "$PY" tools/bench_kernels_torch.py --device cuda 2>&1 | tee "$OUT/kernels_torch.txt"

step "workloads: ours on wgpu vs PyTorch on CUDA"
BIN=$BIN DEVICE=gpu PYTHON=$PY ROUNDS=${ROUNDS:-2} ITERS=${ITERS:-5} OUT="$OUT/compare.jsonl" \
  timeout 240 tools/compare.sh ${PAIRS:-embed-image:32 embed-text:32 lora-step:32 coop-step:32} 2>&1 | tee "$OUT/compare.txt"

step "done"
