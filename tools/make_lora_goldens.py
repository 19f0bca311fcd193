"""Make the LoRA fixtures and goldens with PEFT on the tiny random CLIP.

Run once by a developer (not by CI), with torch, transformers and peft:
    /work/venv/bin/python tools/make_lora_goldens.py
Reads tests/fixtures/tiny-clip/hf (loaded as float32) and the inputs in
tests/fixtures/tiny-clip/goldens.safetensors. Writes tests/fixtures/lora/:
  peft_adapter/       PEFT's own save_pretrained: r=4, alpha=8, dropout 0.1 (inactive in
                      eval), q_proj + v_proj of BOTH towers (target_modules ["q_proj", "v_proj"])
  peft_adapter_fc1/   r=2, alpha=3, mlp.fc1 of the TEXT tower only (target_modules a regex)
  goldens.safetensors (f32), per adapter prefix P in {qv, fc1}:
     P.image_embeds [3, 24], P.text_embeds [8, 24]   (L2-normalised, all 8 texts)
     P.loss [1]   CLIP's symmetric contrastive loss on the 3 images and the FIRST 3 texts,
                  (CE(logits_per_image) + CE(logits_per_text)) / 2, logits = exp(logit_scale) * cos
     P.grad.<module>.lora_A.weight / .lora_B.weight   d loss / d lora weight, <module> the
                  PEFT module name relative to CLIPModel (text_model.encoder.layers.0.self_attn.q_proj)
     P.merged_image_embeds, P.merged_text_embeds     after PEFT merge_and_unload
  goldens.json        versions, the key list of each adapter file, and the configs.
lora_A and lora_B are set to non-zero random values so nothing is trivially zero.

Second mode, to check that cliptune's export loads in PEFT and gives the same embeddings:
    CLIPTUNE_KEEP_LORA_EXPORTS=/tmp/ex cargo test --test lora export_load_round_trip
    /work/venv/bin/python tools/make_lora_goldens.py --check /tmp/ex/qv     (also fc1, fresh)
DIR holds an adapter written by cliptune's `export_peft` and cliptune's embeddings of the
fixture inputs with it (cliptune_embeds.safetensors); PEFT must reproduce them.
The same test run also keeps cliptune's merged HF checkpoints (merge + save_hf_checkpoint);
    /work/venv/bin/python tools/make_lora_goldens.py --check-merged /tmp/ex/merged-qv qv
loads one with transformers' CLIPModel and compares with PEFT's merge_and_unload goldens.
"""
import argparse
import json
import math
import os
import sys

import peft
import torch
import transformers
from peft import LoraConfig, PeftModel, get_peft_model
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from transformers import CLIPModel

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures")
HF = os.path.join(ROOT, "tiny-clip", "hf")
OUT = os.path.join(ROOT, "lora")
N_LOSS = 3  # images in the fixture; the loss pairs them with the first 3 texts

CONFIGS = {
    "qv": dict(dir="peft_adapter", r=4, lora_alpha=8, lora_dropout=0.1, target_modules=["q_proj", "v_proj"]),
    "fc1": dict(dir="peft_adapter_fc1", r=2, lora_alpha=3, lora_dropout=0.0,
                target_modules=r"text_model\.encoder\.layers\.\d+\.mlp\.fc1"),
}


def base_model():
    return CLIPModel.from_pretrained(HF, dtype=torch.float32).eval()


def inputs():
    g = load_file(os.path.join(ROOT, "tiny-clip", "goldens.safetensors"))
    return g["pixel_values"].float(), g["input_ids_hf"].long()


def clip_loss(model, pixels, ids):
    out = model(input_ids=ids[:N_LOSS], pixel_values=pixels)
    lp = out.logits_per_image
    labels = torch.arange(lp.shape[0])
    loss = (torch.nn.functional.cross_entropy(lp, labels) + torch.nn.functional.cross_entropy(lp.t(), labels)) / 2
    return loss


def embeds(model, pixels, ids):
    with torch.no_grad():
        out = model(input_ids=ids, pixel_values=pixels)
    return out.image_embeds.detach().clone(), out.text_embeds.detach().clone()


def lora_params(pm):
    """(module name relative to CLIPModel, 'lora_A' | 'lora_B', parameter)."""
    out = []
    for name, p in pm.named_parameters():
        if "lora_" not in name:
            continue
        # base_model.model.<module>.lora_A.default.weight
        parts = name.split(".")
        i = next(k for k, s in enumerate(parts) if s in ("lora_A", "lora_B"))
        module = ".".join(parts[2:i])
        out.append((module, parts[i], p))
    return out


def make(prefix, spec, pixels, ids, goldens, meta):
    torch.manual_seed({"qv": 11, "fc1": 22}[prefix])
    cfg = LoraConfig(r=spec["r"], lora_alpha=spec["lora_alpha"], lora_dropout=spec["lora_dropout"],
                     target_modules=spec["target_modules"], bias="none")
    pm = get_peft_model(base_model(), cfg).eval()
    with torch.no_grad():
        for module, which, p in lora_params(pm):
            if which == "lora_A":
                p.copy_(torch.randn_like(p) / math.sqrt(p.shape[1]))
            else:
                p.copy_(0.3 * torch.randn_like(p))
    adir = os.path.join(OUT, spec["dir"])
    pm.peft_config["default"].base_model_name_or_path = "tests/fixtures/tiny-clip/hf"
    pm.save_pretrained(adir)
    if os.path.exists(os.path.join(adir, "README.md")):
        os.remove(os.path.join(adir, "README.md"))  # PEFT's model-card template
    with safe_open(os.path.join(adir, "adapter_model.safetensors"), "pt") as f:
        keys = {k: list(f.get_slice(k).get_shape()) for k in f.keys()}
    meta[prefix] = {"dir": spec["dir"], "keys": keys,
                    "config": {k: v for k, v in spec.items() if k != "dir"}}

    img, txt = embeds(pm, pixels, ids)
    goldens[f"{prefix}.image_embeds"] = img
    goldens[f"{prefix}.text_embeds"] = txt

    # Reload PEFT's own export to be sure the file is what the goldens describe.
    re = PeftModel.from_pretrained(base_model(), adir).eval()
    img2, txt2 = embeds(re, pixels, ids)
    assert torch.equal(img, img2) and torch.equal(txt, txt2)

    pm.zero_grad()
    loss = clip_loss(pm, pixels, ids)
    loss.backward()
    goldens[f"{prefix}.loss"] = loss.detach().reshape(1)
    for module, which, p in lora_params(pm):
        goldens[f"{prefix}.grad.{module}.{which}.weight"] = p.grad.detach().clone()

    merged = pm.merge_and_unload().eval()
    mi, mt = embeds(merged, pixels, ids)
    goldens[f"{prefix}.merged_image_embeds"] = mi
    goldens[f"{prefix}.merged_text_embeds"] = mt
    print(f"{prefix}: loss {loss.item():.6f}, merged vs unmerged max diff "
          f"{max((mi - img).abs().max().item(), (mt - txt).abs().max().item()):.2e}, "
          f"lora effect on embeds {max((e - b).abs().max().item() for e, b in zip((img, txt), embeds(base_model(), pixels, ids))):.3f}")


def check(dir_):
    """Load cliptune's export in PEFT; compare with cliptune's embeddings saved beside it."""
    pixels, ids = inputs()
    g = load_file(os.path.join(dir_, "cliptune_embeds.safetensors"))
    pm = PeftModel.from_pretrained(base_model(), dir_).eval()
    img, txt = embeds(pm, pixels, ids)
    ei = (img - g["image_embeds"]).abs().max().item()
    et = (txt - g["text_embeds"]).abs().max().item()
    n = sum(1 for _ in lora_params(pm))
    print(f"PEFT loaded {dir_}: {n} lora tensors; image embeds max abs diff {ei:.2e}, text {et:.2e}")
    base_i, base_t = embeds(base_model(), pixels, ids)
    effect = max((img - base_i).abs().max().item(), (txt - base_t).abs().max().item())
    assert effect > 1e-3, "adapter had no effect: not loaded?"
    assert ei < 1e-4 and et < 1e-4
    print("OK")


def check_merged(dir_, prefix):
    pixels, ids = inputs()
    g = load_file(os.path.join(OUT, "goldens.safetensors"))
    m = CLIPModel.from_pretrained(dir_, dtype=torch.float32).eval()
    img, txt = embeds(m, pixels, ids)
    ei = (img - g[f"{prefix}.merged_image_embeds"]).abs().max().item()
    et = (txt - g[f"{prefix}.merged_text_embeds"]).abs().max().item()
    print(f"transformers loaded {dir_}: vs PEFT merge_and_unload image embeds max abs diff {ei:.2e}, text {et:.2e}")
    assert ei < 1e-4 and et < 1e-4
    print("OK")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--check")
    ap.add_argument("--check-merged", nargs=2, metavar=("DIR", "PREFIX"))
    a = ap.parse_args()
    if a.check:
        return check(a.check)
    if a.check_merged:
        return check_merged(*a.check_merged)
    os.makedirs(OUT, exist_ok=True)
    pixels, ids = inputs()
    goldens, meta = {}, {}
    for prefix, spec in CONFIGS.items():
        make(prefix, spec, pixels, ids, goldens, meta)
    save_file({k: v.float().contiguous() for k, v in goldens.items()}, os.path.join(OUT, "goldens.safetensors"))
    meta["versions"] = {"torch": torch.__version__, "transformers": transformers.__version__,
                        "peft": peft.__version__}
    with open(os.path.join(OUT, "goldens.json"), "w") as f:
        json.dump(meta, f, indent=2, sort_keys=True)
    print("wrote", OUT)


if __name__ == "__main__":
    sys.exit(main())
