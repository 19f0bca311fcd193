//! Soak: concurrent training runs killed at random points (SIGKILL or SIGTERM) and
//! resumed, against one uninterrupted run. Nothing torn, no finished run lost, every
//! final adapter byte-identical to the uninterrupted one, every log with each step once.
//!
//! Short and deterministic here (the kill points come from a seeded generator and are
//! placed by the runs' own progress, not by timers); `tools/soak.sh` runs it longer
//! through CLIPTUNE_SOAK_KILLS / CLIPTUNE_SOAK_WORKERS / CLIPTUNE_SOAK_SEED.
mod common;
mod harden_common;
use harden_common::*;

use std::path::{Path, PathBuf};

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// A small deterministic generator (xorshift).
struct Rng(u64);
impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

const ARGS: [&str; 4] = ["--epochs", "6", "--checkpoint-every", "1"];
const TOTAL: usize = 12; // 8 images, batch 4, 6 epochs

/// Every file of a run directory is whole: safetensors parse, JSON parses, and the log's
/// lines parse (its last line may be cut by SIGKILL: the next resume trims it).
fn assert_whole(out: &Path, log_tail_may_tear: bool) {
    let Ok(entries) = std::fs::read_dir(out) else { return };
    for e in entries.flatten() {
        let p = e.path();
        let name = p.file_name().unwrap().to_string_lossy().to_string();
        if name.ends_with(".safetensors") && !name.starts_with('.') {
            let b = read(&p);
            safetensors::SafeTensors::deserialize(&b).unwrap_or_else(|e| panic!("{}: torn: {e}", p.display()));
        } else if name.ends_with(".json") && !name.starts_with('.') {
            serde_json::from_slice::<serde_json::Value>(&read(&p))
                .unwrap_or_else(|e| panic!("{}: torn: {e}", p.display()));
        } else if name == "train_log.jsonl" {
            let text = String::from_utf8(read(&p)).unwrap();
            let lines: Vec<&str> = text.lines().collect();
            for (i, l) in lines.iter().enumerate() {
                let last = i + 1 == lines.len();
                if serde_json::from_str::<serde_json::Value>(l).is_err() && !(last && log_tail_may_tear) {
                    panic!("{}: torn line {l:?}", p.display());
                }
            }
        }
    }
}

/// One worker: interrupt `kills` times at seeded points, then finish; returns its dir.
fn worker(data: PathBuf, out: PathBuf, kills: u64, seed: u64) -> PathBuf {
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let log = out.join("train_log.jsonl");
    for k in 0..kills {
        let resume = out.join(".cliptune.lock").exists();
        let mut c = train(&data, &out, &ARGS);
        if resume {
            c.arg("--resume");
        }
        let mut child = c.stderr(std::process::Stdio::piped()).spawn().unwrap();
        let done = std::fs::read_to_string(&log).map(|t| t.lines().count()).unwrap_or(0);
        let target = done + 1 + rng.below(3) as usize;
        let running = target < TOTAL && wait_for_lines(&log, target, &mut child);
        if running {
            // An intruder on the same directory while this run holds it: refused (or,
            // if the run ended meanwhile, a legitimate resume of the same run).
            if k == 0 {
                let (code, err) = run(train(&data, &out, &ARGS).arg("--resume"));
                if code != Some(0) {
                    assert!(
                        err.contains("pid"),
                        "an intruder was refused without naming the holder:\n{err}"
                    );
                }
            }
            let sig = if rng.below(2) == 0 {
                libc::SIGKILL
            } else {
                libc::SIGTERM
            };
            signal(&child, sig);
        }
        let o = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        match o.status.code() {
            Some(0) | Some(143) | None => {}
            other => panic!("worker {seed} round {k}: unexpected exit {other:?}:\n{err}"),
        }
        assert_whole(&out, true);
    }
    let resume = out.join(".cliptune.lock").exists();
    let mut c = train(&data, &out, &ARGS);
    if resume {
        c.arg("--resume");
    }
    ok(&mut c);
    out
}

#[test]
fn concurrent_runs_killed_and_resumed_match_an_uninterrupted_run() {
    let workers = env_or("CLIPTUNE_SOAK_WORKERS", 4);
    let kills = env_or("CLIPTUNE_SOAK_KILLS", 3);
    let seed = env_or("CLIPTUNE_SOAK_SEED", 1);
    let d = fresh("soak");
    let data = class_folders(&d.join("data"), &["red", "green"], 4);
    let reference = d.join("reference");
    ok(&mut train(&data, &reference, &ARGS));
    let handles: Vec<_> = (0..workers)
        .map(|w| {
            let (data, out) = (data.clone(), d.join(format!("run{w}")));
            std::thread::spawn(move || worker(data, out, kills, seed * 1000 + w))
        })
        .collect();
    for h in handles {
        let out = h.join().expect("a worker failed");
        assert_whole(&out, false);
        assert_eq!(manifest(&out)["info"]["final"], true, "{}", out.display());
        for f in [
            "adapter_model.safetensors",
            "adapter_config.json",
            "trainer_state.safetensors",
        ] {
            assert!(
                read(&out.join(f)) == read(&reference.join(f)),
                "{}: {f} differs from the uninterrupted run's",
                out.display()
            );
        }
        let steps = logged_steps(&out.join("train_log.jsonl"));
        assert_eq!(steps, (1..=TOTAL as u64).collect::<Vec<_>>(), "{}", out.display());
        let leftovers: Vec<String> = std::fs::read_dir(&out)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().to_string())
            .filter(|n| n.ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty(), "{}: {leftovers:?}", out.display());
    }
}
