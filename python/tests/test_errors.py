"""Bad input raises the right exception type carrying the engine's message."""

import numpy as np
import pytest

import cliptune
from conftest import CAPTIONS, IMAGES, TINY_HF


@pytest.fixture()
def clip():
    return cliptune.Clip.load(TINY_HF, device="cpu")


def test_missing_model_is_file_not_found(tmp_path):
    missing = tmp_path / "no-such-model"
    with pytest.raises(FileNotFoundError, match="no-such-model: model directory not found") as e:
        cliptune.Clip.load(missing)
    assert isinstance(e.value, cliptune.Error)


def test_missing_image_names_it(clip, tmp_path):
    with pytest.raises(FileNotFoundError, match="gone.png"):
        clip.encode_image([IMAGES / "grey_30x30.png", tmp_path / "gone.png"])


def test_corrupt_image_is_a_cliptune_error(clip, tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png at all")
    with pytest.raises(cliptune.Error, match="bad.png"):
        clip.encode_image([bad])


def test_wrong_array_dtype_and_shape_are_named(clip):
    with pytest.raises(ValueError, match=r"images\[1\].*dtype float32 shape \[4, 4, 3\]"):
        clip.encode_image([np.zeros((4, 4, 3), np.uint8), np.zeros((4, 4, 3), np.float32)])
    with pytest.raises(ValueError, match=r"uint8 HxWx3.*shape \[4, 4, 5\]"):
        clip.encode_image([np.zeros((4, 4, 5), np.uint8)])
    h, w = clip.image_size
    with pytest.raises(ValueError, match=rf"pixel_values must be float32 \[n, 3, {h}, {w}\].*got dtype float64 shape \[2, 3, {h}, {w}\]"):
        clip.encode_image(np.zeros((2, 3, h, w), np.float64))
    with pytest.raises(ValueError, match=r"pixel_values must be float32.*\[2, 3, 7, 7\]"):
        clip.encode_image(np.zeros((2, 3, 7, 7), np.float32))
    with pytest.raises(ValueError, match=r"image_embeds must be float32 \[n, \d+\]"):
        clip.probabilities(np.zeros((2, 3), np.float32), np.zeros((2, clip.projection_dim), np.float32))


def test_wrong_python_types(clip):
    with pytest.raises(ValueError, match=r"images\[0\]: expected a path.*got int"):
        clip.encode_image([3])
    with pytest.raises(ValueError, match=r"texts\[1\]: expected a str, got int"):
        clip.encode_text(["ok", 5])
    with pytest.raises(ValueError, match="no texts given"):
        clip.encode_text([])


def test_bad_training_options_are_value_errors(tmp_path):
    with pytest.raises(ValueError, match="--method 'lorra': expected prompt, linear-probe, lora"):
        cliptune.train(TINY_HF, "lorra", CAPTIONS, tmp_path / "a")
    with pytest.raises(ValueError, match="--rnk"):
        cliptune.train(TINY_HF, "lora", CAPTIONS, tmp_path / "b", rnk=4)
    with pytest.raises(ValueError, match="--epochs"):
        cliptune.train(TINY_HF, "lora", CAPTIONS, tmp_path / "c", epochs="many")
    with pytest.raises(FileNotFoundError, match="nothing.csv"):
        cliptune.train(TINY_HF, "lora", tmp_path / "nothing.csv", tmp_path / "d", device="cpu")
    with pytest.raises(ValueError, match="nothing to evaluate"):
        cliptune.eval(TINY_HF, device="cpu")


def test_output_dir_of_someone_else_is_refused(tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    with pytest.raises(ValueError, match="not empty"):
        cliptune.train(TINY_HF, "lora", CAPTIONS, out, device="cpu", epochs=1)
    assert (out / "notes.txt").read_text() == "keep me"


def test_bad_device_is_a_value_error():
    with pytest.raises(ValueError, match="tpu"):
        cliptune.Clip.load(TINY_HF, device="tpu")
