//! `cliptune eval --adapter PROMPT --new-classes`: CoOp's base-to-new evaluation. The
//! learned shared context classifies a set whose classes it was never trained on, with
//! exactly the numbers the library gives; without the flag such a set is refused with a
//! pointer to it; a class-specific context and a missing prompt adapter are refused.
mod common;
use std::path::{Path, PathBuf};

use cliptune::adapt::bundle::load_adapters;
use cliptune::data::labeled::{image_embeddings, load_labeled};
use cliptune::data::{write_sprite_sheet, SpriteItem, SpriteSheet};
use cliptune::train::run::{train, Method, TrainArgs};
use common::cli::{assert_contains, bin, fixture, fresh as tmp, run_err, run_ok};
use common::tiny_model_dir as model_dir;
use image::{DynamicImage, Rgb, RgbImage};

/// Four classes the prompt adapter never saw, two flat-coloured tiles each.
fn new_class_sheet(dir: &Path) -> PathBuf {
    let classes = common::strings(&["sun", "boat", "apple", "tree"]);
    let (mut items, mut images) = (vec![], vec![]);
    for i in 0..8 {
        let c = i % 4;
        let v = (60 * c + 5 * i) as u8;
        images.push(DynamicImage::ImageRgb8(RgbImage::from_fn(16, 16, |x, y| {
            Rgb([v, 255 - v, ((x * 7 + y * 3) % 256) as u8])
        })));
        items.push(SpriteItem {
            label: c,
            captions: vec![],
        });
    }
    std::fs::create_dir_all(dir).unwrap();
    let p = dir.join("new.json");
    write_sprite_sheet(&p, &SpriteSheet::new(classes, items, images, 4).unwrap()).unwrap();
    p
}

fn prompt_adapter(out: PathBuf, class_specific: bool) -> PathBuf {
    let mut a = TrainArgs::new(Method::Prompt, model_dir(), fixture("data/classes"), out.clone());
    (a.epochs, a.batch, a.lr, a.seed, a.min_steps, a.n_ctx) = (3, 4, Some(2e-2), 1, None, 4);
    a.ctx_init = None;
    a.class_specific = class_specific;
    train(a).unwrap();
    out
}

fn eval(adapter: &Path, data: &Path, new_classes: bool) -> std::process::Command {
    let mut c = bin();
    c.args(["eval", "--device", "cpu", "--json", "--model"])
        .arg(model_dir())
        .arg("--adapter")
        .arg(adapter)
        .arg("--zero-shot")
        .arg(data);
    if new_classes {
        c.arg("--new-classes");
    }
    c
}

#[test]
fn the_learned_context_classifies_new_classes_as_the_library_does() {
    let d = tmp("new-classes");
    let adapter = prompt_adapter(d.join("coop"), false);
    let sheet = new_class_sheet(&d.join("data"));

    let e = run_err(&mut eval(&adapter, &sheet, false));
    assert_contains(&e, &["is not one of the adapter's classes", "--new-classes"]);

    let (stdout, stderr) = run_ok(&mut eval(&adapter, &sheet, true));
    assert!(stderr.contains("4 of them not trained on"), "{stderr}");
    let j: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let top1 = j["zero_shot"][0]["top1"].as_f64().unwrap();

    // The same through the library: the context on the sheet's names, nearest class.
    let (base, tok) = common::load_tiny();
    let (mut m, mut t) = (base.clone(), tok.clone());
    let ad = load_adapters(&mut m, &mut t, &[adapter]).unwrap();
    let (_, learner) = ad.prompt().unwrap();
    let set = load_labeled(sheet.to_str().unwrap(), None).unwrap();
    let cls = learner
        .for_classes(&m, &t, &set.classes)
        .unwrap()
        .class_embeddings(&m)
        .unwrap()
        .to_vec()
        .unwrap();
    let img = image_embeddings(&m, Some(&model_dir()), &set.source).unwrap();
    let p = cls.len() / set.classes.len();
    let mut right = 0;
    for (i, &label) in set.labels.iter().enumerate() {
        let score = |c: usize| (0..p).map(|k| img[i * p + k] * cls[c * p + k]).sum::<f32>();
        let best = (0..set.classes.len())
            .max_by(|&a, &b| score(a).total_cmp(&score(b)))
            .unwrap();
        right += usize::from(best == label);
    }
    let want = right as f64 / set.labels.len() as f64;
    assert!((top1 - want).abs() < 1e-6, "eval says {top1}, the library {want}");

    // `zero-shot` takes the same flag for --classes the adapter never saw.
    let photo = common::cli::fixtures().join("preprocess/inputs/rgb_37x53.png");
    let zs = |flag: bool| {
        let mut c = bin();
        c.args([
            "zero-shot",
            "--device",
            "cpu",
            "--json",
            "--classes",
            "sun,boat",
            "--model",
        ])
        .arg(model_dir())
        .arg("--adapter")
        .arg(d.join("coop"))
        .arg(&photo);
        if flag {
            c.arg("--new-classes");
        }
        c
    };
    assert_contains(&run_err(&mut zs(false)), &["--new-classes"]);
    let (out, _) = run_ok(&mut zs(true));
    assert!(out.contains("sun") && out.contains("boat"), "{out}");
}

#[test]
fn contexts_and_adapters_that_cannot_serve_new_classes_are_refused() {
    let d = tmp("new-classes-bad");
    let sheet = new_class_sheet(&d.join("data"));
    let specific = prompt_adapter(d.join("cs"), true);
    let e = run_err(&mut eval(&specific, &sheet, true));
    assert_contains(&e, &["class-specific", "--new-classes"]);

    let mut c = bin();
    c.args(["eval", "--device", "cpu", "--new-classes", "--model"])
        .arg(model_dir())
        .arg("--zero-shot")
        .arg(&sheet);
    let e = run_err(&mut c);
    assert_contains(&e, &["--new-classes", "no prompt adapter"]);
}
