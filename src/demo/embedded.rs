//! The files `cliptune demo` carries inside the binary: the Fashion-MNIST subsets (always)
//! and cliptune-mini (when `build.rs` found `assets/cliptune-mini/` complete and set
//! `cfg(cliptune_mini)`). They are written out before use so a report directory shows
//! exactly what ran.
use std::path::Path;

use crate::error::{Error, Result};
use crate::tensor::io::write_atomic;

/// `(file name, bytes)` of the target-domain sprite sheets (see `assets/demo/README.md`).
pub const FASHION_MNIST_TRAIN: [(&str, &[u8]); 2] = [
    (
        "fashion-mnist-train.json",
        include_bytes!("../../assets/demo/fashion-mnist-train.json"),
    ),
    (
        "fashion-mnist-train.png",
        include_bytes!("../../assets/demo/fashion-mnist-train.png"),
    ),
];
pub const FASHION_MNIST_TEST: [(&str, &[u8]); 2] = [
    (
        "fashion-mnist-test.json",
        include_bytes!("../../assets/demo/fashion-mnist-test.json"),
    ),
    (
        "fashion-mnist-test.png",
        include_bytes!("../../assets/demo/fashion-mnist-test.png"),
    ),
];
/// Images per class in the embedded subsets.
pub const TRAIN_PER_CLASS: usize = 16;
pub const TEST_PER_CLASS: usize = 100;

#[cfg(cliptune_mini)]
const MINI: &[(&str, &[u8])] = &[
    ("config.json", include_bytes!("../../assets/cliptune-mini/config.json")),
    (
        "model.safetensors",
        include_bytes!("../../assets/cliptune-mini/model.safetensors"),
    ),
    (
        "tokenizer.json",
        include_bytes!("../../assets/cliptune-mini/tokenizer.json"),
    ),
    (
        "preprocessor_config.json",
        include_bytes!("../../assets/cliptune-mini/preprocessor_config.json"),
    ),
    (
        "templates.txt",
        include_bytes!("../../assets/cliptune-mini/templates.txt"),
    ),
    ("heldout.png", include_bytes!("../../assets/cliptune-mini/heldout.png")),
    (
        "heldout.json",
        include_bytes!("../../assets/cliptune-mini/heldout.json"),
    ),
    (
        "reference.png",
        include_bytes!("../../assets/cliptune-mini/reference.png"),
    ),
    (
        "reference.json",
        include_bytes!("../../assets/cliptune-mini/reference.json"),
    ),
];

/// Whether this binary carries cliptune-mini.
pub fn has_mini() -> bool {
    cfg!(cliptune_mini)
}

/// Ok when this binary carries cliptune-mini, else the error telling the user what to do.
pub fn require_mini() -> Result<()> {
    if has_mini() {
        return Ok(());
    }
    Err(Error::invalid(
        "cliptune-mini is not in this build (assets/cliptune-mini/ was missing when it was compiled); pass --model DIR",
    ))
}

/// Write cliptune-mini's model directory (HF layout + templates + held-out set) into `dir`.
pub fn write_mini(dir: &Path) -> Result<()> {
    #[cfg(cliptune_mini)]
    {
        write_files(dir, MINI)
    }
    #[cfg(not(cliptune_mini))]
    {
        let _ = dir;
        require_mini()
    }
}

/// Write `(name, bytes)` pairs into `dir`, each atomically.
pub fn write_files(dir: &Path, files: &[(&str, &[u8])]) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir.display(), e))?;
    for (name, bytes) in files {
        write_atomic(&dir.join(name), bytes)?;
    }
    Ok(())
}
