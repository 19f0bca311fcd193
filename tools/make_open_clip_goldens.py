#!/usr/bin/env python3
"""Goldens made by open_clip's own code for the `open_clip` pipeline (tests/tokenizer_open_clip.rs
and tests/preprocess_open_clip.rs).

Run by a developer (not by CI): pip install open_clip_torch==3.3.0 --no-deps, ftfy==6.3.1, regex,
pillow, numpy, safetensors; then  python tools/make_open_clip_goldens.py [--text-only]

torch could not be installed where these goldens were made (download.pytorch.org is not
reachable, and PyPI's torch pulls gigabytes of CUDA wheels), so:
  * text: open_clip's `open_clip/tokenizer.py` is loaded from the installed package with an
    empty stand-in for the `torch` module (the module imports it at the top; `encode()` never
    uses it). The ids are `[sot] + SimpleTokenizer().encode(text) + [eot]`, which is what
    `open_clip.tokenize` puts in a row before truncation/padding. The exact same code path.
  * images: open_clip's inference transform for `resize_mode="shortest"` is
    Compose([Resize(size, BICUBIC), CenterCrop(size), MaybeConvertMode("RGB"), ToTensor(),
    Normalize(mean, std)]) on a PIL image. torchvision runs those on PIL as: `img.resize((w, h),
    BICUBIC)` with the short side `size` and the long side `int(size * long / short)`;
    center_crop pads with 0 (left/top `(crop - size) // 2`) when the image is smaller, then
    crops at `int(round((size - crop) / 2.0))`; `convert("RGB")`; ToTensor is
    `float32(u8) / 255` in float32; Normalize `(x - mean) / std` in float32. This script does
    exactly those PIL/numpy operations (torchvision 0.2x's functional_pil / functional_tensor
    code), without torchvision itself.

Writes:
  tests/fixtures/tokenizer/open_clip_goldens.json   texts, category, ftfy.fix_text output,
      open_clip's cleaned text and ids
  tests/fixtures/preprocess/open_clip/*.png         real photos (and an RGBA cut-out) as PNG
  tests/fixtures/preprocess/open_clip/goldens.safetensors   f32 [3, s, s] per image and size
"""
import glob
import gzip
import html
import importlib.util
import inspect
import json
import os
import sys
import textwrap
import types

import numpy as np
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))



def open_clip_module():
    import importlib.metadata as md
    dist = md.distribution("open_clip_torch")
    path = os.path.join(str(dist.locate_file("")), "open_clip", "tokenizer.py")
    stub = types.ModuleType("torch")
    stub.LongTensor = stub.Tensor = object  # only named in annotations
    sys.modules.setdefault("torch", stub)
    spec = importlib.util.spec_from_file_location("open_clip_tokenizer", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod, dist.version


# ---------------------------------------------------------------- text corpus
def licences():
    out = []
    for name, n in [("Apache-2.0", 6), ("GPL-3", 6), ("BSD", 3), ("Artistic", 3), ("MPL-2.0", 4), ("CC0-1.0", 3)]:
        p = os.path.join("/usr/share/common-licenses", name)
        if not os.path.exists(p):
            continue
        paras = [x.strip() for x in open(p, encoding="utf-8").read().split("\n\n") if len(x.strip()) > 40]
        out += paras[1:1 + n]
    return out


def docstrings():
    import collections, csv, functools, itertools, json as js, pathlib, re as rre, string
    objs = [html.unescape, json.dumps, textwrap.dedent, collections.OrderedDict, csv.reader,
            functools.lru_cache, itertools.groupby, pathlib.Path.resolve, rre.sub, string.Template,
            os.path.join, sorted, str.split, str.lower, int.from_bytes]
    return [inspect.getdoc(o) for o in objs if inspect.getdoc(o)]


def changelogs():
    out = []
    for p in sorted(glob.glob("/usr/share/doc/*/changelog.Debian.gz"))[:40:4]:
        with gzip.open(p, "rt", encoding="utf-8", errors="replace") as f:
            entry = f.read().split("\n\n")[:3]
        out.append("\n\n".join(entry)[:900])
    return out


SENTENCES = [
    "Les élèves ont déjà visité le musée à Paris, n’est-ce pas ?",
    "Größere Häuser müssen über die Straße gebaut werden.",
    "El niño comió piña y jalapeño en la mañana.",
    "São Paulo é a maior cidade do Brasil — não é?",
    "“Smart quotes” and ‘single ones’ – with dashes… and ellipses",
    "Crème brûlée costs €5 at the café",
    "Kraków, Łódź and Gdańsk are Polish cities",
    "Привет, как дела? Всё хорошо.",
    "Η γρήγορη καφέ αλεπού",
    "naïve coöperation façade",
]


def mojibake():
    out = []
    for s in SENTENCES:
        b = s.encode("utf-8")
        out.append(b.decode("latin-1", errors="replace"))
        try:
            import ftfy.bad_codecs  # noqa: F401
            out.append(b.decode("sloppy-windows-1252"))
        except Exception:
            pass
        out.append(b.decode("windows-1251", errors="replace"))
        # double mojibake
        out.append(b.decode("latin-1").encode("utf-8").decode("latin-1"))
    out += ["The Mona Lisa doesnÃ¢â‚¬â„¢t have eyebrows.", "Ã©", "voilÃ le travail", "sÃ³",
            "Ã¢â‚¬Å“mismatched quotesâ€\x9d", "I'm Ã¢â‚¬Å“fineÃ¢â‚¬Â\x9d", "cafÃ© and a real é",
            "â€œ like this â€�", "ÃƒÂ©", "Ð¿Ñ€Ð¸Ð²ÐµÑ‚"]
    return out


MORE_SENTENCES = [
    "Việt Nam có nhiều món ăn ngon như phở và bánh mì.",
    "Çok güzel bir gün, ağaçların altında oturduk.",
    "Příliš žluťoučký kůň úpěl ďábelské ódy.",
    "Þjóðin á Íslandi drekkur kaffi á morgnana.",
    "مرحبا بالعالم، كيف حالك؟",
    "שלום עולם, מה שלומך?",
    "日本語のテキストと絵文字 🎉 です",
    "Zażółć gęślą jaźń",
    "Ελληνικά: Καλημέρα σας!",
    "Ukraïna: Київ, Львів, Одеса",
    "Dansk: æble, øl og Ålborg",
    "Temperature 25°C ± 0.5° — 50% off… “quoted” ‘text’ • bullet © 2024 ™",
    "résumé naïve façade Ångström",
    "emoji 😀👍🏽 and math ∑ ≤ ∞",
]


def mojibake_classes():
    """Each class of mojibake ftfy repairs (and text it must leave alone), made the way it
    happens: UTF-8 bytes of real sentences decoded with each of ftfy's single-byte encodings,
    twice, lossily (undefined bytes -> U+FFFD), with A0 bytes turned into spaces, inside
    correct text; C1 controls; CESU-8 and Java's C0 80; legitimate text that looks odd."""
    import ftfy.bad_codecs  # noqa: F401  registers the sloppy-* codecs
    sentences = SENTENCES + MORE_SENTENCES
    out = []
    encs = ["latin-1", "sloppy-windows-1252", "sloppy-windows-1251", "sloppy-windows-1250",
            "sloppy-windows-1253", "sloppy-windows-1254", "sloppy-windows-1257", "iso-8859-2",
            "macroman", "cp437"]
    for s in sentences:
        b = s.encode("utf-8")
        for e in encs:
            try:
                out.append(("mojibake/" + e.replace("sloppy-", ""), b.decode(e)))
            except UnicodeDecodeError:
                pass
        # twice: UTF-8 read as windows-1252, written as UTF-8 and read as windows-1252 again
        out.append(("mojibake/twice", b.decode("sloppy-windows-1252").encode("utf-8").decode("sloppy-windows-1252")))
        out.append(("mojibake/twice", b.decode("latin-1").encode("utf-8").decode("sloppy-windows-1252")))
        # lossy: the strict codec turned undefined bytes into U+FFFD
        out.append(("mojibake/lossy", b.decode("windows-1252", errors="replace")))
        # A0 bytes that became spaces
        out.append(("mojibake/a0-space", b.decode("sloppy-windows-1252").replace("\xa0", " ")))
        # mojibake inside correct text
        out.append(("mojibake/mixed", s + " / " + b.decode("sloppy-windows-1252")))
    # CESU-8: a supplementary character as two UTF-8-encoded surrogates (and Java's C0 80 NUL).
    cp = ord("\N{GRINNING FACE}") - 0x10000
    cesu_bytes = (chr(0xD800 + (cp >> 10)) + chr(0xDC00 + (cp & 0x3FF))).encode("utf-8", "surrogatepass")
    out += [
        ("mojibake/c1", "\x93quoted\x94 text \x96 dash \x85"),
        ("mojibake/c1", "caf\xe9 \x80 5 and \x81 undefined"),
        ("mojibake/c1", "\x91single\x92 \x99 \x9c"),
        ("mojibake/c1", "plain \x8d \x8f \x90 \x9d controls"),
        ("mojibake/cesu8", "smile " + cesu_bytes.decode("sloppy-windows-1252") + " done"),
        ("mojibake/cesu8", "smile " + cesu_bytes.decode("latin-1") + " caf" + "é".encode().decode("latin-1")),
        ("mojibake/cesu8", "nul" + b"\xc0\x80".decode("latin-1") + "x Ã©"),
        ("mojibake/legit", "Ã la carte"),
        ("mojibake/legit", "(╯°□°)╯︵ ┻━┻"),
        ("mojibake/legit", "¯\\_(ツ)_/¯"),
        ("mojibake/legit", "ÀÉÎÕÜ and ÇÑ in capitals"),
        ("mojibake/legit", "Γειά σου Κόσμε"),
        ("mojibake/legit", "Всё в порядке, Ð is eth"),
        ("mojibake/legit", "5 × 3² = 45, ½ ¼ ¾ µm"),
        ("mojibake/legit", "§ 3 ¶ 2 — © ® ™"),
    ]
    return out


CRAFTED = {
    "cjk": ["猫の写真", "一只猫在桌子上", "고양이 사진", "東京タワーの夜景、とても綺麗！", "我爱北京天安门。",
            "ﾊﾝｶｸｶﾀｶﾅ と 半角カナ", "中文，全角标点：“引号”（括号）"],
    "emoji": ["a 🐶 on a 🛹", "👨\u200d👩\u200d👧 family, 👍🏽 thumbs, 🇫🇷 flag", "❤️🔥💯", "☺ ☹ ✌️ ✨",
              "🏳️‍🌈 pride", "keycap 1️⃣ #️⃣"],
    "html": ["Tom &amp; Jerry &lt;b&gt;bold&lt;/b&gt; &quot;quoted&quot; &#39;x&#39; &nbsp;",
             "&amp;amp; double &amp;lt;escaped&amp;gt;", "<p>Caf&eacute; &mdash; &ldquo;open&rdquo;</p>",
             "&ldquo;curly&rdquo; &hellip; &copy; 2024 &trade;", "&NTILDE;O&Ntilde;O &EACUTE;",
             "&#x1F600; &#128512; &#X41; &#65 &#0; &#x80; &#xD800; &#1114112;",
             "&notit; &ampx &amp &lt3 &gt;&gt; &bogus; & alone", "AT&T R&D Q&A",
             "&#9731; snowman &#x2603;", "5 &lt; 6 &amp;&amp; 7 &gt; 3", "a<b &amp; c"],
    "quotes": ["“Double” „low” ‟reversed” ‘single’ ‛reversed’ ʼmodifier",
               "It’s John’s “best” day", "«guillemets» ‹single›"],
    "ligatures": ["ﬁne ﬂour ﬀ ﬃ ﬄ ﬅ ﬆ", "Ĳsselmeer ĳs", "Ǆ ǅ ǆ Ǉ ǈ ǉ Ǌ ǋ ǌ Ǳ ǲ ǳ", "ŉ"],
    "fullwidth": ["ＬＯＵＤ　ＮＯＩＳＥＳ", "ｆｕｌｌ－ｗｉｄｔｈ　１２３！", "￥１００ ￡５ ￠", "ＡＢＣａｂｃ０９"],
    "case": ["ΟΔΟΣ ΟΔΟΣ. Σ", "İstanbul DİYARBAKIR", "STRASSE Straße ẞ", "ǅungla", "ΌΣΟΣ Ἀθῆναι",
             "ÀÉÎÕÜ ÇÑ", "HELLO World"],
    "control": ["bell\x07 tab\tvt\x0bff\x0c nul\x00 del\x7f", "\x1b[31mred\x1b[0m text", "zero\u200bwidth\ufeffbom",
                "c1\x80controls\x85nel\x9d", "line\u2028sep\u2029para\r\nwin\rmac", "soft\u00adhyphen",
                "rtl \u202eoverride\u202c", "\x1c\x1d\x1e\x1f separators", "\u206ainhibit\u206f"],
    "special": ["a photo <|endoftext|> of a dog", "<|startoftext|>hello", "a <end_of_text> b",
                "<start_of_text>x<END_OF_TEXT>", "x<end_of_text>y", "!<end_of_text>", "<end_of_text>"],
    "misc": ["", "   ", "a", "don't it's we're they've I'm you'll she'd", "DON'T IT'S",
             "price: $5,000.99 - 50% off #1 @home", "1234567890 3.14159 2nd",
             "cafe\u0301 nai\u0308ve", "non\u00a0breaking\u3000ideographic\u2003em",
             " ".join(["word"] * 90)],
}


def corpus():
    cases = []
    for cat, texts in [("licence", licences()), ("docstring", docstrings()), ("changelog", changelogs()),
                       ("mojibake", mojibake())] + list(CRAFTED.items()):
        for t in texts:
            cases.append((cat, t))
    cases += mojibake_classes()
    # Licences and changelogs come from the machine's installed packages: once committed, the
    # fixture's texts are kept as they are and in their order, and new texts are appended, so
    # a rerun elsewhere only adds cases and never churns the existing ones.
    path = os.path.join(ROOT, "tests/fixtures/tokenizer/open_clip_goldens.json")
    kept = []
    if os.path.exists(path):
        kept = [(c["category"], c["text"]) for c in json.load(open(path, encoding="utf-8"))["cases"]]
        cases = [c for c in cases if c[0] not in ("licence", "changelog")]
    seen, added = {t for _, t in kept}, []
    for cat, t in cases:
        if t not in seen:
            seen.add(t)
            added.append((cat, t))
    cases = kept + added
    old = json.load(open(os.path.join(ROOT, "tests/fixtures/tokenizer/goldens.json")))
    seen = {t for _, t in cases}
    for c in old["cases"]:
        if c["text"] not in seen:
            cases.append(("hf_goldens", c["text"]))
    return cases


def text_goldens():
    import ftfy
    mod, version = open_clip_module()
    tok = mod.SimpleTokenizer()
    out = []
    for cat, t in corpus():
        ids = [tok.sot_token_id] + tok.encode(t) + [tok.eot_token_id]
        out.append({"category": cat, "text": t, "ftfy": ftfy.fix_text(t), "clean": tok.clean_fn(t), "ids": ids})
    meta = {"generator": "tools/make_open_clip_goldens.py", "open_clip": version, "ftfy": ftfy.__version__,
            "python": sys.version.split()[0], "cases": len(out),
            "ids": "[sot] + open_clip.tokenizer.SimpleTokenizer().encode(text) + [eot], untruncated"}
    path = os.path.join(ROOT, "tests/fixtures/tokenizer/open_clip_goldens.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump({"meta": meta, "cases": out}, f, ensure_ascii=True, indent=0)
    print(f"{len(out)} texts -> {path}")


# ---------------------------------------------------------------- images
MEAN = (0.48145466, 0.4578275, 0.40821073)
STD = (0.26862954, 0.26130258, 0.27577711)


def open_clip_transform(img, size):
    """torchvision Resize(size, BICUBIC) + CenterCrop(size) + convert RGB + ToTensor + Normalize."""
    w, h = img.size
    short, long = (w, h) if w <= h else (h, w)
    new_short, new_long = size, int(size * long / short)
    nw, nh = (new_short, new_long) if w <= h else (new_long, new_short)
    if (nw, nh) != (w, h):
        img = img.resize((nw, nh), Image.BICUBIC)
    # center_crop (functional.py): pad if needed, then crop at round((size - crop) / 2).
    cw = ch = size
    iw, ih = img.size
    if cw > iw or ch > ih:
        pl = (cw - iw) // 2 if cw > iw else 0
        pt = (ch - ih) // 2 if ch > ih else 0
        pr = (cw - iw + 1) // 2 if cw > iw else 0
        pb = (ch - ih + 1) // 2 if ch > ih else 0
        padded = Image.new(img.mode, (iw + pl + pr, ih + pt + pb), 0)
        padded.paste(img, (pl, pt))
        img = padded
        iw, ih = img.size
    top = int(round((ih - ch) / 2.0))
    left = int(round((iw - cw) / 2.0))
    img = img.crop((left, top, left + cw, top + ch))
    if img.mode != "RGB":
        img = img.convert("RGB")
    x = np.asarray(img, dtype=np.uint8).astype(np.float32) / np.float32(255)
    x = x.transpose(2, 0, 1)
    mean = np.array(MEAN, dtype=np.float32)[:, None, None]
    std = np.array(STD, dtype=np.float32)[:, None, None]
    return np.ascontiguousarray((x - mean) / std, dtype=np.float32)


PHOTOS = [
    "/root/.rustup/toolchains/stable-x86_64-unknown-linux-gnu/share/doc/rust/html/embedded-book/assets/f3.jpg",
    "/root/.rustup/toolchains/stable-x86_64-unknown-linux-gnu/share/doc/rust/html/embedded-book/assets/verify.jpeg",
]


def image_goldens():
    from safetensors.numpy import save_file
    out_dir = os.path.join(ROOT, "tests/fixtures/preprocess/open_clip")
    os.makedirs(out_dir, exist_ok=True)
    images = {}
    for i, p in enumerate(PHOTOS):
        im = Image.open(p).convert("RGB")
        # Odd sizes: the resized long side minus the crop is 3 mod 4 for some sizes, where
        # torchvision's rounded offset and HF's floored one differ.
        for (w, h) in [(163, 121), (97, 131)]:
            images[f"photo{i}_{w}x{h}"] = im.resize((w, h), Image.LANCZOS)
    # RGBA: a photo with a radial alpha (a real cut-out, partly transparent edges).
    base = images["photo0_163x121"]
    yy, xx = np.mgrid[0:121, 0:163]
    r = np.hypot((xx - 81) / 81.0, (yy - 60) / 60.0)
    alpha = np.clip((1.2 - r) * 255, 0, 255).astype(np.uint8)
    rgba = np.dstack([np.asarray(base), alpha])
    images["photo0_rgba_163x121"] = Image.fromarray(rgba, "RGBA")
    la = np.dstack([np.asarray(base.convert("L")), alpha[:, :, None][:, :, 0]])
    images["photo0_la_163x121"] = Image.fromarray(la, "LA")
    images["photo1_grey_97x131"] = images["photo1_97x131"].convert("L")
    tensors = {}
    for name, im in images.items():
        path = os.path.join(out_dir, name + ".png")
        im.save(path)
        im = Image.open(path)
        im.load()
        # 224 (a real model input) for two images only, to keep the fixture small.
        for size in (32, 45) + ((224,) if name in ("photo0_97x131", "photo0_rgba_163x121") else ()):
            tensors[f"{name}/{size}"] = open_clip_transform(im, size)
    save_file(tensors, os.path.join(out_dir, "goldens.safetensors"),
              metadata={"generator": "tools/make_open_clip_goldens.py",
                        "pillow": Image.__version__ if hasattr(Image, "__version__") else "?"})
    print(f"{len(images)} images, {len(tensors)} tensors -> {out_dir}")


if __name__ == "__main__":
    text_goldens()
    if "--text-only" not in sys.argv:
        image_goldens()
