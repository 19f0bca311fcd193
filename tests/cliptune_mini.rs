//! The shipped cliptune-mini (assets/cliptune-mini): small enough to embed, loads like any
//! HF model directory, and its model card's held-out numbers reproduce exactly with the
//! documented `cliptune eval` command.
use std::path::PathBuf;

use cliptune::clip::tokenizer::ClipTokenizer;
use cliptune::clip::zero_shot::templates;
use cliptune::clip::{Clip, WeightStorage};
use cliptune::eval::suite::{load_labeled, retrieval_eval, zero_shot};
use cliptune::Device;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("assets/cliptune-mini")
}

#[test]
fn weights_are_f16_and_small() {
    let path = dir().join("model.safetensors");
    let bytes =
        std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e} (the shipped model is missing)", path.display()));
    assert!(bytes.len() <= 16 * 1024 * 1024, "{} bytes", bytes.len());
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    for (name, t) in st.tensors() {
        assert_eq!(t.dtype(), safetensors::Dtype::F16, "{name}");
    }
    let card = std::fs::read_to_string(dir().join("README.md")).unwrap();
    for must in ["cliptune pretrain", "cliptune eval", "Apache", "MIT", "held-out"] {
        assert!(card.contains(must), "model card lacks '{must}'");
    }
}

#[test]
fn model_card_numbers_reproduce() {
    let d = dir();
    let model = Clip::load(&d, &Device::Cpu, WeightStorage::AsStored).unwrap();
    let tok = ClipTokenizer::for_model_dir(&d).unwrap();
    assert_eq!(model.config.text.vocab, tok.vocab_size());
    let t = templates(d.join("templates.txt").to_str().unwrap()).unwrap();
    let sheet = d.join("heldout.json");
    let set = load_labeled(sheet.to_str().unwrap(), None).unwrap();
    let zs = zero_shot(&model, &tok, Some(&d), &set, &t).unwrap();
    let r = retrieval_eval(&model, &tok, Some(&d), &sheet).unwrap();
    // What the recipe recorded with `cliptune eval --json --out heldout_eval.json`.
    let rec: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("heldout_eval.json")).unwrap()).unwrap();
    let text = rec.to_string();
    let top1 = rec["zero_shot"][0]["top1"]
        .as_f64()
        .unwrap_or_else(|| panic!("no zero_shot[0].top1 in {text}"));
    assert!(
        (zs.top1 as f64 - top1).abs() < 1e-6,
        "zero-shot top-1 {} vs recorded {top1}",
        zs.top1
    );
    let i2t = rec["retrieval"][0]["i2t"]["r1"]
        .as_f64()
        .unwrap_or_else(|| panic!("no retrieval r1 in {text}"));
    assert!(
        (r.metrics.i2t[0] as f64 - i2t).abs() < 1e-6,
        "i2t R@1 {} vs recorded {i2t}",
        r.metrics.i2t[0]
    );
    // Far above chance (1/300) on an art style it never saw.
    assert!(zs.top1 > 10.0 / 300.0, "held-out zero-shot top-1 {}", zs.top1);
}

/// `cliptune demo` with no model argument uses the embedded cliptune-mini (a reduced
/// setting: 2 shots, 5 test images per class, 2 steps per method).
#[test]
fn the_binary_embeds_cliptune_mini_and_the_default_demo_runs() {
    assert!(
        cliptune::demo::embedded::has_mini(),
        "this build does not embed assets/cliptune-mini"
    );
    let dir = tempfile::Builder::new()
        .prefix(&"cliptune_mini_demo_")
        .tempdir()
        .unwrap()
        .keep();
    let out = dir.join("demo-report");
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_cliptune"))
        .args([
            "demo",
            "--device",
            "cpu",
            "--shots",
            "2",
            "--test-per-class",
            "5",
            "--max-steps",
            "2",
            "--json",
            "--out",
        ])
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let rows = j["rows"].as_array().unwrap();
    // Eight plain rows and the three regularised ones (CoOp + KgCoOp, LoRA both and full
    // with feature preservation).
    assert_eq!(rows.len(), 11, "{rows:?}");
    // The base row is the shipped model: its held-out zero-shot top-1 is the model card's.
    let base = &rows[0];
    let card: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir_path().join("heldout_eval.json")).unwrap()).unwrap();
    let want = card["zero_shot"][0]["top1"].as_f64().unwrap();
    let got = base["heldout_zero_shot_top1"]
        .as_f64()
        .unwrap_or_else(|| panic!("no heldout_top1 in {base}"));
    assert!(
        (got - want).abs() < 1e-6,
        "demo base held-out top-1 {got} vs model card {want}"
    );
    for f in [
        "report.html",
        "target_top1.png",
        "retention.png",
        "model/model.safetensors",
    ] {
        assert!(out.join(f).is_file(), "{f}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

fn dir_path() -> PathBuf {
    dir()
}
