//! `cliptune train --method auto`: the ladder on the tiny model with a few steps per
//! candidate, the choice it makes, and its bad inputs.
mod common;
use std::path::PathBuf;

use cliptune::adapt::lora::LoraConfig;
use cliptune::train::auto::{choose, default_ladder, run_auto, AutoArgs, Candidate, Outcome, Tried};
use cliptune::train::linear_probe::ProbeOptions;
use cliptune::train::objectives::ObjectiveWeights;
use cliptune::train::run::{Method, TrainArgs};
use cliptune::Device;
use common::cli::{bin, root, run_err, scratch as tmp};
use common::tiny_model_dir;

fn sheet(split: &str) -> String {
    root()
        .join(format!("assets/demo/fashion-mnist-{split}.json"))
        .display()
        .to_string()
}

fn args(out: PathBuf) -> TrainArgs {
    TrainArgs {
        method: Method::LinearProbe,
        model_dir: tiny_model_dir(),
        data: sheet("train"),
        classes_file: None,
        out,
        epochs: 1,
        batch: 32,
        lr: None,
        weight_decay: 0.0,
        warmup: Some(1),
        max_grad_norm: 1.0,
        seed: 5,
        max_steps: Some(2),
        min_steps: None,
        ckpt_every: 0,
        lora: LoraConfig::parse(4, 8.0, 0.0, "q,v", "text", None).unwrap(),
        lora_scale: Default::default(),
        n_ctx: 4,
        ctx_init: Some("a photo of a".into()),
        class_specific: false,
        new_tokens: vec![],
        init_token: None,
        wise_alpha: 1.0,
        device: Device::Cpu,
        progress: false,
        retention_set: None,
        min_retention: 0.5,
        retention_every: 0,
        resume: false,
        stop_after: None,
        probe: ProbeOptions::default(),
        objectives: ObjectiveWeights::defaults(),
    }
}

fn auto(out: PathBuf, min_retention: f32, retention: Option<String>) -> AutoArgs {
    AutoArgs {
        train: args(out),
        min_retention,
        time_budget: None,
        retention_set: retention,
        ladder: default_ladder(),
    }
}

#[test]
fn the_ladder_trains_every_rung_and_keeps_the_best_that_retains() {
    let t = tmp("ladder");
    let out = t.path().join("best");
    // A killed earlier ladder's scratch (a pid no process can have) is cleared by this run.
    let stale = out.join(".auto.tmp-2147483647");
    std::fs::create_dir_all(stale.join("candidates")).unwrap();
    std::fs::write(stale.join("candidates/x"), b"old").unwrap();
    let r = run_auto(auto(out.clone(), 0.5, Some(sheet("test")))).unwrap();
    let left: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .filter(|n| n.starts_with(".auto.tmp-"))
        .collect();
    assert!(left.is_empty(), "scratch left in --out: {left:?}");
    eprint!("{}", r.to_markdown());
    assert_eq!(r.tried.len(), 6);
    assert_eq!(r.train_images + r.val_images, 160);
    assert_eq!(r.val_images, 30, "round(20 % of 16) = 3 of each class held out");
    let j: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out.join("auto.json")).unwrap()).unwrap();
    let rows = j["candidates"].as_array().unwrap();
    let keys: Vec<&str> = rows.iter().map(|r| r["candidate"].as_str().unwrap()).collect();
    assert_eq!(
        keys,
        [
            "prompt",
            "linear-probe",
            "linear-probe-scratch",
            "lora-text",
            "lora-both",
            "full"
        ]
    );
    let mut best: Option<(f64, &str)> = None;
    for row in rows {
        assert_eq!(row["status"], "trained", "{row}");
        let (v, ret) = (row["val_top1"].as_f64().unwrap(), row["retention"].as_f64().unwrap());
        assert!((0.0..=1.0).contains(&v) && ret.is_finite() && ret >= 0.0, "{row}");
        if ret >= 0.5 && best.is_none_or(|b| v > b.0) {
            best = Some((v, row["candidate"].as_str().unwrap()));
        }
    }
    // The probes leave both towers alone: retention exactly 1.
    assert_eq!(rows[1]["retention"].as_f64().unwrap(), 1.0);
    assert_eq!(rows[2]["retention"].as_f64().unwrap(), 1.0);
    // The winner was retrained on all 160 images and written, its retention checked again.
    assert_eq!(j["refit"]["images"], 160, "{}", j["refit"]);
    assert!(
        j["refit"]["status"] == "kept" || j["refit"]["status"] == "below_floor",
        "{}",
        j["refit"]
    );
    assert!(j["refit"]["retention"].as_f64().unwrap().is_finite());
    let (_, want) = best.unwrap();
    assert_eq!(
        j["chosen"], want,
        "auto chose {} but the best retaining is {want}",
        j["chosen"]
    );
    assert_eq!(j["meets_min_retention"], true);
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("cliptune_adapter.json")).unwrap()).unwrap();
    let method = rows.iter().find(|r| r["candidate"] == want).unwrap()["method"].clone();
    assert_eq!(manifest["method"], method, "--out holds another method's adapter");
    let md = std::fs::read_to_string(out.join("auto.md")).unwrap();
    assert!(
        md.contains(&format!("{want} **chosen**")) && md.contains("Chosen: ") && md.contains("Refit: "),
        "{md}"
    );
    assert!(!out.join("trainer_state.safetensors").exists());
}

#[test]
fn bad_inputs_are_clear_errors_before_training() {
    let guard = tmp("bad");
    let t = guard.path();
    // The tiny model ships no heldout.json and no --retention-set is given.
    let out = t.join("none");
    let e = run_auto(auto(out.clone(), 0.9, None)).unwrap_err().to_string();
    assert!(e.contains("--retention-set") && e.contains("heldout.json"), "{e}");
    assert!(!out.exists(), "a refused run created {}", out.display());
    let e = run_auto(auto(t.join("r"), 1.5, Some(sheet("test"))))
        .unwrap_err()
        .to_string();
    assert!(e.contains("--min-retention 1.5"), "{e}");
    // Someone else's directory is not written into.
    let theirs = t.join("theirs");
    std::fs::create_dir_all(&theirs).unwrap();
    std::fs::write(theirs.join("notes.txt"), "mine").unwrap();
    let e = run_auto(auto(theirs.clone(), 0.9, Some(sheet("test"))))
        .unwrap_err()
        .to_string();
    assert!(e.contains("not a cliptune adapter"), "{e}");
    assert_eq!(std::fs::read_dir(&theirs).unwrap().count(), 1);

    // A budget used up before the first rung: every candidate skipped, said in the table.
    let out = t.join("budget");
    let mut a = auto(out.clone(), 0.9, Some(sheet("test")));
    a.time_budget = Some(1e-3);
    let e = run_auto(a).unwrap_err().to_string();
    assert!(e.contains("no candidate was trained"), "{e}");
    let md = std::fs::read_to_string(out.join("auto.md")).unwrap();
    assert_eq!(md.matches("skipped: time budget").count(), 6, "{md}");
    assert!(!out.join("cliptune_adapter.json").exists());

    // Through the binary: the same error, exit code 1, before any training.
    let stderr = run_err(
        bin()
            .args(["train", "--method", "auto", "--device", "cpu", "--model"])
            .arg(tiny_model_dir())
            .args(["--data", &sheet("train"), "--out"])
            .arg(t.join("cli")),
    );
    assert!(stderr.contains("--retention-set"), "{stderr}");
    let stderr = run_err(
        bin()
            .args([
                "train", "--method", "auto", "--lr", "1e-3", "--device", "cpu", "--model",
            ])
            .arg(tiny_model_dir())
            .args(["--data", &sheet("train"), "--out"])
            .arg(t.join("cli")),
    );
    assert!(stderr.contains("--lr with --method auto"), "{stderr}");
}

fn trained(key: &str, v: f32, r: f32) -> Tried {
    Tried {
        candidate: Candidate {
            key: key.into(),
            method: Method::Lora,
            towers: vec![],
            probe: None,
        },
        outcome: Outcome::Trained {
            val_top1: v,
            retention: r,
            retention_top1: r,
            steps: 1,
            seconds: 0.0,
        },
    }
}

#[test]
fn the_choice_best_accuracy_meeting_the_floor_else_best_retention() {
    let tried = vec![
        trained("a", 0.50, 0.99),
        trained("b", 0.70, 0.96),
        trained("c", 0.90, 0.80),
        Tried {
            candidate: Candidate {
                key: "d".into(),
                method: Method::Full,
                towers: vec![],
                probe: None,
            },
            outcome: Outcome::Skipped("time".into()),
        },
    ];
    let (i, met, why) = choose(&tried, 0.95);
    assert_eq!((i, met), (Some(1), true), "{why}");
    assert!(why.starts_with("b:"), "{why}");
    let (i, met, why) = choose(&tried, 0.995);
    assert_eq!((i, met), (Some(0), false), "{why}");
    assert!(why.contains("no candidate's retention meets 0.995"), "{why}");
    // Ties go to the earlier (cheaper) rung.
    let (i, _, _) = choose(&[trained("a", 0.5, 1.0), trained("b", 0.5, 1.0)], 0.9);
    assert_eq!(i, Some(0));
    assert_eq!(choose(&tried[3..], 0.5).0, None);
}

/// Ctrl-C / SIGTERM (here the library caller's cancel, the same stop) ends the whole ladder
/// with an `Interrupted` error, not only the rung it was on, and writes no adapter.
#[test]
fn a_stop_request_ends_the_ladder() {
    let t = tmp("stop");
    let out = t.path().join("stopped");
    let flag = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let e = cliptune::cancel::scoped(flag, || run_auto(auto(out.clone(), 0.5, Some(sheet("test")))))
        .err()
        .expect("a stopped ladder is an error");
    assert_eq!(e.kind, cliptune::ErrorKind::Interrupted, "{}", e.msg);
    assert!(e.msg.contains("prompt") && e.msg.contains("not resumable"), "{}", e.msg);
    assert!(!out.join("cliptune_adapter.json").exists());
    assert!(!out.join("auto.json").exists());
    let scratch = std::fs::read_dir(&out)
        .map(|d| {
            d.flatten()
                .any(|e| e.file_name().to_string_lossy().starts_with(".auto.tmp-"))
        })
        .unwrap_or(false);
    assert!(!scratch, "a stopped ladder left its scratch in --out");
}
