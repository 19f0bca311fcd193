"""Shared helpers: the repository's fixtures, the cliptune binary (the reference every
Python result is compared with) and a safetensors reader. Each test gets pytest's own
fresh tmp_path."""

import json
import os
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures"
TINY_HF = FIXTURES / "tiny-clip" / "hf"
TINY_OPEN_CLIP = FIXTURES / "tiny-clip" / "open_clip"
IMAGES = FIXTURES / "preprocess" / "inputs"
CLASSES = FIXTURES / "data" / "classes"
CAPTIONS = FIXTURES / "data" / "captions.csv"
# CLIPTUNE_BIN overrides where the binary is (CI builds it with `cargo build --release`).
BIN = Path(os.environ.get("CLIPTUNE_BIN", REPO / "target" / "release" / "cliptune"))


def cli(*args, check=True):
    """Run the cliptune binary; returns (stdout, stderr). Fails the test (never skips) when
    the binary is missing: the comparison with it is the point of these tests."""
    if not BIN.is_file():
        pytest.fail(f"{BIN} not found: build it first with `cargo build --release` (or set CLIPTUNE_BIN)")
    env = dict(os.environ, XDG_RUNTIME_DIR=os.environ.get("XDG_RUNTIME_DIR", "/tmp"))
    p = subprocess.run([str(BIN), *map(str, args)], capture_output=True, text=True, env=env)
    if check and p.returncode != 0:
        pytest.fail(f"cliptune {' '.join(map(str, args))} failed ({p.returncode}):\n{p.stderr}")
    return p.stdout, p.stderr


def read_safetensors(path):
    """{name: array} of an f32/u32/i64 safetensors file (the format is 8 bytes of header
    length, a JSON header, then the raw little-endian tensors)."""
    raw = Path(path).read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    body = raw[8 + n :]
    dtypes = {"F32": "<f4", "U32": "<u4", "I64": "<i8", "F16": "<f2"}
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        a, b = info["data_offsets"]
        out[name] = np.frombuffer(body[a:b], dtype=dtypes[info["dtype"]]).reshape(info["shape"])
    return out


def write_safetensors(path, tensors):
    """Write {name: float32 array} as safetensors (for `cliptune embed --pixels`)."""
    header, offset, blobs = {}, 0, []
    for name, arr in tensors.items():
        data = np.ascontiguousarray(arr, dtype="<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(arr.shape), "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
        blobs.append(data)
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    Path(path).write_bytes(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def pngs():
    """The fixture PNGs (lossless, so every decoder gives the same pixels)."""
    files = sorted(p for p in IMAGES.iterdir() if p.suffix.lower() == ".png")
    assert len(files) >= 5, files
    return files
