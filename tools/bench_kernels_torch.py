"""PyTorch timings of the kernels benches/kernels.rs measures, same shapes, same machine.

    python tools/bench_kernels_torch.py            # prints one line per kernel: name, median s, GFLOP/s or GB/s
    python tools/bench_kernels_torch.py --device cuda   # fp32 on the GPU, TF32 off (cuBLAS SGEMM)
Run it in the same sitting as `cargo bench --bench kernels` and compare ratios (absolute
times on shared machines drift by up to 40 %). torch.set_num_threads = the machine's cores.
"""
import argparse
import math
import os
import statistics
import time

import torch
import torch.nn.functional as F

ap = argparse.ArgumentParser()
ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
DEV = ap.parse_args().device
torch.set_num_threads(os.cpu_count())
torch.manual_seed(0)
torch.set_default_device(DEV)
if DEV == "cuda":
    # The yardstick is fp32 SGEMM: no TF32 tensor-core shortcut.
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    print(f"# {torch.cuda.get_device_name()}, torch {torch.__version__}, TF32 off")


def sync():
    if DEV == "cuda":
        torch.cuda.synchronize()


def bench(name, fn, work, unit, iters=None):
    iters = iters or (50 if DEV == "cuda" else 10)
    fn()
    sync()
    ts = []
    for _ in range(iters):
        t0 = time.perf_counter()
        fn()
        sync()
        ts.append(time.perf_counter() - t0)
    med = statistics.median(ts)
    print(f"{name:<40} median {med*1e3:9.2f} ms  min {min(ts)*1e3:9.2f} ms  {work/med/1e9:8.1f} {unit}")


with torch.no_grad():
    for name, b, m, n, k, tb in [("linear_1600x768x768", 1, 1600, 768, 768, True),
                                 ("fc1_2464x2048x512", 1, 2464, 2048, 512, True),
                                 ("vit_fc1_1600x3072x768", 1, 1600, 3072, 768, True),
                                 ("vit_fc2_1600x768x3072", 1, 1600, 768, 3072, True),
                                 ("batched_32x50x3072x768", 32, 50, 3072, 768, False)]:
        a = torch.randn(b, m, k)
        w = torch.randn(b, n, k) if tb else torch.randn(b, k, n)
        if b == 1:
            a, w = a[0], w[0]
            f = (lambda a=a, w=w: a @ w.t()) if tb else (lambda a=a, w=w: a @ w)
        else:
            f = (lambda a=a, w=w: torch.bmm(a, w.transpose(1, 2))) if tb else (lambda a=a, w=w: torch.bmm(a, w))
        bench(f"matmul/{name}", f, 2 * b * m * n * k, "GFLOP/s")

    for seq, causal, h, b in [(50, False, 12, 32), (77, True, 12, 32), (257, False, 16, 8)]:
        dh = 64
        q, k_, v = (torch.randn(b, h, seq, dh) for _ in range(3))
        bench(f"attention/fwd_b{b}_h{h}_t{seq}{'_causal' if causal else ''}",
              lambda: F.scaled_dot_product_attention(q, k_, v, is_causal=causal), 4 * b * h * seq * seq * dh, "GFLOP/s")

    x = torch.randn(1600, 768)
    g, bb = torch.randn(768), torch.randn(768)
    bench("layernorm/fwd_1600x768", lambda: F.layer_norm(x, (768,), g, bb, 1e-5), 2 * 1600 * 768 * 4, "GB/s")

b, d = 256, 512
img = F.normalize(torch.randn(b, d), dim=-1).requires_grad_()
txt = F.normalize(torch.randn(b, d), dim=-1).requires_grad_()
ls = torch.tensor(math.log(1 / 0.07), requires_grad=True)
labels = torch.arange(b)


def clip_loss():
    logits = ls.exp() * img @ txt.t()
    return (F.cross_entropy(logits, labels) + F.cross_entropy(logits.t(), labels)) / 2


with torch.no_grad():
    bench("contrastive_loss/fwd_b256_d512", clip_loss, 2 * 2 * b * b * d, "GFLOP/s")


def fwd_bwd():
    loss = clip_loss()
    torch.autograd.grad(loss, [img, txt, ls])


bench("contrastive_loss/fwd+bwd_b256_d512", fwd_bwd, 6 * 2 * b * b * d, "GFLOP/s")
