"""Python embeddings equal the CLI's (`cliptune embed`) bit for bit, whatever form the
images come in."""

import numpy as np
import pytest
from PIL import Image

import cliptune
from conftest import IMAGES, TINY_HF, TINY_OPEN_CLIP, cli, pngs, read_safetensors, write_safetensors

TEXTS = ["a photo of a cat", "a red, green and blue gradient", "x" * 400, "a grey square"]


@pytest.mark.parametrize("model", [TINY_HF, TINY_OPEN_CLIP], ids=["hf", "open_clip"])
def test_embeddings_equal_cli_bit_for_bit(tmp_path, model):
    files = pngs() + sorted(IMAGES.glob("*.jpg"))
    out = tmp_path / "embeds.safetensors"
    args = ["embed", "--device", "cpu", "--model", model, "--out", out, "--batch", "3"]
    for f in files:
        args += ["--image", f]
    for t in TEXTS:
        args += ["--text", t]
    cli(*args)
    ref = read_safetensors(out)

    clip = cliptune.Clip.load(model, device="cpu")
    img = clip.encode_image(files, batch=3)
    txt = clip.encode_text(TEXTS, batch=3)
    logits = clip.logits(files, TEXTS, batch=3)
    for name, got in [("image_embeds", img), ("text_embeds", txt), ("logits_per_image", logits)]:
        assert got.dtype == np.float32 and got.shape == ref[name].shape, name
        assert got.tobytes() == ref[name].tobytes(), f"{name}: max diff {np.abs(got - ref[name]).max()}"
    # L2-normalised rows: a broken readback would not pass this even if the CLI broke too.
    assert np.allclose(np.linalg.norm(img, axis=1), 1.0, atol=1e-5)


def test_pil_images_and_arrays_equal_the_files(tmp_path):
    clip = cliptune.Clip.load(TINY_HF, device="cpu")
    files = pngs()
    ref = clip.encode_image(files)
    pil = [Image.open(f) for f in files]
    modes = {im.mode for im in pil}
    assert {"RGB", "L"} <= modes and len(modes) >= 3, modes  # several colour paths exercised
    assert clip.encode_image(pil).tobytes() == ref.tobytes()
    arrays = [np.asarray(im.convert("RGB")) for im in pil if im.mode in ("RGB", "L")]
    kept = [f for f, im in zip(files, pil) if im.mode in ("RGB", "L")]
    assert clip.encode_image(arrays).tobytes() == clip.encode_image(kept).tobytes()
    # One image alone, as a path and as an array.
    one = np.asarray(Image.open(kept[0]).convert("RGB"))
    assert clip.encode_image(one).tobytes() == clip.encode_image(str(kept[0])).tobytes()


def test_pixel_values_equal_cli_pixels(tmp_path):
    clip = cliptune.Clip.load(TINY_HF, device="cpu")
    h, w = clip.image_size
    px = np.random.default_rng(7).standard_normal((5, 3, h, w)).astype(np.float32)
    st = tmp_path / "px.safetensors"
    write_safetensors(st, {"pixel_values": px})
    out = tmp_path / "e.safetensors"
    cli("embed", "--device", "cpu", "--model", TINY_HF, "--pixels", st, "--out", out, "--batch", "2")
    ref = read_safetensors(out)["image_embeds"]
    got = clip.encode_image(px, batch=2)
    assert got.tobytes() == ref.tobytes()


def test_tokenize_equals_cli():
    texts = ["a photo of a dog.", "Hello, World!  ", "ünïcödé & <b>html</b>"]
    out, _ = cli("tokenize", *texts)
    ref = [[int(x) for x in line.strip("[]").split(",")] for line in out.strip().splitlines()]
    assert cliptune.tokenize(texts) == ref
    assert ref[0] == [49406, 320, 1125, 539, 320, 1929, 269, 49407]
    out, _ = cli("tokenize", "--model", TINY_HF, *texts)
    ref_model = [[int(x) for x in line.strip("[]").split(",")] for line in out.strip().splitlines()]
    assert cliptune.tokenize(texts, model=TINY_HF) == ref_model
    assert cliptune.Clip.load(TINY_HF, device="cpu").tokenize(texts) == ref_model


def test_zero_shot_equals_cli():
    import json

    files = pngs()
    classes = ["cat", "dog", "gradient"]
    out, _ = cli("zero-shot", "--device", "cpu", "--model", TINY_HF, "--classes", ",".join(classes),
                 "--templates", "simple", "--top-k", "3", "--json", *files)
    rows = json.loads(out)
    probs = cliptune.Clip.load(TINY_HF, device="cpu").zero_shot(files, classes, templates="simple")
    assert probs.shape == (len(files), 3)
    assert np.allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    for r, row in enumerate(rows):
        for top in row["top"]:
            assert abs(probs[r, classes.index(top["class"])] - top["prob"]) <= 1e-6
