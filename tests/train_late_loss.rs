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
/// The `"step"` of every line of a JSONL training log, in order.
fn logged_steps(log: &std::path::Path) -> Vec<u64> {
    std::fs::read_to_string(log)
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["step"]
                .as_u64()
                .unwrap()
        })
        .collect()
}

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
        let logged = logged_steps(&out.join("train_log.jsonl"));
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

/// `cliptune pretrain` on the GPU with the tiny config, `steps` steps of 2 on four
/// captions of one length (every batch has the same shapes), no warmup, then `extra`.
fn pretrain_gpu(d: &std::path::Path, out: &std::path::Path, steps: usize, extra: &[&str]) -> std::process::Command {
    let data = caption_csv(
        d,
        &[
            (0, "a red square"),
            (1, "a green square"),
            (0, "a red circle"),
            (1, "a green circle"),
        ],
    );
    let steps = steps.to_string();
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
    .args(["--epochs", &steps, "--max-steps", &steps, "--warmup", "0"])
    .args(["--template", "a photo of a {}."])
    .arg("--data")
    .arg(&data)
    .arg("--out")
    .arg(out)
    .args(extra);
    c
}

/// What pretrain's stderr shows after its header, in order: a readback that ran work
/// (its dispatch count) or a progress line (the step it logs).
#[derive(Debug, PartialEq)]
enum Event {
    Read(usize),
    Logged(usize),
}

fn events(stderr: &str) -> Vec<Event> {
    let after = stderr.split("steps of 2\n").nth(1).expect("no pretrain header");
    after
        .lines()
        .filter_map(|l| match l.strip_prefix("gpu stats since last readback: ") {
            Some(r) => Some(r.split(' ').next().unwrap().parse().unwrap())
                .filter(|&n| n > 0)
                .map(Event::Read),
            None => l
                .strip_prefix("[pretrain] step ")
                .map(|r| Event::Logged(r.split('/').next().unwrap().parse().unwrap())),
        })
        .collect()
}

/// A pretrain step is recorded in one go, its only readback the loss, started after the
/// optimizer update and CLIP's temperature clamp; the loss is looked at (and the step
/// logged) while the next step is recorded. A readback inside a step (the loss read
/// before the backward pass, as pretrain once did) would make the first step's read
/// carry only the forward pass, fewer dispatches than a whole warm step.
#[test]
fn a_gpu_pretrain_step_reads_back_once_one_step_late() {
    let d = fresh("late-pretrain");
    let out = d.join("out");
    let args = ["--checkpoint-every", "1000"];
    let err = ok(pretrain_gpu(&d, &out, 5, &args).env("CLIPTUNE_GPU_STATS", "1"));
    let ev = events(&err);
    let last = ev
        .iter()
        .position(|e| *e == Event::Logged(5))
        .unwrap_or_else(|| panic!("step 5 not logged:\n{err}"));
    let reads: Vec<usize> = ev[..last]
        .iter()
        .filter_map(|e| match e {
            Event::Read(n) => Some(*n),
            Event::Logged(_) => None,
        })
        .collect();
    assert_eq!(reads.len(), 5, "one readback per step, {reads:?}\n{err}");
    let warm = reads[1];
    assert!(
        reads[1..].iter().all(|&n| n == warm),
        "warm steps differ: {reads:?}\n{err}"
    );
    assert!(
        reads[0] >= warm,
        "the first step's read holds part of a step: {reads:?}\n{err}"
    );
    // Step s is logged after step s+1's read started, and each step once.
    let logged: Vec<usize> = ev
        .iter()
        .filter_map(|e| match e {
            Event::Logged(s) => Some(*s),
            Event::Read(_) => None,
        })
        .collect();
    assert_eq!(logged, [1, 2, 3, 4, 5], "{err}");
    assert_eq!(
        ev[..3],
        [Event::Read(reads[0]), Event::Read(warm), Event::Logged(1)],
        "{err}"
    );
    let log = out.join("pretrain_log.jsonl");
    let steps = logged_steps(&log);
    assert_eq!(
        steps,
        [1, 2, 3, 4, 5],
        "every step logged once:\n{}",
        std::fs::read_to_string(&log).unwrap()
    );
}

/// Every safetensors file in `dir` finite, f16 ones too (pretrain writes its model as f16).
fn assert_all_finite_f16(dir: &std::path::Path) {
    assert_all_finite(dir);
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.extension().and_then(|x| x.to_str()) != Some("safetensors") {
            continue;
        }
        let bytes = std::fs::read(&p).unwrap();
        let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        for (name, t) in st.tensors() {
            if t.dtype() == safetensors::Dtype::F16 {
                for c in t.data().chunks_exact(2) {
                    let v = half::f16::from_le_bytes([c[0], c[1]]);
                    assert!(v.is_finite(), "{}: {name} holds {v}", p.display());
                }
            }
        }
    }
}

/// A diverging pretrain still stops naming the step although its loss is looked at a
/// step late: with a checkpoint per step the message names the last finite checkpoint,
/// without one the NaN loss of step 2 is caught before the final save; every file
/// written is finite.
#[test]
fn a_diverging_gpu_pretrain_stops_naming_the_step() {
    let d = fresh("late-pretrain-nan");
    let out = d.join("out");
    let args = ["--lr", "1e4", "--checkpoint-every", "1"];
    let err = fails(&mut pretrain_gpu(&d, &out, 5, &args), 1);
    let named = format!("the last finite state is the checkpoint of step 1 in {}", out.display());
    assert_has(&err, &["stopped at step 2", &named]);
    assert!(
        out.join("model.safetensors").is_file(),
        "step 1's checkpoint is missing"
    );
    assert_all_finite_f16(&out);
    let out = d.join("out-late");
    let args = ["--lr", "1e37", "--checkpoint-every", "1000"];
    let err = fails(&mut pretrain_gpu(&d, &out, 5, &args), 1);
    assert_has(&err, &["step 2: the loss is NaN", "stopped at step 2"]);
    assert_all_finite_f16(&out);
}

/// The number just before `what` in a `CLIPTUNE_GPU_STATS` line.
fn stat(line: &str, what: &str) -> u64 {
    let head = &line[..line.find(what).unwrap_or_else(|| panic!("no {what:?} in {line}"))];
    head.rsplit(' ').next().unwrap().parse().unwrap()
}

/// A long pretrain on the GPU stops making bind groups and buffers once its steps have
/// been seen: AdamW and CLIP's temperature clamp write the parameters over their own
/// buffers, so every step binds the same ones and the bind-group cache stays bounded.
#[test]
fn a_long_gpu_pretrain_keeps_its_bind_groups_bounded() {
    let d = fresh("late-pretrain-long");
    let out = d.join("out");
    let steps = 30;
    let err = ok(pretrain_gpu(&d, &out, steps, &["--checkpoint-every", "1000"]).env("CLIPTUNE_GPU_STATS", "1"));
    let after = err.split("steps of 2\n").nth(1).expect("no pretrain header");
    let per_step: Vec<(u64, u64, u64)> = after
        .lines()
        .take_while(|l| !l.starts_with(&format!("[pretrain] step {steps}/")))
        .filter_map(|l| l.strip_prefix("gpu stats since last readback: "))
        .filter(|l| stat(l, " dispatches") > 0)
        .map(|l| {
            (
                stat(l, " new bind groups"),
                stat(l, " new buffers"),
                stat(l, " bind groups cached"),
            )
        })
        .collect();
    assert_eq!(per_step.len(), steps, "one readback per step:\n{err}");
    let warm = &per_step[10..];
    assert!(
        warm.iter()
            .all(|&(bind_groups, buffers, _)| bind_groups == 0 && buffers == 0),
        "steps 11-{steps} made bind groups or buffers (new bind groups, new buffers, cached): {per_step:?}"
    );
    assert!(warm.iter().all(|s| s.2 == warm[0].2), "the cache grew: {per_step:?}");
}
