#!/usr/bin/env python3
"""Write tests/fixtures/tokenizer/goldens.json: CLIP token ids for a varied sentence list.

Per text:
  hf          ids from transformers' CLIPTokenizer (transformers 5.x: tokenizers-backed, the only
              CLIPTokenizer left; built from the same vocab/merges as assets/tokenizer.json):
              BOS .. EOS, no padding, no truncation. cliptune must match these exactly.
  reference   an independent pure-Python re-implementation of the same pipeline (HF normaliser:
              NFC, \\s+ -> " ", per-char lowercase; CLIP split regex with Python's `regex`;
              open_clip's own SimpleTokenizer.bpe()/encoder for the merges). A check that the HF
              pipeline is the CLIP BPE and not an artefact of the `tokenizers` library.
  open_clip   open_clip.tokenize(text, context_length=77)[0]: 77 ids, truncated with EOT kept
              last, zero padded. open_clip cleans text first (ftfy.fix_text, html.unescape twice,
              strip, whitespace collapse, str.lower) and knows its special tokens as
              <start_of_text>/<end_of_text>, so it differs from HF on some inputs; each such case
              gets a `note`.
  open_clip_full  open_clip's ids untruncated (SOT + encode(text) + EOT), for comparison with hf.

Usage: /work/venv/bin/python tools/make_tokenizer_goldens.py [--tokenizer assets/tokenizer.json]
"""

import argparse
import html
import json
import os
import unicodedata

import regex as re

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

LONG = (
    "A large brown dog with a red collar is running across a green field of tall grass, "
    "chasing a yellow tennis ball that a young girl in a blue dress has just thrown towards "
    "the old wooden fence near the edge of the forest, while two cats watch from the porch "
    "of a white farmhouse and a flock of geese flies overhead under a cloudy autumn sky."
)

TEXTS = [
    "a photo of a dog.",
    "A Photo Of A DOG!",
    "HeLLo WoRLD",
    "",
    "   ",
    "a",
    "Hello, world! How are you? (fine) [ok] {yes} <no> ...?!",
    "price: $5,000.99 - 50% off #1 @home ~tilde` ^caret | pipe \\ back/slash",
    "1234567890 3.14159 2nd 21st 1,000,000 1e-5 0x1F",
    "café naïve résumé façade Über Straße",
    "cafe\u0301 nai\u0308ve",  # NFD input: NFC-normalised to café naïve
    "猫の写真",
    "一只猫在桌子上 고양이 사진 кошка на столе",
    "a 🐶 on a 🛹",
    "👨\u200d👩\u200d👧 family, 👍🏽 thumbs, 🇫🇷 flag",
    "multiple   spaces\tand\ttabs\nand\nnewlines\r\nand\r\n\r\nblank lines",
    "  leading and trailing whitespace  \n",
    "non\u00a0breaking\u3000ideographic\u2003em\u0085nel\u200bzero-width\ufeffbom",
    "Tom &amp; Jerry &lt;b&gt;bold&lt;/b&gt; &quot;quoted&quot; &#39;x&#39; &nbsp;",
    "don't it's we're they've I'm you'll she'd",
    "DON'T IT'S WE'RE",
    "don\u2019t it\u2019s \u201cquoted\u201d \u2018single\u2019",
    "state-of-the-art well-known e-mail x-ray",
    "snake_case_name and CamelCaseName and kebab-case-name",
    "https://example.com/path?q=1&r=2 user@example.org #hashtag",
    "<|startoftext|>a photo<|endoftext|> of <|endoftext|>",
    "<start_of_text>a photo<end_of_text>",
    "a photo of <sks> on a table",
    "cafÃ© mojibake",
    "\uff21\uff22\uff23 fullwidth \uff11\uff12\uff13",
    "\ufb01sh \ufb02ower ligatures",
    "\u03a3\u038a\u03a3\u03a5\u03a6\u039f\u03a3 final sigma",
    "\u0130stanbul I\u0307 dotted",
    "\u0928\u092e\u0938\u094d\u0924\u0947 \u0926\u0941\u0928\u093f\u092f\u093e",
    "\u0645\u0631\u062d\u0628\u0627 \u0628\u0627\u0644\u0639\u0627\u0644\u0645",
    "x\u00b2 + y\u00b3 = \u2167 \u00bd \u0663\u0664",
    "control\x00char\x07bell\x1bescape",
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    "pneumonoultramicroscopicsilicovolcanoconiosis supercalifragilisticexpialidocious",
    "!!!??? ... --- *** ''' \"\"\" ``` ,,,",
    "a " * 75,  # 75 content tokens: 77 with BOS/EOS, fits exactly
    "a " * 76,  # 76 content tokens: 78, truncated by one
    LONG,
    (LONG + " ") * 3,
]

CLIP_PAT = re.compile(r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+""")
GPT2_PAT = re.compile(r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+""")
SPECIAL = re.compile(r"(<\|startoftext\|>|<\|endoftext\|>)")


def reference_encode(st, text):
    """HF CLIP pipeline in pure Python, BPE by open_clip's SimpleTokenizer."""
    ids = [49406]
    for part in SPECIAL.split(text):
        if part == "<|startoftext|>":
            ids.append(49406)
            continue
        if part == "<|endoftext|>":
            ids.append(49407)
            continue
        t = unicodedata.normalize("NFC", part)
        t = re.sub(r"\s+", " ", t)
        t = "".join(c.lower() for c in t)  # tokenizers lowercases char by char
        for piece in CLIP_PAT.findall(t):
            for sub in GPT2_PAT.findall(piece):
                sym = "".join(st.byte_encoder[b] for b in sub.encode("utf-8"))
                ids.extend(st.encoder[b] for b in st.bpe(sym).split(" "))
    ids.append(49407)
    return ids


def open_clip_clean(text):
    from open_clip.tokenizer import basic_clean, whitespace_clean

    return whitespace_clean(basic_clean(text)).lower()


def explain(text, hf, oc_full):
    """Why open_clip's ids differ from HF's for this text."""
    reasons = []
    import ftfy

    fixed = ftfy.fix_text(text)
    if fixed != text:
        reasons.append(f"ftfy.fix_text rewrites the text to {fixed!r}")
    unesc = html.unescape(html.unescape(fixed))
    if unesc != fixed:
        reasons.append(f"html.unescape rewrites it to {unesc!r}")
    if "<|startoftext|>" in text or "<|endoftext|>" in text:
        reasons.append(
            "HF matches <|startoftext|>/<|endoftext|> in the text as special tokens; "
            "open_clip's specials are <start_of_text>/<end_of_text>, so it BPE-encodes them as characters"
        )
    if "<start_of_text>" in text or "<end_of_text>" in text:
        reasons.append(
            "open_clip matches its own special token strings <start_of_text>/<end_of_text> in the text; "
            "HF BPE-encodes them as characters"
        )
    low_py = open_clip_clean(text)
    if "\u03a3" in text:
        reasons.append(
            "str.lower() applies the Greek final-sigma rule (word-final \u03a3 -> \u03c2); "
            "tokenizers' Lowercase maps each char alone (\u03a3 -> \u03c3)"
        )
    if not reasons:
        reasons.append(f"open_clip's cleaned text is {low_py!r}")
    return "; ".join(reasons)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokenizer", default=os.path.join(ROOT, "assets", "tokenizer.json"))
    ap.add_argument("--out", default=os.path.join(ROOT, "tests", "fixtures", "tokenizer", "goldens.json"))
    args = ap.parse_args()

    import open_clip
    import transformers
    from open_clip.tokenizer import SimpleTokenizer
    from tokenizers import Tokenizer
    from transformers import CLIPTokenizer

    # HF tokenizer from vocab.json + merges.txt written out of the shipped tokenizer.json.
    shipped = Tokenizer.from_file(args.tokenizer)
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        spec = json.load(open(args.tokenizer, encoding="utf-8"))
        with open(os.path.join(tmp, "vocab.json"), "w", encoding="utf-8") as f:
            json.dump(spec["model"]["vocab"], f, ensure_ascii=False)
        with open(os.path.join(tmp, "merges.txt"), "w", encoding="utf-8") as f:
            merges = spec["model"]["merges"]
            merges = [m if isinstance(m, str) else " ".join(m) for m in merges]
            f.write("#version: 0.2\n" + "\n".join(merges) + "\n")
        hf_tok = CLIPTokenizer.from_pretrained(tmp)

    st = SimpleTokenizer()
    cases = []
    n_oc_diff = 0
    for text in TEXTS:
        hf = hf_tok(text)["input_ids"]
        assert shipped.encode(text).ids == hf, (text, "shipped tokenizer.json differs from CLIPTokenizer")
        ref = reference_encode(st, text)
        oc = open_clip.tokenize([text], context_length=77)[0].tolist()
        oc_full = [st.sot_token_id] + st.encode(text) + [st.eot_token_id]
        case = {"text": text, "hf": hf, "open_clip": oc, "open_clip_full": oc_full}
        if ref != hf:
            case["reference_differs"] = ref
            print(f"REFERENCE DIFFERS: {text!r}\n  hf  {hf}\n  ref {ref}")
        if oc_full != hf:
            n_oc_diff += 1
            case["note"] = "open_clip differs: " + explain(text, hf, oc_full)
        cases.append(case)

    meta = {
        "generator": "tools/make_tokenizer_goldens.py",
        "transformers": transformers.__version__,
        "open_clip": open_clip.__version__,
        "context_length": 77,
        "bos": 49406,
        "eos": 49407,
        "open_clip_pad": 0,
        "cases": len(cases),
        "open_clip_differs": n_oc_diff,
    }
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump({"meta": meta, "cases": cases}, f, ensure_ascii=False, indent=1)
        f.write("\n")
    print(f"wrote {args.out}: {len(cases)} cases, open_clip differs from HF on {n_oc_diff}")
    for c in cases:
        if "note" in c:
            print(f"  {c['text'][:60]!r}: {c['note']}")


if __name__ == "__main__":
    main()
