#!/usr/bin/env python3
"""The small unseen labelled set of README's "every method with its defaults" table.

4 Fashion-MNIST classes (trouser, dress, sneaker, bag): the first 24 training images of
each (train/, 96) and the first 50 test images of each (test/, 200), as class folders of
28x28 grey PNGs. Reads Debian's dataset-fashion-mnist (the idx files .ci/run installs);
standard library only.

    python3 tools/make_small_unseen_set.py OUT_DIR
"""
import gzip
import os
import struct
import sys
import zlib

SRC = "/usr/share/datasets/fashion-mnist/"
CLASSES = {1: "trouser", 3: "dress", 7: "sneaker", 8: "bag"}


def png(path, w, h, px):
    raw = b"".join(b"\x00" + bytes(px[r * w:(r + 1) * w]) for r in range(h))

    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)

    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
                + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def main(out):
    for split, prefix, per_class in [("train", "train", 24), ("test", "t10k", 50)]:
        images = gzip.open(SRC + prefix + "-images-idx3-ubyte.gz").read()[16:]
        labels = gzip.open(SRC + prefix + "-labels-idx1-ubyte.gz").read()[8:]
        taken = {k: 0 for k in CLASSES}
        for i, label in enumerate(labels):
            if label in CLASSES and taken[label] < per_class:
                d = os.path.join(out, split, CLASSES[label])
                os.makedirs(d, exist_ok=True)
                png(os.path.join(d, f"{i}.png"), 28, 28, images[i * 784:(i + 1) * 784])
                taken[label] += 1


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
