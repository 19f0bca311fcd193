"""Check that a `cliptune pretrain` output loads in transformers and gives our embeddings.

    /work/venv/bin/python tools/cliptune-mini/check_hf_load.py assets/cliptune-mini

Loads the directory with `CLIPModel` + `CLIPTokenizerFast` (its pruned tokenizer.json) +
`CLIPImageProcessor`, embeds a few texts and the first images of heldout.png, runs
`cliptune embed` on the same inputs and prints the max abs difference (f16 weights, f32
compute on both sides).
"""
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from safetensors.numpy import load_file
from transformers import CLIPImageProcessor, CLIPModel, CLIPTokenizerFast

d = Path(sys.argv[1])
binary = sys.argv[2] if len(sys.argv) > 2 else "target/release/cliptune"
model = CLIPModel.from_pretrained(d, dtype=torch.float32).eval()
tok = CLIPTokenizerFast(tokenizer_file=str(d / "tokenizer.json"))
proc = CLIPImageProcessor.from_pretrained(d)
texts = ["an emoji of grinning face.", "an emoji of a red apple.", "a photo of a sneaker."]
sheet = json.loads((d / "heldout.json").read_text())
th, tw = sheet["tile"]
img = Image.open(d / "heldout.png").convert("RGB")
tmp = Path(tempfile.mkdtemp())
paths = []
for i in range(4):
    r, c = divmod(i, sheet["columns"])
    p = tmp / f"{i}.png"
    img.crop((c * tw, r * th, c * tw + tw, r * th + th)).save(p)
    paths.append(p)
with torch.no_grad():
    t = tok(texts, padding="max_length", max_length=77, return_tensors="pt")
    te = model.get_text_features(**t)
    px = proc(images=[Image.open(p) for p in paths], return_tensors="pt")["pixel_values"]
    ie = model.get_image_features(pixel_values=px)
    te = getattr(te, "pooler_output", te)
    ie = getattr(ie, "pooler_output", ie)
    te = (te / te.norm(dim=-1, keepdim=True)).numpy()
    ie = (ie / ie.norm(dim=-1, keepdim=True)).numpy()
out = tmp / "ours.safetensors"
cmd = [binary, "embed", "--model", str(d), "--device", "cpu", "--out", str(out)]
for p in paths:
    cmd += ["--image", str(p)]
for s in texts:
    cmd += ["--text", s]
subprocess.run(cmd, check=True)
ours = load_file(str(out))
ti = np.abs(ours["text_embeds"] - te).max()
ii = np.abs(ours["image_embeds"] - ie).max()
print(f"tokens HF: {t['input_ids'][0][:12].tolist()}")
print(f"max abs diff: text {ti:.2e}, image {ii:.2e}")
assert ti < 1e-4 and ii < 1e-4, "cliptune and transformers disagree"
print("OK: transformers loads the directory and agrees with cliptune")
