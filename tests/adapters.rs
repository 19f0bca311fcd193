//! Adapter directories at inference (`--adapter` on embed, zero-shot and eval) and
//! `cliptune merge`, on the tiny random CLIP fixture: PEFT's own adapter gives PEFT's
//! embeddings through the CLI, a merged checkpoint equals the unmerged adapters, prompt,
//! textual-inversion and linear-probe adapters written by the library load, and conflicts
//! and adapters for another model are refused naming both sides.
use std::path::{Path, PathBuf};

use cliptune::adapt::bundle::{self, load_adapters, LoadedAdapter, Manifest, Method};
use cliptune::adapt::lora::{self, LoraConfig, LoraTarget, Tower};
use cliptune::adapt::prompt::{model_fingerprint, PromptLearner};
use cliptune::adapt::textual_inversion::TextualInversion;
use cliptune::backend::Device;
use cliptune::clip::tokenizer::ClipTokenizer;
use cliptune::clip::{Clip, ClipConfig, WeightStorage};
use cliptune::eval::linear_probe::LinearProbe;
use cliptune::eval::suite::load_labeled;
use cliptune::tensor::io::write_safetensors;
use cliptune::Tensor;

mod common;
use common::cli::{bin, fixtures, fresh as tmp, run_err, run_ok};
use common::{max_abs, read_f32};

fn hf_dir() -> PathBuf {
    fixtures().join("tiny-clip/hf")
}
fn qv_dir() -> PathBuf {
    fixtures().join("lora/peft_adapter")
}
fn fc1_dir() -> PathBuf {
    fixtures().join("lora/peft_adapter_fc1")
}
fn image(name: &str) -> PathBuf {
    fixtures().join("preprocess/inputs").join(name)
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

/// The goldens' 8 texts (one per line) and 3 images (as --pixels), written into `d`.
fn golden_inputs(d: &Path) -> (PathBuf, Vec<String>) {
    let gold = fixtures().join("tiny-clip/goldens.safetensors");
    let (ps, pv) = read_f32(&gold, "pixel_values");
    let px = Tensor::from_vec(pv, &ps, &Device::Cpu).unwrap();
    let path = d.join("px.safetensors");
    write_safetensors(&path, &[("pixel_values", &px)]).unwrap();
    let texts: Vec<String> = serde_json::from_str::<serde_json::Value>(
        &std::fs::read_to_string(fixtures().join("tiny-clip/goldens.json")).unwrap(),
    )
    .unwrap()["texts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().to_string())
        .collect();
    (path, texts)
}

/// `cliptune embed` of the golden pixels and texts; returns (image_embeds, text_embeds).
fn embed(d: &Path, tag: &str, model: &Path, adapters: &[&Path]) -> (Vec<f32>, Vec<f32>) {
    let (px, texts) = golden_inputs(d);
    let out = d.join(format!("{tag}.safetensors"));
    let mut c = bin();
    c.args(["embed", "--device", "cpu", "--model"])
        .arg(model)
        .arg("--pixels")
        .arg(&px);
    for t in &texts {
        c.arg("--text").arg(t);
    }
    for a in adapters {
        c.arg("--adapter").arg(a);
    }
    c.arg("--out").arg(&out);
    run_ok(&mut c);
    (read_f32(&out, "image_embeds").1, read_f32(&out, "text_embeds").1)
}

fn load_hf() -> (Clip, ClipTokenizer) {
    (
        Clip::load(&hf_dir(), &Device::Cpu, WeightStorage::AsStored).unwrap(),
        ClipTokenizer::for_model_dir(&hf_dir()).unwrap(),
    )
}

/// A random model with the fixture's shapes, written as an HF checkpoint: same shapes,
/// another fingerprint.
fn random_model_dir(d: &Path) -> PathBuf {
    let dir = d.join("random-model");
    if !dir.join("model.safetensors").exists() {
        let cfg = ClipConfig::from_dir(&hf_dir()).unwrap();
        let m = Clip::random(cfg, 1234, &Device::Cpu).unwrap();
        lora::save_hf_checkpoint(&m, &hf_dir(), &dir).unwrap();
    }
    dir
}

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

#[test]
fn peft_adapter_via_embed_gives_peft_embeddings() {
    let d = tmp("peft");
    let gold = fixtures().join("lora/goldens.safetensors");
    let (bi, bt) = embed(&d, "base", &hf_dir(), &[]);
    let (ai, at) = embed(&d, "qv", &hf_dir(), &[&qv_dir()]);
    let (_, gi) = read_f32(&gold, "qv.image_embeds");
    let (_, gt) = read_f32(&gold, "qv.text_embeds");
    let (ei, et) = (max_abs(&ai, &gi), max_abs(&at, &gt));
    eprintln!("embed --adapter qv vs PEFT: image {ei:.2e}, text {et:.2e}");
    assert!(ei < 1e-4 && et < 1e-4, "{ei} / {et}");
    assert!(max_abs(&bi, &gi) > 1e-2, "the adapter must change the image embeddings");
    assert!(max_abs(&bt, &gt) > 1e-3, "the adapter must change the text embeddings");

    // A text-only adapter leaves the image tower alone; a file path inside the directory works too.
    let (fi, ft) = embed(&d, "fc1", &hf_dir(), &[&fc1_dir().join("adapter_config.json")]);
    assert_eq!(fi, bi);
    assert!(max_abs(&ft, &read_f32(&gold, "fc1.text_embeds").1) < 1e-4);

    // The same adapter written by the library, with a manifest, loads the same.
    let (mut m, _) = load_hf();
    let cfg = lora::load_peft(&mut m, &qv_dir()).unwrap();
    let ours = d.join("ours-qv");
    let man = bundle::save_lora(&ours, &m, &cfg, &hf_dir().display().to_string()).unwrap();
    assert_eq!(man.method, Method::Lora);
    let back = Manifest::read(&ours).unwrap();
    assert_eq!(back, man);
    assert_eq!(back.fingerprint, model_fingerprint(&m).unwrap());
    let (oi, ot) = embed(&d, "ours", &hf_dir(), &[&ours]);
    assert!(max_abs(&oi, &ai) < 1e-6 && max_abs(&ot, &at) < 1e-6);
}

#[test]
fn merge_equals_unmerged_adapters() {
    let d = tmp("merge");
    let merged = d.join("merged");
    let (_, err) = run_ok(
        bin()
            .args(["merge", "--device", "cpu", "--model"])
            .arg(hf_dir())
            .arg("--adapter")
            .arg(qv_dir())
            .arg("--adapter")
            .arg(fc1_dir())
            .arg("--out")
            .arg(&merged),
    );
    assert!(err.contains("10 LoRA module(s)"), "{err}");
    assert!(merged.join("model.safetensors").is_file() && merged.join("config.json").is_file());
    let (mi, mt) = embed(&d, "merged", &merged, &[]);
    let (ai, at) = embed(&d, "adapters", &hf_dir(), &[&qv_dir(), &fc1_dir()]);
    let (ei, et) = (max_abs(&mi, &ai), max_abs(&mt, &at));
    eprintln!("merged vs --adapter: image {ei:.2e}, text {et:.2e}");
    assert!(ei <= 1e-5 && et <= 1e-5, "{ei} / {et}");
    // The merged model is a plain model: it has no LoRA and loads in the library.
    let m = Clip::load(&merged, &Device::Cpu, WeightStorage::AsStored).unwrap();
    assert!(lora::adapter_sites(&m).is_empty());

    // One adapter merged gives PEFT's merged embeddings.
    let merged_qv = d.join("merged-qv");
    run_ok(
        bin()
            .args(["merge", "--device", "cpu", "--model"])
            .arg(hf_dir())
            .arg("--adapter")
            .arg(qv_dir())
            .arg("--out")
            .arg(&merged_qv),
    );
    let (qi, _) = embed(&d, "merged-qv", &merged_qv, &[]);
    let gold = fixtures().join("lora/goldens.safetensors");
    assert!(max_abs(&qi, &read_f32(&gold, "qv.merged_image_embeds").1) < 1e-4);

    // A non-empty --out is refused and left as it was; an empty one is used.
    let e = run_err(
        bin()
            .args(["merge", "--device", "cpu", "--model"])
            .arg(hf_dir())
            .arg("--adapter")
            .arg(qv_dir())
            .arg("--out")
            .arg(&merged),
    );
    assert!(
        e.contains("not empty") && e.contains(&merged.display().to_string()),
        "{e}"
    );
    assert!(merged.join("model.safetensors").is_file());
    let empty = d.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    run_ok(
        bin()
            .args(["merge", "--device", "cpu", "--model"])
            .arg(hf_dir())
            .arg("--adapter")
            .arg(fc1_dir())
            .arg("--out")
            .arg(&empty),
    );
    assert!(empty.join("model.safetensors").is_file());
    // No temporary directories are left behind.
    let leftovers: Vec<_> = std::fs::read_dir(&d)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains(".merge-"))
        .collect();
    assert!(leftovers.is_empty());
}

#[test]
fn prompt_adapter_replaces_templates_in_zero_shot_and_eval() {
    let d = tmp("prompt");
    let (m, tok) = load_hf();
    let classes = s(&["dog", "cat", "car"]);
    // Initialised from "a photo of a": exactly the template "a photo of a {}.".
    let learner = PromptLearner::new(&m, &tok, &classes, 0, Some("a photo of a"), false, 0).unwrap();
    let pdir = d.join("prompt");
    bundle::save_prompt(&pdir, &learner, &m, &hf_dir().display().to_string()).unwrap();
    assert!(pdir.join(bundle::MANIFEST).is_file() && pdir.join(bundle::PROMPT_FILE).is_file());

    let zs = |extra: &[&str], adapter: Option<&Path>| {
        let mut c = bin();
        c.args(["zero-shot", "--device", "cpu", "--json", "--top-k", "3", "--model"])
            .arg(hf_dir())
            .args(extra);
        if let Some(a) = adapter {
            c.arg("--adapter").arg(a);
        }
        c.arg(image("rgb_37x53.png")).arg(image("photo_80x60.jpg"));
        let (out, _) = run_ok(&mut c);
        let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
        let mut probs = std::collections::BTreeMap::new();
        for (i, r) in v.as_array().unwrap().iter().enumerate() {
            for t in r["top"].as_array().unwrap() {
                probs.insert(
                    (i, t["class"].as_str().unwrap().to_string()),
                    t["prob"].as_f64().unwrap(),
                );
            }
        }
        probs
    };
    let plain = zs(&["--templates", "simple", "--classes", "dog,cat,car"], None);
    // Classes in another order, and no --classes at all (the adapter brings its own).
    let learned = zs(&["--classes", "car,dog,cat"], Some(&pdir));
    let own = zs(&[], Some(&pdir));
    assert_eq!(plain.len(), 6);
    for (k, p) in &plain {
        assert!((p - learned[k]).abs() < 1e-4, "{k:?}: {p} vs {}", learned[k]);
        assert!((p - own[k]).abs() < 1e-4, "{k:?}: {p} vs {}", own[k]);
    }

    // Trained prompts (here: moved context vectors) change the result.
    let mut moved = learner.clone();
    let v: Vec<f32> = (0..moved.ctx.value.numel()).map(|i| (i as f32 * 1.7).sin()).collect();
    moved.ctx.value = Tensor::from_vec(v, moved.ctx.value.shape(), &Device::Cpu).unwrap();
    let pdir2 = d.join("prompt-moved");
    bundle::save_prompt(&pdir2, &moved, &m, "tiny").unwrap();
    let other = zs(&[], Some(&pdir2));
    assert!(plain.iter().any(|(k, p)| (p - other[k]).abs() > 1e-3));

    // Other classes than the adapter's are refused, naming both lists.
    let e = run_err(
        bin()
            .args(["zero-shot", "--device", "cpu", "--classes", "dog,cat,bird", "--model"])
            .arg(hf_dir())
            .arg("--adapter")
            .arg(&pdir)
            .arg(image("rgb_37x53.png")),
    );
    assert!(
        e.contains("\"car\" (adapter) vs \"bird\" (--classes)") && e.contains(&pdir.display().to_string()),
        "{e}"
    );

    // Two prompt adapters conflict.
    let e = run_err(
        bin()
            .args(["zero-shot", "--device", "cpu", "--model"])
            .arg(hf_dir())
            .arg("--adapter")
            .arg(&pdir)
            .arg("--adapter")
            .arg(&pdir2)
            .arg(image("rgb_37x53.png")),
    );
    assert!(
        e.contains("two prompt adapters")
            && e.contains(&pdir.display().to_string())
            && e.contains(&pdir2.display().to_string()),
        "{e}"
    );

    // embed writes the learned class prompts as class_embeds.
    let out = d.join("emb.safetensors");
    run_ok(
        bin()
            .args(["embed", "--device", "cpu", "--model"])
            .arg(hf_dir())
            .arg("--adapter")
            .arg(&pdir)
            .arg("--out")
            .arg(&out),
    );
    let (shape, cls) = read_f32(&out, "class_embeds");
    assert_eq!(shape, vec![3, 24]);
    let want = learner.class_embeddings(&m).unwrap().to_vec().unwrap();
    assert!(max_abs(&cls, &want) < 1e-6);

    // eval: a prompt adapter for the dataset's classes equals the single template without it.
    let data = fixtures().join("data/classes");
    let set = load_labeled(data.to_str().unwrap(), None).unwrap();
    let l = PromptLearner::new(&m, &tok, &set.classes, 0, Some("a photo of a"), false, 0).unwrap();
    let edir = d.join("prompt-eval");
    bundle::save_prompt(&edir, &l, &m, "tiny").unwrap();
    let eval = |extra: &[&str], adapter: Option<&Path>| {
        let mut c = bin();
        c.args(["eval", "--device", "cpu", "--json", "--model"])
            .arg(hf_dir())
            .arg("--zero-shot")
            .arg(&data);
        c.args(extra);
        if let Some(a) = adapter {
            c.arg("--adapter").arg(a);
        }
        let (out, _) = run_ok(&mut c);
        serde_json::from_str::<serde_json::Value>(out.trim()).unwrap()
    };
    let a = eval(&["--templates", "simple"], None);
    let b = eval(&[], Some(&edir));
    assert_eq!(a["zero_shot"][0]["top1"], b["zero_shot"][0]["top1"]);
    assert_eq!(a["zero_shot"][0]["top5"], b["zero_shot"][0]["top5"]);
    assert_eq!(b["adapters"][0].as_str().unwrap(), edir.display().to_string());
    // ... and the wrong classes for the dataset are refused.
    let e = run_err(
        bin()
            .args(["eval", "--device", "cpu", "--model"])
            .arg(hf_dir())
            .arg("--zero-shot")
            .arg(&data)
            .arg("--adapter")
            .arg(&pdir),
    );
    assert!(e.contains("trained on 3 classes") && e.contains("\"dog\""), "{e}");
}

#[test]
fn textual_inversion_adapter_adds_words_and_merges() {
    let d = tmp("ti");
    let (m, mut tok) = load_hf();
    // Initialised from "dog": "<sks>" must embed exactly like "dog".
    let ti = TextualInversion::new(&m, &mut tok, &["<sks>"], Some("dog"), 0).unwrap();
    let tdir = d.join("ti");
    bundle::save_textual_inversion(&tdir, &ti, &tok, &m, &hf_dir().display().to_string()).unwrap();
    assert!(tdir.join(bundle::TI_TOKENIZER).is_file());

    let emb = |tag: &str, model: &Path, texts: &[&str], adapters: &[&Path]| {
        let out = d.join(format!("{tag}.safetensors"));
        let mut c = bin();
        c.args(["embed", "--device", "cpu", "--model"]).arg(model);
        for t in texts {
            c.arg("--text").arg(t);
        }
        for a in adapters {
            c.arg("--adapter").arg(a);
        }
        run_ok(c.arg("--out").arg(&out));
        read_f32(&out, "text_embeds").1
    };
    let with = emb(
        "with",
        &hf_dir(),
        &["a photo of a <sks>", "a <SKS> on a table"],
        &[&tdir],
    );
    let dog = emb("dog", &hf_dir(), &["a photo of a dog", "a dog on a table"], &[]);
    assert!(max_abs(&with, &dog) < 1e-6, "{}", max_abs(&with, &dog));
    // Without the adapter the word is split into pieces and means something else.
    let without = emb("without", &hf_dir(), &["a photo of a <sks>", "a <SKS> on a table"], &[]);
    assert!(max_abs(&without, &dog) > 1e-3);

    // The new word works as a zero-shot class.
    let (out, _) = run_ok(
        bin()
            .args([
                "zero-shot",
                "--device",
                "cpu",
                "--json",
                "--classes",
                "<sks>,cat",
                "--model",
            ])
            .arg(hf_dir())
            .arg("--adapter")
            .arg(&tdir)
            .arg(image("rgb_37x53.png")),
    );
    assert!(out.contains("<sks>"), "{out}");

    // Together with a LoRA adapter (different parameters: no conflict), then merged.
    let both = emb("both", &hf_dir(), &["a photo of a <sks>"], &[&qv_dir(), &tdir]);
    let merged = d.join("merged");
    let (_, err) = run_ok(
        bin()
            .args(["merge", "--device", "cpu", "--model"])
            .arg(hf_dir())
            .arg("--adapter")
            .arg(&tdir)
            .arg("--adapter")
            .arg(qv_dir())
            .arg("--out")
            .arg(&merged),
    );
    assert!(err.contains("<sks>"), "{err}");
    let cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(merged.join("config.json")).unwrap()).unwrap();
    assert_eq!(cfg["text_config"]["vocab_size"], 49409);
    assert!(merged.join("tokenizer.json").is_file());
    let plain = emb("merged", &merged, &["a photo of a <sks>"], &[]);
    assert!(max_abs(&plain, &both) <= 1e-5, "{}", max_abs(&plain, &both));
    // Installing the words again on the merged model is refused.
    let e = run_err(
        bin()
            .args(["embed", "--device", "cpu", "--text", "a <sks>", "--model"])
            .arg(&merged)
            .arg("--adapter")
            .arg(&tdir)
            .arg("--out")
            .arg(d.join("x.safetensors")),
    );
    assert!(e.contains(&tdir.display().to_string()), "{e}");

    // Two adapters adding the same word conflict, naming both.
    let tdir2 = d.join("ti2");
    copy_dir(&tdir, &tdir2);
    let (mut m2, mut tok2) = load_hf();
    let e = load_adapters(&mut m2, &mut tok2, &[tdir.clone(), tdir2.clone()]).unwrap_err();
    assert!(
        e.msg.contains("<sks>")
            && e.msg.contains(&tdir.display().to_string())
            && e.msg.contains(&tdir2.display().to_string()),
        "{}",
        e.msg
    );
    // ... and the refusal changed nothing.
    assert_eq!(m2.config.text.vocab, 49408);
    assert_eq!(m2.text.token_embedding.value.dim(0), 49408);
    assert_eq!(
        tok2.encode("a <sks>").unwrap().len(),
        ClipTokenizer::embedded().unwrap().encode("a <sks>").unwrap().len()
    );
}

#[test]
fn merge_refuses_what_cannot_be_merged() {
    let d = tmp("merge-refuse");
    let (m, tok) = load_hf();
    let learner = PromptLearner::new(&m, &tok, &s(&["dog", "cat"]), 4, None, false, 0).unwrap();
    let pdir = d.join("prompt");
    bundle::save_prompt(&pdir, &learner, &m, "tiny").unwrap();
    let out = d.join("out");
    let e = run_err(
        bin()
            .args(["merge", "--device", "cpu", "--model"])
            .arg(hf_dir())
            .arg("--adapter")
            .arg(&pdir)
            .arg("--out")
            .arg(&out),
    );
    assert!(e.contains("prompt adapter") && e.contains("cannot be merged"), "{e}");
    assert!(!out.exists());
    // An open_clip base has no HF files to write a merged checkpoint from.
    let e = run_err(
        bin()
            .args(["merge", "--device", "cpu", "--model"])
            .arg(fixtures().join("tiny-clip/open_clip"))
            .arg("--adapter")
            .arg(qv_dir())
            .arg("--out")
            .arg(&out),
    );
    assert!(e.contains("open_clip"), "{e}");
    assert!(!out.exists());
    // --adapter is required.
    let o = bin()
        .args(["merge", "--model"])
        .arg(hf_dir())
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(!o.status.success());
}

#[test]
fn conflicts_and_adapters_for_other_models_are_refused() {
    let d = tmp("refuse");
    let hf = hf_dir().display().to_string();

    // Two LoRA adapters on the same layers (a copy of the same adapter), naming both.
    let copy = d.join("qv-copy");
    copy_dir(&qv_dir(), &copy);
    let e = run_err(
        bin()
            .args(["embed", "--device", "cpu", "--text", "a dog", "--model"])
            .arg(hf_dir())
            .arg("--adapter")
            .arg(qv_dir())
            .arg("--adapter")
            .arg(&copy)
            .arg("--out")
            .arg(d.join("x.safetensors")),
    );
    assert!(
        e.contains("conflict")
            && e.contains(&qv_dir().display().to_string())
            && e.contains(&copy.display().to_string()),
        "{e}"
    );
    assert_eq!(e.trim().lines().count(), 1, "{e}");
    // The same directory twice.
    let e = run_err(
        bin()
            .args(["embed", "--device", "cpu", "--text", "a dog", "--model"])
            .arg(hf_dir())
            .arg("--adapter")
            .arg(qv_dir())
            .arg("--adapter")
            .arg(qv_dir())
            .arg("--out")
            .arg(d.join("x.safetensors")),
    );
    assert!(e.contains("given twice"), "{e}");
    // In the library, a refusal leaves the model as it was.
    let (mut m, mut tok) = load_hf();
    assert!(load_adapters(&mut m, &mut tok, &[qv_dir(), copy.clone()]).is_err());
    assert!(lora::adapter_sites(&m).is_empty());

    // Adapters made for another model with the same shapes (a random one): refused by
    // fingerprint, naming both models.
    let rdir = random_model_dir(&d);
    let rd = rdir.display().to_string();
    let rm = Clip::load(&rdir, &Device::Cpu, WeightStorage::AsStored).unwrap();
    let rtok = ClipTokenizer::for_model_dir(&rdir).unwrap();
    assert_ne!(model_fingerprint(&rm).unwrap(), model_fingerprint(&m).unwrap());
    let learner = PromptLearner::new(&rm, &rtok, &s(&["dog", "cat"]), 0, Some("a photo of a"), false, 0).unwrap();
    let pdir = d.join("prompt-for-random");
    bundle::save_prompt(&pdir, &learner, &rm, &rd).unwrap();
    let e = run_err(
        bin()
            .args(["zero-shot", "--device", "cpu", "--model"])
            .arg(hf_dir())
            .arg("--adapter")
            .arg(&pdir)
            .arg(image("rgb_37x53.png")),
    );
    assert!(
        e.contains("another model") && e.contains(&rd) && e.contains(&hf) && e.contains(&pdir.display().to_string()),
        "{e}"
    );
    // ... while on its own model it loads.
    run_ok(
        bin()
            .args(["zero-shot", "--device", "cpu", "--model"])
            .arg(&rdir)
            .arg("--adapter")
            .arg(&pdir)
            .arg(image("rgb_37x53.png")),
    );
    let mut rl = rm.clone();
    let cfg = LoraConfig {
        rank: 2,
        alpha: 4.0,
        dropout: 0.0,
        targets: vec![LoraTarget::Q],
        towers: vec![Tower::Vision],
        layers: None,
    };
    lora::apply_lora(&mut rl, &cfg, 0).unwrap();
    let ldir = d.join("lora-for-random");
    bundle::save_lora(&ldir, &rl, &cfg, &rd).unwrap();
    for cmd in ["embed", "eval"] {
        let mut c = bin();
        c.args([cmd, "--device", "cpu", "--model"])
            .arg(hf_dir())
            .arg("--adapter")
            .arg(&ldir);
        if cmd == "embed" {
            c.args(["--text", "a dog", "--out"]).arg(d.join("x.safetensors"));
        } else {
            c.arg("--zero-shot").arg(fixtures().join("data/classes"));
        }
        let e = run_err(&mut c);
        assert!(
            e.contains("another model") && e.contains(&rd) && e.contains(&hf),
            "{cmd}: {e}"
        );
    }
    // A textual-inversion adapter for the random model.
    let mut rt = rtok.clone();
    let ti = TextualInversion::new(&rm, &mut rt, &["<zz>"], None, 3).unwrap();
    let tdir = d.join("ti-for-random");
    bundle::save_textual_inversion(&tdir, &ti, &rt, &rm, &rd).unwrap();
    let (mut m, mut tok) = load_hf();
    let e = load_adapters(&mut m, &mut tok, std::slice::from_ref(&tdir)).unwrap_err();
    assert!(e.msg.contains("another model") && e.msg.contains(&rd), "{}", e.msg);
    assert_eq!(m.config.text.vocab, 49408);

    // A model of other shapes: refused by shape, naming the shape that differs.
    let mut wide_cfg = ClipConfig::from_dir(&hf_dir()).unwrap();
    wide_cfg.text.tower.width = 32;
    let wide = Clip::random(wide_cfg, 5, &Device::Cpu).unwrap();
    let wl = PromptLearner::new(&wide, &rtok, &s(&["dog", "cat"]), 2, None, false, 0).unwrap();
    let wdir = d.join("prompt-for-wide");
    bundle::save_prompt(&wdir, &wl, &wide, "models/wide-clip").unwrap();
    let (mut m, mut tok) = load_hf();
    let e = load_adapters(&mut m, &mut tok, std::slice::from_ref(&wdir)).unwrap_err();
    assert!(
        e.msg.contains("models/wide-clip") && e.msg.contains("text_width 32") && e.msg.contains("text_width 16"),
        "{}",
        e.msg
    );

    // Not adapters at all.
    let e = run_err(
        bin()
            .args(["embed", "--device", "cpu", "--text", "a dog", "--model"])
            .arg(hf_dir())
            .arg("--adapter")
            .arg(&rdir)
            .arg("--out")
            .arg(d.join("x.safetensors")),
    );
    assert!(e.contains("model directory, not an adapter"), "{e}");
    let e = run_err(
        bin()
            .args(["embed", "--device", "cpu", "--text", "a dog", "--model"])
            .arg(hf_dir())
            .arg("--adapter")
            .arg(d.join("missing"))
            .arg("--out")
            .arg(d.join("x.safetensors")),
    );
    assert!(e.contains("not found"), "{e}");
    let full = d.join("full");
    std::fs::create_dir_all(&full).unwrap();
    std::fs::write(
        full.join(bundle::MANIFEST),
        serde_json::json!({"method": "full", "base_model": hf, "fingerprint": "0"}).to_string(),
    )
    .unwrap();
    let e = bundle::inspect(&full).unwrap_err();
    assert!(
        e.msg.contains("full fine-tune") && e.msg.contains("--model"),
        "{}",
        e.msg
    );
}

#[test]
fn linear_probe_adapter_loads_and_is_exposed() {
    let d = tmp("probe");
    let (m, _) = load_hf();
    let (c, p) = (3, m.config.projection_dim);
    let probe = LinearProbe {
        weight: (0..c * p).map(|i| (i as f32 * 0.37).sin()).collect(),
        bias: vec![0.1, -0.2, 0.1],
        c,
        d: p,
        l2: 1e-3,
    };
    let classes = s(&["dog", "cat", "car"]);
    let pdir = d.join("probe");
    bundle::save_linear_probe(&pdir, &probe, &classes, &m, "tiny").unwrap();
    let (mut m1, mut tok) = load_hf();
    let ad = load_adapters(&mut m1, &mut tok, std::slice::from_ref(&pdir)).unwrap();
    let probes = ad.linear_probes();
    assert_eq!(probes.len(), 1);
    assert_eq!(probes[0].1.probe, probe);
    assert_eq!(probes[0].1.classes, classes);
    let img = Tensor::from_vec(vec![0.2; 2 * p], &[2, p], &Device::Cpu).unwrap();
    assert_eq!(probes[0].1.predict_scores(&img).unwrap().len(), 2 * c);
    assert!(matches!(ad.loaded[0], LoadedAdapter::LinearProbe { .. }));

    // zero-shot classifies with the probe: its probabilities over the asked classes.
    let (out, _) = run_ok(
        bin()
            .args(["zero-shot", "--device", "cpu", "--classes", "dog,cat", "--model"])
            .arg(hf_dir())
            .arg("--adapter")
            .arg(&pdir)
            .arg(image("rgb_37x53.png")),
    );
    let pct: Vec<f32> = out
        .lines()
        .filter(|l| l.trim_end().ends_with(" dog") || l.trim_end().ends_with(" cat"))
        .map(|l| l.trim().split('%').next().unwrap().trim().parse::<f32>().unwrap())
        .collect();
    assert_eq!(pct.len(), 2, "{out}");
    assert!(!out.contains(" car"), "{out}");
    assert!((pct.iter().sum::<f32>() - 100.0).abs() < 0.05, "{out}");
    // A class the probe was not trained on is an error naming it.
    let o = bin()
        .args(["zero-shot", "--device", "cpu", "--classes", "dog,horse", "--model"])
        .arg(hf_dir())
        .arg("--adapter")
        .arg(&pdir)
        .arg(image("rgb_37x53.png"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("horse"), "{err}");

    // The flat manifest layout (method-specific keys at the top level, no "info") and rows
    // of weights read too.
    let flat = d.join("flat");
    std::fs::create_dir_all(&flat).unwrap();
    let fp = model_fingerprint(&m).unwrap();
    std::fs::write(
        flat.join(bundle::MANIFEST),
        serde_json::json!({"method": "linear-probe", "base_model": "tiny", "fingerprint": fp,
            "created": "SystemTime { .. }", "classes": classes, "final": true})
        .to_string(),
    )
    .unwrap();
    let rows: Vec<Vec<f32>> = probe.weight.chunks(p).map(|r| r.to_vec()).collect();
    std::fs::write(
        flat.join(bundle::PROBE_FILE),
        serde_json::json!({"classes": classes, "weights": rows, "bias": probe.bias, "l2": probe.l2}).to_string(),
    )
    .unwrap();
    let man = Manifest::read(&flat).unwrap();
    assert_eq!(man.info["final"], true);
    assert_eq!(man.model_shape, None);
    let (mut m2, mut tok2) = load_hf();
    let ad = load_adapters(&mut m2, &mut tok2, &[flat]).unwrap();
    assert_eq!(ad.linear_probes()[0].1.probe.weight, probe.weight);

    // A probe for another projection width is refused.
    let bad = d.join("bad");
    let wide = LinearProbe {
        weight: vec![0.0; c * 8],
        bias: vec![0.0; c],
        c,
        d: 8,
        l2: 0.0,
    };
    bundle::save_linear_probe(&bad, &wide, &classes, &m, "tiny").unwrap();
    let (mut m3, mut tok3) = load_hf();
    let e = load_adapters(&mut m3, &mut tok3, &[bad]).unwrap_err();
    assert!(
        e.msg.contains("8-dimensional") && e.msg.contains("24-dimensional"),
        "{}",
        e.msg
    );
}
