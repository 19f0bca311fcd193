"""cliptune: fine-tune CLIP without breaking it, from Python.

The engine is the cliptune Rust crate (the same code the ``cliptune`` command runs); this
package loads models, embeds images and texts into NumPy arrays, and runs training and
evaluation with the command line's options.

>>> import cliptune
>>> clip = cliptune.Clip.load("clip-vit-base-patch32")            # doctest: +SKIP
>>> img = clip.encode_image(["cat.jpg", "dog.png"])                # doctest: +SKIP
>>> txt = clip.encode_text(["a photo of a cat", "a photo of a dog"])  # doctest: +SKIP
>>> (img @ txt.T).shape                                            # doctest: +SKIP
(2, 2)
"""

from __future__ import annotations

import json
import os
from typing import Any, Iterable, Mapping, Sequence, Union

import numpy as np

from . import _cliptune
from ._errors import Error, InvalidValueError, NotFoundError

__all__ = [
    "Clip",
    "Error",
    "InvalidValueError",
    "NotFoundError",
    "eval",
    "merge",
    "tokenize",
    "train",
]

PathLike = Union[str, "os.PathLike[str]"]


def _image_item(i: int, img: Any) -> Any:
    """A path string or a uint8 array for the native side; PIL images become arrays."""
    if isinstance(img, (str, os.PathLike)):
        return os.fspath(img)
    if isinstance(img, np.ndarray):
        return img
    mode = getattr(img, "mode", None)
    if mode is not None and hasattr(img, "convert"):  # a PIL image
        # The same colour conversion the file path makes: alpha is composited on white
        # (HF's convert_to_rgb), palettes are expanded, anything else becomes RGB.
        if mode in ("RGB", "RGBA", "L", "LA"):
            return np.asarray(img)
        if mode.startswith("I;16") or mode == "I":
            # 16-bit grey (PNG): the high byte, as the file path's decoder reduces it.
            return (np.clip(np.asarray(img).astype(np.int64), 0, 65535) >> 8).astype(np.uint8)
        if mode in ("P", "PA"):
            return np.asarray(img.convert("RGBA"))
        return np.asarray(img.convert("RGB"))
    raise InvalidValueError(
        f"images[{i}]: expected a path, a PIL image or a uint8 HxWx3 array; got {type(img).__name__}"
    )


def _images_arg(images: Any) -> Any:
    """A float32 pixel_values array as is; one image or a sequence of images as a list."""
    if isinstance(images, np.ndarray):
        if images.dtype == object:  # ragged images, e.g. a Ray Data batch of varied sizes
            return [_image_item(i, x) for i, x in enumerate(images)]
        if images.dtype == np.uint8:
            if images.ndim == 4:  # N x H x W x C
                return list(images)
            return [images]  # one image
        return images  # pixel_values; the native side checks dtype and shape
    if isinstance(images, (str, os.PathLike)) or hasattr(images, "convert"):
        images = [images]
    try:
        items = list(images)
    except TypeError:
        raise InvalidValueError(
            "encode_image: expected paths, PIL images, uint8 arrays or a float32 pixel_values array; "
            f"got {type(images).__name__}"
        ) from None
    return [_image_item(i, x) for i, x in enumerate(items)]


def _texts_arg(texts: Union[str, Iterable[str]]) -> list:
    if isinstance(texts, str):
        return [texts]
    out = list(texts)
    for i, t in enumerate(out):
        if not isinstance(t, str):
            raise InvalidValueError(f"texts[{i}]: expected a str, got {type(t).__name__}")
    return out


class Clip:
    """A CLIP model: a Hugging Face ``CLIPModel`` directory or an open_clip hub directory
    (f32, f16 or bf16 weights), optionally with cliptune/PEFT adapters applied.

    Embeddings are L2-normalised float32 NumPy arrays, identical to ``cliptune embed``'s.
    Compute releases the GIL; Ctrl-C stops between batches.
    """

    def __init__(self, native: Any) -> None:
        self._native = native

    @classmethod
    def load(cls, path: PathLike, device: str = "auto", adapters: Sequence[PathLike] = ()) -> "Clip":
        """Load the model directory ``path``.

        ``device``: ``"auto"`` (a real GPU, else the CPU backend), ``"cpu"`` or ``"gpu"``
        (any adapter, software ones included). ``adapters``: adapter directories written by
        ``cliptune.train`` / ``cliptune train`` (or PEFT LoRA), applied in order.
        """
        return cls(_cliptune.Clip.load(os.fspath(path), device, [os.fspath(a) for a in adapters]))

    @property
    def path(self) -> str:
        """The model directory."""
        return self._native.path

    @property
    def device(self) -> str:
        """The compute device's name."""
        return self._native.device

    @property
    def projection_dim(self) -> int:
        """Width of the embeddings."""
        return self._native.projection_dim

    @property
    def image_size(self) -> tuple:
        """(height, width) of the model input (``pixel_values`` is ``[n, 3, h, w]``)."""
        return self._native.image_size

    @property
    def context_length(self) -> int:
        """The text tower's context in tokens (longer texts are truncated, EOT kept)."""
        return self._native.context_length

    def encode_image(self, images: Any, batch: int = 64) -> np.ndarray:
        """Image embeddings ``[n, projection_dim]`` (float32, L2-normalised).

        ``images``: a path, PIL image or uint8 ``HxWx3`` (``HxWx4`` RGBA, ``HxW`` grey)
        array, a sequence of those, a uint8 ``NxHxWx3`` array, or an already preprocessed
        float32 ``pixel_values`` array ``[n, 3, h, w]``. Files and arrays are preprocessed
        exactly as ``cliptune embed`` does (HF ``CLIPImageProcessor``), and with the same
        ``batch`` as ``cliptune embed --batch`` (64 in both) the rows are its rows bit for
        bit (another batch size can change the last bits).
        """
        return self._native._encode_image(_images_arg(images), batch)

    def encode_text(self, texts: Union[str, Iterable[str]], batch: int = 64) -> np.ndarray:
        """Text embeddings ``[m, projection_dim]`` (float32, L2-normalised)."""
        return self._native._encode_text(_texts_arg(texts), batch)

    def logits(self, images: Any, texts: Union[str, Iterable[str]], batch: int = 64) -> np.ndarray:
        """``logits_per_image`` ``[n, m]`` = exp(logit_scale) * cosine similarity; a softmax
        over axis 1 gives each image's probabilities over the texts."""
        return self._native._logits(_images_arg(images), _texts_arg(texts), batch)

    def class_embeddings(self, classes: Sequence[str], templates: str = "openai") -> np.ndarray:
        """Zero-shot class embeddings ``[c, projection_dim]``: the normalised mean of each
        class's prompt embeddings. ``templates``: ``"openai"`` (the CLIP paper's 80),
        ``"simple"``, or a file with one template containing ``{}`` per line. A prompt
        adapter's learned prompts replace the templates."""
        return self._native._class_embeddings(_texts_arg(classes), os.fspath(templates))

    def probabilities(self, image_embeds: np.ndarray, class_embeds: np.ndarray) -> np.ndarray:
        """Softmax over classes of exp(logit_scale) * cosine: ``[n, c]``."""
        return self._native._probabilities(image_embeds, class_embeds)

    def zero_shot(self, images: Any, classes: Sequence[str], templates: str = "openai", batch: int = 64) -> np.ndarray:
        """Class probabilities ``[n, c]`` for the images, as ``cliptune zero-shot`` computes them."""
        return self.probabilities(self.encode_image(images, batch), self.class_embeddings(classes, templates))

    def tokenize(self, texts: Union[str, Iterable[str]]) -> list:
        """Token ids (BOS .. EOS, unpadded) with this model's tokenizer."""
        return self._native.tokenize(_texts_arg(texts))

    def __repr__(self) -> str:
        return repr(self._native)


def tokenize(texts: Union[str, Iterable[str]], model: Union[PathLike, None] = None) -> list:
    """Token ids (BOS .. EOS, unpadded) of each text, as ``cliptune tokenize`` prints them;
    with the tokenizer of the model directory ``model``, else the embedded CLIP tokenizer."""
    return _cliptune.tokenize_texts(_texts_arg(texts), None if model is None else os.fspath(model))


def _flags(options: Mapping[str, Any]) -> list:
    """Keyword arguments as CLI flags: ``rank=8`` -> ``--rank 8``, ``class_specific=True``
    -> ``--class-specific`` (False/None: left out), a list -> the flag repeated, a tuple ->
    one flag with several values (``linear_probe=[("train/", "test/")]``)."""
    out: list = []
    for key, value in options.items():
        flag = "--" + key.replace("_", "-")
        if value is None or value is False:
            continue
        if value is True:
            out.append(flag)
        elif isinstance(value, tuple):
            out += [flag] + [_flag_value(key, v) for v in value]
        elif isinstance(value, list):
            for v in value:
                if isinstance(v, tuple):
                    out += [flag] + [_flag_value(key, x) for x in v]
                else:
                    out += [flag, _flag_value(key, v)]
        else:
            out += [flag, _flag_value(key, value)]
    return out


def _flag_value(key: str, v: Any) -> str:
    if isinstance(v, bool) or v is None:
        raise InvalidValueError(f"{key}={v!r}: a list or tuple of values cannot hold {v!r}")
    if isinstance(v, (list, tuple)):
        raise InvalidValueError(f"{key}: nested lists are not an option value")
    return os.fspath(v) if isinstance(v, os.PathLike) else str(v)


def _model_path(model: Union[PathLike, Clip]) -> str:
    return model.path if isinstance(model, Clip) else os.fspath(model)


def train(model: Union[PathLike, Clip], method: str, data: PathLike, out: PathLike, **options: Any) -> dict:
    """Fine-tune ``model`` with ``method`` (``prompt``, ``linear-probe``, ``lora``,
    ``textual-inversion`` or ``full``) on ``data`` and write the adapter to ``out`` —
    exactly ``cliptune train`` (same options, defaults, checks and files; the same seed
    gives byte-identical adapters on the CPU backend).

    Options are the CLI's flags with ``_`` for ``-``: ``epochs=3, batch=32, lr=1e-4,
    rank=8, targets="q,v", towers="text", seed=0, max_steps=100, resume=True,
    device="cpu", new_token=["<my-mug>"], ...`` (``cliptune train --help`` lists them).
    Progress is printed to stderr. Ctrl-C stops after the current step, writes a
    resumable checkpoint and raises ``KeyboardInterrupt``.

    Returns ``{"steps", "first_loss", "last_loss", "trainable_params", "seconds", "out",
    "retention_guard"}``.
    """
    args = ["--method", method, "--model", _model_path(model), "--data", os.fspath(data), "--out", os.fspath(out)]
    return _cliptune.train(args + _flags(options))


def eval(model: Union[PathLike, Clip], **options: Any) -> dict:  # noqa: A001 (the CLI's name)
    """Evaluate ``model`` — exactly ``cliptune eval``: ``zero_shot="fashion-mnist:test:100"``
    (or a list), ``retrieval="captions.csv"``, ``linear_probe=("train/", "test/")``,
    ``adapter=["lora/"]``, ``templates``, ``classes_file``, ``out="after.json"``,
    ``device``. The report is printed and returned as a dict with ``zero_shot``,
    ``retrieval`` and ``linear_probe`` lists (the JSON ``cliptune eval --json`` prints).
    """
    return json.loads(_cliptune.eval(["--model", _model_path(model)] + _flags(options)))


def merge(model: Union[PathLike, Clip], adapter: Union[PathLike, Sequence[PathLike]], out: PathLike, **options: Any) -> str:
    """Fold LoRA (and textual-inversion) adapters into the base weights and write a plain
    Hugging Face ``CLIPModel`` directory to ``out`` — exactly ``cliptune merge``. Options:
    ``device``. Returns ``out``."""
    adapters = [adapter] if isinstance(adapter, (str, os.PathLike)) else list(adapter)
    _cliptune.merge(["--model", _model_path(model), "--out", os.fspath(out)] + _flags(dict(adapter=adapters, **options)))
    return os.fspath(out)
