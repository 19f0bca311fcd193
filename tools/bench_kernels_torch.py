"""PyTorch timings of the kernels `cliptune bench --kernel K` measures, same default shapes.

    python tools/bench_kernels_torch.py                  # one readable line per kernel and shape
    python tools/bench_kernels_torch.py --json           # one JSON object per line, bench --kernel's keys
    python tools/bench_kernels_torch.py --device cuda    # fp32 on the GPU, TF32 off (cuBLAS SGEMM, SDPA)
Run it in the same sitting as `cliptune bench --kernel ... --json` and compare ratios
(absolute times on shared machines drift by up to 40 %). gpu_ms (CUDA only) is from CUDA
events around one call; wall_ms is the host time of one call plus synchronize; gflops
and gbps use gpu_ms where there is one, as ours do. FLOP and byte counts are the ones
src/bench/kernel.rs uses.
"""
import argparse
import json
import math
import os
import statistics
import time

import torch
import torch.nn.functional as F

ap = argparse.ArgumentParser()
ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
ap.add_argument("--json", action="store_true")
ap.add_argument("--iters", type=int, default=None)
ap.add_argument("--kernel", action="append", help="only these kernels (repeatable)")
ARGS = ap.parse_args()
DEV = ARGS.device
torch.set_num_threads(os.cpu_count())
torch.manual_seed(0)
torch.set_default_device(DEV)
if DEV == "cuda":
    # The yardstick is fp32: no TF32 tensor-core shortcut.
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    ADAPTER = torch.cuda.get_device_name()
    print(f"# {ADAPTER}, torch {torch.__version__}, TF32 off", flush=True)
else:
    ADAPTER = "cpu"


def sync():
    if DEV == "cuda":
        torch.cuda.synchronize()


def bench(kernel, shape, fn, flops, nbytes):
    if ARGS.kernel and kernel not in ARGS.kernel:
        return
    iters = ARGS.iters or (50 if DEV == "cuda" else 10)
    fn()
    sync()
    walls, gpus = [], []
    for _ in range(iters):
        if DEV == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            t0 = time.perf_counter()
            start.record()
            fn()
            end.record()
            sync()
            walls.append((time.perf_counter() - t0) * 1e3)
            gpus.append(start.elapsed_time(end))
        else:
            t0 = time.perf_counter()
            fn()
            walls.append((time.perf_counter() - t0) * 1e3)
    wall = statistics.median(walls)
    gpu = statistics.median(gpus) if gpus else None
    t = (gpu if gpu is not None else wall) / 1e3
    r = {"impl": "pytorch", "kernel": kernel, "shape": shape, "adapter": ADAPTER, "backend": DEV,
         "gpu_ms": gpu, "wall_ms": wall, "gflops": flops / t / 1e9, "gbps": nbytes / t / 1e9, "iters": iters}
    if ARGS.json:
        print(json.dumps(r), flush=True)
    else:
        g = f"{gpu:8.3f} ms GPU, " if gpu is not None else ""
        print(f"{kernel} {shape}: {g}{wall:8.3f} ms wall, {r['gflops']:8.1f} GFLOP/s, {r['gbps']:7.1f} GB/s", flush=True)


with torch.no_grad():
    # X[M,K] @ W[N,K]^T + bias (a Linear), or B batched [M,K] @ [K,N].
    for shape in ["1600x768x768", "1600x3072x768", "1600x768x3072", "2464x2048x512", "32x50x3072x768"]:
        d = [int(x) for x in shape.split("x")]
        if len(d) == 3:
            m, n, k = d
            a, w, bias = torch.randn(m, k), torch.randn(n, k), torch.randn(n)
            bench("matmul", shape, lambda a=a, w=w, bias=bias: F.linear(a, w, bias), 2 * m * n * k,
                  4 * (m * k + m * n + n * k))
        else:
            b, m, n, k = d
            a, w = torch.randn(b, m, k), torch.randn(b, k, n)
            bench("matmul", shape, lambda a=a, w=w: torch.bmm(a, w), 2 * b * m * n * k, 4 * b * (m * k + m * n + k * n))

    for shape in ["32x12x50x64", "32x12x77x64", "32x12x257x64"]:
        b, h, s, dh = (int(x) for x in shape.split("x"))
        # Ours reads [B, S, H*D]; SDPA wants [B, H, S, D]: the same bytes, viewed.
        q, k_, v = (torch.randn(b, s, h, dh).transpose(1, 2) for _ in range(3))
        bench("attention", shape, lambda q=q, k_=k_, v=v: F.scaled_dot_product_attention(q, k_, v),
              4 * b * h * s * s * dh, 4 * 4 * b * s * h * dh)

    for shape in ["1600x768", "2464x512"]:
        r, c = (int(x) for x in shape.split("x"))
        x, g, bb = torch.randn(r, c), torch.randn(c), torch.randn(c)
        bench("layernorm", shape, lambda x=x, g=g, bb=bb, c=c: F.layer_norm(x, (c,), g, bb, 1e-5), 8 * r * c, 8 * r * c)

    for shape in ["19200x50", "29568x77", "98688x257"]:
        r, c = (int(x) for x in shape.split("x"))
        x = torch.randn(r, c)
        bench("softmax", shape, lambda x=x: torch.softmax(x, dim=-1), 5 * r * c, 8 * r * c)

    for shape in ["32x512", "256x512"]:
        n, d = (int(x) for x in shape.split("x"))
        img, txt = torch.randn(n, d), torch.randn(n, d)
        ls = torch.tensor(math.log(1 / 0.07))
        labels = torch.arange(n)

        def clip_loss(img=img, txt=txt, ls=ls, labels=labels):
            logits = ls.exp() * img @ txt.t()
            return (F.cross_entropy(logits, labels) + F.cross_entropy(logits.t(), labels)) / 2

        bench("contrastive", shape, clip_loss, 2 * n * n * d, 4 * 2 * n * d)

    for shape in ["1048576", "8388608"]:
        n = int(shape)
        p = torch.randn(n)
        p.grad = torch.randn(n)
        opt = torch.optim.AdamW([p], lr=1e-4, weight_decay=0.01, foreach=False, fused=DEV == "cuda")
        bench("adamw", shape, opt.step, 12 * n, 4 * 7 * n)
