//! The user's whole loop through the binary: train (LoRA, with the retention guard
//! measuring), eval before/after with --adapter, report, merge.
use std::path::{Path, PathBuf};
use std::process::Command;

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_cliptune"));
    c.env("XDG_RUNTIME_DIR", "/tmp");
    c
}

fn ok(c: &mut Command) -> (String, String) {
    let o = c.output().unwrap();
    let (out, err) = (
        String::from_utf8_lossy(&o.stdout).to_string(),
        String::from_utf8_lossy(&o.stderr).to_string(),
    );
    assert!(o.status.success(), "command failed:\n{err}");
    (out, err)
}

fn tmp() -> PathBuf {
    // A fresh directory per call, never one shared by the tests of this process.
    tempfile::Builder::new()
        .prefix(&"cliptune-cli-train-")
        .tempdir()
        .unwrap()
        .keep()
}

#[test]
fn train_eval_report_merge() {
    let model = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny-clip/hf");
    let d = tmp();
    let lora = d.join("lora");
    let (_, err) = ok(bin()
        .args([
            "train",
            "--device",
            "cpu",
            "--method",
            "lora",
            "--data",
            "fashion-mnist:train:10",
            "--epochs",
            "4",
            "--batch",
            "25",
            // The pipeline, not the schedule, is under test: exactly the 4 epochs.
            "--min-steps",
            "0",
        ])
        .args([
            "--lr",
            "5e-3",
            "--retention-set",
            "fashion-mnist:test:5",
            "--min-retention",
            "0.0",
            "--retention-every",
            "4",
        ])
        .arg("--model")
        .arg(&model)
        .arg("--out")
        .arg(&lora));
    assert!(
        err.contains("ETA") && err.contains("[guard]") && err.contains("done"),
        "{err}"
    );
    for f in [
        "adapter_config.json",
        "adapter_model.safetensors",
        "cliptune_adapter.json",
        "train_log.jsonl",
        "trainer_state.safetensors",
    ] {
        assert!(lora.join(f).exists(), "missing {f}");
    }
    let eval = |adapter: Option<&Path>, out: &Path| {
        let mut c = bin();
        c.args([
            "eval",
            "--device",
            "cpu",
            "--templates",
            "simple",
            "--zero-shot",
            "fashion-mnist:test:10",
            "--model",
        ])
        .arg(&model);
        if let Some(a) = adapter {
            c.arg("--adapter").arg(a);
        }
        ok(c.arg("--out").arg(out));
    };
    eval(None, &d.join("before.json"));
    eval(Some(&lora), &d.join("after.json"));
    let after: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("after.json")).unwrap()).unwrap();
    assert_eq!(after["adapters"].as_array().unwrap().len(), 1);
    ok(bin()
        .arg("report")
        .arg("--before")
        .arg(d.join("before.json"))
        .arg("--after")
        .arg(d.join("after.json"))
        .arg("--log")
        .arg(lora.join("train_log.jsonl"))
        .arg("--out")
        .arg(d.join("report/report.html")));
    let html = std::fs::read_to_string(d.join("report/report.html")).unwrap();
    assert!(html.contains("fashion-mnist:test:10"), "report lacks the dataset");
    assert!(d.join("report/report_curves.png").exists());
    // Merge: a plain checkpoint that evaluates like base + adapter.
    ok(bin()
        .args(["merge", "--model"])
        .arg(&model)
        .arg("--adapter")
        .arg(&lora)
        .arg("--out")
        .arg(d.join("merged")));
    let mut c = bin();
    c.args([
        "eval",
        "--device",
        "cpu",
        "--templates",
        "simple",
        "--zero-shot",
        "fashion-mnist:test:10",
        "--json",
        "--model",
    ])
    .arg(d.join("merged"));
    let (out, _) = ok(&mut c);
    let merged: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(merged["zero_shot"][0]["top1"], after["zero_shot"][0]["top1"]);
}
