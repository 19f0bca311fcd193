//! The stable, deterministic counterpart of the cargo-fuzz targets in fuzz/: every committed
//! corpus file (fuzz/corpus/TARGET/*) and a fixed set of mutations of it go through the same
//! entry points (`cliptune::fuzz_entry`). A reader may answer garbage with an error, never
//! with a panic. A few seconds in all, so it runs in CI with `cargo test --release`.
//!
//! `CLIPTUNE_WRITE_FUZZ_SEEDS=1 cargo test --release --test fuzz_corpus` (re)writes the two
//! seeds that are generated rather than copied: a valid micro checkpoint and a sprite sheet.
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use cliptune::fuzz_entry::{self as entry, mutate, Rng};

fn corpus(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus").join(target)
}

fn fresh(name: &str) -> PathBuf {
    tempfile::Builder::new()
        .prefix(&format!("cliptune-fuzzpass-{name}-"))
        .tempdir()
        .unwrap()
        .keep()
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

/// Each seed and `n` mutations of it through `run`; a panic fails with the target, seed
/// and mutation, and leaves the input in `dir` for reproduction.
fn pass(target: &str, n: usize, dir: &Path, run: impl Fn(&[u8])) {
    for (name, seed) in seeds(target) {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ name.bytes().fold(7u64, |h, b| h.wrapping_mul(31) ^ b as u64));
        for k in 0..=n {
            let input = if k == 0 { seed.clone() } else { mutate(&seed, &mut rng) };
            if catch_unwind(AssertUnwindSafe(|| run(&input))).is_err() {
                let keep = dir.join(format!("crash-{target}-{name}-{k}"));
                std::fs::write(&keep, &input).unwrap();
                panic!(
                    "{target}: seed {name}, mutation {k} panicked; input kept in {}",
                    keep.display()
                );
            }
        }
    }
}

#[test]
fn model_dir_corpus() {
    let d = fresh("checkpoint");
    // The generated seed is a valid model, so mutations start from a loadable checkpoint.
    let seed = corpus("model_dir").join("micro.safetensors");
    let bytes = std::fs::read(&seed).unwrap_or_else(|e| panic!("{}: {e}", seed.display()));
    let m = d.join("valid");
    std::fs::create_dir_all(&m).unwrap();
    std::fs::write(m.join("config.json"), entry::MICRO_CONFIG).unwrap();
    std::fs::write(m.join("model.safetensors"), &bytes).unwrap();
    cliptune::clip::Clip::load(&m, &cliptune::Device::Cpu, cliptune::clip::WeightStorage::AsStored)
        .expect("the committed micro checkpoint loads");
    pass("model_dir", 300, &d, |b| entry::model_dir(&d, b));
}

#[test]
fn tokenizer_corpus() {
    let d = fresh("tokenizer");
    pass("tokenizer", 40, &d, |b| entry::tokenizer(&d, b));
}

#[test]
fn captions_corpus() {
    let d = fresh("captions");
    pass("captions", 300, &d, |b| entry::captions(&d, b));
}

#[test]
fn sprite_sheet_corpus() {
    let d = fresh("sprite");
    pass("sprite_sheet", 200, &d, entry::sprite_sheet);
}

#[test]
fn adapter_dir_corpus() {
    let d = fresh("adapter");
    pass("adapter_dir", 150, &d, |b| entry::adapter_dir(&d, b));
}

#[test]
fn image_corpus() {
    let d = fresh("image");
    pass("image", 60, &d, entry::image);
}

#[test]
fn generated_seeds_are_current() {
    let micro = entry::micro_checkpoint_bytes();
    let sheet = sprite_seed();
    if std::env::var_os("CLIPTUNE_WRITE_FUZZ_SEEDS").is_some() {
        std::fs::write(corpus("model_dir").join("micro.safetensors"), &micro).unwrap();
        std::fs::write(corpus("sprite_sheet").join("small"), &sheet).unwrap();
    }
    // The committed sheet is what the writer makes today (the checkpoint is checked by
    // loading it, in model_dir_corpus: its random weights go through libm).
    assert_eq!(std::fs::read(corpus("sprite_sheet").join("small")).unwrap(), sheet);
    let committed = std::fs::read(corpus("model_dir").join("micro.safetensors")).unwrap();
    assert_eq!(committed.len(), micro.len(), "the micro checkpoint's layout changed");
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
