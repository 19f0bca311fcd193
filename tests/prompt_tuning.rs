//! CoOp prompt tuning on the tiny fixture model: exactness against zero-shot, a small training
//! run that must learn, save/load, and bad input.
mod common;
use common::{err_msg, load_tiny, max_abs, param_bits, strings, tiny_model_dir};
use std::path::PathBuf;

use cliptune::adapt::prompt::PromptLearner;
use cliptune::autograd::Tape;
use cliptune::backend::Device;
use cliptune::clip::{zero_shot, Clip, WeightStorage};
use cliptune::tensor::Rng;
use cliptune::train::AdamW;
use cliptune::Tensor;

fn tmp(name: &str) -> PathBuf {
    // Inside a fresh directory of this call alone: a directory shared by the tests of one
    // process let one test see another's half-written `.tmp` file.
    let d = tempfile::Builder::new()
        .prefix(&"cliptune-prompt-")
        .tempdir()
        .unwrap()
        .keep();
    d.join(name)
}

#[test]
fn init_from_phrase_reproduces_zero_shot() {
    let (model, tok) = load_tiny();
    // Class names of different token lengths: EOT sits at a different position per class.
    let classes = strings(&["dog", "red sports car", "aeroplane", "cat", "golden retriever puppy"]);
    let zs = zero_shot::class_embeddings(&model, &tok, &classes, &["a photo of a {}.".to_string()])
        .unwrap()
        .to_vec()
        .unwrap();
    for class_specific in [false, true] {
        let pl = PromptLearner::new(&model, &tok, &classes, 16, Some("a photo of a"), class_specific, 0).unwrap();
        assert_eq!(pl.n_ctx, 4, "n_ctx comes from the phrase's token count");
        let inf = pl.class_embeddings(&model).unwrap();
        assert_eq!(inf.shape(), &[classes.len(), model.config.projection_dim]);
        let e = max_abs(&inf.to_vec().unwrap(), &zs);
        eprintln!("class_specific={class_specific}: CoOp(init) vs zero-shot max abs diff {e:.2e}");
        assert!(
            e < 1e-5,
            "CoOp initialised from the phrase differs from zero-shot by {e}"
        );
        // The recording (training) path computes the same values.
        let tape = Tape::new();
        let f = pl.class_features(&model, &tape).unwrap();
        assert!(f.requires_grad());
        assert!(max_abs(&f.value.to_vec().unwrap(), &zs) < 1e-5);
    }
}

#[test]
fn random_init_shapes_and_gradients_reach_ctx_only() {
    let (model, tok) = load_tiny();
    let classes = strings(&["dog", "cat", "car"]);
    let w = model.config.text.tower.width;
    let shared = PromptLearner::new(&model, &tok, &classes, 16, None, false, 7).unwrap();
    assert_eq!(shared.ctx.value.shape(), &[16, w]);
    let std = {
        let v = shared.ctx.value.to_vec().unwrap();
        (v.iter().map(|x| x * x).sum::<f32>() / v.len() as f32).sqrt()
    };
    assert!((0.01..0.03).contains(&std), "N(0, 0.02) init, got std {std}");
    let spec = PromptLearner::new(&model, &tok, &classes, 3, None, true, 7).unwrap();
    assert_eq!(spec.ctx.value.shape(), &[3, 3, w]);
    for pl in [&shared, &spec] {
        let img = model
            .encode_image(&Tensor::randn(&[2, 3, 32, 32], 1.0, 3, model.device()).unwrap(), 2)
            .unwrap();
        let labels = Tensor::from_u32(vec![0, 2], &[2], model.device()).unwrap();
        let tape = Tape::new();
        let loss = pl.loss(&model, &tape, &img, &labels).unwrap();
        let grads = tape.backward(&loss).unwrap();
        assert_eq!(grads.param_ids(), vec![pl.ctx.id], "only the context gets a gradient");
        let g = grads.get(pl.ctx.id).unwrap().to_vec().unwrap();
        assert!(g.iter().all(|x| x.is_finite()) && g.iter().any(|x| *x != 0.0));
    }
}

/// The shared-context path computes BOS + context once for all classes (causal attention
/// makes that prefix identical per class): its features and the context's gradient must
/// equal the plain path that runs every class's whole prompt through the tower.
#[test]
fn shared_prefix_path_equals_the_full_prompts_with_gradients() {
    let (model, tok) = load_tiny();
    let classes = strings(&["dog", "red sports car", "aeroplane", "golden retriever puppy"]);
    let pl = PromptLearner::new(&model, &tok, &classes, 6, None, false, 5).unwrap();
    let p = model.config.projection_dim;
    let r = Tensor::randn(&[classes.len(), p], 1.0, 9, model.device()).unwrap();
    let run = |shared: bool| {
        let tape = Tape::new();
        let f = if shared {
            pl.class_features(&model, &tape).unwrap()
        } else {
            let (x, eot) = pl.prompt_embeddings(&model, &tape).unwrap();
            model
                .text_features_from_embeddings(&tape, &x, &eot)
                .unwrap()
                .l2norm()
                .unwrap()
        };
        let loss = f.mul(&tape.constant(r.clone())).unwrap().sum_all().unwrap();
        let g = tape.backward(&loss).unwrap();
        (f.value.to_vec().unwrap(), g.get(pl.ctx.id).unwrap().to_vec().unwrap())
    };
    let (fs, gs) = run(true);
    let (ff, gf) = run(false);
    let (ef, eg) = (max_abs(&fs, &ff), max_abs(&gs, &gf));
    let gmax = gf.iter().fold(0f32, |m, x| m.max(x.abs()));
    eprintln!("shared prefix vs full prompts: features {ef:.2e}, ctx grad {eg:.2e} (max |g| {gmax:.2e})");
    assert!(ef < 1e-5, "features differ by {ef}");
    assert!(eg < 1e-5 * gmax.max(1.0), "context gradients differ by {eg}");
}

/// Synthetic "image features" around the zero-shot embeddings of the classes, permuted, so
/// zero-shot is wrong on every image and CoOp has to learn. The tiny random model's class
/// embeddings share one dominant direction (pairwise cosine ~0.99), so the features are drawn
/// around the class embeddings minus their mean: what tells the classes apart.
fn synthetic(model: &Clip, zs: &[f32], classes: usize, per_class: usize, seed: u64) -> (Tensor, Tensor, Vec<u32>) {
    let p = model.config.projection_dim;
    let mean: Vec<f32> = (0..p)
        .map(|k| (0..classes).map(|c| zs[c * p + k]).sum::<f32>() / classes as f32)
        .collect();
    let mut zs: Vec<f32> = zs.iter().enumerate().map(|(i, x)| x - mean[i % p]).collect();
    for row in zs.chunks_mut(p) {
        let n = row.iter().map(|x| x * x).sum::<f32>().sqrt();
        row.iter_mut().for_each(|x| *x /= n);
    }
    let perm = |c: usize| (c + 1) % classes;
    let mut rng = Rng::new(seed);
    let mut feats = vec![];
    let mut labels = vec![];
    for c in 0..classes {
        for _ in 0..per_class {
            let src = &zs[perm(c) * p..(perm(c) + 1) * p];
            let mut v: Vec<f32> = src.iter().map(|x| x + 0.05 * rng.normal()).collect();
            let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            v.iter_mut().for_each(|x| *x /= n);
            feats.extend(v);
            labels.push(c as u32);
        }
    }
    let n = labels.len();
    (
        Tensor::from_vec(feats, &[n, p], model.device()).unwrap(),
        Tensor::from_u32(labels.clone(), &[n], model.device()).unwrap(),
        labels,
    )
}

fn accuracy(model: &Clip, pl: &PromptLearner, img: &Tensor, labels: &[u32]) -> f32 {
    let cls = pl.class_embeddings(model).unwrap();
    let logits = model.logits(img, &cls).unwrap().to_vec().unwrap();
    let c = pl.classes.len();
    let ok = labels
        .iter()
        .enumerate()
        .filter(|(i, &l)| {
            let row = &logits[i * c..(i + 1) * c];
            let best = (0..c).max_by(|&a, &b| row[a].total_cmp(&row[b])).unwrap();
            best == l as usize
        })
        .count();
    ok as f32 / labels.len() as f32
}

#[test]
fn coop_learns_where_zero_shot_fails() {
    let (model, tok) = load_tiny();
    let classes = strings(&["dog", "cat", "car"]);
    let zs = zero_shot::class_embeddings(&model, &tok, &classes, &["a photo of a {}.".to_string()])
        .unwrap()
        .to_vec()
        .unwrap();
    let (img, labels, lab) = synthetic(&model, &zs, 3, 8, 1);
    let before = param_bits(&model);
    // CoOp's three set-ups: phrase init shared / per class, and 16 random shared vectors.
    for (init, class_specific) in [
        (Some("a photo of a"), false),
        (Some("a photo of a"), true),
        (None, false),
    ] {
        let mut pl = PromptLearner::new(&model, &tok, &classes, 16, init, class_specific, 0).unwrap();
        let ctx0 = pl.ctx.value.to_vec().unwrap();
        let acc0 = accuracy(&model, &pl, &img, &lab);
        if init.is_some() {
            assert_eq!(acc0, 0.0, "zero-shot is wrong on every synthetic image");
        }
        let mut opt = AdamW::new(1e-1, 0.0);
        let mut losses = vec![];
        for _ in 0..50 {
            let tape = Tape::new();
            let loss = pl.loss(&model, &tape, &img, &labels).unwrap();
            losses.push(loss.value.item().unwrap());
            let grads = tape.backward(&loss).unwrap();
            opt.step(&mut pl.params_mut(), &grads).unwrap();
        }
        let tape = Tape::inference();
        let last = pl.loss(&model, &tape, &img, &labels).unwrap().value.item().unwrap();
        let acc1 = accuracy(&model, &pl, &img, &lab);
        eprintln!(
            "init={init:?} class_specific={class_specific}: loss {:.4} -> {last:.4}, accuracy {acc0:.2} -> {acc1:.2}",
            losses[0]
        );
        assert!(
            last < 0.6 * losses[0],
            "loss did not fall enough: {} -> {last}",
            losses[0]
        );
        assert!(acc1 >= 0.9 && acc1 > acc0, "accuracy did not rise: {acc0} -> {acc1}");
        assert_ne!(pl.ctx.value.to_vec().unwrap(), ctx0, "the context changed");
    }
    assert!(
        param_bits(&model) == before,
        "every model parameter is bit-identical after training"
    );
}

#[test]
fn save_and_load_round_trip() {
    let (model, tok) = load_tiny();
    let classes = strings(&["dog", "red sports car"]);
    for (init, class_specific) in [(Some("a photo of a"), true), (None, false)] {
        let mut pl = PromptLearner::new(&model, &tok, &classes, 5, init, class_specific, 11).unwrap();
        // Make it differ from any init.
        let v: Vec<f32> = pl.ctx.value.to_vec().unwrap().iter().map(|x| x * 1.5 + 0.01).collect();
        pl.ctx.value = Tensor::from_vec(v, pl.ctx.value.shape(), model.device()).unwrap();
        let path = tmp(&format!("ctx-{class_specific}.safetensors"));
        pl.save(&path).unwrap();
        let back = PromptLearner::load(&path, &model, &tok).unwrap();
        assert_eq!(back.classes, pl.classes);
        assert_eq!(back.n_ctx, pl.n_ctx);
        assert_eq!(back.class_specific, class_specific);
        assert_eq!(back.ctx_init.as_deref(), init);
        assert!(back.ctx.trainable);
        assert_eq!(back.ctx.value.to_vec().unwrap(), pl.ctx.value.to_vec().unwrap());
        assert_eq!(
            back.class_embeddings(&model).unwrap().to_vec().unwrap(),
            pl.class_embeddings(&model).unwrap().to_vec().unwrap()
        );
        // No temporary files left behind.
        let dir = path.parent().unwrap();
        assert!(std::fs::read_dir(dir)
            .unwrap()
            .all(|e| !e.unwrap().file_name().to_string_lossy().ends_with(".tmp")));
    }
}

#[test]
fn refuses_another_model_and_bad_files() {
    let (model, tok) = load_tiny();
    let classes = strings(&["dog", "cat"]);
    let pl = PromptLearner::new(&model, &tok, &classes, 4, None, false, 0).unwrap();
    let path = tmp("other.safetensors");
    pl.save(&path).unwrap();

    // Same shapes, other weights: the fingerprint differs.
    let other = Clip::random(model.config.clone(), 99, &Device::Cpu).unwrap();
    let e = PromptLearner::load(&path, &other, &tok).unwrap_err();
    assert!(e.msg.contains("another model"), "{}", e.msg);

    // Another text width.
    let mut cfg = model.config.clone();
    cfg.text.tower.width = 32;
    let wide = Clip::random(cfg, 1, &Device::Cpu).unwrap();
    let e = PromptLearner::load(&path, &wide, &tok).unwrap_err();
    assert!(e.msg.contains("width 16") && e.msg.contains("32"), "{}", e.msg);
    let e = pl.class_embeddings(&wide).unwrap_err();
    assert!(e.msg.contains("width"), "{}", e.msg);

    // Not a safetensors file / missing / another kind of file.
    let junk = tmp("junk.safetensors");
    std::fs::write(&junk, b"not safetensors").unwrap();
    let e = PromptLearner::load(&junk, &model, &tok).unwrap_err();
    assert!(e.msg.contains("junk.safetensors"), "{}", e.msg);
    let e = PromptLearner::load(&tmp("missing.safetensors"), &model, &tok).unwrap_err();
    assert!(e.msg.contains("missing.safetensors"), "{}", e.msg);
    let plain = tmp("plain.safetensors");
    cliptune::tensor::io::write_safetensors(&plain, &[("ctx", &pl.ctx.value)]).unwrap();
    let e = PromptLearner::load(&plain, &model, &tok).unwrap_err();
    assert!(e.msg.contains("format"), "{}", e.msg);
}

#[test]
fn bad_input_is_an_error_not_a_panic() {
    let (model, tok) = load_tiny();
    let dev = model.device().clone();
    let new = |classes: &[&str], n: usize, init: Option<&str>| {
        PromptLearner::new(&model, &tok, &strings(classes), n, init, false, 0)
    };
    assert!(new(&[], 4, None).unwrap_err().msg.contains("no classes"));
    assert!(new(&["dog", " "], 4, None).unwrap_err().msg.contains("empty"));
    assert!(new(&["dog", "dog"], 4, None).unwrap_err().msg.contains("twice"));
    assert!(new(&["dog"], 0, None).unwrap_err().msg.contains("at least 1"));
    assert!(new(&["dog"], 4, Some("  ")).unwrap_err().msg.contains("no tokens"));
    assert!(new(&["dog"], 80, None).unwrap_err().msg.contains("context length"));
    assert!(new(&["dog<|endoftext|>x"], 4, None)
        .unwrap_err()
        .msg
        .contains("end-of-text"));

    let pl = new(&["dog", "cat"], 4, None).unwrap();
    let p = model.config.projection_dim;
    let img = Tensor::zeros(&[2, p], &dev).unwrap();
    let tape = Tape::new();
    let bad_label = Tensor::from_u32(vec![0, 2], &[2], &dev).unwrap();
    assert!(err_msg(pl.loss(&model, &tape, &img, &bad_label)).contains("out of range"));
    let short = Tensor::from_u32(vec![0], &[1], &dev).unwrap();
    assert!(pl.loss(&model, &tape, &img, &short).is_err());
    let float_labels = Tensor::zeros(&[2], &dev).unwrap();
    assert!(pl.loss(&model, &tape, &img, &float_labels).is_err());
    let wrong_width = Tensor::zeros(&[2, p + 1], &dev).unwrap();
    let ok_labels = Tensor::from_u32(vec![0, 1], &[2], &dev).unwrap();
    assert!(pl.loss(&model, &tape, &wrong_width, &ok_labels).is_err());
    let empty = Tensor::zeros(&[0, p], &dev).unwrap();
    let no_labels = Tensor::from_u32(vec![], &[0], &dev).unwrap();
    assert!(pl.loss(&model, &tape, &empty, &no_labels).is_err());
}

/// The same learner on the WGSL backend (lavapipe in CI): class embeddings, loss and the
/// context gradient agree with the CPU backend.
#[test]
fn wgsl_backend_matches_cpu() {
    let (model, tok) = load_tiny();
    let gpu_model = Clip::load(&tiny_model_dir(), &common::gpu(), WeightStorage::AsStored).unwrap();
    let classes = strings(&["dog", "red sports car", "cat"]);
    let zs = zero_shot::class_embeddings(&model, &tok, &classes, &["a photo of a {}.".to_string()])
        .unwrap()
        .to_vec()
        .unwrap();
    for class_specific in [false, true] {
        let pl = PromptLearner::new(&model, &tok, &classes, 16, Some("a photo of a"), class_specific, 0).unwrap();
        let gl = PromptLearner::new(&gpu_model, &tok, &classes, 16, Some("a photo of a"), class_specific, 0).unwrap();
        let g = gl.class_embeddings(&gpu_model).unwrap().to_vec().unwrap();
        assert!(
            common::rel_err(&zs, &g) < 1e-4,
            "WGSL CoOp(init) vs zero-shot: {}",
            common::rel_err(&zs, &g)
        );
        let p = model.config.projection_dim;
        let feats = common::randn(&[4, p], 5);
        let labels = vec![0u32, 2, 1, 2];
        let mut grads = vec![];
        let mut losses = vec![];
        for (m, l) in [(&model, &pl), (&gpu_model, &gl)] {
            let img = Tensor::from_slice(&feats, &[4, p], m.device())
                .unwrap()
                .l2norm()
                .unwrap()
                .0;
            let lab = Tensor::from_u32(labels.clone(), &[4], m.device()).unwrap();
            let tape = Tape::new();
            let loss = l.loss(m, &tape, &img, &lab).unwrap();
            losses.push(loss.value.item().unwrap());
            grads.push(tape.backward(&loss).unwrap().get(l.ctx.id).unwrap().to_vec().unwrap());
        }
        assert!(
            (losses[0] - losses[1]).abs() < 1e-4,
            "loss cpu {} vs wgsl {}",
            losses[0],
            losses[1]
        );
        let e = common::rel_err(&grads[0], &grads[1]);
        eprintln!("class_specific={class_specific}: WGSL vs CPU ctx gradient rel err {e:.2e}");
        assert!(e < 1e-3);
    }
}
