//! Claiming a run's output directory (train, pretrain): it may be new, empty, or one
//! this tool wrote before; never someone else's. The claim holds the directory's lock
//! for the run, removes dead runs' leftovers, and decides what a fresh run or a
//! `--resume` starts from.
use std::path::Path;

use super::lock::{lock_dir, OutputLock, DIR_LOCK};
use crate::error::{Error, Result};

/// Files a training run writes into its directory (any method): a fresh run removes a
/// previous run's before starting, so a run killed early never leaves a mix of two runs
/// that a loader (PEFT, `--adapter`) would take for a whole adapter.
pub const TRAIN_OUTPUTS: [&str; 15] = [
    "cliptune_adapter.json",
    "trainer_state.safetensors",
    "train_log.jsonl",
    "adapter_config.json",
    "adapter_model.safetensors",
    "prompt.safetensors",
    "textual_inversion.safetensors",
    "tokenizer.json",
    "linear_probe.json",
    "model.safetensors",
    "config.json",
    "preprocessor_config.json",
    "merged_from.json",
    "auto.json",
    "auto.md",
];

/// What to claim.
pub struct OutDir<'a> {
    pub out: &'a Path,
    /// `--resume` was given.
    pub resume: bool,
    /// The file that marks a directory as written by this command.
    pub marker: &'a str,
    /// Ends the refusal of a foreign directory ("is not a cliptune adapter").
    pub not_ours: &'a str,
    /// The trainer state `--resume` continues from.
    pub state_file: &'a str,
    /// `train` or `pretrain` (messages, the lock).
    pub what: &'a str,
    /// The method this run trains, checked against the marker's `"method"`.
    pub method: Option<&'a str>,
    /// Files a fresh run clears first (see [`TRAIN_OUTPUTS`]).
    pub owned: &'a [&'a str],
}

/// A claimed directory: the lock (held until dropped) and whether there is a state to
/// resume from.
#[derive(Debug)]
pub struct Claimed {
    pub lock: OutputLock,
    pub resume: bool,
}

fn listing(out: &Path) -> Result<Vec<String>> {
    Ok(std::fs::read_dir(out)
        .map_err(|e| Error::io(out.display(), e))?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .collect())
}

/// Claim `o.out` for a run (see the module docs).
pub fn claim(o: &OutDir) -> Result<Claimed> {
    let out = o.out;
    let d = out.display();
    if out.exists() && !out.is_dir() {
        return Err(Error::invalid(format!(
            "{d}: exists and is not a directory; choose another --out"
        )));
    }
    let existed = out.is_dir();
    if existed {
        let names = listing(out)?;
        let ours = names.iter().any(|n| n == o.marker || n == DIR_LOCK);
        let foreign = names.iter().any(|n| super::leftovers::leftover_pid(n).is_none());
        if foreign && !ours {
            return Err(Error::invalid(format!(
                "{d}: exists, is not empty and {}; choose another --out",
                o.not_ours
            )));
        }
    } else if o.resume {
        return Err(Error::invalid(format!(
            "--resume: {d} does not exist: there is no {} to resume from (leave out --resume to start a run)",
            o.state_file
        )));
    }
    let lock = lock_dir(out, o.what)?;
    if let Some(method) = o.method {
        if let Some(old) = marker_method(&out.join(o.marker)) {
            if old != method {
                return Err(Error::invalid(format!(
                    "{d}: holds a {old} run; training {method} into it would leave the {old} files beside the \
                     new ones (a loader such as PEFT would pick the stale ones up): choose another --out or \
                     delete {d}"
                )));
            }
        }
    }
    let has_state = out.join(o.state_file).is_file();
    if o.resume && !has_state {
        eprintln!(
            "[{}] --resume: {d} holds no {} yet (the run stopped before its first checkpoint): starting from step 0",
            o.what, o.state_file
        );
    }
    if !o.resume {
        for f in o.owned {
            let p = out.join(f);
            if p.is_file() {
                std::fs::remove_file(&p).map_err(|e| Error::io(p.display(), e))?;
            }
        }
        super::atomic::sync_dir(out)?;
    }
    Ok(Claimed {
        lock,
        resume: o.resume && has_state,
    })
}

/// The `"method"` a marker file records (None when absent or unreadable).
fn marker_method(path: &Path) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    v.get("method").and_then(|m| m.as_str()).map(String::from)
}

/// Keep the lines of a JSONL log up to `step` (a resumed run writes the later steps
/// again): lines whose `"step"` is larger, and a torn last line, are dropped.
pub fn trim_log(path: &Path, step: usize) -> Result<()> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Ok(());
    };
    let mut kept = String::new();
    for line in text.lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if v.get("step")
            .and_then(|s| s.as_u64())
            .is_some_and(|s| s as usize > step)
        {
            continue;
        }
        kept.push_str(line);
        kept.push('\n');
    }
    if kept != text {
        super::atomic::write_atomic(path, kept.as_bytes())?;
    }
    Ok(())
}
