"""The Ray Data example on a local two-worker Ray cluster: every row equals `cliptune
embed`'s, zero-shot labels equal `cliptune zero-shot`'s, and a failing batch is named."""

import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import IMAGES, TINY_HF, cli, read_safetensors

import ray  # noqa: E402  (ray[data] is installed by .ci/run; a missing ray fails, never skips)
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
import ray_embed  # noqa: E402

# Workers unpickle the example's classes by value (it is not installed on them).
ray.cloudpickle.register_pickle_by_value(ray_embed)

# 8-bit PNGs: lossless, so Ray's decoder (PIL) and cliptune's give the same pixels; RGB,
# grey, grey+alpha, palette with and without transparency, RGBA.
NAMES = ["rgb_37x53.png", "grey_30x30.png", "la_33x27.png", "palette_45x31.png",
         "palette_trns_45x31.png", "rgba_64x40.png", "exact_32x50.png", "tall_20x300.png"]


@pytest.fixture(scope="module")
def cluster():
    # Two CPUs: the actor pool's two workers (half a CPU each) beside the image reading.
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


def _collection(tmp_path):
    d = tmp_path / "photos"
    d.mkdir()
    for n in NAMES:
        shutil.copy(IMAGES / n, d / n)
    return d


def test_ray_embeddings_equal_cli(cluster, tmp_path):
    photos = _collection(tmp_path)
    rows = ray_embed.build(str(photos), str(TINY_HF), workers=2, batch=3, cpus_per_worker=0.5).take_all()
    assert len(rows) == len(NAMES)
    out = tmp_path / "ref.safetensors"
    files = sorted(photos.iterdir())
    args = ["embed", "--device", "cpu", "--model", TINY_HF, "--out", out]
    for f in files:
        args += ["--image", f]
    cli(*args)
    ref = read_safetensors(out)["image_embeds"]
    by_name = {Path(r["path"]).name: np.asarray(r["embedding"], dtype=np.float32) for r in rows}
    assert sorted(by_name) == sorted(NAMES)
    for i, f in enumerate(files):
        got = by_name[f.name]
        # Same pixels, same model; rows are computed in batches of 3 here and of 8 by the
        # CLI, and the GEMM's blocking depends on the batch size: equal to float rounding.
        assert np.abs(got - ref[i]).max() <= 1e-6, f.name


def test_ray_zero_shot_labels_equal_cli(cluster, tmp_path):
    import json

    photos = _collection(tmp_path)
    classes = ["a gradient", "a grey square", "a palette"]
    rows = ray_embed.build(str(photos), str(TINY_HF), classes=classes, templates="simple", workers=2,
                           batch=4, cpus_per_worker=0.5).take_all()
    files = sorted(photos.iterdir())
    out, _ = cli("zero-shot", "--device", "cpu", "--model", TINY_HF, "--classes", ",".join(classes),
                 "--templates", "simple", "--top-k", "1", "--json", *files)
    ref = {Path(r["image"]).name: r["top"][0] for r in json.loads(out)}
    assert len(rows) == len(NAMES)
    for r in rows:
        top = ref[Path(r["path"]).name]
        assert r["label"] == top["class"] and abs(float(r["prob"]) - top["prob"]) <= 1e-6


def test_failing_batch_is_named(cluster, tmp_path):
    # Rows whose images cliptune refuses (float pixels): the error names the batch's files.
    items = [{"path": f"img{i}.png", "image": np.zeros((4, 4, 3), np.float32)} for i in range(4)]
    ds = ray.data.from_items(items).map_batches(
        ray_embed.Embedder, fn_constructor_kwargs={"model": str(TINY_HF)}, batch_size=2,
        batch_format="numpy", compute=ray.data.ActorPoolStrategy(size=2), num_cpus=0.5)
    with pytest.raises(Exception) as e:
        ds.take_all()
    msg = str(e.value)
    assert "cliptune failed on batch [img" in msg and "(2 images)" in msg, msg
    assert "dtype float32 shape [4, 4, 3]" in msg, msg
