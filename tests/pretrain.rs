//! `cliptune pretrain` (CLIP from scratch, how cliptune-mini is made): the pruned tokenizer,
//! a tiny run that learns, its output loading like any model directory, exact resume, and
//! the user errors.
use std::path::{Path, PathBuf};

use cliptune::clip::tokenizer::ClipTokenizer;
use cliptune::clip::{Clip, WeightStorage};
use cliptune::train::pretrain::{pretrain, PretrainArgs};
use cliptune::Device;

const COLOURS: [(&str, [u8; 3]); 4] = [
    ("red", [220, 30, 30]),
    ("green", [30, 180, 40]),
    ("blue", [30, 60, 220]),
    ("yellow", [240, 220, 20]),
];
const SHAPES: [&str; 4] = ["circle", "square", "stripe", "cross"];

/// 16 tiny "emoji" (a coloured shape on white) with two sentence captions each.
fn corpus(dir: &Path) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let mut csv = String::from("image,caption\n");
    for (c, (cname, rgb)) in COLOURS.iter().enumerate() {
        for (s, shape) in SHAPES.iter().enumerate() {
            let img = image::RgbImage::from_fn(32, 32, |x, y| {
                let (dx, dy) = (x as i32 - 16, y as i32 - 16);
                let inside = match s {
                    0 => dx * dx + dy * dy < 100,
                    1 => dx.abs() < 9 && dy.abs() < 9,
                    2 => dy.abs() < 4,
                    _ => dx.abs() < 3 || dy.abs() < 3,
                };
                image::Rgb(if inside { *rgb } else { [255, 255, 255] })
            });
            let name = format!("{c}_{s}.png");
            img.save(dir.join(&name)).unwrap();
            csv += &format!("{name},an emoji of a {cname} {shape}.\n");
            csv += &format!("{name},\"a {shape}, coloured {cname}.\"\n");
        }
    }
    let path = dir.join("corpus.csv");
    std::fs::write(&path, csv).unwrap();
    path
}

fn args(data: &Path, out: &Path) -> PretrainArgs {
    PretrainArgs {
        data: data.to_path_buf(),
        config: "cliptune-tiny".into(),
        vocab_texts: vec![],
        templates: vec!["an emoji of a {}.".into()],
        out: out.to_path_buf(),
        epochs: 40,
        batch: 8,
        lr: 3e-3,
        weight_decay: 0.1,
        warmup: 5,
        max_grad_norm: 1.0,
        seed: 3,
        max_steps: Some(60),
        stop_after: None,
        resume: false,
        ckpt_every: 0,
        heldout: None,
        eval_every: 0,
        augment: true,
        device: Device::Cpu,
        progress: false,
    }
}

fn tmp(name: &str) -> PathBuf {
    // A path that does not exist yet, inside a fresh directory of this call alone.
    let parent = tempfile::Builder::new()
        .prefix(&format!("cliptune_pretrain_{name}_"))
        .tempdir()
        .unwrap()
        .keep();
    parent.join(name)
}

#[test]
fn pruned_tokenizer_keeps_the_corpus_tokens_and_encodes_anything() {
    let full = ClipTokenizer::embedded().unwrap();
    let texts: Vec<String> = [
        "an emoji of a grinning face.",
        "a photo of a t-shirt.",
        "ankle boot, sneaker",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let small = full.pruned(&texts).unwrap();
    assert!(small.vocab_size() < 700, "vocabulary {}", small.vocab_size());
    assert_eq!(small.eos_id() as usize, small.vocab_size() - 1);
    assert_eq!(small.bos_id() + 1, small.eos_id());
    // Same token strings on the kept texts.
    for t in &texts {
        let a: Vec<String> = full
            .encode(t)
            .unwrap()
            .iter()
            .map(|&i| full.id_to_token(i).unwrap())
            .collect();
        let b: Vec<String> = small
            .encode(t)
            .unwrap()
            .iter()
            .map(|&i| small.id_to_token(i).unwrap())
            .collect();
        assert_eq!(a, b, "{t}");
    }
    // An unseen word still encodes (byte symbols are kept) and nothing maps to EOS inside.
    let ids = small.encode("zebra crossing 123").unwrap();
    assert!(ids.len() > 4);
    assert!(ids[1..ids.len() - 1].iter().all(|&i| i < small.bos_id()));
    let decoded = small.inner().decode(&ids, true).unwrap();
    // (the byte-level decoder leaves CLIP's end-of-word marks in place)
    assert_eq!(decoded.replace("</w>", " ").trim(), "zebra crossing 1 2 3");
}

#[test]
fn tiny_pretrain_learns_and_writes_a_loadable_model() {
    let dir = tmp("learn");
    let data = corpus(&dir.join("data"));
    let out = dir.join("model");
    let s = pretrain(args(&data, &out)).unwrap();
    assert_eq!(s.steps, 60);
    assert!(s.first_loss.is_finite() && s.last_loss.is_finite());
    // ln(8) = 2.08 is chance for a batch of 8.
    assert!(
        s.last_loss < 0.6 * s.first_loss,
        "loss {} -> {}",
        s.first_loss,
        s.last_loss
    );
    for f in [
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "preprocessor_config.json",
        "templates.txt",
        "pretrain_log.jsonl",
        "loss_curve.png",
        "loss_curve.svg",
        "metrics.json",
    ] {
        assert!(out.join(f).is_file(), "{f} missing");
    }
    // The SVG is a file of its own: an XML declaration, a title, real text in the font the
    // PNG was drawn with.
    let svg = std::fs::read_to_string(out.join("loss_curve.svg")).unwrap();
    assert!(
        svg.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<svg"),
        "{}",
        &svg[..80.min(svg.len())]
    );
    assert!(svg.contains("<title>cliptune pretrain: training loss</title>"));
    assert!(
        svg.contains("font-family=\"DejaVu Sans, Bitstream Vera Sans, sans-serif\""),
        "SVG text does not name DejaVu Sans"
    );
    assert!(
        svg.lines().any(|l| l.trim() == "step"),
        "the x-axis label is not SVG text"
    );
    // Loads like any HF model directory (f16 weights, the pruned tokenizer), and tells
    // the shapes apart: a red circle is closer to its caption than to a blue square's.
    let model = Clip::load(&out, &Device::Cpu, WeightStorage::AsStored).unwrap();
    let tok = ClipTokenizer::for_model_dir(&out).unwrap();
    assert_eq!(model.config.text.vocab, tok.vocab_size());
    assert_eq!(model.config.text.eot_id, tok.eos_id());
    let set = cliptune::eval::suite::load_labeled(data.parent().unwrap().to_str().unwrap(), None);
    assert!(set.is_err(), "the corpus dir is not class folders");
    let r = cliptune::eval::suite::retrieval_eval(&model, &tok, Some(&out), &data).unwrap();
    assert!(
        r.metrics.i2t[0] > 0.25,
        "image->text R@1 {} on the training set",
        r.metrics.i2t[0]
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn resume_continues_bit_for_bit() {
    let dir = tmp("resume");
    let data = corpus(&dir.join("data"));
    let mut a = args(&data, &dir.join("whole"));
    a.max_steps = Some(12);
    pretrain(a).unwrap();
    let mut b = args(&data, &dir.join("split"));
    b.max_steps = Some(12);
    b.stop_after = Some(5);
    assert_eq!(pretrain(b).unwrap().steps, 5);
    let mut c = args(&data, &dir.join("split"));
    c.max_steps = Some(12);
    c.resume = true;
    assert_eq!(pretrain(c).unwrap().steps, 12);
    let whole = std::fs::read(dir.join("whole/trainer_state.safetensors")).unwrap();
    let split = std::fs::read(dir.join("split/trainer_state.safetensors")).unwrap();
    assert!(whole == split, "resumed state differs from the uninterrupted run");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The steps in a pretrain log, in order.
fn logged_steps(out: &Path) -> Vec<u64> {
    std::fs::read_to_string(out.join("pretrain_log.jsonl"))
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["step"].as_u64())
        .collect()
}

/// A caller's stop lands between steps while the last step's loss is still pending (it is
/// looked at one step late): the loop settles it first, so the log holds every step up to
/// the interrupt once, and `--resume` reaches the uninterrupted run's bytes.
#[test]
fn an_interrupted_pretrain_logs_its_last_step_and_resumes_bit_for_bit() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let dir = tmp("interrupt");
    let data = corpus(&dir.join("data"));
    pretrain(args(&data, &dir.join("whole"))).unwrap();
    let split = dir.join("split");
    let flag = std::sync::Arc::new(AtomicBool::new(false));
    // Stop once two steps are logged, from another thread, as a Ctrl-C would.
    let watcher = {
        let (flag, log) = (flag.clone(), split.join("pretrain_log.jsonl"));
        std::thread::spawn(move || {
            for _ in 0..60_000 {
                let lines = std::fs::read_to_string(&log).map(|t| t.lines().count()).unwrap_or(0);
                if lines >= 2 {
                    flag.store(true, Ordering::SeqCst);
                    return;
                }
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
        })
    };
    let e = cliptune::cancel::scoped(flag, || pretrain(args(&data, &split)))
        .err()
        .expect("the run was not interrupted")
        .to_string();
    watcher.join().unwrap();
    let steps = logged_steps(&split);
    let s = steps.len() as u64;
    assert!(s < 60, "interrupted after the last step");
    assert_eq!(
        steps,
        (1..=s).collect::<Vec<_>>(),
        "each step up to the interrupt logged once"
    );
    assert!(e.contains(&format!("interrupted after step {s};")), "{e}");
    let mut c = args(&data, &split);
    c.resume = true;
    assert_eq!(pretrain(c).unwrap().steps, 60);
    assert_eq!(logged_steps(&split), (1..=60).collect::<Vec<_>>());
    let whole = std::fs::read(dir.join("whole/trainer_state.safetensors")).unwrap();
    let resumed = std::fs::read(split.join("trainer_state.safetensors")).unwrap();
    assert!(whole == resumed, "resumed state differs from the uninterrupted run");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn user_errors_are_clear() {
    let dir = tmp("errors");
    let data = corpus(&dir.join("data"));
    // An occupied directory that is not ours.
    let occupied = dir.join("occupied");
    std::fs::create_dir_all(&occupied).unwrap();
    std::fs::write(occupied.join("notes.txt"), "mine").unwrap();
    let e = pretrain(args(&data, &occupied)).err().unwrap().to_string();
    assert!(e.contains("not empty") && e.contains("occupied"), "{e}");
    assert_eq!(std::fs::read_to_string(occupied.join("notes.txt")).unwrap(), "mine");
    // A batch larger than the corpus.
    let mut a = args(&data, &dir.join("big"));
    a.batch = 64;
    let e = pretrain(a).err().unwrap().to_string();
    assert!(e.contains("fewer than one batch"), "{e}");
    // Unknown config names list the valid ones.
    let mut a = args(&data, &dir.join("cfg"));
    a.config = "vit-h-14".into();
    let e = pretrain(a).err().unwrap().to_string();
    assert!(e.contains("cliptune-mini") && e.contains("vit-h-14"), "{e}");
    // Resume without a state.
    let mut a = args(&data, &dir.join("fresh"));
    a.resume = true;
    let e = pretrain(a).err().unwrap().to_string();
    assert!(e.contains("--resume"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}
