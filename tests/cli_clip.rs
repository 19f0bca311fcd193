//! The CLIP commands end to end through the binary: tokenize, embed, zero-shot, and
//! the errors a user can cause (one clear line, exit code 1, never a panic).
use std::process::Command;

mod common;
use common::cli::{bin, fixtures, fresh as tmp, run_err};
use common::read_f32;

use cliptune::backend::Device;
use cliptune::tensor::io::write_safetensors;
use cliptune::Tensor;

/// The command must succeed; its stdout.
fn run_ok(c: &mut Command) -> String {
    common::cli::run_ok(c).0
}

#[test]
fn tokenize_prints_ids() {
    let out = run_ok(bin().args(["tokenize", "a photo of a dog.", "A PHOTO"]));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "[49406, 320, 1125, 539, 320, 1929, 269, 49407]");
    assert_eq!(lines[1], "[49406, 320, 1125, 49407]");
}

#[test]
fn embed_pixels_and_texts_matches_goldens() {
    let d = tmp("embed");
    let gold = fixtures().join("tiny-clip/goldens.safetensors");
    let (ps, pv) = read_f32(&gold, "pixel_values");
    let px = Tensor::from_vec(pv, &ps, &Device::Cpu).unwrap();
    write_safetensors(&d.join("px.safetensors"), &[("pixel_values", &px)]).unwrap();
    let texts: Vec<String> = serde_json::from_str::<serde_json::Value>(
        &std::fs::read_to_string(fixtures().join("tiny-clip/goldens.json")).unwrap(),
    )
    .unwrap()["texts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().to_string())
        .collect();
    std::fs::write(
        d.join("texts.txt"),
        texts
            .iter()
            .map(|t| t.replace(['\n', '\t'], " "))
            .collect::<Vec<_>>()
            .join("\n"),
    )
    .unwrap();
    for model in ["hf", "open_clip"] {
        let out = d.join(format!("{model}.safetensors"));
        let o = bin()
            .args(["embed", "--device", "cpu", "--model"])
            .arg(fixtures().join("tiny-clip").join(model))
            .arg("--pixels")
            .arg(d.join("px.safetensors"))
            .args(["--text", "a photo of a dog.", "--text", "A PHOTO OF A CAT!", "--out"])
            .arg(&out)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let (s, img) = read_f32(&out, "image_embeds");
        assert_eq!(s, vec![3, 24]);
        let (_, want) = read_f32(&gold, "image_embeds");
        let err = img.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
        assert!(err < 1e-4, "{model}: image embeds err {err}");
        let (s, txt) = read_f32(&out, "text_embeds");
        assert_eq!(s, vec![2, 24]);
        let (_, want) = read_f32(&gold, "text_embeds");
        let err = txt
            .iter()
            .zip(&want[..48])
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(err < 1e-4, "{model}: text embeds err {err}");
        let (s, _) = read_f32(&out, "logits_per_image");
        assert_eq!(s, vec![3, 2]);
    }
    // A long text from --texts-file is truncated, and said so once.
    std::fs::write(d.join("long.txt"), format!("{}\nshort one\n", "word ".repeat(200))).unwrap();
    let o = bin()
        .args(["embed", "--device", "cpu", "--model"])
        .arg(fixtures().join("tiny-clip/hf"))
        .arg("--texts-file")
        .arg(d.join("long.txt"))
        .arg("--out")
        .arg(d.join("long.safetensors"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{stderr}");
    assert_eq!(stderr.matches("truncated").count(), 1, "{stderr}");
}

#[test]
fn zero_shot_on_images_prints_probabilities() {
    let imgs = fixtures().join("preprocess/inputs");
    let out = run_ok(
        bin()
            .args([
                "zero-shot",
                "--device",
                "cpu",
                "--json",
                "--templates",
                "simple",
                "--classes",
                "dog,cat,car",
                "--model",
            ])
            .arg(fixtures().join("tiny-clip/hf"))
            .arg(imgs.join("rgb_37x53.png"))
            .arg(imgs.join("photo_80x60.jpg")),
    );
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    let rows = v.as_array().unwrap();
    assert_eq!(rows.len(), 2);
    for r in rows {
        let top = r["top"].as_array().unwrap();
        assert_eq!(top.len(), 3);
        let total: f64 = top.iter().map(|t| t["prob"].as_f64().unwrap()).sum();
        assert!((total - 1.0).abs() < 1e-3, "probabilities sum to {total}");
    }
    // Human output with the 80 OpenAI templates.
    let out = run_ok(
        bin()
            .args(["zero-shot", "--device", "cpu", "--classes", "dog,cat", "--model"])
            .arg(fixtures().join("tiny-clip/hf"))
            .arg(imgs.join("rgb_37x53.png")),
    );
    assert!(out.contains("rgb_37x53.png") && out.contains('%'), "{out}");
}

#[test]
fn user_errors_are_one_clear_line() {
    let d = tmp("errors");
    let e = run_err(
        bin()
            .args(["embed", "--model", "/no/such/model", "--text", "x", "--out"])
            .arg(d.join("o.safetensors")),
    );
    assert!(e.contains("/no/such/model"), "{e}");
    // A corrupt image: named, and skipped only with --skip-bad-images.
    std::fs::write(d.join("bad.png"), b"not a png").unwrap();
    let good = fixtures().join("preprocess/inputs/rgb_37x53.png");
    let base = || {
        let mut c = bin();
        c.args(["embed", "--device", "cpu", "--model"])
            .arg(fixtures().join("tiny-clip/hf"))
            .arg("--image")
            .arg(d.join("bad.png"))
            .arg("--image")
            .arg(&good)
            .arg("--out")
            .arg(d.join("o.safetensors"));
        c
    };
    let e = run_err(&mut base());
    assert!(e.contains("bad.png") && e.contains("--skip-bad-images"), "{e}");
    assert!(!d.join("o.safetensors").exists(), "no output may be written on failure");
    let o = base().arg("--skip-bad-images").output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(read_f32(&d.join("o.safetensors"), "image_embeds").0, vec![1, 24]);
    // Bad --templates / missing classes / bad device.
    let e = run_err(
        bin()
            .args([
                "zero-shot",
                "--classes",
                "a",
                "--templates",
                "/no/templates.txt",
                "--model",
            ])
            .arg(fixtures().join("tiny-clip/hf"))
            .arg(&good),
    );
    assert!(e.contains("/no/templates.txt"), "{e}");
    let e = run_err(
        bin()
            .args(["zero-shot", "--model"])
            .arg(fixtures().join("tiny-clip/hf"))
            .arg(&good),
    );
    assert!(e.contains("--classes"), "{e}");
    let e = run_err(bin().args(["check", "--device", "tpu"]));
    assert!(e.contains("auto, cpu or gpu"), "{e}");
}
