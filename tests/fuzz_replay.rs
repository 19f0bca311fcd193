//! The stable, deterministic counterpart of the cargo-fuzz targets in fuzz/: every committed
//! corpus file (fuzz/corpus/TARGET/*) and a fixed set of mutations of it go through the same
//! entry points (`cliptune::fuzz_entry`). A reader may answer garbage with an error (with a
//! message), never with a panic, and what it accepts passes the entry's consistency checks.
//! The regression inputs of fixed bugs are corpus files, so they replay here too. A few
//! seconds in all, so it runs in CI with `cargo test --release`.
//!
//! `CLIPTUNE_WRITE_FUZZ_SEEDS=1 cargo test --release --test fuzz_replay` (re)writes the two
//! seeds that are generated rather than copied: a valid micro checkpoint and a sprite sheet.
mod common;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use cliptune::fuzz_entry::{self as entry, mutate, Outcome, Rng};
use common::cli::fresh;

fn corpus(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus").join(target)
}

/// The corpus files of `target`, sorted; an empty or missing corpus fails the test.
fn seeds(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = corpus(target);
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().to_string(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect();
    out.sort();
    assert!(!out.is_empty(), "no corpus files in {}", dir.display());
    out
}

/// How a pass went: inputs the reader accepted and refused, by name.
struct Tally {
    accepted: Vec<String>,
    refused: usize,
}

/// Every seed, then `mutations` mutated inputs (one deterministic generator) through
/// `run`. A panic (a crash or a violated invariant) fails with the
/// target, seed and mutation, and leaves the input in `dir` for reproduction.
fn pass(target: &str, mutations: usize, dir: &Path, run: impl Fn(&[u8]) -> Outcome) -> Tally {
    let seeds = seeds(target);
    let mut tally = Tally {
        accepted: vec![],
        refused: 0,
    };
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ target.bytes().fold(7u64, |h, b| h.wrapping_mul(31) ^ b as u64));
    let n = seeds.len();
    // Fuzzer-grown corpora are mostly inputs a reader refuses: every other mutation starts
    // from a seed it accepted, so the accepting path and its invariants are exercised too.
    let mut valid: Vec<usize> = vec![];
    for k in 0..n + mutations {
        let i = match k.checked_sub(n) {
            None => k,
            Some(j) if j % 2 == 0 && !valid.is_empty() => valid[(j / 2) % valid.len()],
            Some(_) => k % n,
        };
        let (name, seed) = &seeds[i];
        let input = if k < n { seed.clone() } else { mutate(seed, &mut rng) };
        match catch_unwind(AssertUnwindSafe(|| run(&input))) {
            Ok(Ok(())) if k < n => {
                valid.push(k);
                tally.accepted.push(name.clone())
            }
            Ok(Ok(())) => tally.accepted.push(format!("{name}~{k}")),
            Ok(Err(e)) => {
                if k < n {
                    eprintln!("{target}: seed {name} refused: {}", e.msg);
                }
                tally.refused += 1
            }
            Err(_) => {
                let keep = dir.join(format!("crash-{target}-{name}-{k}"));
                std::fs::write(&keep, &input).unwrap();
                panic!(
                    "{target}: seed {name}, input {k} panicked; input kept in {}",
                    keep.display()
                );
            }
        }
    }
    eprintln!(
        "{target}: {} seeds + {mutations} mutations: {} accepted, {} refused",
        seeds.len(),
        tally.accepted.len(),
        tally.refused
    );
    tally
}

/// The seeds `names` were accepted, and some inputs were refused: the pass reached both
/// the reader's success path (with its invariants) and its errors.
fn assert_both_paths(target: &str, t: &Tally, names: &[&str]) {
    for n in names {
        assert!(
            t.accepted.iter().any(|a| a == n),
            "{target}: the valid seed {n} was refused"
        );
    }
    assert!(
        t.refused > 0,
        "{target}: no input was refused; the mutations do not reach the errors"
    );
    assert!(
        t.accepted.iter().any(|a| a.contains('~')),
        "{target}: no mutated input was accepted; the mutations never pass the reader"
    );
}

#[test]
fn model_dir_corpus() {
    let d = fresh("checkpoint");
    let t = pass("model_dir", 1200, &d, |b| entry::model_dir(&d, b));
    assert_both_paths(
        "model_dir",
        &t,
        &["micro.safetensors", "hf_tiny.json", "open_clip_tiny.json"],
    );
}

#[test]
fn tokenizer_corpus() {
    let d = fresh("tokenizer");
    let t = pass("tokenizer", 150, &d, |b| entry::tokenizer(&d, b));
    assert_both_paths("tokenizer", &t, &["small.json"]);
}

#[test]
fn captions_corpus() {
    let d = fresh("captions");
    let t = pass("captions", 1500, &d, |b| entry::captions(&d, b));
    assert_both_paths("captions", &t, &["csv_quoted", "jsonl", "tsv"]);
}

#[test]
fn sprite_sheet_corpus() {
    let d = fresh("sprite");
    let t = pass("sprite_sheet", 1000, &d, entry::sprite_sheet);
    assert_both_paths("sprite_sheet", &t, &["small"]);
}

#[test]
fn adapter_dir_corpus() {
    let d = fresh("adapter");
    let t = pass("adapter_dir", 1200, &d, |b| entry::adapter_dir(&d, b));
    assert_both_paths("adapter_dir", &t, &["lora", "probe", "prompt", "textual_inversion"]);
}

#[test]
fn image_corpus() {
    let d = fresh("image");
    let t = pass("image", 800, &d, entry::image);
    assert_both_paths(
        "image",
        &t,
        &["photo_80x60.jpg", "rgba_64x40.png", "progressive_80x60.jpg"],
    );
}

#[test]
fn generated_seeds_are_current() {
    let micro = entry::micro_checkpoint_bytes();
    let sheet = sprite_seed();
    let (lora, probe) = (lora_seed(), probe_seed());
    let (prompt, ti) = (prompt_seed(), ti_seed());
    if std::env::var_os("CLIPTUNE_WRITE_FUZZ_SEEDS").is_some() {
        std::fs::write(corpus("model_dir").join("micro.safetensors"), &micro).unwrap();
        std::fs::write(corpus("sprite_sheet").join("small"), &sheet).unwrap();
        std::fs::write(corpus("adapter_dir").join("lora"), &lora).unwrap();
        std::fs::write(corpus("adapter_dir").join("probe"), &probe).unwrap();
        std::fs::write(corpus("adapter_dir").join("prompt"), &prompt).unwrap();
        std::fs::write(corpus("adapter_dir").join("textual_inversion"), &ti).unwrap();
    }
    // The committed sheet is what the writer makes today (the checkpoint and adapters are
    // checked by loading them, in the corpus passes: their random weights go through libm,
    // and the adapters' manifests hold their creation time).
    assert_eq!(std::fs::read(corpus("sprite_sheet").join("small")).unwrap(), sheet);
    for (target, name, now) in [
        ("model_dir", "micro.safetensors", &micro),
        ("adapter_dir", "lora", &lora),
        ("adapter_dir", "probe", &probe),
        ("adapter_dir", "prompt", &prompt),
        ("adapter_dir", "textual_inversion", &ti),
    ] {
        let committed = std::fs::read(corpus(target).join(name)).unwrap();
        assert_eq!(committed.len(), now.len(), "the layout of {target}/{name} changed");
    }
}

/// A LoRA adapter (rank 2, q and v of both towers) of the micro model, as saved by `train`.
fn lora_seed() -> Vec<u8> {
    use cliptune::adapt::lora::{apply_lora, LoraConfig};
    let d = fresh("loraseed");
    let mut model = entry::micro_model();
    let cfg = LoraConfig {
        rank: 2,
        ..LoraConfig::default()
    };
    apply_lora(&mut model, &cfg, 1).unwrap();
    cliptune::adapt::bundle::save_lora(&d, &model, &cfg, "micro").unwrap();
    entry::adapter_input(&d)
}

/// A CoOp adapter (two context vectors shared by two classes) of the micro model, in the
/// micro tokenizer's vocabulary.
fn prompt_seed() -> Vec<u8> {
    use cliptune::adapt::prompt::PromptLearner;
    let d = fresh("promptseed");
    let model = entry::micro_model();
    let tok = entry::micro_tokenizer();
    let classes = vec!["ab".to_string(), "cd".to_string()];
    let learner = PromptLearner::new(&model, &tok, &classes, 2, None, false, 1).unwrap();
    cliptune::adapt::bundle::save_prompt(&d, &learner, &model, "micro").unwrap();
    entry::adapter_input(&d)
}

/// A textual-inversion adapter (one new word, with its tokenizer) of the micro model.
fn ti_seed() -> Vec<u8> {
    use cliptune::adapt::textual_inversion::TextualInversion;
    let d = fresh("tiseed");
    let model = entry::micro_model();
    let mut tok = entry::micro_tokenizer();
    let ti = TextualInversion::new(&model, &mut tok, &["<zq>"], Some("q"), 1).unwrap();
    cliptune::adapt::bundle::save_textual_inversion(&d, &ti, &tok, &model, "micro").unwrap();
    entry::adapter_input(&d)
}

/// A two-class linear-probe adapter of the micro model.
fn probe_seed() -> Vec<u8> {
    let d = fresh("probeseed");
    let probe = cliptune::eval::linear_probe::LinearProbe {
        weight: (0..16).map(|i| i as f32 / 16.0 - 0.5).collect(),
        bias: vec![0.25, -0.25],
        c: 2,
        d: 8,
        l2: 0.1,
    };
    let classes = vec!["a".to_string(), "b".to_string()];
    cliptune::adapt::bundle::save_linear_probe(&d, &probe, &classes, &entry::micro_model(), "micro").unwrap();
    entry::adapter_input(&d)
}

/// A two-tile captioned sprite sheet as one fuzz input: JSON, separator, PNG.
fn sprite_seed() -> Vec<u8> {
    use cliptune::data::{write_sprite_sheet, SpriteItem, SpriteSheet};
    let d = fresh("spriteseed");
    let tile = |v: u8| image::DynamicImage::ImageRgb8(image::RgbImage::from_pixel(4, 4, image::Rgb([v, 0, 255 - v])));
    let items = vec![
        SpriteItem {
            label: 0,
            captions: vec!["a red tile".into()],
        },
        SpriteItem {
            label: 1,
            captions: vec!["a blue tile".into()],
        },
    ];
    let sheet = SpriteSheet::new(vec!["red".into(), "blue".into()], items, vec![tile(250), tile(5)], 0).unwrap();
    let json = d.join("s.json");
    write_sprite_sheet(&json, &sheet).unwrap();
    let mut out = std::fs::read(&json).unwrap();
    out.extend_from_slice(entry::SEPARATOR);
    out.extend_from_slice(&std::fs::read(d.join("s.png")).unwrap());
    out
}
