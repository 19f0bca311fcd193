"""Make the tiny random CLIP fixtures and their golden outputs.

Run once by a developer (not by CI), with torch, transformers and open_clip_torch:
    python tools/make_clip_goldens.py
Writes tests/fixtures/tiny-clip/:
  hf/            config.json + model.safetensors (f16)           HF CLIPModel layout
  open_clip/     open_clip_config.json + open_clip_model.safetensors (bf16)
  goldens.safetensors   inputs and outputs (f32):
     pixel_values [N,3,32,32], input_ids_hf [M,77] (pad 49407), input_ids_oc [M,77] (pad 0),
     image_embeds [N,P], text_embeds [M,P], logits_per_image [N,M]   (quick_gelu, eos 49407)
     gelu_image_embeds, gelu_text_embeds                            (same weights, hidden_act gelu,
                                                                      legacy eos_token_id 2: argmax pooling)
     vision_hidden [N,T,W] (last block output), text_hidden [M,77,W] (last block output)
  goldens.json   the texts, the config used, and the versions.
Weights are random with non-trivial biases and layernorm parameters, rounded to
values exactly representable in both f16 and bf16, so the half-precision files hold
exactly the weights the goldens were computed with.
"""
import json
import math
import os
import sys

import numpy as np
import open_clip
import torch
import transformers
from safetensors.torch import save_file
from transformers import CLIPConfig, CLIPModel

OUT = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "tiny-clip")
torch.manual_seed(1234)

TEXT = dict(vocab_size=49408, hidden_size=16, intermediate_size=64, num_hidden_layers=2,
            num_attention_heads=2, max_position_embeddings=77, hidden_act="quick_gelu",
            layer_norm_eps=1e-5, bos_token_id=49406, eos_token_id=49407, pad_token_id=1)
VISION = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
              image_size=32, patch_size=8, num_channels=3, hidden_act="quick_gelu", layer_norm_eps=1e-5)
PROJ = 24

TEXTS = [
    "a photo of a dog.",
    "A PHOTO OF A CAT!",
    "two red apples, 3 bananas and 1,000 grapes",
    "café naïve résumé",
    "猫の写真",
    "a 🐶 on a 🛹",
    "don't stop   it's   fine\tnew\nline",
    "a very long caption " + "that keeps going and going " * 12,
]


def round_both(t):
    """Round to bf16 (which f16 also represents exactly in its normal range)."""
    t = t.to(torch.bfloat16).to(torch.float32)
    t[t.abs() < 1e-4] = 0.0
    return t


def make_hf():
    cfg = CLIPConfig(text_config=TEXT, vision_config=VISION, projection_dim=PROJ)
    model = CLIPModel(cfg).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name == "logit_scale":
                p.copy_(round_both(torch.tensor(math.log(1 / 0.07))))
                continue
            if "layer_norm" in name or "layrnorm" in name or "layernorm" in name:
                base = 1.0 if name.endswith("weight") else 0.0
                p.copy_(base + 0.2 * torch.randn_like(p))
            elif name.endswith("bias"):
                p.copy_(0.1 * torch.randn_like(p))
            elif "embedding" in name:
                p.copy_(0.5 * torch.randn_like(p))
            else:
                fan_in = p.shape[-1] if p.dim() == 2 else int(np.prod(p.shape[1:]))
                p.copy_(torch.randn_like(p) / math.sqrt(fan_in))
            p.copy_(round_both(p.data))
    return cfg, model


def hf_outputs(model, pixels, ids):
    with torch.no_grad():
        out = model(input_ids=ids, pixel_values=pixels, output_hidden_states=True)
    return out


def to_open_clip(hf_sd, quick_gelu=True):
    """Map HF CLIPModel weights onto an open_clip CLIP with the same shapes."""
    vision_cfg = open_clip.model.CLIPVisionCfg(layers=VISION["num_hidden_layers"], width=VISION["hidden_size"],
                                               head_width=VISION["hidden_size"] // VISION["num_attention_heads"],
                                               mlp_ratio=VISION["intermediate_size"] / VISION["hidden_size"],
                                               patch_size=VISION["patch_size"], image_size=VISION["image_size"])
    text_cfg = open_clip.model.CLIPTextCfg(context_length=77, vocab_size=49408, width=TEXT["hidden_size"],
                                           heads=TEXT["num_attention_heads"], layers=TEXT["num_hidden_layers"],
                                           mlp_ratio=TEXT["intermediate_size"] / TEXT["hidden_size"])
    oc = open_clip.model.CLIP(embed_dim=PROJ, vision_cfg=vision_cfg, text_cfg=text_cfg, quick_gelu=quick_gelu).eval()
    sd = {}

    def blocks(prefix_hf, prefix_oc, n):
        for i in range(n):
            h = f"{prefix_hf}.encoder.layers.{i}."
            o = f"{prefix_oc}transformer.resblocks.{i}."
            sd[o + "ln_1.weight"] = hf_sd[h + "layer_norm1.weight"]
            sd[o + "ln_1.bias"] = hf_sd[h + "layer_norm1.bias"]
            sd[o + "ln_2.weight"] = hf_sd[h + "layer_norm2.weight"]
            sd[o + "ln_2.bias"] = hf_sd[h + "layer_norm2.bias"]
            sd[o + "attn.in_proj_weight"] = torch.cat([hf_sd[h + f"self_attn.{x}_proj.weight"] for x in "qkv"], 0)
            sd[o + "attn.in_proj_bias"] = torch.cat([hf_sd[h + f"self_attn.{x}_proj.bias"] for x in "qkv"], 0)
            sd[o + "attn.out_proj.weight"] = hf_sd[h + "self_attn.out_proj.weight"]
            sd[o + "attn.out_proj.bias"] = hf_sd[h + "self_attn.out_proj.bias"]
            sd[o + "mlp.c_fc.weight"] = hf_sd[h + "mlp.fc1.weight"]
            sd[o + "mlp.c_fc.bias"] = hf_sd[h + "mlp.fc1.bias"]
            sd[o + "mlp.c_proj.weight"] = hf_sd[h + "mlp.fc2.weight"]
            sd[o + "mlp.c_proj.bias"] = hf_sd[h + "mlp.fc2.bias"]

    sd["visual.class_embedding"] = hf_sd["vision_model.embeddings.class_embedding"]
    sd["visual.positional_embedding"] = hf_sd["vision_model.embeddings.position_embedding.weight"]
    sd["visual.conv1.weight"] = hf_sd["vision_model.embeddings.patch_embedding.weight"]
    sd["visual.ln_pre.weight"] = hf_sd["vision_model.pre_layrnorm.weight"]
    sd["visual.ln_pre.bias"] = hf_sd["vision_model.pre_layrnorm.bias"]
    blocks("vision_model", "visual.", VISION["num_hidden_layers"])
    sd["visual.ln_post.weight"] = hf_sd["vision_model.post_layernorm.weight"]
    sd["visual.ln_post.bias"] = hf_sd["vision_model.post_layernorm.bias"]
    sd["visual.proj"] = hf_sd["visual_projection.weight"].t().contiguous()
    sd["token_embedding.weight"] = hf_sd["text_model.embeddings.token_embedding.weight"]
    sd["positional_embedding"] = hf_sd["text_model.embeddings.position_embedding.weight"]
    blocks("text_model", "", TEXT["num_hidden_layers"])
    sd["ln_final.weight"] = hf_sd["text_model.final_layer_norm.weight"]
    sd["ln_final.bias"] = hf_sd["text_model.final_layer_norm.bias"]
    sd["text_projection"] = hf_sd["text_projection.weight"].t().contiguous()
    sd["logit_scale"] = hf_sd["logit_scale"]
    missing, unexpected = oc.load_state_dict(sd, strict=False)
    missing = [m for m in missing if m != "attn_mask"]
    assert not missing and not unexpected, (missing, unexpected)
    model_cfg = dict(embed_dim=PROJ, quick_gelu=quick_gelu,
                     vision_cfg=dict(image_size=VISION["image_size"], layers=VISION["num_hidden_layers"],
                                     width=VISION["hidden_size"], patch_size=VISION["patch_size"],
                                     head_width=VISION["hidden_size"] // VISION["num_attention_heads"],
                                     mlp_ratio=VISION["intermediate_size"] / VISION["hidden_size"]),
                     text_cfg=dict(context_length=77, vocab_size=49408, width=TEXT["hidden_size"],
                                   heads=TEXT["num_attention_heads"], layers=TEXT["num_hidden_layers"],
                                   mlp_ratio=TEXT["intermediate_size"] / TEXT["hidden_size"]))
    return oc, sd, model_cfg


def main():
    cfg, model = make_hf()
    hf_sd = {k: v.detach().clone() for k, v in model.state_dict().items() if "position_ids" not in k}

    tok = open_clip.get_tokenizer("ViT-B-32")
    ids_oc = tok(TEXTS)  # [M, 77], pad 0, truncated with EOT last
    ids_hf = ids_oc.clone()
    for r in range(ids_hf.shape[0]):
        eot = int((ids_hf[r] == 49407).nonzero()[0])
        ids_hf[r, eot + 1:] = 49407  # HF pads with EOT
    g = torch.Generator().manual_seed(7)
    pixels = torch.randn(3, 3, 32, 32, generator=g)

    out = hf_outputs(model, pixels, ids_hf)
    oc, oc_sd, model_cfg = to_open_clip(hf_sd)
    with torch.no_grad():
        oi = oc.encode_image(pixels, normalize=True)
        ot = oc.encode_text(ids_oc, normalize=True)
    assert torch.allclose(oi, out.image_embeds, atol=1e-5), (oi - out.image_embeds).abs().max()
    assert torch.allclose(ot, out.text_embeds, atol=1e-5), (ot - out.text_embeds).abs().max()

    # Same weights, exact GELU and the legacy eos_token_id = 2 (argmax pooling).
    text2 = dict(TEXT, hidden_act="gelu", eos_token_id=2)
    vision2 = dict(VISION, hidden_act="gelu")
    cfg2 = CLIPConfig(text_config=text2, vision_config=vision2, projection_dim=PROJ)
    model2 = CLIPModel(cfg2).eval()
    model2.load_state_dict(model.state_dict())
    out2 = hf_outputs(model2, pixels, ids_hf)

    hf_dir = os.path.join(OUT, "hf")
    oc_dir = os.path.join(OUT, "open_clip")
    os.makedirs(hf_dir, exist_ok=True)
    os.makedirs(oc_dir, exist_ok=True)
    save_file({k: v.to(torch.float16).contiguous() for k, v in hf_sd.items()}, os.path.join(hf_dir, "model.safetensors"))
    cfg_dict = cfg.to_dict()
    with open(os.path.join(hf_dir, "config.json"), "w") as f:
        json.dump(cfg_dict, f, indent=2, sort_keys=True)
    save_file({k: v.to(torch.bfloat16).contiguous() for k, v in oc_sd.items()},
              os.path.join(oc_dir, "open_clip_model.safetensors"))
    with open(os.path.join(oc_dir, "open_clip_config.json"), "w") as f:
        json.dump({"model_cfg": model_cfg,
                   "preprocess_cfg": {"mean": [0.48145466, 0.4578275, 0.40821073],
                                      "std": [0.26862954, 0.26130258, 0.27577711]}}, f, indent=2)

    goldens = {
        "pixel_values": pixels,
        "input_ids_hf": ids_hf.to(torch.int32),
        "input_ids_oc": ids_oc.to(torch.int32),
        "image_embeds": out.image_embeds,
        "text_embeds": out.text_embeds,
        "logits_per_image": out.logits_per_image,
        "gelu_image_embeds": out2.image_embeds,
        "gelu_text_embeds": out2.text_embeds,
        "vision_hidden": out.vision_model_output.hidden_states[-1],
        "text_hidden": out.text_model_output.hidden_states[-1],
    }
    save_file({k: v.detach().contiguous() for k, v in goldens.items()}, os.path.join(OUT, "goldens.safetensors"))
    with open(os.path.join(OUT, "goldens.json"), "w") as f:
        json.dump({"texts": TEXTS, "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                                                  "open_clip": open_clip.__version__}}, f, indent=2, ensure_ascii=False)
    print("wrote", OUT)


if __name__ == "__main__":
    sys.exit(main())
