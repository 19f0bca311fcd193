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

/// A model directory: input starting with `{` is a config.json, with byte 1 an
/// open_clip_config.json (the rest of it), anything else a safetensors checkpoint for
/// [`MICRO_CONFIG`]. One target for both, so the fuzzing time covers both readers.
pub fn model_dir(dir: &Path, input: &[u8]) {
    match input.first() {
        Some(b'{') | Some(1) => config(dir, input),
        _ => checkpoint(dir, input),
    }
}

/// config.json (or, when the input starts with byte 1, open_clip_config.json).
pub fn config(dir: &Path, input: &[u8]) {
    clear(dir, &["config.json", "open_clip_config.json"]);
    match input.split_first() {
        Some((1, rest)) => write(dir, "open_clip_config.json", rest),
        _ => write(dir, "config.json", input),
    };
    let _ = ClipConfig::from_dir(dir);
}

/// A safetensors checkpoint for [`MICRO_CONFIG`], loaded as a model.
pub fn checkpoint(dir: &Path, input: &[u8]) {
    write(dir, "config.json", MICRO_CONFIG.as_bytes());
    write(dir, "model.safetensors", input);
    let _ = Clip::load(dir, &Device::Cpu, crate::clip::WeightStorage::AsStored);
}

/// The bytes of a valid checkpoint for [`MICRO_CONFIG`] (random weights): the seed of the
/// checkpoint corpus.
pub fn micro_checkpoint_bytes() -> Vec<u8> {
    let cfg: serde_json::Value = serde_json::from_str(MICRO_CONFIG).expect("valid JSON");
    let dir = std::env::temp_dir().join(format!("cliptune-micro-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    std::fs::write(dir.join("config.json"), cfg.to_string()).expect("temp dir");
    let config = ClipConfig::from_dir(&dir).expect("MICRO_CONFIG is valid");
    let _ = std::fs::remove_dir_all(&dir);
    let model = Clip::random(config, 0, &Device::Cpu).expect("random model");
    let params = model.params();
    let tensors: Vec<(&str, &Tensor)> = params.iter().map(|p| (p.name.as_str(), &p.value)).collect();
    crate::tensor::io::safetensors_bytes(Path::new("micro.safetensors"), &tensors, &Default::default())
        .expect("serialisable")
}

/// tokenizer.json, then a few texts encoded with it.
pub fn tokenizer(dir: &Path, input: &[u8]) {
    let p = write(dir, "tokenizer.json", input);
    if let Ok(tok) = ClipTokenizer::from_file(&p) {
        let texts = vec!["a photo of a cat".to_string(), String::new(), "\u{1F600} x".to_string()];
        let _ = tok.encode_batch(&texts, 16, tok.eos_id());
        let _ = tok.encode("hello world");
    }
}

/// A caption file: the first byte picks CSV, TSV or JSONL. `a.png` exists next to it.
pub fn captions(dir: &Path, input: &[u8]) {
    let Some((&kind, rest)) = input.split_first() else {
        return;
    };
    write(dir, "a.png", b"");
    let name = ["c.csv", "c.tsv", "c.jsonl"][kind as usize % 3];
    let p = write(dir, name, rest);
    let _ = crate::data::load_captions(&p);
}

/// A sprite sheet: the JSON, [`SEPARATOR`], the PNG bytes.
pub fn sprite_sheet(input: &[u8]) {
    let parts = split(input, 2);
    let Ok(text) = std::str::from_utf8(parts[0]) else {
        return;
    };
    let png = parts.get(1).copied().unwrap_or(&[]);
    let _ = crate::data::sprite_sheet::sprite_sheet_from_bytes(text, png, Path::new("fuzz.json"));
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

/// An adapter directory: the parts of the input (split at [`SEPARATOR`]) become
/// [`ADAPTER_FILES`] in order (an empty part: no such file), loaded onto a micro model.
pub fn adapter_dir(dir: &Path, input: &[u8]) {
    static MICRO: OnceLock<ClipConfig> = OnceLock::new();
    static TOK: OnceLock<ClipTokenizer> = OnceLock::new();
    let cfg = MICRO.get_or_init(|| {
        let d = std::env::temp_dir().join(format!("cliptune-micro-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&d).expect("temp dir");
        std::fs::write(d.join("config.json"), MICRO_CONFIG).expect("temp dir");
        let c = ClipConfig::from_dir(&d).expect("MICRO_CONFIG is valid");
        let _ = std::fs::remove_dir_all(&d);
        c
    });
    let adapter = dir.join("adapter");
    let _ = std::fs::create_dir_all(&adapter);
    clear(&adapter, &ADAPTER_FILES);
    for (name, part) in ADAPTER_FILES.iter().zip(split(input, ADAPTER_FILES.len())) {
        if !part.is_empty() {
            write(&adapter, name, part);
        }
    }
    let Ok(mut model) = Clip::random(cfg.clone(), 0, &Device::Cpu) else {
        return;
    };
    let mut tok = TOK
        .get_or_init(|| ClipTokenizer::embedded().expect("embedded tokenizer"))
        .clone();
    let _ = crate::adapt::bundle::load_adapters_named(&mut model, &mut tok, &[adapter], "the micro model");
}

/// PNG/JPEG bytes decoded as an image file would be.
pub fn image(input: &[u8]) {
    if let Ok(img) = crate::clip::preprocess::decode_image(Path::new("fuzz.img"), input.to_vec()) {
        let cfg = crate::clip::preprocess::PreprocessConfig::openai(8);
        let _ = crate::clip::preprocess::preprocess(&img, &cfg);
    }
}

/// The entry of `target` (the fuzz target's name), or `None` for an unknown name. Entries
/// that need a directory get `dir`.
pub fn by_name(target: &str) -> Option<Box<dyn Fn(&Path, &[u8])>> {
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
