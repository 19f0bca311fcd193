"""Make the image-preprocessing fixtures and their goldens.

Run once by a developer (not by CI), with pillow, numpy, transformers and torchvision:
    python tools/make_preprocess_goldens.py
Writes tests/fixtures/preprocess/:
  inputs/*.png|jpg    small deterministic test images of odd sizes and modes
  goldens.safetensors
      <name>/s32_c32x32, <name>/s32_c40x24   u8 [3,h,w]: transformers' CLIPImageProcessorPil
          (the PIL path of CLIPImageProcessor, as OpenAI's CLIP preprocesses) with size
          {"shortest_edge": 32}, stored as the 8-bit crop its f32 pixel_values were computed
          from (the script checks that (u8 / 255 - mean) / std in HF's float order gives HF's
          f32 output bit for bit); the second crop is non-square and taller than the resized
          image, so it pads
      f32/<name>/<key>    f32 [3,h,w] HF's pixel_values themselves, for a few images
      tv/<name>/s32_c32x32   f16 (plenty for a 2/255 tolerance): transformers 5.x's default
          CLIPImageProcessor (torchvision backend: float resize, not PIL's 8-bit one)
      decoded/<name>      u8 [h,w,3] PIL's decode (after HF's convert-to-RGB) of the JPEGs
  s224/<name>.png     the size-224 / crop-224x224 CLIPImageProcessorPil output as an 8-bit
                      PNG (same lossless check), for the images listed in the manifest
  manifest.json       names, modes, sizes, configs, versions, and notes

Two deliberate differences from PIL, reflected in the goldens:
  * 16-bit greyscale PNGs: PIL opens them as mode "I;16" and convert("RGB") CLAMPS the
    16-bit values to 255 (a photo becomes white). We take the high byte instead, the same
    as PIL itself does for 16-bit RGB/RGBA PNGs. The golden for grey16 is HF's output for
    the high-byte 8-bit image; HF's raw (clamped) output differs, see the printout.
  * JPEG: the Rust `image` crate (zune-jpeg) and PIL (libjpeg-turbo) decode JPEGs slightly
    differently; the decoded RGB is stored so the test can compare the decoders and check
    the pipeline bit for bit from PIL's decode.
"""
import json
import os
import struct
import sys
import zlib

import numpy as np
import PIL
import transformers
from PIL import Image
from safetensors.numpy import save_file
from transformers import CLIPImageProcessor, CLIPImageProcessorPil

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "preprocess")
INP = os.path.join(OUT, "inputs")
S224 = os.path.join(OUT, "s224")
MEAN = (0.48145466, 0.4578275, 0.40821073)
STD = (0.26862954, 0.26130258, 0.27577711)

rng = np.random.default_rng(20240611)
# Full f32 goldens for these; u8 (lossless) for the rest, and no s224 golden for these JPEG
# variants (their s32 goldens and decodes cover them), to keep the fixtures small.
F32_GOLDENS = {"rgb_37x53", "rgba_64x40"}
NO_S224 = {"photo444_80x60", "progressive_80x60", "restart_80x60", "cmyk_40x30"}


def field(h, w, seed_shift=0.0):
    """Smooth gradients, a few sharp edges and some noise: [h, w, 3] uint8."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    r = 255 * x / max(w - 1, 1)
    g = 255 * y / max(h - 1, 1)
    b = 127.5 + 127.5 * np.sin((x + 2 * y) / 3.0 + seed_shift)
    img = np.stack([r, g, b], -1)
    img[(x // 7 + y // 5) % 2 == 0] *= 0.6  # checker edges
    img += rng.normal(0, 12, img.shape)
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


def structured(h, w):
    """High-frequency but compressible content, for the antialiased shrink."""
    y, x = np.mgrid[0:h, 0:w]
    r = ((x // 3) % 2) * 255
    g = ((y // 2) % 2) * 200 + 20
    b = ((x + y) // 9 % 3) * 120
    return np.stack([r, g, b], -1).astype(np.uint8)


def write_png16(path, arr, color_type):
    """PIL cannot write 16-bit RGB(A) PNGs; write one by hand (filter 0 rows, zlib)."""
    h, w = arr.shape[:2]
    raw = b"".join(b"\x00" + arr[yy].astype(">u2").tobytes() for yy in range(h))

    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", w, h, 16, color_type, 0, 0, 0)
    data = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")
    with open(path, "wb") as f:
        f.write(data)


def make_inputs():
    """Returns [(name, filename, note)]."""
    os.makedirs(INP, exist_ok=True)
    items = []

    def save(name, im, ext="png", note="", **kw):
        fn = f"{name}.{ext}"
        im.save(os.path.join(INP, fn), **kw)
        items.append((name, fn, note))

    save("rgb_37x53", Image.fromarray(field(53, 37)), note="RGB, upscaled")
    rgba = np.concatenate([field(40, 64, 1.0), np.zeros((40, 64, 1), np.uint8)], -1)
    yy, xx = np.mgrid[0:40, 0:64]
    rgba[..., 3] = np.clip(xx * 5 - 20, 0, 255)  # alpha 0 .. 255 ramps, exercises compositing
    rgba[yy % 9 == 0, 3] = 255
    save("rgba_64x40", Image.fromarray(rgba, "RGBA"), note="RGBA, composited onto white by HF")
    save("grey_30x30", Image.fromarray(field(30, 30, 2.0)[..., 1], "L"), note="L")
    la = np.stack([field(27, 33, 3.0)[..., 0], np.clip(np.mgrid[0:27, 0:33][0] * 12, 0, 255).astype(np.uint8)], -1)
    save("la_33x27", Image.fromarray(la, "LA"), note="LA")
    pal = Image.fromarray(field(31, 45, 4.0)).quantize(colors=37, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    save("palette_45x31", pal, note="P, no transparency")
    palt = Image.fromarray(field(31, 45, 5.0)).quantize(colors=19, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    alpha = bytes([255] * 19)
    alpha = alpha[:3] + bytes([0, 128]) + alpha[5:]
    save("palette_trns_45x31", palt, note="P with tRNS (two indices transparent/half)", transparency=alpha)
    g16 = (np.mgrid[0:36, 0:24][1].astype(np.float64) * 2800 + rng.normal(0, 900, (36, 24)))
    g16 = np.clip(g16, 0, 65535).astype(np.uint16)
    save("grey16_24x36", Image.fromarray(g16), note="16-bit grey (PIL mode I;16); golden uses the high byte")
    rgb16 = (field(22, 26, 6.0).astype(np.uint16) * 257 + rng.integers(0, 257, (22, 26, 3))).astype(np.uint16)
    write_png16(os.path.join(INP, "rgb16_26x22.png"), rgb16, 2)
    items.append(("rgb16_26x22", "rgb16_26x22.png", "16-bit RGB PNG (PIL keeps the high byte)"))
    save("photo_80x60", Image.fromarray(field(60, 80, 7.0)), "jpg", note="JPEG q90 4:2:0", quality=90)
    save("photo444_80x60", Image.fromarray(field(60, 80, 8.0)), "jpg", note="JPEG q90 4:4:4", quality=90, subsampling=0)
    save("progressive_80x60", Image.fromarray(field(60, 80, 11.0)), "jpg", note="progressive JPEG", quality=90, progressive=True)
    save("restart_80x60", Image.fromarray(field(60, 80, 12.0)), "jpg", note="JPEG with restart markers", quality=90, restart_marker_rows=1)
    save("greyjpeg_50x40", Image.fromarray(field(40, 50, 13.0)[..., 2], "L"), "jpg", note="greyscale JPEG", quality=90)
    save("cmyk_40x30", Image.fromarray(field(30, 40, 14.0)).convert("CMYK"), "jpg", note="CMYK JPEG (Adobe)", quality=90)
    save("tall_20x300", Image.fromarray(field(300, 20, 9.0)), note="tall RGB")
    save("wide_400x300", Image.fromarray(structured(300, 400)), note="RGB, shrunk with antialiasing")
    save("exact_32x50", Image.fromarray(field(50, 32, 10.0)), note="short side 32: no resize at size 32")
    return items


def hf_input(path, name):
    im = Image.open(path)
    if name.startswith("grey16"):
        a = np.array(im)
        assert a.dtype == np.uint16 or im.mode.startswith("I"), im.mode
        return Image.fromarray((a.astype(np.uint32) >> 8).astype(np.uint8), "L")
    return im


def run(proc_cls, im, size, crop_h, crop_w):
    proc = proc_cls(size={"shortest_edge": size}, crop_size={"height": crop_h, "width": crop_w})
    pv = proc(images=im, return_tensors="np")["pixel_values"][0]
    return np.asarray(pv, dtype=np.float32)


def to_f32_like_hf(u8_chw):
    """HF's rescale (f64 * (1/255) -> f32) and normalize ((x - mean_f32) / std_f32 in f32)."""
    x = (u8_chw.astype(np.float64) * (1 / 255)).astype(np.float32)
    mean = np.array(MEAN, dtype=np.float32)[:, None, None]
    std = np.array(STD, dtype=np.float32)[:, None, None]
    return ((x - mean) / std).astype(np.float32)


def from_f32(pv):
    mean = np.array(MEAN, dtype=np.float64)[:, None, None]
    std = np.array(STD, dtype=np.float64)[:, None, None]
    u = np.round((pv.astype(np.float64) * std + mean) * 255)
    assert u.min() >= 0 and u.max() <= 255
    u = u.astype(np.uint8)
    assert np.array_equal(to_f32_like_hf(u).view(np.uint32), pv.view(np.uint32)), "not lossless"
    return u


def main():
    items = make_inputs()
    os.makedirs(S224, exist_ok=True)
    tensors = {}
    manifest = {
        "versions": {"transformers": transformers.__version__, "pillow": PIL.__version__, "numpy": np.__version__},
        "processor": "CLIPImageProcessorPil (PIL backend of CLIPImageProcessor)",
        "mean": MEAN,
        "std": STD,
        "configs": {"s224_c224x224": [224, 224, 224], "s32_c32x32": [32, 32, 32], "s32_c40x24": [32, 40, 24]},
        "images": [],
        "s224": [],
        "f32": sorted(F32_GOLDENS),
    }
    for name, fn, note in items:
        path = os.path.join(INP, fn)
        src = Image.open(path)
        entry = {"name": name, "file": fn, "mode": src.mode, "size_wh": list(src.size), "note": note}
        im = hf_input(path, name)
        pv = run(CLIPImageProcessorPil, im, 224, 224, 224)
        u8 = from_f32(pv)
        if name not in NO_S224:
            Image.fromarray(np.moveaxis(u8, 0, -1)).save(os.path.join(S224, f"{name}.png"), optimize=True)
            manifest["s224"].append(name)
        pil32 = None
        for key, (s, ch, cw) in (("s32_c32x32", (32, 32, 32)), ("s32_c40x24", (32, 40, 24))):
            out = run(CLIPImageProcessorPil, hf_input(path, name), s, ch, cw)
            tensors[f"{name}/{key}"] = np.ascontiguousarray(from_f32(out))
            if name in F32_GOLDENS:
                tensors[f"f32/{name}/{key}"] = out
            pil32 = out if pil32 is None else pil32
        tv = run(CLIPImageProcessor, hf_input(path, name), 32, 32, 32)
        tensors[f"tv/{name}/s32_c32x32"] = tv.astype(np.float16)  # f16 keeps the fixtures small
        d = np.abs(tv - pil32) * np.array(STD, np.float32)[:, None, None] * 255
        tv224 = run(CLIPImageProcessor, hf_input(path, name), 224, 224, 224)
        d224 = np.abs(tv224 - pv) * np.array(STD, np.float32)[:, None, None] * 255
        entry["torchvision_vs_pil_abs_err_255"] = {
            "s32_mean": float(d.mean()), "s32_max": float(d.max()),
            "s224_mean": float(d224.mean()), "s224_max": float(d224.max())}
        if fn.endswith(".jpg"):
            tensors[f"decoded/{name}"] = np.ascontiguousarray(np.array(src.convert("RGB")), dtype=np.uint8)
        if name.startswith("grey16"):
            raw = run(CLIPImageProcessorPil, Image.open(path), 224, 224, 224)
            draw = np.abs(raw - pv) * np.array(STD, np.float32)[:, None, None] * 255
            entry["hf_raw_clamped_vs_golden_abs_err_255"] = {"mean": float(draw.mean()), "max": float(draw.max())}
        manifest["images"].append(entry)
        print(name, entry)
    save_file(tensors, os.path.join(OUT, "goldens.safetensors"))
    with open(os.path.join(OUT, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
    total = 0
    for root, _, files in os.walk(OUT):
        total += sum(os.path.getsize(os.path.join(root, f)) for f in files)
    print(f"fixtures: {total / 1024:.0f} KiB")


if __name__ == "__main__":
    sys.exit(main())
