//! The training loop reads each step's loss one step late (issue 11: no readback inside a
//! training step), on the GPU backend (lavapipe in CI), without giving up the NaN stop.
mod common;
mod harden_common;
use harden_common::*;

/// `cliptune train` on the GPU with the given flags (the harness's defaults otherwise).
fn train_gpu(data: &std::path::Path, out: &std::path::Path, extra: &[&str]) -> std::process::Command {
    let mut args = train_args(data, out, extra);
    assert_eq!(args[..2], ["--device", "cpu"], "the harness's first flags changed");
    args[1] = "gpu".into();
    let mut c = bin();
    c.arg("train").args(args);
    c
}

/// The dispatch counts of the `CLIPTUNE_GPU_STATS` lines (one line per readback) after
/// the training header.
fn readbacks(stderr: &str) -> Vec<usize> {
    let after = stderr
        .split("trainable parameters, lr")
        .nth(1)
        .expect("no training header");
    after
        .lines()
        .filter_map(|l| l.strip_prefix("gpu stats since last readback: "))
        .map(|l| l.split(' ').next().unwrap().parse().unwrap())
        .collect()
}

/// A step is recorded in one go: its only readback is the loss, started after the
/// optimizer update. Reading the loss (or anything else) mid-step would split a step's
/// dispatches over two readbacks, giving more big readbacks than steps.
#[test]
fn a_gpu_training_step_reads_back_once() {
    for method in ["lora", "full"] {
        let d = fresh(&format!("late-{method}"));
        let data = caption_csv(
            &d,
            &[
                (0, "a red square"),
                (1, "a green square"),
                (0, "red again"),
                (1, "green again"),
            ],
        );
        let out = d.join("out");
        let steps = 5;
        let extra = [
            "--method",
            method,
            "--max-steps",
            "5",
            "--batch",
            "2",
            "--epochs",
            "5",
            "--checkpoint-every",
            "1000",
        ];
        let err = ok(train_gpu(&data, &out, &extra).env("CLIPTUNE_GPU_STATS", "1"));
        let counts = readbacks(&err);
        let most = *counts.iter().max().expect("no GPU readbacks reported");
        let big = counts.iter().filter(|&&c| 2 * c >= most).count();
        assert_eq!(big, steps, "{method}: readbacks per step {counts:?}\n{err}");
        let log = std::fs::read_to_string(out.join("train_log.jsonl")).unwrap();
        let logged: Vec<u64> = log
            .lines()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).unwrap()["step"]
                    .as_u64()
                    .unwrap()
            })
            .collect();
        assert_eq!(
            logged,
            (1..=steps as u64).collect::<Vec<_>>(),
            "{method}: every step logged once"
        );
    }
}

/// A loss that turns non-finite is still caught before anything is saved: the message
/// names the step and the checkpoint that holds the last finite state, and every file
/// written is finite, although the loop looked at that loss one step late.
#[test]
fn a_late_non_finite_loss_still_stops_before_saving() {
    let d = fresh("late-nan");
    let data = class_folders(&d.join("data"), &["red", "green"], 4);
    let out = d.join("out");
    let err = fails(&mut train_gpu(&data, &out, &["--lr", "1e37", "--warmup", "0"]), 1);
    assert_has(&err, &["the loss is NaN", "step 2"]);
    let named = format!("the last finite state is the checkpoint of step 1 in {}", out.display());
    assert_has(&err, &[&named]);
    assert_all_finite(&out);
    // Without a checkpoint per step the loss really is looked at a step late.
    let out = d.join("out-late");
    let args = ["--lr", "1e37", "--warmup", "0", "--checkpoint-every", "1000"];
    let err = fails(&mut train_gpu(&data, &out, &args), 1);
    assert_has(&err, &["the loss is NaN", "step 2"]);
    assert_all_finite(&out);
}

/// `cliptune pretrain` on the GPU reads back one value per step, the loss it checks before
/// the backward pass: CLIP's temperature clamp runs on the device (it used to read
/// `logit_scale` back after every optimizer step, a second wait for the GPU per step).
#[test]
fn a_gpu_pretrain_step_reads_back_once() {
    let d = fresh("late-pretrain");
    let data = caption_csv(
        &d,
        &[
            (0, "a red square"),
            (1, "a green square"),
            (0, "red again"),
            (1, "green again"),
        ],
    );
    let out = d.join("out");
    let mut c = bin();
    c.args([
        "pretrain",
        "--config",
        "cliptune-tiny",
        "--device",
        "gpu",
        "--batch",
        "2",
    ])
    .args(["--epochs", "3", "--max-steps", "5", "--warmup", "0"])
    .args(["--checkpoint-every", "1000", "--template", "a photo of a {}."])
    .arg("--data")
    .arg(&data)
    .arg("--out")
    .arg(&out)
    .env("CLIPTUNE_GPU_STATS", "1");
    let err = ok(&mut c);
    // Between two progress lines lies one whole step (steps 2-5); count its readbacks
    // that ran work. After the last line come the final save's reads.
    let segments: Vec<&str> = err.split("[pretrain] step ").collect();
    assert_eq!(segments.len(), 6, "expected 5 progress lines:\n{err}");
    for (i, seg) in segments[1..5].iter().enumerate() {
        let reads: Vec<usize> = readbacks_in(seg).into_iter().filter(|&n| n > 0).collect();
        assert_eq!(reads.len(), 1, "step {}: readbacks {reads:?}\n{err}", i + 2);
    }
}

/// The dispatch counts of the `CLIPTUNE_GPU_STATS` lines in `text`.
fn readbacks_in(text: &str) -> Vec<usize> {
    text.lines()
        .filter_map(|l| l.strip_prefix("gpu stats since last readback: "))
        .map(|l| l.split(' ').next().unwrap().parse().unwrap())
        .collect()
}
