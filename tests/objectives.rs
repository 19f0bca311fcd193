//! The regularising objectives: each term's gradient against finite differences, zero
//! weights reproducing the training of before the terms existed bit for bit (the step
//! losses of tests/fixtures/train_golden, written by the trainer before the restructure),
//! each term pulling what it should toward its anchor, and its bad inputs.
mod common;
use std::path::{Path, PathBuf};

use cliptune::adapt::bundle::load_adapters;
use cliptune::adapt::lora::LoraConfig;
use cliptune::autograd::{Param, Tape, Var};
use cliptune::backend::Device;
use cliptune::clip::tokenizer::ClipTokenizer;
use cliptune::clip::zero_shot::class_embeddings;
use cliptune::clip::{Clip, WeightStorage};
use cliptune::train::objectives::distillation::distillation_term;
use cliptune::train::objectives::feature_preservation::preservation_term;
use cliptune::train::objectives::kgcoop::kgcoop_term;
use cliptune::train::run::{train, Method, TrainArgs};
use cliptune::{Result, Tensor};
use common::cli::{fixture, fresh as tmp};
use common::randn;
use common::tiny_model_dir as model_dir;

type Build = dyn Fn(&Tape, &[Var]) -> Result<Var>;

/// Central differences of the scalar `f` against the tape's gradient, for every input.
fn grad_check(name: &str, shapes: &[&[usize]], f: &Build) {
    let params: Vec<Param> = shapes
        .iter()
        .enumerate()
        .map(|(i, s)| {
            Param::trainable(
                format!("x{i}"),
                Tensor::from_vec(randn(s, 300 + i as u64), s, &Device::Cpu).unwrap(),
            )
        })
        .collect();
    let tape = Tape::new();
    let xs: Vec<Var> = params.iter().map(|p| tape.param(p)).collect();
    let loss = f(&tape, &xs).unwrap();
    assert_eq!(loss.value.numel(), 1, "{name}: not a scalar");
    let grads = tape.backward(&loss).unwrap();
    let eps = 1e-2f32;
    for (pi, p) in params.iter().enumerate() {
        let g = grads.get(p.id).unwrap().to_vec().unwrap();
        let base = p.value.to_vec().unwrap();
        let scale = g.iter().fold(1e-3f32, |m, x| m.max(x.abs()));
        let mut max_err = 0f32;
        for i in 0..base.len() {
            let eval = |delta: f32| -> f32 {
                let mut v = base.clone();
                v[i] += delta;
                let t = Tape::inference();
                let ys: Vec<Var> = params
                    .iter()
                    .enumerate()
                    .map(|(j, q)| {
                        let val = if j == pi { v.clone() } else { q.value.to_vec().unwrap() };
                        t.constant(Tensor::from_vec(val, q.value.shape(), &Device::Cpu).unwrap())
                    })
                    .collect();
                f(&t, &ys).unwrap().value.item().unwrap()
            };
            let num = (eval(eps) - eval(-eps)) / (2.0 * eps);
            max_err = max_err.max((num - g[i]).abs() / scale);
        }
        eprintln!("{name}: input {pi} max rel err {max_err:.2e}");
        assert!(
            max_err < 2e-2,
            "{name}: input {pi}: analytic vs numeric gradient rel err {max_err}"
        );
    }
}

/// A fixed, L2-normalised anchor `[rows, cols]`.
fn anchor(rows: usize, cols: usize, seed: u64) -> Tensor {
    Tensor::from_vec(randn(&[rows, cols], seed), &[rows, cols], &Device::Cpu)
        .unwrap()
        .l2norm()
        .unwrap()
        .0
}

#[test]
fn kgcoop_gradient_matches_finite_differences() {
    let hand = anchor(3, 5, 7);
    grad_check("kgcoop", &[&[3, 5]], &move |t, x| {
        kgcoop_term(t, &x[0].l2norm()?, &hand, 8.0)
    });
}

#[test]
fn feature_preservation_gradient_matches_finite_differences() {
    let frozen = anchor(4, 6, 8);
    grad_check("feature preservation", &[&[4, 6]], &move |t, x| {
        preservation_term(t, &x[0].l2norm()?, &frozen, 2.5)
    });
}

#[test]
fn distillation_gradient_matches_finite_differences() {
    let frozen = Tensor::from_vec(randn(&[3, 3], 9), &[3, 3], &Device::Cpu).unwrap();
    grad_check("reference distillation", &[&[3, 5], &[3, 5]], &move |t, x| {
        distillation_term(t, &x[0].l2norm()?, &x[1].l2norm()?, &frozen, 1.5)
    });
}

#[test]
fn each_term_is_zero_at_its_anchor_and_positive_away() {
    let t = Tape::inference();
    let a = anchor(3, 4, 1);
    let at = kgcoop_term(&t, &t.constant(a.clone()), &a, 5.0)
        .unwrap()
        .value
        .item()
        .unwrap();
    assert_eq!(at, 0.0);
    let away = preservation_term(&t, &t.constant(anchor(3, 4, 2)), &a, 5.0)
        .unwrap()
        .value
        .item()
        .unwrap();
    assert!(away > 0.0, "the term does not see a change: {away}");
}

/// The arguments the golden runs were made with (`cliptune train --seed 3 --device cpu`
/// plus each run's flags, before step floors and regularisers existed): no floor, every
/// regulariser at weight 0.
fn golden_args(method: Method, data: &str, out: PathBuf) -> TrainArgs {
    TrainArgs {
        seed: 3,
        batch: 4,
        epochs: 3,
        min_steps: None,
        objectives: Default::default(),
        ..TrainArgs::new(method, model_dir(), data, out)
    }
}

fn log_of(out: &Path) -> String {
    std::fs::read_to_string(out.join("train_log.jsonl")).unwrap()
}

fn golden(name: &str) -> String {
    std::fs::read_to_string(fixture(&format!("train_golden/{name}.jsonl"))).unwrap()
}

#[test]
fn zero_weights_reproduce_the_training_before_the_terms_bit_for_bit() {
    let d = tmp("golden");
    let classes = fixture("data/classes");
    let mut runs = vec![];
    let mut a = golden_args(Method::Prompt, &classes, d.join("prompt"));
    a.n_ctx = 2;
    runs.push(("prompt", a));
    let mut a = golden_args(Method::Lora, &classes, d.join("lora"));
    a.lr = Some(1e-3);
    a.lora = LoraConfig::parse(8, 16.0, 0.1, "q,v", "text,vision", None).unwrap();
    runs.push(("lora", a));
    let mut a = golden_args(Method::Lora, &fixture("data/captions.csv"), d.join("lorac"));
    a.lr = Some(1e-3);
    runs.push(("lorac", a));
    let mut a = golden_args(Method::Full, &classes, d.join("full"));
    a.epochs = 2;
    a.lr = Some(1e-4);
    a.wise_alpha = 0.5;
    runs.push(("full", a));
    let imgs = common::cli::fixtures().join("preprocess/inputs");
    let caps = d.join("ti.csv");
    std::fs::write(
        &caps,
        format!(
            "image,caption,negatives\n{},a photo of <sks> on a table,a photo of a dog\n{},<sks> in the snow,a photo of a cat\n{},a close-up of <sks>,a red car\n",
            imgs.join("rgb_37x53.png").display(),
            imgs.join("photo_80x60.jpg").display(),
            imgs.join("palette_45x31.png").display()
        ),
    )
    .unwrap();
    let mut a = golden_args(Method::TextualInversion, caps.to_str().unwrap(), d.join("ti"));
    a.epochs = 4;
    a.batch = 3;
    a.new_tokens = vec!["<sks>".into()];
    a.init_token = Some("dog".into());
    runs.push(("ti", a));
    for (name, a) in runs {
        assert_eq!(a.objectives, Default::default(), "{name}: the weights must be zero");
        let out = a.out.clone();
        train(a).unwrap();
        assert_eq!(log_of(&out), golden(name), "{name}: the step losses changed");
    }
}

/// Mean squared distance between two `[n, P]` embedding sets.
fn dist(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum::<f32>()
}

#[test]
fn kgcoop_keeps_the_learned_prompts_near_the_hand_crafted_ones() {
    let d = tmp("kgcoop");
    let classes = fixture("data/classes");
    let (base, tok) = (
        Clip::load(&model_dir(), &Device::Cpu, WeightStorage::AsStored).unwrap(),
        ClipTokenizer::for_model_dir(&model_dir()).unwrap(),
    );
    let names = cliptune::eval::suite::load_labeled(&classes, None).unwrap().classes;
    let hand = class_embeddings(&base, &tok, &names, &["a photo of a {}.".to_string()])
        .unwrap()
        .to_vec()
        .unwrap();
    let mut distance = vec![];
    for w in [0.0f32, 50.0] {
        let out = d.join(format!("w{w}"));
        let mut a = TrainArgs::new(Method::Prompt, model_dir(), &classes, out.clone());
        (a.epochs, a.batch, a.lr, a.n_ctx, a.seed) = (15, 4, Some(2e-2), 4, 1);
        a.objectives.kgcoop = w;
        a.min_steps = None;
        train(a).unwrap();
        let (mut m, mut t) = (base.clone(), tok.clone());
        let ad = load_adapters(&mut m, &mut t, &[out]).unwrap();
        let (_, learner) = ad.prompt().unwrap();
        let learned = learner.class_embeddings(&m).unwrap().to_vec().unwrap();
        distance.push(dist(&learned, &hand));
    }
    eprintln!(
        "distance to the hand-crafted prompts: weight 0 {:.4}, weight 50 {:.4}",
        distance[0], distance[1]
    );
    assert!(distance[0] > 0.0, "the context did not move at all");
    assert!(
        distance[1] < 0.5 * distance[0],
        "KgCoOp did not keep the prompts closer: {distance:?}"
    );
}

#[test]
fn feature_preservation_keeps_lora_features_near_the_base() {
    let d = tmp("preserve");
    let classes = fixture("data/classes");
    let base = Clip::load(&model_dir(), &Device::Cpu, WeightStorage::AsStored).unwrap();
    let tok = ClipTokenizer::for_model_dir(&model_dir()).unwrap();
    let set = cliptune::eval::suite::load_labeled(&classes, None).unwrap();
    let feats = |m: &Clip| cliptune::eval::suite::image_embeddings(m, Some(&model_dir()), &set.source).unwrap();
    let before = feats(&base);
    let mut distance = vec![];
    for w in [0.0f32, 20.0] {
        let out = d.join(format!("w{w}"));
        let mut a = TrainArgs::new(Method::Lora, model_dir(), &classes, out.clone());
        (a.epochs, a.batch, a.lr, a.seed) = (10, 4, Some(1e-2), 1);
        a.objectives.feature_preservation = w;
        a.min_steps = None;
        train(a).unwrap();
        let (mut m, mut t) = (base.clone(), tok.clone());
        load_adapters(&mut m, &mut t, &[out]).unwrap();
        distance.push(dist(&feats(&m), &before));
    }
    eprintln!(
        "image feature drift: weight 0 {:.4}, weight 20 {:.4}",
        distance[0], distance[1]
    );
    assert!(distance[0] > 0.0, "LoRA did not change the features at all");
    assert!(
        distance[1] < 0.5 * distance[0],
        "feature preservation did not keep the features closer: {distance:?}"
    );
}

#[test]
fn reference_distillation_runs_on_captions_and_refuses_sets_without_them() {
    let d = tmp("reference");
    let classes = fixture("data/classes");
    let mut a = TrainArgs::new(Method::Lora, model_dir(), &classes, d.join("ok"));
    (a.epochs, a.batch, a.lr, a.min_steps) = (2, 4, Some(1e-3), None);
    a.objectives.reference = Some(fixture("data/captions.csv"));
    a.objectives.reference_weight = 1.0;
    let s = train(a).unwrap();
    assert!(s.last_loss.is_finite() && s.steps > 0);

    let mut a = TrainArgs::new(Method::Lora, model_dir(), &classes, d.join("nocaps"));
    a.objectives.reference = Some(classes.clone());
    a.objectives.reference_weight = 1.0;
    let e = train(a)
        .err()
        .expect("a reference set without captions must be refused")
        .to_string();
    assert!(e.contains("--reference") && e.contains("no captions"), "{e}");
    assert!(
        !d.join("nocaps/adapter_model.safetensors").exists(),
        "wrote an adapter anyway"
    );

    // Prompt tuning's reference term and the methods without one: tests/reference_term.rs.
    let mut a = TrainArgs::new(Method::Lora, model_dir(), &classes, d.join("neg"));
    a.objectives.feature_preservation = -1.0;
    let e = train(a).err().expect("a negative weight must be refused").to_string();
    assert!(e.contains("--feature-preservation"), "{e}");
}

#[test]
fn small_data_gets_the_step_floor_with_the_batch_capped() {
    use cliptune::train::schedule::Schedule;
    // 96 images at batch 64 for 10 epochs: 20 steps without a floor.
    let plain = Schedule::new(96, 64, 10, None, None, None);
    assert_eq!((plain.batch, plain.total), (64, 20));
    let s = Schedule::new(96, 64, 10, None, None, Some(300));
    assert_eq!(s.batch, 24, "the batch is capped at a quarter of the data");
    assert_eq!(s.total, 300);
    assert!(s.epochs * 4 >= 300, "too few epochs for the floor: {s:?}");
    assert!(
        s.why.contains("floor of 300") && s.why.contains("4 batches/epoch"),
        "{}",
        s.why
    );
    // Enough data: the floor changes nothing but the cap.
    let big = Schedule::new(3000, 64, 10, None, None, Some(300));
    assert_eq!((big.batch, big.total), (64, 470));
    // --max-steps still cuts.
    assert_eq!(Schedule::new(96, 64, 10, Some(50), None, Some(300)).total, 50);
    // Tiny data: the cap stops at 2 (a contrastive batch of one pair learns nothing), unless
    // --batch 1 was asked.
    assert_eq!(Schedule::new(4, 64, 10, None, None, Some(300)).batch, 2);
    assert_eq!(Schedule::new(4, 1, 10, None, None, Some(300)).batch, 1);
}
