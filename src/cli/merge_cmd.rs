//! `cliptune merge`: fold LoRA adapters (and textual-inversion words) into the base weights
//! and write a plain Hugging Face `CLIPModel` directory that needs no `--adapter`.
//!
//! - LoRA: `W + scale * B @ A` per adapted Linear (merged weights are f32).
//! - Textual inversion: the learned rows are appended to the token table, `vocab_size` in
//!   `config.json` grows to match, and the extended `tokenizer.json` is written.
//! - Prompt and linear-probe adapters are not weights of the model: refused, with a hint.
//!
//! The checkpoint is written to a temporary directory next to `--out` and renamed into place,
//! so `--out` never holds half a model. An existing non-empty `--out` is refused, and so is a
//! second merge into the same `--out` while one runs (a lock beside it). The merged
//! directory lists what it contains in `merged_from.json`; those adapters are refused on it.
use std::path::{Path, PathBuf};

use cliptune::adapt::bundle::{inspect, Method, MERGED_FROM};
use cliptune::adapt::lora::{self, save_hf_checkpoint};
use cliptune::clip::tokenizer::ClipTokenizer;
use cliptune::clip::{Clip, Layout, WeightStorage};
use cliptune::tensor::io::write_atomic;
use cliptune::{Device, Error, Result};

pub fn run(model_dir: &Path, adapters: &[PathBuf], out: &Path, dev: &Device) -> Result<()> {
    if adapters.is_empty() {
        return Err(Error::invalid("merge: give at least one --adapter DIR"));
    }
    // Held until the merged directory is in place; cleans dead merges' temporaries.
    let _lock = cliptune::io::lock::lock_beside(out, "merge")?;
    check_out(out)?;
    for a in adapters {
        let info = inspect(a)?;
        if matches!(info.method, Method::Prompt | Method::LinearProbe) {
            return Err(Error::invalid(format!(
                "merge: {} is a {} adapter, which is not part of the model's weights and cannot be merged; \
                 use it at inference with --adapter {} (only lora and textual-inversion adapters merge)",
                info.dir.display(),
                info.method,
                a.display()
            )));
        }
    }
    let mut model = Clip::load(model_dir, dev, WeightStorage::AsStored)?;
    if model.config.layout != Layout::HuggingFace {
        return Err(Error::invalid(format!(
            "merge: {} is an open_clip directory; merged checkpoints are written in Hugging Face CLIPModel layout \
             from a Hugging Face base model (config.json + model.safetensors)",
            model_dir.display()
        )));
    }
    let mut tok = ClipTokenizer::for_model_dir(model_dir)?;
    let vocab0 = model.config.text.vocab;
    let ad = super::clip_cmds::load_adapters_cli(&mut model, &mut tok, model_dir, adapters)?;
    let merged_sites = lora::adapter_sites(&model).len();
    lora::merge(&mut model)?;
    let new_words: Vec<String> = ad
        .textual_inversions()
        .iter()
        .flat_map(|(_, ti)| ti.words.iter().cloned())
        .collect();

    // Write next to --out, then rename into place.
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .ok_or_else(|| Error::invalid(format!("merge: --out {} has no directory name", out.display())))?;
    let parent = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(|e| Error::io(parent.display(), e))?;
    let tmp = parent.join(format!(".{name}.merge-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let result = write_merged(&model, &tok, model_dir, &tmp, vocab0, !new_words.is_empty()).and_then(|_| {
        let record = cliptune::adapt::bundle::merged_record(model_dir, adapters)?;
        let bytes = serde_json::to_vec_pretty(&record).map_err(|e| Error::io(MERGED_FROM, e))?;
        write_atomic(&tmp.join(MERGED_FROM), &bytes)
    });
    if let Err(e) = result {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e);
    }
    if out.exists() {
        // Checked empty above; rename(2) needs it gone (or empty) to move a directory there.
        std::fs::remove_dir(out).map_err(|e| Error::io(out.display(), e))?;
    }
    if let Err(e) = std::fs::rename(&tmp, out) {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(Error::io(
            out.display(),
            format!("cannot move the merged checkpoint into place: {e}"),
        ));
    }
    cliptune::io::atomic::sync_dir(parent)?;
    eprintln!(
        "merged {} adapter(s) into {}: {merged_sites} LoRA module(s){}",
        ad.len(),
        model_dir.display(),
        if new_words.is_empty() {
            String::new()
        } else {
            format!(
                ", {} new word(s) {:?} (vocabulary {vocab0} -> {})",
                new_words.len(),
                new_words,
                model.config.text.vocab
            )
        }
    );
    eprintln!("wrote {}", out.display());
    Ok(())
}

/// `--out` may be missing or an empty directory; anything else is refused.
fn check_out(out: &Path) -> Result<()> {
    if !out.exists() {
        return Ok(());
    }
    if !out.is_dir() {
        return Err(Error::invalid(format!(
            "merge: --out {} exists and is not a directory; choose a new directory",
            out.display()
        )));
    }
    let non_empty = std::fs::read_dir(out)
        .map_err(|e| Error::io(out.display(), e))?
        .next()
        .is_some();
    if non_empty {
        return Err(Error::invalid(format!(
            "merge: --out {} exists and is not empty; merge never overwrites: choose a new directory",
            out.display()
        )));
    }
    Ok(())
}

fn write_merged(
    model: &Clip,
    tok: &ClipTokenizer,
    model_dir: &Path,
    dir: &Path,
    vocab0: usize,
    has_words: bool,
) -> Result<()> {
    save_hf_checkpoint(model, model_dir, dir)?;
    if !has_words {
        return Ok(());
    }
    // The token table grew: config.json's vocab_size and the tokenizer must say so.
    let cfg_path = dir.join("config.json");
    let text = std::fs::read_to_string(&cfg_path).map_err(|e| Error::io(cfg_path.display(), e))?;
    let mut cfg: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| Error::io(cfg_path.display(), format!("invalid JSON: {e}")))?;
    let vocab = model.config.text.vocab;
    let text_cfg = cfg
        .get_mut("text_config")
        .and_then(|t| t.as_object_mut())
        .ok_or_else(|| {
            Error::io(
                cfg_path.display(),
                "no text_config object to record the new vocabulary size in",
            )
        })?;
    text_cfg.insert("vocab_size".into(), serde_json::json!(vocab));
    let bytes = serde_json::to_vec_pretty(&cfg).map_err(|e| Error::io(cfg_path.display(), e))?;
    write_atomic(&cfg_path, &bytes)?;
    tok.save(&dir.join("tokenizer.json"))?;
    debug_assert!(vocab > vocab0);
    Ok(())
}
