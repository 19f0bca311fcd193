//! Sets `cfg(cliptune_mini)` when the embedded model's files are in `assets/cliptune-mini/`,
//! so the crate builds (and `cliptune demo --model DIR` works) before they are shipped.
use std::path::Path;

/// Files `src/demo/embedded.rs` includes from `assets/cliptune-mini/`.
const MINI_FILES: &[&str] = &[
    "config.json",
    "model.safetensors",
    "tokenizer.json",
    "preprocessor_config.json",
    "templates.txt",
    "heldout.png",
    "heldout.json",
    "reference.png",
    "reference.json",
];

fn main() {
    println!("cargo::rustc-check-cfg=cfg(cliptune_mini)");
    // The directory, not its files: creating assets/cliptune-mini/ changes `assets`.
    println!("cargo::rerun-if-changed=assets");
    println!("cargo::rerun-if-changed=build.rs");
    let dir = Path::new("assets/cliptune-mini");
    let missing: Vec<&str> = MINI_FILES.iter().copied().filter(|f| !dir.join(f).is_file()).collect();
    if missing.is_empty() {
        println!("cargo::rustc-cfg=cliptune_mini");
    } else if dir.join("model.safetensors").is_file() {
        // The weights without their side files: a half-installed model, worth a word.
        println!(
            "cargo::warning=assets/cliptune-mini is incomplete (missing {}): building without the embedded model",
            missing.join(", ")
        );
    }
}
