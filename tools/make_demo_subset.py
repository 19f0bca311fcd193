#!/usr/bin/env python3
"""Write the Fashion-MNIST subsets `cliptune demo` embeds, as cliptune sprite sheets.

  assets/demo/fashion-mnist-train.{png,json}: the first 16 images of each class of the
      train split (160 tiles, in dataset order),
  assets/demo/fashion-mnist-test.{png,json}: the first 100 of each class of the test
      split (1000 tiles, in dataset order).

Input: the Debian package dataset-fashion-mnist (/usr/share/datasets/fashion-mnist).
Grey L8 28x28 tiles, white garment on black as stored; class names are
cliptune::data::FASHION_MNIST_CLASSES. Needs Pillow:

    /work/venv/bin/python tools/make_demo_subset.py [--src DIR] [--out assets/demo]
"""
import argparse
import gzip
import json
import math
import os
import struct

from PIL import Image

CLASSES = ["t-shirt", "trouser", "pullover", "dress", "coat",
           "sandal", "shirt", "sneaker", "bag", "ankle boot"]
SIDE = 28


def read_idx(path, magic):
    with gzip.open(path, "rb") if path.endswith(".gz") else open(path, "rb") as f:
        data = f.read()
    got, = struct.unpack(">I", data[:4])
    if got != magic:
        raise SystemExit(f"{path}: magic {got:#x}, expected {magic:#x}")
    if magic == 0x803:
        n, h, w = struct.unpack(">III", data[4:16])
        assert (h, w) == (SIDE, SIDE), (h, w)
        return [data[16 + i * SIDE * SIDE:16 + (i + 1) * SIDE * SIDE] for i in range(n)]
    n, = struct.unpack(">I", data[4:8])
    return list(data[8:8 + n])


def first_per_class(images, labels, per_class):
    """The first `per_class` images of each class, in dataset order."""
    taken = [0] * len(CLASSES)
    out = []
    for img, lab in zip(images, labels):
        if taken[lab] < per_class:
            taken[lab] += 1
            out.append((img, lab))
    assert all(t == per_class for t in taken), taken
    return out


def write_sheet(stem, picked):
    n = len(picked)
    columns = math.ceil(math.sqrt(n))
    rows = math.ceil(n / columns)
    sheet = Image.new("L", (columns * SIDE, rows * SIDE), 0)
    for i, (img, _) in enumerate(picked):
        tile = Image.frombytes("L", (SIDE, SIDE), img)
        sheet.paste(tile, ((i % columns) * SIDE, (i // columns) * SIDE))
    tmp = stem + ".png.tmp"
    sheet.save(tmp, format="PNG", optimize=True)
    os.replace(tmp, stem + ".png")
    meta = {
        "format": "cliptune-sprite-sheet-1",
        "tile": [SIDE, SIDE],
        "columns": columns,
        "count": n,
        "classes": CLASSES,
        "source": "Fashion-MNIST (Zalando Research, MIT licence): see README.md",
        "items": [{"label": lab, "captions": []} for _, lab in picked],
    }
    lines = ",\n".join("    " + json.dumps(it) for it in meta.pop("items"))
    head = json.dumps(meta, indent=2)[:-2]
    with open(stem + ".json.tmp", "w") as f:
        f.write(head + ',\n  "items": [\n' + lines + "\n  ]\n}\n")
    os.replace(stem + ".json.tmp", stem + ".json")
    print(f"wrote {stem}.png/.json: {n} tiles, {columns} columns")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--src", default="/usr/share/datasets/fashion-mnist")
    ap.add_argument("--out", default=os.path.normpath(os.path.join(os.path.dirname(__file__), "..", "assets", "demo")))
    ap.add_argument("--train-per-class", type=int, default=16)
    ap.add_argument("--test-per-class", type=int, default=100)
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    for split, prefix, per in [("train", "train", a.train_per_class), ("test", "t10k", a.test_per_class)]:
        imgs = read_idx(os.path.join(a.src, f"{prefix}-images-idx3-ubyte.gz"), 0x803)
        labs = read_idx(os.path.join(a.src, f"{prefix}-labels-idx1-ubyte.gz"), 0x801)
        write_sheet(os.path.join(a.out, f"fashion-mnist-{split}"), first_per_class(imgs, labs, per))


if __name__ == "__main__":
    main()
