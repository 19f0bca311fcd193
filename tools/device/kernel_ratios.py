"""Ours vs PyTorch per kernel and shape, from `cliptune bench --kernel ... --json` lines and
`tools/bench_kernels_torch.py --json` lines (tools/device/check.sh writes both).

    python tools/device/kernel_ratios.py ours.jsonl torch.jsonl
Prints, per (kernel, shape, our variant): both times (gpu_ms where present, else wall_ms)
and the ratio torch/ours (1.0 = as fast as PyTorch; the issue's targets: matmul >= 0.5,
attention >= 0.3). Lines that are not JSON (logs) are skipped.
"""
import json
import sys


def load(path):
    rows = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line.startswith("{"):
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError:
                    pass
    return rows


def ms(r):
    return r["gpu_ms"] if r.get("gpu_ms") is not None else r["wall_ms"]


ours, theirs = load(sys.argv[1]), load(sys.argv[2])
ref = {(r["kernel"], r["shape"]): r for r in theirs}
print(f"{'kernel':<12} {'shape':<16} {'variant':<11} {'ours ms':>10} {'torch ms':>10} {'torch/ours':>10}")
for r in ours:
    t = ref.get((r["kernel"], r["shape"]))
    if t is None:
        print(f"{r['kernel']:<12} {r['shape']:<16} {r.get('variant', ''):<11} {ms(r):10.3f} {'-':>10} {'-':>10}")
        continue
    print(f"{r['kernel']:<12} {r['shape']:<16} {r.get('variant', ''):<11} {ms(r):10.3f} {ms(t):10.3f} {ms(t) / ms(r):10.2f}")
