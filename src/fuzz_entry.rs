//! One entry per reader of user files, taking arbitrary bytes: the cargo-fuzz targets in
//! `fuzz/` and the stable mutation pass of CI (`tests/fuzz_corpus.rs`) call the same code.
//! An entry returns normally for every input (an `Err` from the reader is the expected answer
//! to garbage); a panic, an abort, a hang or runaway memory is a bug.
//!
//! Entries that read from disk write the input into `dir`, which the caller owns (one per
//! fuzz process or per test).
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::backend::Device;
use crate::clip::config::ClipConfig;
use crate::clip::tokenizer::ClipTokenizer;
use crate::clip::Clip;
use crate::nn::Module;
use crate::tensor::Tensor;

/// Splits the several files of one input (adapter directories, sprite sheets).
pub const SEPARATOR: &[u8] = b"\n--8<--\n";

/// A CLIP small enough that a fuzzer can write a whole valid checkpoint for it.
pub const MICRO_CONFIG: &str = r#"{
  "projection_dim": 8,
  "text_config": {"hidden_size": 8, "intermediate_size": 16, "num_attention_heads": 2,
                  "num_hidden_layers": 1, "max_position_embeddings": 8, "vocab_size": 64,
                  "eos_token_id": 63},
  "vision_config": {"hidden_size": 8, "intermediate_size": 16, "num_attention_heads": 2,
                    "num_hidden_layers": 1, "image_size": 8, "patch_size": 4}
}"#;

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).expect("the fuzz scratch directory is writable");
    p
}

fn clear(dir: &Path, names: &[&str]) {
    for n in names {
        let _ = std::fs::remove_file(dir.join(n));
    }
}

/// `input` split at [`SEPARATOR`] into at most `n` parts.
fn split(input: &[u8], n: usize) -> Vec<&[u8]> {
    let mut parts = Vec::new();
    let mut rest = input;
    while parts.len() + 1 < n {
        match rest.windows(SEPARATOR.len()).position(|w| w == SEPARATOR) {
            Some(i) => {
                parts.push(&rest[..i]);
                rest = &rest[i + SEPARATOR.len()..];
            }
            None => break,
        }
    }
    parts.push(rest);
    parts
}

/// What an entry answers: `Ok` when the reader accepted the input (and the accepted value
/// passed the entry's consistency checks), the reader's error otherwise. A violated
/// invariant is a panic, so the fuzzer reports it as a crash.
pub type Outcome = std::result::Result<(), crate::Error>;

/// The reader's answer, with the invariants every reader keeps: an error says something,
/// and an accepted value passes `check`.
fn judged<T>(what: &str, r: crate::Result<T>, check: impl FnOnce(&T)) -> Outcome {
    match r {
        Ok(v) => {
            check(&v);
            Ok(())
        }
        Err(e) => {
            assert!(
                !e.msg.trim().is_empty(),
                "{what}: an error with an empty message ({:?})",
                e.kind
            );
            Err(e)
        }
    }
}

fn tower_ok(what: &str, t: &crate::clip::config::TowerConfig) {
    assert!(
        t.width > 0 && t.heads > 0 && t.width % t.heads == 0 && t.layers > 0 && t.mlp > 0,
        "{what}: accepted a tower that cannot run: {t:?}"
    );
    assert!(
        t.eps.is_finite() && t.eps > 0.0,
        "{what}: accepted layer_norm_eps {}",
        t.eps
    );
}

fn config_ok(c: &ClipConfig) {
    tower_ok("vision", &c.vision.tower);
    tower_ok("text", &c.text.tower);
    assert!(
        c.vision.patch > 0 && c.vision.image_size >= c.vision.patch && c.vision.num_patches() > 0,
        "accepted image_size {} / patch {}",
        c.vision.image_size,
        c.vision.patch
    );
    assert!(
        c.text.vocab > 0 && c.text.context > 0 && c.projection_dim > 0,
        "accepted an empty text tower"
    );
    assert!(
        (c.text.eot_id as usize) < c.text.vocab,
        "accepted eot id {} of {}",
        c.text.eot_id,
        c.text.vocab
    );
}

/// Every weight of `model` is a finite number.
fn model_finite(what: &str, model: &Clip) {
    for p in model.params() {
        let v = p.value.to_vec().expect("a CPU tensor reads back");
        assert!(
            v.iter().all(|x| x.is_finite()),
            "{what}: accepted a non-finite {}",
            p.name
        );
    }
}

/// A model directory: input starting with `{` is a config.json, with byte 1 an
/// open_clip_config.json (the rest of it), anything else a safetensors checkpoint for
/// [`MICRO_CONFIG`]. One target for both, so the fuzzing time covers both readers.
pub fn model_dir(dir: &Path, input: &[u8]) -> Outcome {
    match input.first() {
        Some(b'{') | Some(1) => config(dir, input),
        _ => checkpoint(dir, input),
    }
}

/// config.json (or, when the input starts with byte 1, open_clip_config.json).
pub fn config(dir: &Path, input: &[u8]) -> Outcome {
    clear(dir, &["config.json", "open_clip_config.json"]);
    match input.split_first() {
        Some((1, rest)) => write(dir, "open_clip_config.json", rest),
        _ => write(dir, "config.json", input),
    };
    judged("config", ClipConfig::from_dir(dir), config_ok)
}

/// A safetensors checkpoint for [`MICRO_CONFIG`], loaded as a model.
pub fn checkpoint(dir: &Path, input: &[u8]) -> Outcome {
    write(dir, "config.json", MICRO_CONFIG.as_bytes());
    write(dir, "model.safetensors", input);
    let loaded = Clip::load(dir, &Device::Cpu, crate::clip::WeightStorage::AsStored);
    judged("checkpoint", loaded, |m| model_finite("checkpoint", m))
}

/// [`MICRO_CONFIG`] parsed once per process.
fn micro_config() -> &'static ClipConfig {
    static MICRO: OnceLock<ClipConfig> = OnceLock::new();
    MICRO.get_or_init(|| {
        // Once per process (the lock), so the pid names this directory alone.
        let d = std::env::temp_dir().join(format!("cliptune-micro-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&d).expect("temp dir");
        std::fs::write(d.join("config.json"), MICRO_CONFIG).expect("temp dir");
        let c = ClipConfig::from_dir(&d).expect("MICRO_CONFIG is valid");
        let _ = std::fs::remove_dir_all(&d);
        c
    })
}

/// The model [`adapter_dir`] loads adapters onto: [`MICRO_CONFIG`], random weights of seed 0
/// (the same fingerprint on every run, so committed adapter seeds fit it).
pub fn micro_model() -> Clip {
    Clip::random(micro_config().clone(), 0, &Device::Cpu).expect("the micro model")
}

/// The bytes of a valid checkpoint for [`MICRO_CONFIG`] (random weights): the seed of the
/// checkpoint corpus.
pub fn micro_checkpoint_bytes() -> Vec<u8> {
    let model = micro_model();
    let params = model.params();
    let tensors: Vec<(&str, &Tensor)> = params.iter().map(|p| (p.name.as_str(), &p.value)).collect();
    crate::tensor::io::safetensors_bytes(Path::new("micro.safetensors"), &tensors, &Default::default())
        .expect("serialisable")
}

/// A CLIP byte-level BPE `tokenizer.json` whose ids fit [`MICRO_CONFIG`]'s 64-row token
/// embedding: `a`..`z` (0-25), `a</w>`..`z</w>` (26-51), `.</w>`, `,</w>`, `0</w>`..`7</w>` (52-61),
/// `<|startoftext|>` 62 and `<|endoftext|>` 63 (also the unknown token, like CLIP's). With the
/// full CLIP vocabulary every word's id is above 255, so prompt and textual-inversion
/// adapters of the micro model could never be accepted and their loaders' accept paths
/// would go unfuzzed.
pub fn micro_tokenizer_json() -> String {
    let mut vocab = serde_json::Map::new();
    for (i, c) in ('a'..='z').enumerate() {
        vocab.insert(c.to_string(), i.into());
        vocab.insert(format!("{c}</w>"), (26 + i).into());
    }
    // Class names end with "." in prompts: unknown, it would read as `<|endoftext|>`.
    for (i, c) in ['.', ',', '0', '1', '2', '3', '4', '5', '6', '7'].iter().enumerate() {
        vocab.insert(format!("{c}</w>"), (52 + i).into());
    }
    vocab.insert("<|startoftext|>".into(), 62.into());
    vocab.insert("<|endoftext|>".into(), 63.into());
    let special = |id: u32, content: &str| {
        serde_json::json!({"id": id, "content": content, "single_word": false, "lstrip": false,
                           "rstrip": false, "normalized": false, "special": true})
    };
    serde_json::json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": [special(62, "<|startoftext|>"), special(63, "<|endoftext|>")],
        "normalizer": {"type": "Sequence", "normalizers": [
            {"type": "NFC"}, {"type": "Replace", "pattern": {"Regex": "\\s+"}, "content": " "},
            {"type": "Lowercase"}]},
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex":
                "<\\|startoftext\\|>|<\\|endoftext\\|>|'s|'t|'re|'ve|'m|'ll|'d|[\\p{L}]+|[\\p{N}]|[^\\s\\p{L}\\p{N}]+"},
             "behavior": "Removed", "invert": true},
            {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true}]},
        "post_processor": {"type": "RobertaProcessing", "sep": ["<|endoftext|>", 63],
                           "cls": ["<|startoftext|>", 62], "trim_offsets": false, "add_prefix_space": false},
        "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
        "model": {"type": "BPE", "dropout": null, "unk_token": "<|endoftext|>", "continuing_subword_prefix": "",
                  "end_of_word_suffix": "</w>", "fuse_unk": false, "byte_fallback": false, "ignore_merges": false,
                  "vocab": vocab, "merges": []}
    })
    .to_string()
}

/// The tokenizer of [`micro_tokenizer_json`] (parsed once per process).
pub fn micro_tokenizer() -> ClipTokenizer {
    static TOK: OnceLock<ClipTokenizer> = OnceLock::new();
    TOK.get_or_init(|| {
        ClipTokenizer::from_bytes(micro_tokenizer_json().as_bytes(), "the micro tokenizer")
            .expect("the micro tokenizer is valid")
    })
    .clone()
}

/// tokenizer.json, then a few texts encoded with it.
pub fn tokenizer(dir: &Path, input: &[u8]) -> Outcome {
    let p = write(dir, "tokenizer.json", input);
    let tok = match ClipTokenizer::from_file(&p) {
        Ok(t) => t,
        Err(e) => return judged::<()>("tokenizer.json", Err(e), |_| ()),
    };
    let texts = vec!["a photo of a cat".to_string(), String::new(), "\u{1F600} x".to_string()];
    let vocab = tok.vocab_size();
    judged("encode_batch", tok.encode_batch(&texts, 16, tok.eos_id()), |b| {
        assert_eq!((b.len(), b.context_len()), (3, 16), "a [3, 16] batch");
        for i in 0..b.len() {
            let row = b.row(i);
            assert!(
                row.iter().all(|&id| (id as usize) < vocab),
                "id outside the {vocab}-token vocabulary: {row:?}"
            );
        }
    })?;
    judged("encode", tok.encode("hello world"), |ids| {
        assert!(
            ids.iter().all(|&id| (id as usize) < vocab),
            "id outside the {vocab}-token vocabulary: {ids:?}"
        );
    })
}

/// A caption file: the first byte picks CSV, TSV or JSONL. `a.png` exists next to it.
pub fn captions(dir: &Path, input: &[u8]) -> Outcome {
    let Some((&kind, rest)) = input.split_first() else {
        return Ok(());
    };
    write(dir, "a.png", b"");
    let name = ["c.csv", "c.tsv", "c.jsonl"][kind as usize % 3];
    let p = write(dir, name, rest);
    judged("captions", crate::data::load_captions(&p), |records| {
        assert!(!records.is_empty(), "accepted a caption file without rows");
        for r in records {
            assert!(!r.captions.is_empty(), "a row without a caption: {r:?}");
            assert!(r.image.is_file(), "a row whose image does not exist: {r:?}");
        }
    })
}

/// A sprite sheet: the JSON, [`SEPARATOR`], the PNG bytes.
pub fn sprite_sheet(input: &[u8]) -> Outcome {
    let parts = split(input, 2);
    let Ok(text) = std::str::from_utf8(parts[0]) else {
        return Ok(());
    };
    let png = parts.get(1).copied().unwrap_or(&[]);
    let sheet = crate::data::sprite_sheet::sprite_sheet_from_bytes(text, png, Path::new("fuzz.json"));
    judged("sprite sheet", sheet, |s| {
        assert_eq!(s.items.len(), s.images.len(), "one tile per item");
        for (it, im) in s.items.iter().zip(&s.images) {
            assert!(
                it.label < s.classes.len(),
                "label {} of {} classes",
                it.label,
                s.classes.len()
            );
            assert_eq!([im.height(), im.width()], s.tile, "a tile of the sheet's tile size");
        }
    })
}

/// The files an adapter directory may hold, in the order [`adapter_dir`] fills them.
pub const ADAPTER_FILES: [&str; 7] = [
    "cliptune_adapter.json",
    "adapter_config.json",
    "adapter_model.safetensors",
    "prompt.safetensors",
    "textual_inversion.safetensors",
    "tokenizer.json",
    "linear_probe.json",
];

/// The fuzz input of the adapter directory `dir` (its [`ADAPTER_FILES`] joined by
/// [`SEPARATOR`], an absent file as an empty part): how adapter seeds are made.
pub fn adapter_input(dir: &Path) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, name) in ADAPTER_FILES.iter().enumerate() {
        if i > 0 {
            out.extend_from_slice(SEPARATOR);
        }
        if let Ok(bytes) = std::fs::read(dir.join(name)) {
            out.extend_from_slice(&bytes);
        }
    }
    out
}

/// An adapter directory: the parts of the input (split at [`SEPARATOR`]) become
/// [`ADAPTER_FILES`] in order (an empty part: no such file), loaded onto a micro model with
/// the micro tokenizer.
pub fn adapter_dir(dir: &Path, input: &[u8]) -> Outcome {
    let adapter = dir.join("adapter");
    let _ = std::fs::create_dir_all(&adapter);
    clear(&adapter, &ADAPTER_FILES);
    for (name, part) in ADAPTER_FILES.iter().zip(split(input, ADAPTER_FILES.len())) {
        if !part.is_empty() {
            write(&adapter, name, part);
        }
    }
    let mut model = micro_model();
    let mut tok = micro_tokenizer();
    let loaded = crate::adapt::bundle::load_adapters_named(&mut model, &mut tok, &[adapter], "the micro model");
    judged("adapter directory", loaded, |_| {
        model_finite("adapter directory", &model)
    })
}

/// PNG/JPEG bytes decoded as an image file would be.
pub fn image(input: &[u8]) -> Outcome {
    let img = crate::clip::preprocess::decode_image(Path::new("fuzz.img"), input.to_vec());
    judged("image", img, |img| {
        assert!(img.width() > 0 && img.height() > 0, "accepted an empty image");
        let cfg = crate::clip::preprocess::PreprocessConfig::openai(8);
        let px = crate::clip::preprocess::preprocess(img, &cfg);
        assert_eq!(px.len(), 3 * 8 * 8, "a [3, 8, 8] crop");
        assert!(px.iter().all(|x| x.is_finite()), "non-finite pixels");
    })
}

/// The entry of `target` (the fuzz target's name), or `None` for an unknown name. Entries
/// that need a directory get `dir`.
pub fn by_name(target: &str) -> Option<Box<dyn Fn(&Path, &[u8]) -> Outcome>> {
    Some(match target {
        "model_dir" => Box::new(model_dir),
        "tokenizer" => Box::new(tokenizer),
        "captions" => Box::new(captions),
        "sprite_sheet" => Box::new(|_: &Path, b: &[u8]| sprite_sheet(b)),
        "adapter_dir" => Box::new(adapter_dir),
        "image" => Box::new(|_: &Path, b: &[u8]| image(b)),
        _ => return None,
    })
}

/// The fuzz targets, as named in fuzz/Cargo.toml and fuzz/corpus/.
pub const TARGETS: [&str; 6] = [
    "model_dir",
    "tokenizer",
    "captions",
    "sprite_sheet",
    "adapter_dir",
    "image",
];

/// xorshift64*: the same mutations on every run and machine for one seed.
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }
}

/// Tokens that tend to hit edge cases of text formats and numbers.
const SPLICES: [&[u8]; 14] = [
    b"\"",
    b"\n",
    b"\r\n",
    b",",
    b"\t",
    b"-1",
    b"1e309",
    b"18446744073709551616",
    b"1099511627776",
    b"null",
    b"[]",
    b"{}",
    b"\xff\xfe",
    b"\n--8<--\n",
];

/// One to four random edits of `seed`: bit flips, random bytes, truncation, splices of
/// [`SPLICES`], deletions, and large little-endian integers (safetensors header lengths and
/// offsets).
pub fn mutate(seed: &[u8], rng: &mut Rng) -> Vec<u8> {
    let mut v = seed.to_vec();
    for _ in 0..1 + rng.below(4) {
        let at = rng.below(v.len() + 1);
        match rng.below(6) {
            0 if !v.is_empty() => {
                let i = rng.below(v.len());
                v[i] ^= 1 << rng.below(8);
            }
            1 if !v.is_empty() => {
                let i = rng.below(v.len());
                v[i] = rng.next_u64() as u8;
            }
            2 => v.truncate(at),
            3 => {
                let s = SPLICES[rng.below(SPLICES.len())];
                v.splice(at..at, s.iter().copied());
            }
            4 if at < v.len() => {
                let end = (at + 1 + rng.below(16)).min(v.len());
                v.drain(at..end);
            }
            _ => {
                let n = [u64::MAX, 1 << 40, 0, 7][rng.below(4)].to_le_bytes();
                for (k, b) in n.iter().enumerate() {
                    if let Some(x) = v.get_mut(at + k) {
                        *x = *b;
                    }
                }
            }
        }
    }
    v
}
