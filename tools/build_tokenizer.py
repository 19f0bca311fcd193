#!/usr/bin/env python3
"""Build assets/tokenizer.json: the CLIP byte-level BPE tokenizer in HF `tokenizers` format.

Provenance and licence: the BPE merge list is OpenAI CLIP's `bpe_simple_vocab_16e6.txt.gz`
(https://github.com/openai/CLIP, MIT License, Copyright (c) 2021 OpenAI), taken from the
`open_clip_torch` wheel (open_clip/bpe_simple_vocab_16e6.txt.gz, which redistributes it under
the same MIT licence). The generated tokenizer.json carries the same vocabulary and merges as
Hugging Face's `openai/clip-vit-*` tokenizer.json files.

Recipe (see DESIGN.md "CLIP facts"):
  vocab  = the 256 byte symbols (GPT-2 bytes_to_unicode order), the same 256 with `</w>`,
           the first 48,894 merges joined (merges = lines[1:49152-256-2+1]),
           then `<|startoftext|>` (49406) and `<|endoftext|>` (49407): 49,408 entries.
  The tokenizer pipeline is transformers' `CLIPTokenizer` (NFC + `\\s+`->" " + lowercase
  normalizer, the CLIP split regex + ByteLevel pre-tokenizer, BPE with `</w>` suffix,
  RobertaProcessing post-processor adding BOS/EOS).

Usage:
  /work/venv/bin/python tools/build_tokenizer.py [--bpe path/to/bpe_simple_vocab_16e6.txt.gz]
      [--out assets/tokenizer.json]

Without --bpe, the file is taken from an installed `open_clip`, else from a wheel fetched
with `pip download --no-deps open_clip_torch` into a temporary directory.
"""

import argparse
import gzip
import json
import os
import subprocess
import sys
import tempfile
import zipfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BPE_NAME = "open_clip/bpe_simple_vocab_16e6.txt.gz"
EXPECTED = {"a photo of a dog.": [49406, 320, 1125, 539, 320, 1929, 269, 49407]}


def bytes_to_unicode():
    """GPT-2 / CLIP byte -> printable unicode table (same order as OpenAI's)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(
        range(ord("®"), ord("ÿ") + 1)
    )
    cs = bs[:]
    n = 0
    for b in range(2**8):
        if b not in bs:
            bs.append(b)
            cs.append(2**8 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs]))


def find_bpe_bytes(tmp):
    try:
        import open_clip  # noqa: F401

        path = os.path.join(os.path.dirname(open_clip.__file__), "bpe_simple_vocab_16e6.txt.gz")
        if os.path.exists(path):
            print(f"using {path}")
            with open(path, "rb") as f:
                return f.read()
    except ImportError:
        pass
    print("open_clip not installed; pip download --no-deps open_clip_torch")
    subprocess.check_call(
        [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-d", tmp, "open_clip_torch"]
    )
    wheels = [f for f in os.listdir(tmp) if f.endswith(".whl")]
    if not wheels:
        sys.exit("no open_clip_torch wheel downloaded")
    with zipfile.ZipFile(os.path.join(tmp, wheels[0])) as z:
        return z.read(BPE_NAME)


def build_vocab_and_merges(bpe_gz):
    lines = gzip.decompress(bpe_gz).decode("utf-8").split("\n")
    merges = lines[1 : 49152 - 256 - 2 + 1]
    assert len(merges) == 48894, len(merges)
    pairs = [tuple(m.split()) for m in merges]
    assert all(len(p) == 2 for p in pairs)
    vocab = list(bytes_to_unicode().values())
    vocab = vocab + [v + "</w>" for v in vocab]
    vocab += ["".join(p) for p in pairs]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    assert len(vocab) == 49408, len(vocab)
    encoder = {tok: i for i, tok in enumerate(vocab)}
    assert len(encoder) == len(vocab), "duplicate vocab entries"
    return encoder, merges


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bpe", help="path to bpe_simple_vocab_16e6.txt.gz")
    ap.add_argument("--out", default=os.path.join(ROOT, "assets", "tokenizer.json"))
    args = ap.parse_args()

    from transformers import CLIPTokenizer

    with tempfile.TemporaryDirectory() as tmp:
        if args.bpe:
            with open(args.bpe, "rb") as f:
                bpe_gz = f.read()
        else:
            bpe_gz = find_bpe_bytes(tmp)
        encoder, merges = build_vocab_and_merges(bpe_gz)

        vocab_file = os.path.join(tmp, "vocab.json")
        merges_file = os.path.join(tmp, "merges.txt")
        with open(vocab_file, "w", encoding="utf-8") as f:
            json.dump(encoder, f, ensure_ascii=False)
        with open(merges_file, "w", encoding="utf-8") as f:
            f.write("#version: 0.2\n")
            f.write("\n".join(merges) + "\n")

        # transformers 5.x: CLIPTokenizer is tokenizers-backed; from_pretrained(dir) reads
        # vocab.json + merges.txt (CLIPTokenizerFast(vocab_file=..) silently gives an empty vocab).
        tok = CLIPTokenizer.from_pretrained(tmp)
        backend = tok.backend_tokenizer
        assert backend.get_vocab_size(with_added_tokens=True) == 49408, backend.get_vocab_size()
        for text, ids in EXPECTED.items():
            got = tok(text)["input_ids"]
            assert got == ids, (text, got, ids)
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        backend.save(args.out, pretty=False)

    # Reload the written file with the bare `tokenizers` library (what the Rust crate does).
    from tokenizers import Tokenizer

    t = Tokenizer.from_file(args.out)
    for text, ids in EXPECTED.items():
        got = t.encode(text).ids
        assert got == ids, (text, got, ids)
    assert t.token_to_id("<|startoftext|>") == 49406
    assert t.token_to_id("<|endoftext|>") == 49407
    print(f"wrote {args.out} ({os.path.getsize(args.out)} bytes), vocab {t.get_vocab_size()}")


if __name__ == "__main__":
    main()
