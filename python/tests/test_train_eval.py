"""Training and evaluation from Python are the CLI's: same seed -> identical adapter bytes;
the metrics come back as a dict equal to `cliptune eval --json`."""

import json

import cliptune
from conftest import CAPTIONS, CLASSES, TINY_HF, cli

# min_steps=0: exactly the epochs asked (no small-data step floor), so steps == 3.
LORA = dict(epochs=3, batch=4, seed=5, rank=4, targets="q,v,fc1", lr=1e-3, device="cpu", min_steps=0)


def _cli_flags(opts):
    out = []
    for k, v in opts.items():
        out += ["--" + k.replace("_", "-"), str(v)]
    return out


def test_lora_adapter_bytes_equal_cli(tmp_path):
    py_out, cli_out = tmp_path / "py", tmp_path / "cli"
    res = cliptune.train(TINY_HF, method="lora", data=CAPTIONS, out=py_out, **LORA)
    cli("train", "--method", "lora", "--model", TINY_HF, "--data", CAPTIONS, "--out", cli_out, *_cli_flags(LORA))
    a = (py_out / "adapter_model.safetensors").read_bytes()
    b = (cli_out / "adapter_model.safetensors").read_bytes()
    assert a == b
    assert (py_out / "trainer_state.safetensors").read_bytes() == (cli_out / "trainer_state.safetensors").read_bytes()
    assert res["steps"] == 3 and res["out"] == str(py_out)
    assert res["trainable_params"] > 0 and res["last_loss"] < res["first_loss"]
    # A different seed changes the adapter: the equality above is not vacuous.
    other = cliptune.train(TINY_HF, method="lora", data=CAPTIONS, out=tmp_path / "seed6", **dict(LORA, seed=6))
    assert other["steps"] == 3
    assert (tmp_path / "seed6" / "adapter_model.safetensors").read_bytes() != a


def test_prompt_tuning_from_a_loaded_clip(tmp_path):
    clip = cliptune.Clip.load(TINY_HF, device="cpu")
    opts = dict(epochs=2, batch=2, seed=1, n_ctx=4, class_specific=True, device="cpu")
    cliptune.train(clip, "prompt", CLASSES, tmp_path / "py", **opts)
    cli("train", "--method", "prompt", "--model", TINY_HF, "--data", CLASSES, "--out", tmp_path / "cli",
        "--epochs", "2", "--batch", "2", "--seed", "1", "--n-ctx", "4", "--class-specific", "--device", "cpu")
    assert (tmp_path / "py" / "prompt.safetensors").read_bytes() == (tmp_path / "cli" / "prompt.safetensors").read_bytes()
    # The adapter loads back from Python and brings its classes' learned prompts.
    adapted = cliptune.Clip.load(TINY_HF, device="cpu", adapters=[tmp_path / "py"])
    assert adapted.class_embeddings(["ankle boot", "bag", "t shirt"]).shape[0] == 3


def test_eval_returns_the_cli_report(tmp_path):
    lora = tmp_path / "lora"
    cliptune.train(TINY_HF, "lora", CAPTIONS, lora, **LORA)
    opts = dict(zero_shot=[str(CLASSES)], retrieval=str(CAPTIONS), templates="simple", adapter=[lora], device="cpu")
    got = cliptune.eval(TINY_HF, out=tmp_path / "py.json", **opts)
    out, _ = cli("eval", "--model", TINY_HF, "--zero-shot", CLASSES, "--retrieval", CAPTIONS, "--templates",
                 "simple", "--adapter", lora, "--device", "cpu", "--json")
    ref = json.loads(out)
    assert got == ref
    assert got["zero_shot"][0]["images"] == 4 and 0.0 <= got["zero_shot"][0]["top1"] <= 1.0
    assert json.loads((tmp_path / "py.json").read_text()) == ref


def test_merge_equals_cli(tmp_path):
    lora = tmp_path / "lora"
    cliptune.train(TINY_HF, "lora", CAPTIONS, lora, **LORA)
    assert cliptune.merge(TINY_HF, lora, tmp_path / "py", device="cpu") == str(tmp_path / "py")
    cli("merge", "--model", TINY_HF, "--adapter", lora, "--out", tmp_path / "cli", "--device", "cpu")
    a = (tmp_path / "py" / "model.safetensors").read_bytes()
    assert a == (tmp_path / "cli" / "model.safetensors").read_bytes()
    assert a != (TINY_HF / "model.safetensors").read_bytes()
