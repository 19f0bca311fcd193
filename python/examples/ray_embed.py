"""Embed (or zero-shot label) an image collection on Ray Data with cliptune as the
per-batch model.

    python ray_embed.py --model clip-vit-base-patch32 --images photos/ --out embeds/
    python ray_embed.py --model clip-vit-base-patch32 --images photos/ --out labels/ \
        --classes cat,dog,car --templates openai

Ray reads and decodes the images (``ray.data.read_images``), a pool of actors each holding
one loaded model embeds them batch by batch (``map_batches``), and the rows are written as
Parquet: ``path`` and ``embedding`` (float32, L2-normalised, the same rows ``cliptune embed``
writes), or ``path``, ``label`` and ``prob`` with ``--classes``. On a cluster, start it with
``ray start`` and pass ``--address auto``; nothing here is specific to one machine.

A batch that fails raises an error naming the batch (its first and last file and its
size) and the cause, so the bad file can be found in a large collection.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any, Dict, Optional, Sequence

import numpy as np

import cliptune


def _describe(batch: Dict[str, Any]) -> str:
    paths = [str(p) for p in batch.get("path", [])]
    if not paths:
        return f"batch of {len(next(iter(batch.values()), []))} rows"
    if len(paths) == 1:
        return f"batch [{paths[0]}]"
    return f"batch [{paths[0]} .. {paths[-1]}] ({len(paths)} images)"


class BatchError(RuntimeError):
    """A batch cliptune could not process; the message names the batch and the cause."""


class Embedder:
    """``map_batches`` callable: image embeddings for each row.

    Rows need ``image`` (decoded pixels from ``read_images``: uint8 HxWx3/HxWx4/HxW) or
    only ``path`` (files cliptune decodes itself, exactly as ``cliptune embed`` does).
    """

    def __init__(self, model: str, device: str = "cpu", adapters: Sequence[str] = ()) -> None:
        # One model per actor, loaded once; compute releases the GIL.
        self.clip = cliptune.Clip.load(model, device=device, adapters=list(adapters))

    def _embed(self, batch: Dict[str, Any]) -> np.ndarray:
        images = batch["image"] if "image" in batch else [str(p) for p in batch["path"]]
        try:
            return self.clip.encode_image(list(images))
        except Exception as e:  # re-raised with the batch named; the type says what it was
            raise BatchError(f"cliptune failed on {_describe(batch)}: {type(e).__name__}: {e}") from e

    def __call__(self, batch: Dict[str, Any]) -> Dict[str, Any]:
        return {"path": np.asarray(batch["path"]), "embedding": self._embed(batch)}


class ZeroShotLabeller(Embedder):
    """``map_batches`` callable: the most probable class of each row (and its probability),
    as ``cliptune zero-shot`` computes them."""

    def __init__(self, model: str, classes: Sequence[str], templates: str = "openai", device: str = "cpu",
                 adapters: Sequence[str] = ()) -> None:
        super().__init__(model, device, adapters)
        self.classes = list(classes)
        self.class_embeds = self.clip.class_embeddings(self.classes, templates)

    def __call__(self, batch: Dict[str, Any]) -> Dict[str, Any]:
        probs = self.clip.probabilities(self._embed(batch), self.class_embeds)
        best = probs.argmax(axis=1)
        return {
            "path": np.asarray(batch["path"]),
            "label": np.asarray([self.classes[i] for i in best]),
            "prob": probs[np.arange(len(best)), best],
        }


def build(images: str, model: str, *, classes: Optional[Sequence[str]] = None, templates: str = "openai",
          workers: int = 2, batch: int = 32, device: str = "cpu", cpus_per_worker: float = 1.0):
    """The Ray Dataset of embedding (or label) rows; nothing runs until it is consumed.

    Each of the ``workers`` actors reserves ``cpus_per_worker`` CPUs; leave some for the
    image-reading tasks (on a 2-CPU machine: 0.5 each), or the read waits forever."""
    import ray

    if __name__ != "__main__":
        # Imported (`from ray_embed import Embedder`): ship the classes to the workers by
        # value, so the module need not be installed on every node.
        ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    # RGBA keeps transparency so cliptune composites it on white like the file path does
    # (a palette image's raw array would be palette indices).
    ds = ray.data.read_images(images, include_paths=True, mode="RGBA")
    if classes:
        fn, kwargs = ZeroShotLabeller, dict(model=model, classes=list(classes), templates=templates, device=device)
    else:
        fn, kwargs = Embedder, dict(model=model, device=device)
    return ds.map_batches(fn, fn_constructor_kwargs=kwargs, batch_size=batch, batch_format="numpy",
                          compute=ray.data.ActorPoolStrategy(size=workers), num_cpus=cpus_per_worker)


def main(argv: Optional[Sequence[str]] = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, help="HF CLIPModel or open_clip directory")
    p.add_argument("--images", required=True, help="a folder (or file) of images Ray can read")
    p.add_argument("--out", required=True, help="a new folder for the Parquet files")
    p.add_argument("--classes", help="comma-separated class names: zero-shot labels instead of embeddings")
    p.add_argument("--templates", default="openai", help="openai, simple, or a file of templates with {}")
    p.add_argument("--workers", type=int, default=2, help="actors, each with its own model")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--device", default="cpu", help="auto, cpu or gpu (per actor)")
    p.add_argument("--cpus-per-worker", type=float, default=1.0,
                   help="CPUs each actor reserves (leave some for reading the images)")
    p.add_argument("--address", default=None, help="a running Ray cluster (e.g. auto); default: start a local one")
    a = p.parse_args(argv)
    if os.path.exists(a.out) and os.listdir(a.out):
        p.error(f"--out {a.out}: exists and is not empty; choose a new folder")
    import ray

    ray.init(address=a.address)
    classes = [c.strip() for c in a.classes.split(",") if c.strip()] if a.classes else None
    ds = build(a.images, a.model, classes=classes, templates=a.templates, workers=a.workers, batch=a.batch,
               device=a.device, cpus_per_worker=a.cpus_per_worker)
    ds.write_parquet(a.out)
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
