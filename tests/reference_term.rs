//! Prompt tuning's reference term: the learned context applied to a general set's class
//! names stays near the hand-crafted prompt there (KgCoOp on names CoOp never trains on).
//! Its gradient reaches the one shared context by finite differences, a zero weight changes
//! nothing bit for bit, it pulls the context toward the hand prompt on those names, and
//! the sets it cannot use are refused.
mod common;
use std::path::{Path, PathBuf};

use cliptune::adapt::bundle::load_adapters;
use cliptune::adapt::prompt::PromptLearner;
use cliptune::autograd::Tape;
use cliptune::backend::Device;
use cliptune::clip::zero_shot::class_embeddings;
use cliptune::data::{write_sprite_sheet, SpriteItem, SpriteSheet};
use cliptune::train::objectives::kgcoop::kgcoop_term;
use cliptune::train::run::{train, Method, TrainArgs};
use cliptune::Tensor;
use common::cli::{fixture, fresh as tmp};
use common::tiny_model_dir as model_dir;
use image::{DynamicImage, Rgb, RgbImage};

const NAMES: [&str; 6] = ["red circle", "blue square", "green cross", "sun", "boat", "apple"];

/// A sprite sheet of six general classes (one flat-coloured tile each) with captions.
fn reference_sheet(dir: &Path) -> PathBuf {
    let classes = common::strings(&NAMES);
    let (mut items, mut images) = (vec![], vec![]);
    for (i, name) in classes.iter().enumerate() {
        let v = (40 * i) as u8;
        images.push(DynamicImage::ImageRgb8(RgbImage::from_fn(16, 16, |x, y| {
            Rgb([v, 255 - v, ((x + y) * 8) as u8])
        })));
        items.push(SpriteItem {
            label: i,
            captions: vec![format!("a picture of a {name}.")],
        });
    }
    std::fs::create_dir_all(dir).unwrap();
    let p = dir.join("reference.json");
    write_sprite_sheet(&p, &SpriteSheet::new(classes, items, images, 3).unwrap()).unwrap();
    p
}

fn prompt_args(out: PathBuf) -> TrainArgs {
    let mut a = TrainArgs::new(Method::Prompt, model_dir(), fixture("data/classes"), out);
    (a.epochs, a.batch, a.lr, a.seed, a.min_steps) = (15, 4, Some(2e-2), 1, None);
    a.objectives.kgcoop = 0.0;
    a
}

#[test]
fn the_reference_gradient_reaches_the_shared_context() {
    let (model, tok) = common::load_tiny();
    let train_names = common::strings(&["t-shirt", "bag"]);
    let ref_names = common::strings(&NAMES[..3]);
    let mut p = PromptLearner::new(&model, &tok, &train_names, 3, None, false, 5).unwrap();
    // Away from the hand prompt, so both terms have a gradient.
    let hand_t = class_embeddings(&model, &tok, &train_names, &["a photo of a {}.".to_string()]).unwrap();
    let hand_r = class_embeddings(&model, &tok, &ref_names, &["a photo of a {}.".to_string()]).unwrap();
    let loss = |p: &PromptLearner, tape: &Tape| {
        let q = p.for_classes(&model, &tok, &ref_names).unwrap();
        let a = kgcoop_term(tape, &p.class_features(&model, tape).unwrap(), &hand_t, 2.0).unwrap();
        let b = kgcoop_term(tape, &q.class_features(&model, tape).unwrap(), &hand_r, 3.0).unwrap();
        a.add(&b).unwrap()
    };
    let tape = Tape::new();
    let l = loss(&p, &tape);
    let g = tape.backward(&l).unwrap().get(p.ctx.id).unwrap().to_vec().unwrap();
    // Without the reference learner's share the gradient would be the first term's alone.
    let tape1 = Tape::new();
    let only_train = kgcoop_term(&tape1, &p.class_features(&model, &tape1).unwrap(), &hand_t, 2.0).unwrap();
    let g1 = tape1
        .backward(&only_train)
        .unwrap()
        .get(p.ctx.id)
        .unwrap()
        .to_vec()
        .unwrap();
    assert!(
        common::max_abs(&g, &g1) > 1e-4,
        "the reference term added no gradient to the context"
    );

    let base = p.ctx.value.to_vec().unwrap();
    let shape = p.ctx.value.shape().to_vec();
    let scale = g.iter().fold(1e-3f32, |m, x| m.max(x.abs()));
    let eps = 1e-2f32;
    let mut max_err = 0f32;
    // Every 7th coordinate: enough to catch a missing or doubled share, fast on two cores.
    for i in (0..base.len()).step_by(7) {
        let mut at = |d: f32| {
            let mut v = base.clone();
            v[i] += d;
            p.ctx.value = Tensor::from_vec(v, &shape, &Device::Cpu).unwrap();
            loss(&p, &Tape::inference()).value.item().unwrap()
        };
        let num = (at(eps) - at(-eps)) / (2.0 * eps);
        max_err = max_err.max((num - g[i]).abs() / scale);
    }
    eprintln!("prompt reference term: max rel err {max_err:.2e}");
    assert!(max_err < 2e-2, "analytic vs numeric gradient rel err {max_err}");
}

#[test]
fn a_zero_reference_weight_changes_nothing_bit_for_bit() {
    let d = tmp("ref-zero");
    let sheet = reference_sheet(&d.join("sheet"));
    train(prompt_args(d.join("plain"))).unwrap();
    let mut a = prompt_args(d.join("zero"));
    a.objectives.reference = Some(sheet.display().to_string());
    a.objectives.reference_weight = 0.0;
    train(a).unwrap();
    let log = |r: &str| std::fs::read_to_string(d.join(r).join("train_log.jsonl")).unwrap();
    assert_eq!(log("plain"), log("zero"));
}

#[test]
fn the_reference_term_keeps_the_context_near_the_hand_prompt_on_general_names() {
    let d = tmp("ref-pull");
    let sheet = reference_sheet(&d.join("sheet"));
    let (base, tok) = common::load_tiny();
    let names = common::strings(&NAMES);
    let hand = class_embeddings(&base, &tok, &names, &["a photo of a {}.".to_string()])
        .unwrap()
        .to_vec()
        .unwrap();
    let mut distance = vec![];
    for w in [0.0f32, 50.0] {
        let out = d.join(format!("w{w}"));
        let mut a = prompt_args(out.clone());
        a.n_ctx = 4;
        a.ctx_init = None;
        a.objectives.reference = Some(sheet.display().to_string());
        a.objectives.reference_weight = w;
        let s = train(a).unwrap();
        assert!(s.last_loss.is_finite());
        let (mut m, mut t) = (base.clone(), tok.clone());
        let ad = load_adapters(&mut m, &mut t, &[out]).unwrap();
        let (_, learner) = ad.prompt().unwrap();
        let on_ref = learner.for_classes(&m, &t, &names).unwrap();
        let e = on_ref.class_embeddings(&m).unwrap().to_vec().unwrap();
        distance.push(e.iter().zip(&hand).map(|(x, y)| (x - y) * (x - y)).sum::<f32>());
    }
    eprintln!(
        "distance to the hand prompt on the reference names: weight 0 {:.4}, weight 50 {:.4}",
        distance[0], distance[1]
    );
    assert!(distance[0] > 0.0, "the context did not move at all");
    assert!(
        distance[1] < 0.5 * distance[0],
        "the reference term did not keep the prompts closer: {distance:?}"
    );
}

#[test]
fn sets_and_contexts_the_prompt_reference_term_cannot_use_are_refused() {
    let d = tmp("ref-bad");
    let sheet = reference_sheet(&d.join("sheet"));
    // A caption file has no class names to put the context in front of.
    let mut a = prompt_args(d.join("caps"));
    a.objectives.reference = Some(fixture("data/captions.csv"));
    a.objectives.reference_weight = 1.0;
    let e = train(a).err().expect("a caption file must be refused").to_string();
    assert!(e.contains("--reference") && e.contains("class names"), "{e}");
    assert!(
        !d.join("caps/adapter_model.safetensors").exists(),
        "wrote an adapter anyway"
    );
    // A class-specific context has nothing to apply to other classes.
    let mut a = prompt_args(d.join("cs"));
    a.class_specific = true;
    a.objectives.reference = Some(sheet.display().to_string());
    a.objectives.reference_weight = 1.0;
    let e = train(a).err().expect("--class-specific must be refused").to_string();
    assert!(e.contains("--reference") && e.contains("--class-specific"), "{e}");
    // No reference item per step.
    let mut a = prompt_args(d.join("rb0"));
    a.objectives.reference = Some(sheet.display().to_string());
    a.objectives.reference_weight = 1.0;
    a.objectives.reference_batch = Some(0);
    let e = train(a).err().expect("--reference-batch 0 must be refused").to_string();
    assert!(e.contains("--reference-batch 0"), "{e}");
    // Textual inversion and the linear probe have no reference term.
    let mut a = TrainArgs::new(Method::LinearProbe, model_dir(), fixture("data/classes"), d.join("lp"));
    a.objectives.reference = Some(sheet.display().to_string());
    a.objectives.reference_weight = 1.0;
    let e = train(a)
        .err()
        .expect("a linear probe must refuse --reference")
        .to_string();
    assert!(e.contains("--reference") && e.contains("prompt"), "{e}");
}

#[test]
fn lora_reference_features_keep_the_reference_images_near_the_base() {
    use cliptune::train::objectives::ReferenceLoss;
    let d = tmp("ref-lora");
    let sheet = reference_sheet(&d.join("sheet"));
    let (base, tok) = common::load_tiny();
    let set = cliptune::data::labeled::load_labeled(sheet.to_str().unwrap(), None).unwrap();
    let feats = |m: &cliptune::clip::Clip| {
        cliptune::data::labeled::image_embeddings(m, Some(&model_dir()), &set.source).unwrap()
    };
    let before = feats(&base);
    let mut drift = vec![];
    for (w, loss) in [
        (0.0f32, ReferenceLoss::Features),
        (50.0, ReferenceLoss::Features),
        (50.0, ReferenceLoss::ImageFeatures),
        (5000.0, ReferenceLoss::Similarity),
    ] {
        let out = d.join(format!("{loss}-{w}"));
        let mut a = TrainArgs::new(Method::Lora, model_dir(), fixture("data/classes"), out.clone());
        (a.epochs, a.batch, a.lr, a.seed, a.min_steps) = (10, 4, Some(1e-2), 1, None);
        a.objectives.feature_preservation = 0.0;
        a.objectives.reference = Some(sheet.display().to_string());
        a.objectives.reference_weight = w;
        a.objectives.reference_loss = loss;
        let s = train(a).unwrap();
        assert!(s.last_loss.is_finite(), "{loss} {w}: loss {}", s.last_loss);
        let (mut m, mut t) = (base.clone(), tok.clone());
        load_adapters(&mut m, &mut t, &[out]).unwrap();
        let after = feats(&m);
        drift.push(after.iter().zip(&before).map(|(x, y)| (x - y) * (x - y)).sum::<f32>());
    }
    eprintln!(
        "reference image drift: off {:.4}, features {:.4}, image-features {:.4}, similarity {:.4}",
        drift[0], drift[1], drift[2], drift[3]
    );
    assert!(drift[0] > 0.0, "LoRA did not change the reference images' features");
    for (i, name) in [(1, "features"), (2, "image-features"), (3, "similarity")] {
        assert!(
            drift[i] < 0.7 * drift[0],
            "{name} did not keep the reference features closer: {drift:?}"
        );
    }
}

#[test]
fn an_unknown_reference_loss_is_refused_by_name() {
    let d = tmp("ref-cli");
    let sheet = reference_sheet(&d.join("sheet"));
    let e = common::cli::run_err(common::cli::bin().args([
        "train",
        "--method",
        "lora",
        "--model",
        model_dir().to_str().unwrap(),
        "--data",
        &fixture("data/classes"),
        "--reference",
        sheet.to_str().unwrap(),
        "--reference-loss",
        "cosine",
        "--out",
        d.join("out").to_str().unwrap(),
    ]));
    common::cli::assert_contains(
        &e,
        &["--reference-loss", "cosine", "features, image-features or similarity"],
    );
    assert!(!d.join("out/adapter_model.safetensors").exists());
}
