#!/usr/bin/env python3
"""The five `cliptune bench` workloads in PyTorch (issue 5), printing the same JSON keys.

    python tools/bench_torch.py --workload lora-step --config vit-b-32 --batch 32 --json

- embed-image: HF CLIPModel vision tower + projection on B random images, torch.no_grad.
- embed-text: B captions of 8..30 tokens (+BOS/EOT; the same lengths as cliptune's, from the
  same splitmix64 stream), padded to 77 with an attention mask, as a HF tokenizer with
  padding="max_length" gives them; the HF text tower runs all 77 positions.
- lora-step: PEFT LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"]) on both
  towers, symmetric contrastive loss with the frozen logit scale, backward, torch AdamW.
- coop-step: a CoOp prompt learner (16 shared context vectors, N(0, 0.02); 10 classes; prompts
  [BOS ctx*16 name . EOT] padded to 77 as in CoOp) through the frozen HF text tower via
  `inputs_embeds`, cached random L2-normalised image features [B, P], CE, backward, AdamW.
- linear-probe: sklearn LogisticRegression(C=1, lbfgs, max_iter=1000) on 1000 x 512
  L2-normalised features of 10 Gaussian classes (cliptune: l2 = 1/(C n) = 1e-3).

Random weights (CLIPConfig with the named shapes) or --config DIR (CLIPModel.from_pretrained).
"""
import argparse
import json
import os
import resource
import statistics
import sys
import time

WORKLOADS = ["embed-image", "embed-text", "lora-step", "coop-step", "linear-probe"]
CONFIGS = {
    # name: (vision width, layers, heads, patch), (text width, layers, heads), projection
    "vit-b-32": ((768, 12, 12, 32), (512, 12, 8), 512),
    "vit-b-16": ((768, 12, 12, 16), (512, 12, 8), 512),
    "vit-l-14": ((1024, 24, 16, 14), (768, 12, 12), 768),
}
PROBE_N, PROBE_D, PROBE_C = 1000, 512, 10
COOP_CTX = 16
COOP_CLASSES = ["dog", "cat", "car", "bird", "ship", "horse", "truck", "frog", "plane", "deer"]
BOS, EOT = 49406, 49407
MASK64 = (1 << 64) - 1


class Rng:
    """cliptune's splitmix64 (src/tensor/mod.rs Rng), for identical caption lengths."""

    def __init__(self, seed):
        self.s = (seed ^ 0x9E3779B97F4A7C15) & MASK64

    def next_u64(self):
        self.s = (self.s + 0x9E3779B97F4A7C15) & MASK64
        z = self.s
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
        return z ^ (z >> 31)

    def below(self, n):
        return self.next_u64() % n


def peak_rss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def make_model(config):
    import torch
    from transformers import CLIPConfig, CLIPModel

    if config in CONFIGS:
        (vw, vl, vh, patch), (tw, tl, th), proj = CONFIGS[config]
        cfg = CLIPConfig(
            text_config=dict(
                hidden_size=tw, num_hidden_layers=tl, num_attention_heads=th, intermediate_size=4 * tw,
                vocab_size=49408, max_position_embeddings=77, bos_token_id=BOS, eos_token_id=EOT,
                pad_token_id=EOT, hidden_act="quick_gelu",
            ),
            vision_config=dict(
                hidden_size=vw, num_hidden_layers=vl, num_attention_heads=vh, intermediate_size=4 * vw,
                image_size=224, patch_size=patch, hidden_act="quick_gelu",
            ),
            projection_dim=proj,
        )
        torch.manual_seed(0)
        return CLIPModel(cfg)
    if os.path.isdir(config):
        return CLIPModel.from_pretrained(config, dtype=torch.float32)
    raise ValueError(
        f"unknown config '{config}': valid configs are {', '.join(CONFIGS)}, or a model directory"
    )


def caption_batch(n, vocab, context, seed=2):
    """Same lengths and layout as cliptune's bench::caption_batch (ids from the same stream)."""
    import torch

    rng = Rng(seed)
    max_id = max(1, min(vocab - 2, BOS))
    ids, mask, eot = [], [], []
    for _ in range(n):
        length = min(8 + rng.below(23), context - 2)
        row = [EOT] * context
        row[0] = BOS
        for i in range(length):
            row[1 + i] = rng.below(max_id)
        row[length + 1] = EOT
        ids.append(row)
        mask.append([1] * (length + 2) + [0] * (context - length - 2))
        eot.append(length + 1)
    return torch.tensor(ids), torch.tensor(mask), torch.tensor(eot)


def image_features(m, pixels):
    return m.visual_projection(m.vision_model(pixel_values=pixels).pooler_output)


def text_features(m, ids, mask):
    return m.text_projection(m.text_model(input_ids=ids, attention_mask=mask).pooler_output)


def setup(a, device):
    import torch
    import torch.nn.functional as F

    if a.workload == "linear-probe":
        import numpy as np
        from sklearn.linear_model import LogisticRegression

        rng = np.random.default_rng(5)
        means = rng.standard_normal((PROBE_C, PROBE_D)).astype(np.float32)
        y = np.arange(PROBE_N) % PROBE_C
        x = means[y] + 2.0 * rng.standard_normal((PROBE_N, PROBE_D)).astype(np.float32)
        x /= np.linalg.norm(x, axis=1, keepdims=True)

        def step():
            LogisticRegression(C=1.0, max_iter=1000).fit(x, y)

        return step

    if a.batch < 1:
        raise ValueError(f"--batch must be at least 1 for workload {a.workload}")
    model = make_model(a.config).to(device)
    b = a.batch
    vc, tc = model.config.vision_config, model.config.text_config
    s = vc.image_size
    g = torch.Generator().manual_seed(1)

    if a.workload == "embed-image":
        model.eval()
        pixels = torch.randn(b, 3, s, s, generator=g).to(device)

        def step():
            with torch.no_grad():
                F.normalize(image_features(model, pixels), dim=-1).cpu()

        return step

    if a.workload == "embed-text":
        model.eval()
        ids, mask, _ = caption_batch(b, tc.vocab_size, tc.max_position_embeddings)
        ids, mask = ids.to(device), mask.to(device)

        def step():
            with torch.no_grad():
                F.normalize(text_features(model, ids, mask), dim=-1).cpu()

        return step

    if a.workload == "lora-step":
        from peft import LoraConfig, get_peft_model

        pm = get_peft_model(
            model, LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0, target_modules=["q_proj", "v_proj"])
        )
        pm.train()
        m = pm.base_model.model
        pixels = torch.randn(b, 3, s, s, generator=g).to(device)
        ids, mask, _ = caption_batch(b, tc.vocab_size, tc.max_position_embeddings)
        ids, mask = ids.to(device), mask.to(device)
        params = [p for p in pm.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(params, lr=1e-4, weight_decay=0.0)
        labels = torch.arange(b, device=device)

        def step():
            img = F.normalize(image_features(m, pixels), dim=-1)
            txt = F.normalize(text_features(m, ids, mask), dim=-1)
            logits = m.logit_scale.exp() * img @ txt.t()
            loss = 0.5 * (F.cross_entropy(logits, labels) + F.cross_entropy(logits.t(), labels))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            loss.item()

        return step

    if a.workload == "coop-step":
        from transformers.models.clip import modeling_clip

        model.requires_grad_(False)
        model.train()
        tm = model.text_model
        emb = tm.embeddings.token_embedding
        ctx_len = tc.max_position_embeddings
        width = tc.hidden_size
        # Class names and "." as fixed single tokens (cliptune tokenizes them; one BPE token each).
        name_ids = [1000 + 7 * i for i in range(len(COOP_CLASSES))]
        dot = 269
        prefix_suffix = []
        eot_pos = []
        for nid in name_ids:
            suffix = [nid, dot, EOT] + [EOT] * (ctx_len - 1 - COOP_CTX - 3)
            prefix_suffix.append([BOS] + suffix)
            eot_pos.append(1 + COOP_CTX + 2)
        tok = torch.tensor(prefix_suffix, device=device)
        with torch.no_grad():
            fixed = emb(tok)  # [C, 1 + rest, W], a buffer as in CoOp
        prefix, suffix = fixed[:, :1], fixed[:, 1:]
        eot_pos = torch.tensor(eot_pos, device=device)
        ctx = torch.nn.Parameter((torch.randn(COOP_CTX, width, generator=g) * 0.02).to(device))
        opt = torch.optim.AdamW([ctx], lr=2e-3, weight_decay=0.0)
        p = model.config.projection_dim
        feats = F.normalize(torch.randn(b, p, generator=torch.Generator().manual_seed(3)), dim=-1).to(device)
        labels = (torch.arange(b) % len(COOP_CLASSES)).to(device)
        scale = model.logit_scale.exp().detach()
        nc = len(COOP_CLASSES)

        def step():
            prompts = torch.cat([prefix, ctx.unsqueeze(0).expand(nc, -1, -1), suffix], dim=1)
            x = tm.embeddings(inputs_embeds=prompts)
            mask = modeling_clip.create_causal_mask(
                config=tm.config, inputs_embeds=x, attention_mask=None, cache=None
            )
            x = tm.encoder(inputs_embeds=x, attention_mask=mask, is_causal=True).last_hidden_state
            x = tm.final_layer_norm(x)
            pooled = x[torch.arange(nc, device=device), eot_pos]
            txt = F.normalize(model.text_projection(pooled), dim=-1)
            loss = F.cross_entropy(scale * feats @ txt.t(), labels)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            loss.item()

        return step

    raise ValueError(f"unknown workload '{a.workload}': valid workloads are {', '.join(WORKLOADS)}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workload", required=True)
    ap.add_argument("--config", default="vit-b-32")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    if a.workload not in WORKLOADS:
        print(f"error: unknown workload '{a.workload}': valid workloads are {', '.join(WORKLOADS)}", file=sys.stderr)
        return 1
    if a.workload != "linear-probe" and a.config not in CONFIGS and not os.path.isdir(a.config):
        print(
            f"error: unknown config '{a.config}': valid configs are {', '.join(CONFIGS)}, or a model directory",
            file=sys.stderr,
        )
        return 1
    import torch

    torch.set_num_threads(a.threads)
    device = torch.device(a.device)
    # fp32 means fp32 on both sides: no TF32 tensor cores for PyTorch on GPU.
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    sync = (lambda: torch.cuda.synchronize()) if device.type == "cuda" else (lambda: None)
    step = setup(a, device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    times, error = [], None
    for i in range(a.warmup + a.iters):
        t0 = time.perf_counter()
        try:
            step()
            sync()
        except (RuntimeError, MemoryError) as e:  # torch.cuda.OutOfMemoryError is a RuntimeError
            phase = "warmup" if i < a.warmup else "timed"
            what = "out of memory" if "out of memory" in str(e).lower() or isinstance(e, MemoryError) else "failed"
            error = f"{what} in {phase} iteration {i + 1} after {len(times)} timed iterations: {e}"
            break
        dt = time.perf_counter() - t0
        if i >= a.warmup:
            times.append(dt)
    med = statistics.median(times) if times else None
    items = PROBE_N if a.workload == "linear-probe" else a.batch
    out = {
        "impl": f"pytorch {torch.__version__}",
        "workload": a.workload,
        "config": a.config,
        "device": "cpu" if device.type == "cpu" else f"cuda ({torch.cuda.get_device_name(device)})",
        "batch": a.batch,
        "iters": len(times),
        "median_s": med,
        "min_s": min(times) if times else None,
        "items_per_s": items / med if med else None,
        "peak_rss_mib": peak_rss_mib(),
        "peak_device_mib": torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None,
        "times_s": times,
    }
    if error:
        out["error"] = error
    if a.json:
        print(json.dumps(out))
    else:
        print(
            f"{a.workload} {a.config} on {out['device']} batch {a.batch}: median {med} s, "
            f"min {out['min_s']} s over {len(times)} iters, peak RSS {out['peak_rss_mib']:.0f} MiB"
            + (f" (STOPPED: {error})" if error else "")
        )
    return 1 if error else 0


if __name__ == "__main__":
    sys.exit(main())
