//! Each method trained on a small real labelled set (Fashion-MNIST from the Debian
//! package, installed by .ci/run) with the tiny fixture CLIP beats its own step-0
//! accuracy on held-out images, and the base checkpoint's bytes are unchanged.
use std::path::{Path, PathBuf};

use cliptune::adapt::lora::load_peft;
use cliptune::adapt::lora::LoraConfig;
use cliptune::adapt::prompt::PromptLearner;
use cliptune::clip::tokenizer::ClipTokenizer;
use cliptune::clip::zero_shot::class_embeddings;
use cliptune::clip::{Clip, WeightStorage};
use cliptune::eval::metrics::topk_accuracy;
use cliptune::eval::suite::{image_embeddings, load_labeled, LabeledSet};
use cliptune::train::run::{train, Method, TrainArgs};
use cliptune::{Device, Tensor};

fn model_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny-clip/hf")
}

fn out(name: &str) -> PathBuf {
    // A path that does not exist yet, inside a fresh directory of this call alone.
    let parent = tempfile::Builder::new()
        .prefix(&format!("cliptune-train-{name}-"))
        .tempdir()
        .unwrap()
        .keep();
    parent.join(name)
}

fn args(method: Method, data: &str, out: PathBuf) -> TrainArgs {
    TrainArgs {
        method,
        model_dir: model_dir(),
        data: data.into(),
        classes_file: None,
        out,
        epochs: 8,
        batch: 32,
        lr: None,
        weight_decay: 0.0,
        warmup: Some(5),
        max_grad_norm: 1.0,
        seed: 1,
        max_steps: None,
        min_steps: None,
        ckpt_every: 0,
        lora: LoraConfig::parse(4, 8.0, 0.0, "q,v,fc1", "text,vision", None).unwrap(),
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
        min_retention: 0.98,
        retention_every: 10,
        resume: false,
        stop_after: None,
        objectives: Default::default(),
        probe: cliptune::train::linear_probe::ProbeOptions::from_scratch(),
    }
}

/// Held-out zero-shot top-1 with class text embeddings `cls` [classes, P].
fn accuracy(model: &Clip, test: &LabeledSet, cls: &Tensor) -> f32 {
    let img = image_embeddings(model, Some(&model_dir()), &test.source).unwrap();
    let p = model.config.projection_dim;
    let n = test.len();
    let c = test.classes.len();
    let cv = cls.to_vec().unwrap();
    let scores: Vec<f32> = (0..n)
        .flat_map(|i| (0..c).map(move |j| (i, j)))
        .map(|(i, j)| (0..p).map(|k| img[i * p + k] * cv[j * p + k]).sum())
        .collect();
    topk_accuracy(&scores, n, c, &test.labels, 1).unwrap()
}

fn base_accuracy(test: &LabeledSet) -> f32 {
    let m = Clip::load(&model_dir(), &Device::Cpu, WeightStorage::AsStored).unwrap();
    let tok = ClipTokenizer::for_model_dir(&model_dir()).unwrap();
    let cls = class_embeddings(&m, &tok, &test.classes, &["a photo of a {}.".to_string()]).unwrap();
    accuracy(&m, test, &cls)
}

fn checkpoint_bytes() -> Vec<u8> {
    std::fs::read(model_dir().join("model.safetensors")).unwrap()
}

#[test]
fn prompt_lora_probe_and_full_beat_step_zero_and_leave_the_base_alone() {
    let before = checkpoint_bytes();
    let test = load_labeled("fashion-mnist:test:30", None).unwrap();
    let base = base_accuracy(&test);
    eprintln!("step-0 zero-shot top-1: {:.1}%", 100.0 * base);
    let tok = ClipTokenizer::for_model_dir(&model_dir()).unwrap();

    // CoOp from "a photo of a": step 0 is exactly the zero-shot classifier.
    let o = out("prompt");
    let mut a = args(Method::Prompt, "fashion-mnist:train:30", o.clone());
    // The fixture's random text tower maps all class prompts close together: a tiny
    // model needs a larger step than CoOp's 2e-3 on a real CLIP.
    a.lr = Some(5e-2);
    a.epochs = 30;
    let s = train(a).unwrap();
    let m = Clip::load(&model_dir(), &Device::Cpu, WeightStorage::AsStored).unwrap();
    let p = PromptLearner::load(&o.join("prompt.safetensors"), &m, &tok).unwrap();
    let acc = accuracy(&m, &test, &p.class_embeddings(&m).unwrap());
    eprintln!(
        "prompt: loss {:.3} -> {:.3}, held-out top-1 {:.1}%",
        s.first_loss,
        s.last_loss,
        100.0 * acc
    );
    assert!(acc > base + 0.02, "prompt tuning {acc} does not beat step 0 {base}");

    // LoRA (B = 0 at step 0: the base).
    let o = out("lora");
    let mut a = args(Method::Lora, "fashion-mnist:train:30", o.clone());
    a.lr = Some(5e-3);
    let s = train(a).unwrap();
    let mut m = Clip::load(&model_dir(), &Device::Cpu, WeightStorage::AsStored).unwrap();
    load_peft(&mut m, &o).unwrap();
    let cls = class_embeddings(&m, &tok, &test.classes, &["a photo of a {}.".to_string()]).unwrap();
    let acc = accuracy(&m, &test, &cls);
    eprintln!(
        "lora: loss {:.3} -> {:.3}, held-out top-1 {:.1}%",
        s.first_loss,
        s.last_loss,
        100.0 * acc
    );
    assert!(acc > base + 0.02, "lora {acc} does not beat step 0 {base}");

    // Linear probe (step 0 = zero weights = chance).
    let o = out("probe");
    let s = train(args(Method::LinearProbe, "fashion-mnist:train:30", o.clone())).unwrap();
    let j: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(o.join("linear_probe.json")).unwrap()).unwrap();
    let w: Vec<f32> = j["weight"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect();
    let b: Vec<f32> = j["bias"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect();
    let probe = cliptune::eval::linear_probe::LinearProbe {
        weight: w,
        bias: b,
        c: 10,
        d: 24,
        l2: j["l2"].as_f64().unwrap() as f32,
    };
    let m = Clip::load(&model_dir(), &Device::Cpu, WeightStorage::AsStored).unwrap();
    let x = image_embeddings(&m, Some(&model_dir()), &test.source).unwrap();
    let acc = probe.accuracy(&x, &test.labels, test.len()).unwrap();
    eprintln!("linear probe: {} fits, held-out top-1 {:.1}%", s.steps, 100.0 * acc);
    assert!(acc > 0.1 + 0.1, "linear probe {acc} does not beat chance");

    // Full fine-tuning with WiSE-FT halfway back.
    let o = out("full");
    let mut a = args(Method::Full, "fashion-mnist:train:30", o.clone());
    a.lr = Some(1e-3);
    a.wise_alpha = 0.5;
    let s = train(a).unwrap();
    // The manifest's creation time is RFC 3339 UTC, not a Debug-printed SystemTime.
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(o.join("cliptune_adapter.json")).unwrap()).unwrap();
    let created = manifest["created"].as_str().unwrap();
    let b = created.as_bytes();
    assert!(
        b.len() == 20
            && b[4] == b'-'
            && b[7] == b'-'
            && b[10] == b'T'
            && b[13] == b':'
            && b[16] == b':'
            && b[19] == b'Z'
            && created.chars().filter(|c| c.is_ascii_digit()).count() == 14,
        "created: {created}"
    );
    let m = Clip::load(&o, &Device::Cpu, WeightStorage::AsStored).unwrap();
    let cls = class_embeddings(&m, &tok, &test.classes, &["a photo of a {}.".to_string()]).unwrap();
    let acc = accuracy(&m, &test, &cls);
    eprintln!(
        "full (WiSE 0.5): loss {:.3} -> {:.3}, held-out top-1 {:.1}%",
        s.first_loss,
        s.last_loss,
        100.0 * acc
    );
    assert!(acc > base + 0.02, "full fine-tuning {acc} does not beat step 0 {base}");

    assert!(before == checkpoint_bytes(), "the base checkpoint's bytes changed");
}

#[test]
fn textual_inversion_learns_a_word_and_bad_runs_stop_cleanly() {
    // Three pictures of "<sks>", each with its own caption, plus hard negatives.
    let imgs = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/preprocess/inputs");
    let dir = out("ti-data");
    std::fs::create_dir_all(&dir).unwrap();
    let data = dir.join("caps.csv");
    std::fs::write(
        &data,
        format!(
            "image,caption,negatives\n{},a photo of <sks> on a table,a photo of a dog\n{},<sks> in the snow,a photo of a cat\n{},a close-up of <sks>,a red car\n",
            imgs.join("rgb_37x53.png").display(),
            imgs.join("photo_80x60.jpg").display(),
            imgs.join("palette_45x31.png").display()
        ),
    )
    .unwrap();
    let o = out("ti");
    let mut a = args(Method::TextualInversion, data.to_str().unwrap(), o.clone());
    a.new_tokens = vec!["<sks>".into()];
    a.init_token = Some("dog".into());
    a.batch = 3;
    a.epochs = 40;
    a.lr = Some(5e-2);
    let s = train(a).unwrap();
    eprintln!("textual inversion: loss {:.3} -> {:.3}", s.first_loss, s.last_loss);
    assert!(s.last_loss < s.first_loss, "textual inversion did not learn");
    assert!(o.join("textual_inversion.safetensors").exists() && o.join("tokenizer.json").exists());

    // A learning rate that makes the loss non-finite: stops with a clear error.
    let mut a = args(Method::Lora, "fashion-mnist:train:4", out("nan"));
    a.lr = Some(1e30);
    a.max_grad_norm = 1e30;
    let e = train(a).err().expect("an infinite lr must stop training");
    assert_eq!(e.kind, cliptune::ErrorKind::NonFinite, "{}", e.msg);
    assert!(e.msg.contains("step"), "{}", e.msg);

    // Refuses to write into a directory holding someone else's files.
    let d = out("occupied");
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join("thesis.tex"), "mine").unwrap();
    let e = train(args(Method::Prompt, "fashion-mnist:train:4", d.clone()))
        .err()
        .unwrap();
    assert!(e.msg.contains("not a cliptune adapter"), "{}", e.msg);
    assert_eq!(std::fs::read_to_string(d.join("thesis.tex")).unwrap(), "mine");

    // Unknown method, empty data.
    assert!("dreambooth".parse::<Method>().unwrap_err().msg.contains("lora"));
    let empty = out("empty-data");
    std::fs::create_dir_all(&empty).unwrap();
    std::fs::write(empty.join("caps.csv"), "").unwrap();
    let e = train(args(Method::Lora, empty.join("caps.csv").to_str().unwrap(), out("e2")))
        .err()
        .unwrap();
    assert!(e.msg.contains("caps.csv"), "{}", e.msg);
}

#[test]
fn retention_guard_scales_lora_back_and_stops_full() {
    // An unreachable floor makes the guard fire at its first check.
    let mut a = args(Method::Lora, "fashion-mnist:train:8", out("guard-lora"));
    a.lr = Some(5e-3);
    a.retention_set = Some("fashion-mnist:test:5".into());
    a.min_retention = 1.5;
    a.retention_every = 2;
    let s = train(a).unwrap();
    let g = s.guard.expect("the guard must act");
    eprintln!("{g}");
    assert!(g.contains("scaled the LoRA update back by 0"), "{g}");
    assert_eq!(s.steps, 2, "the guard stops training at its first failing check");

    let mut a = args(Method::Full, "fashion-mnist:train:8", out("guard-full"));
    a.lr = Some(1e-3);
    a.retention_set = Some("fashion-mnist:test:5".into());
    a.min_retention = 1.5;
    a.retention_every = 2;
    let s = train(a).unwrap();
    let g = s.guard.expect("the guard must act");
    assert!(g.contains("stopped"), "{g}");

    // A reachable floor never fires.
    let mut a = args(Method::Lora, "fashion-mnist:train:8", out("guard-ok"));
    a.retention_set = Some("fashion-mnist:test:5".into());
    a.min_retention = 0.0;
    a.retention_every = 2;
    assert!(train(a).unwrap().guard.is_none());
}

#[test]
fn resume_continues_bit_for_bit() {
    for method in [Method::Lora, Method::Prompt] {
        let file = if method == Method::Lora {
            "adapter_model.safetensors"
        } else {
            "prompt.safetensors"
        };
        let full = out(&format!("resume-full-{method:?}"));
        let mut a = args(method, "fashion-mnist:train:8", full.clone());
        a.lr = Some(5e-3);
        a.epochs = 3;
        a.ckpt_every = 2;
        let s_full = train(a).unwrap();
        // Interrupted after 4 steps, then resumed to the end.
        let part = out(&format!("resume-part-{method:?}"));
        let mut a = args(method, "fashion-mnist:train:8", part.clone());
        a.lr = Some(5e-3);
        a.epochs = 3;
        a.ckpt_every = 2;
        a.stop_after = Some(4);
        train(a).unwrap();
        let mut a = args(method, "fashion-mnist:train:8", part.clone());
        a.lr = Some(5e-3);
        a.epochs = 3;
        a.ckpt_every = 2;
        a.resume = true;
        let s_res = train(a).unwrap();
        assert_eq!(s_res.steps, s_full.steps);
        assert_eq!(
            s_res.last_loss, s_full.last_loss,
            "{method:?}: resumed run's final loss differs"
        );
        assert!(
            std::fs::read(full.join(file)).unwrap() == std::fs::read(part.join(file)).unwrap(),
            "{method:?}: resumed adapter is not bit-identical"
        );
    }
    // Nothing to resume from: a clear error.
    let mut a = args(Method::Lora, "fashion-mnist:train:8", out("resume-none"));
    a.resume = true;
    assert!(train(a).err().unwrap().msg.contains("trainer_state"));
}
