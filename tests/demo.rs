//! `cliptune demo` end to end on a tiny model that `cliptune pretrain` trains here for a few
//! steps (the same code path as cliptune-mini; a few shots, a few steps): every method's row
//! with finite numbers, the report files, replacing a previous report, and the refusal of a
//! foreign `--out` (library and binary).
mod common;

use std::path::{Path, PathBuf};

use cliptune::data::{write_sprite_sheet, SpriteItem, SpriteSheet};
use cliptune::demo::{run_demo, DemoArgs, MARKER};
use cliptune::Device;
use image::{DynamicImage, Rgb, RgbImage};

fn temp_dir(name: &str) -> PathBuf {
    // A fresh directory per call, never one shared by the tests of this process.
    tempfile::Builder::new()
        .prefix(&format!("demo-{name}-"))
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .unwrap()
        .keep()
}

/// The held-out emoji sheet when it is in the tree, else a small captioned sheet of
/// coloured shapes.
fn heldout(dir: &Path) -> PathBuf {
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/cliptune-mini/heldout.json");
    if shipped.is_file() {
        return shipped;
    }
    let classes = common::strings(&["red circle", "blue square", "green cross"]);
    let colours = [[220, 30, 30], [30, 60, 220], [30, 170, 60]];
    let (mut items, mut images) = (vec![], vec![]);
    for i in 0..9 {
        let c = i % 3;
        let r = 6 + i as i32;
        images.push(DynamicImage::ImageRgb8(RgbImage::from_fn(32, 32, |x, y| {
            let (dx, dy) = (x as i32 - 16, y as i32 - 16);
            let inside = match c {
                0 => dx * dx + dy * dy <= r * r,
                1 => dx.abs() <= r && dy.abs() <= r,
                _ => dx.abs() <= 2 || dy.abs() <= 2,
            };
            Rgb(if inside { colours[c] } else { [255, 255, 255] })
        })));
        items.push(SpriteItem {
            label: c,
            captions: vec![
                format!("a {}.", classes[c]),
                format!("a drawing of a {} on white.", classes[c]),
            ],
        });
    }
    let p = dir.join("heldout.json");
    write_sprite_sheet(&p, &SpriteSheet::new(classes, items, images, 3).unwrap()).unwrap();
    p
}

/// A cliptune-tiny CLIP pretrained for a few steps on the first 48 captioned items of
/// the held-out sheet, through `cliptune::train::pretrain` (what makes cliptune-mini).
fn tiny_pretrained(dir: &Path, sheet: &Path) -> PathBuf {
    let s = cliptune::data::read_sprite_sheet(sheet).unwrap();
    let corpus = dir.join("corpus");
    std::fs::create_dir_all(&corpus).unwrap();
    let mut csv = String::from("image,caption\n");
    for (i, (item, img)) in s.items.iter().zip(&s.images).enumerate().take(48) {
        img.save(corpus.join(format!("{i}.png"))).unwrap();
        for c in &item.captions {
            csv += &format!("{i}.png,\"{}\"\n", c.replace('"', "\"\""));
        }
    }
    std::fs::write(corpus.join("train.csv"), csv).unwrap();
    let out = dir.join("tiny-pretrained");
    let summary = cliptune::train::pretrain::pretrain(cliptune::train::pretrain::PretrainArgs {
        data: corpus.join("train.csv"),
        config: "cliptune-tiny".into(),
        vocab_texts: vec![],
        templates: vec!["an emoji of {}.".into()],
        out: out.clone(),
        epochs: 8,
        batch: 8,
        lr: 1e-3,
        weight_decay: 0.1,
        warmup: 2,
        max_grad_norm: 1.0,
        seed: 0,
        max_steps: Some(8),
        stop_after: None,
        resume: false,
        ckpt_every: 0,
        heldout: Some(sheet.to_path_buf()),
        eval_every: 0,
        augment: true,
        device: Device::Cpu,
        progress: false,
    })
    .unwrap();
    assert_eq!(summary.steps, 8);
    assert!(summary.last_loss.is_finite());
    out
}

/// A general sheet for the regularised rows' reference term: other classes than the
/// held-out sheet's, with captions.
fn reference(dir: &Path) -> PathBuf {
    let classes = common::strings(&["sun", "boat", "apple", "tree"]);
    let (mut items, mut images) = (vec![], vec![]);
    for (i, name) in classes.iter().enumerate() {
        let v = 50 * i as u8;
        images.push(DynamicImage::ImageRgb8(RgbImage::from_fn(32, 32, |x, y| {
            Rgb([v, 255 - v, ((x * y) % 256) as u8])
        })));
        items.push(SpriteItem {
            label: i,
            captions: vec![format!("a {name}.")],
        });
    }
    let p = dir.join("reference.json");
    write_sprite_sheet(&p, &SpriteSheet::new(classes, items, images, 2).unwrap()).unwrap();
    p
}

fn args(out: PathBuf, heldout: PathBuf) -> DemoArgs {
    let mut a = DemoArgs::new(out);
    a.model = Some(common::tiny_model_dir());
    a.heldout = Some(heldout);
    a.shots = 3;
    a.test_per_class = 10;
    a.epochs = Some(2);
    a.max_steps = Some(3);
    a.device = Device::Cpu;
    a.progress = false;
    a
}

fn is_png(p: &Path) -> bool {
    let b = std::fs::read(p).unwrap_or_default();
    b.len() > 100 && b.starts_with(b"\x89PNG\r\n\x1a\n") && image::load_from_memory(&b).is_ok()
}

#[test]
fn every_method_runs_and_the_report_is_written() {
    let dir = temp_dir("e2e");
    let out = dir.join("report");
    let sheet = heldout(&dir);
    let mut a = args(out.clone(), sheet.clone());
    a.model = Some(tiny_pretrained(&dir, &sheet));
    a.reference = Some(reference(&dir));
    let t0 = std::time::Instant::now();
    let r = run_demo(&a).unwrap();
    eprintln!("demo on the tiny pretrained model: {:.1}s", t0.elapsed().as_secs_f32());
    let keys: Vec<&str> = r.rows.iter().map(|x| x.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "zero-shot",
            "prompt",
            "prompt-kgcoop",
            "linear-probe",
            "lora-text",
            "lora-vision",
            "lora-both",
            "lora-both-fp",
            "textual-inversion",
            "full",
            "full-fp"
        ]
    );
    for x in &r.rows {
        for v in [
            x.target_top1,
            x.heldout_top1,
            x.heldout_r1,
            x.zero_shot_retention,
            x.retrieval_retention,
            x.train_seconds,
        ] {
            assert!(v.is_finite() && v >= 0.0, "{}: {v}", x.key);
        }
        assert!((0.0..=1.0).contains(&x.target_top1), "{}", x.key);
        assert_eq!(
            x.trainable == 0,
            x.key == "zero-shot",
            "{}: {} trainable",
            x.key,
            x.trainable
        );
        if let Some(a) = &x.adapter {
            assert!(out.join(a).join("cliptune_adapter.json").is_file(), "{a}");
            assert!(
                !out.join(a).join("trainer_state.safetensors").exists(),
                "{a}: optimizer state left behind"
            );
            let manifest = std::fs::read_to_string(out.join(a).join("cliptune_adapter.json")).unwrap();
            assert!(
                !manifest.contains(".report.tmp-"),
                "{a}: names the temporary directory: {manifest}"
            );
        }
    }
    let row = |k: &str| r.rows.iter().find(|x| x.key == k).unwrap();
    // Frozen encoders: exactly the base model's held-out numbers.
    for k in ["prompt", "prompt-kgcoop", "linear-probe", "textual-inversion"] {
        assert_eq!(row(k).retrieval_retention, 1.0, "{k}");
    }
    // The regularised rows used the reference set.
    assert!(
        row("prompt-kgcoop").note.contains("reference set's names"),
        "{}",
        row("prompt-kgcoop").note
    );
    assert!(
        row("lora-both-fp").note.contains("reference set's"),
        "{}",
        row("lora-both-fp").note
    );
    assert_eq!(row("linear-probe").zero_shot_retention, 1.0);
    assert_eq!(row("textual-inversion").zero_shot_retention, 1.0);
    assert!(r.ti.before.is_finite() && r.ti.after.is_finite());

    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(html.contains("<table") && html.contains("textual inversion") && html.contains("target_top1.png"));
    assert!(is_png(&out.join("target_top1.png")) && is_png(&out.join("retention.png")));
    assert!(is_png(&out.join("frontier.png")) && html.contains("frontier.png"));
    assert!(html.contains("KgCoOp") && html.contains("feature preservation"));
    // The three charts are inline SVG too; the frontier (the third) labels every row once.
    let svgs: Vec<&str> = html
        .split("<svg")
        .skip(1)
        .map(|s| s.split("</svg>").next().unwrap())
        .collect();
    assert_eq!(svgs.len(), 3, "target top-1, retention and frontier inline");
    let labels: Vec<String> = svgs[2]
        .split("<text")
        .skip(1)
        .map(|t| {
            t.split_once('>')
                .unwrap()
                .1
                .split("</text>")
                .next()
                .unwrap()
                .trim()
                .to_string()
        })
        .collect();
    for x in &r.rows {
        let esc = x
            .method
            .replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('"', "&quot;")
            .replace('\'', "&apos;");
        let n = labels
            .iter()
            .filter(|l| **l == esc || **l == format!("{esc} (baseline)"))
            .count();
        assert_eq!(n, 1, "frontier label of {:?}: {n} in {labels:?}", x.method);
    }
    assert!(
        labels.iter().any(|l| l.starts_with("zero-shot retention")),
        "frontier x axis title"
    );
    let j: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("results.json")).unwrap()).unwrap();
    assert_eq!(j["rows"].as_array().unwrap().len(), 11);
    assert_eq!(j["info"]["target"]["test_images"], 100);
    assert!(out.join(MARKER).is_file());
    let train = cliptune::data::read_sprite_sheet(&out.join("data/fashion-mnist-train.json")).unwrap();
    assert_eq!(train.len(), 30);
    assert!(out.join("data/textual-inversion/captions.jsonl").is_file());
    let table = cliptune::demo::table(&r);
    assert_eq!(table.lines().count(), 12, "{table}");

    // A rerun replaces the previous report (the marker allows it) and leaves no temp dirs;
    // --methods picks rows, an unknown one is refused before anything runs.
    std::fs::write(out.join("stale.txt"), "from the first run").unwrap();
    let mut a = args(out.clone(), heldout(&dir));
    a.max_steps = Some(1);
    a.methods = Some(vec!["nonsense".into()]);
    let e = run_demo(&a).err().expect("an unknown --methods key").to_string();
    assert!(e.contains("nonsense") && e.contains("lora-both-fp"), "{e}");
    assert!(out.join("stale.txt").exists(), "the refused run touched the report");
    a.methods = Some(vec!["prompt-kgcoop".into()]);
    a.reference = Some(dir.join("missing.json"));
    let e = run_demo(&a).err().expect("a missing --reference").to_string();
    assert!(e.contains("--reference") && e.contains("missing.json"), "{e}");
    a.methods = None;
    a.reference = None;
    let r = run_demo(&a).unwrap();
    let kg = r.rows.iter().find(|x| x.key == "prompt-kgcoop").unwrap();
    assert!(!kg.note.contains("reference"), "no reference set, yet: {}", kg.note);
    // Without a reference set the regularised rows fall back to their earlier settings.
    assert!(kg.note.contains("KgCoOp weight 3;"), "{}", kg.note);
    let fp = r.rows.iter().find(|x| x.key == "lora-both-fp").unwrap();
    assert!(
        fp.note.contains("rank 4") && fp.note.contains("features kept near the base (weight 2)"),
        "{}",
        fp.note
    );
    assert!(!out.join("stale.txt").exists() && out.join(MARKER).is_file());
    let left: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .filter(|n| n.starts_with(".report."))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn a_foreign_out_dir_is_refused_and_left_alone() {
    let dir = temp_dir("refuse");
    let out = dir.join("mine");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("notes.txt"), "keep me").unwrap();
    let e = common::err_msg(run_demo(&args(out.clone(), dir.join("none.json"))));
    assert!(e.contains("mine") && e.contains("holds no cliptune_demo.json"), "{e}");
    assert_eq!(std::fs::read_to_string(out.join("notes.txt")).unwrap(), "keep me");
    let file = dir.join("file");
    std::fs::write(&file, "x").unwrap();
    assert!(common::err_msg(run_demo(&args(file, dir.join("none.json")))).contains("is a file"));

    // A failing run (no held-out set) leaves neither the report nor its temp dir.
    let e = common::err_msg(run_demo(&args(dir.join("new"), dir.join("none.json"))));
    assert!(e.contains("none.json"), "{e}");
    let names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    assert!(!names.iter().any(|n| n.contains("new")), "{names:?}");
}

#[test]
fn the_binary_refuses_a_foreign_out_dir() {
    let dir = temp_dir("bin");
    std::fs::write(dir.join("data.csv"), "image,caption\n").unwrap();
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_cliptune"))
        .args(["demo", "--device", "cpu", "--out"])
        .arg(&dir)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(
        err.contains("holds no cliptune_demo.json") && err.contains("choose another --out"),
        "{err}"
    );
    assert_eq!(err.lines().filter(|l| l.starts_with("error")).count(), 1, "{err}");
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1, "nothing written");
}
