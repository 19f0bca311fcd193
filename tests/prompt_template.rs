//! CoOp's default context init and KgCoOp's anchor come from the model's own template
//! (the first line of MODEL/templates.txt, "<words> {}." giving the init words); a model
//! without templates.txt trains exactly as before (random init, "a photo of a {}." anchor).
mod common;
use std::path::{Path, PathBuf};

use cliptune::adapt::bundle::load_adapters;
use cliptune::clip::tokenizer::ClipTokenizer;
use cliptune::clip::{Clip, WeightStorage};
use cliptune::train::objectives::kgcoop::HandTemplate;
use cliptune::train::run::{train, Method, TrainArgs};
use cliptune::Device;
use common::cli::{fixture, fresh};
use common::{err_msg, tiny_model_dir};

/// The tiny model in a directory of its own, with `templates` as its templates.txt.
fn model_with_templates(dir: &Path, templates: Option<&str>) -> PathBuf {
    let m = dir.join("model");
    std::fs::create_dir_all(&m).unwrap();
    for f in ["config.json", "model.safetensors"] {
        std::fs::copy(tiny_model_dir().join(f), m.join(f)).unwrap();
    }
    if let Some(t) = templates {
        std::fs::write(m.join("templates.txt"), t).unwrap();
    }
    m
}

/// A short CoOp run with KgCoOp on (the trainer's default weight).
fn coop(model: &Path, out: PathBuf, ctx_init: Option<&str>) -> TrainArgs {
    let mut a = TrainArgs::new(Method::Prompt, model, fixture("data/classes"), out);
    (a.epochs, a.batch, a.seed, a.n_ctx, a.min_steps) = (2, 4, 5, 3, None);
    a.ctx_init = ctx_init.map(String::from);
    assert!(a.objectives.kgcoop > 0.0, "KgCoOp is on by default");
    a
}

/// The trained learner's init phrase, recorded template and context length.
fn learner_of(model: &Path, out: &Path) -> (Option<String>, Option<String>, usize) {
    let mut m = Clip::load(model, &Device::Cpu, WeightStorage::AsStored).unwrap();
    let mut tok = ClipTokenizer::for_model_dir(model).unwrap();
    let ad = load_adapters(&mut m, &mut tok, &[out.to_path_buf()]).unwrap();
    let (_, l) = ad.prompt().unwrap();
    (l.ctx_init.clone(), l.template.clone(), l.n_ctx)
}

fn log_of(out: &Path) -> String {
    std::fs::read_to_string(out.join("train_log.jsonl")).unwrap()
}

#[test]
fn the_context_phrase_is_the_words_before_the_class_name() {
    let t = |s: &str, from_model| HandTemplate {
        template: s.into(),
        from_model,
    };
    assert_eq!(
        t("an emoji of {}.", true).context_phrase().as_deref(),
        Some("an emoji of")
    );
    assert_eq!(
        t("an emoji of {}.", true).default_ctx_init().as_deref(),
        Some("an emoji of")
    );
    // CoOp's prompt is [context] [class] [.]: any other form cannot be reproduced.
    for other in [
        "a photo of {}, a type of pet.",
        "{}.",
        "a photo of a {}",
        "{} in a photo.",
    ] {
        assert_eq!(t(other, true).context_phrase(), None, "{other}");
    }
    // The built-in template anchors KgCoOp but leaves the init random, as before.
    assert_eq!(t("a photo of a {}.", false).default_ctx_init(), None);
    let d = fresh("tmpl-none");
    let none = HandTemplate::of_model(&model_with_templates(&d, None)).unwrap();
    assert_eq!((none.template.as_str(), none.from_model), ("a photo of a {}.", false));
    let first = HandTemplate::of_model(&model_with_templates(
        &d.join("two"),
        Some("\nan emoji of {}.\nart of {}.\n"),
    ))
    .unwrap();
    assert_eq!((first.template.as_str(), first.from_model), ("an emoji of {}.", true));
}

#[test]
fn without_a_flag_coop_starts_from_and_anchors_to_the_models_template() {
    let d = fresh("tmpl-default");
    let model = model_with_templates(&d, Some("a drawing of a {}.\na sketch of a {}.\n"));
    let out = d.join("default");
    train(coop(&model, out.clone(), None)).unwrap();
    let (init, template, n_ctx) = learner_of(&model, &out);
    assert_eq!(init.as_deref(), Some("a drawing of a"));
    assert_eq!(template.as_deref(), Some("a drawing of a {}."));
    assert_eq!(n_ctx, 4, "one context vector per token of the phrase");
    // An explicit --ctx-init still wins; the anchor stays the model's template.
    let out = d.join("explicit");
    train(coop(&model, out.clone(), Some("a photo of"))).unwrap();
    let (init, template, n_ctx) = learner_of(&model, &out);
    assert_eq!(init.as_deref(), Some("a photo of"));
    assert_eq!(template.as_deref(), Some("a drawing of a {}."));
    assert_eq!(n_ctx, 3);
}

#[test]
fn without_templates_txt_training_is_unchanged_and_the_anchor_follows_the_template() {
    let d = fresh("tmpl-anchor");
    let plain = model_with_templates(&d.join("plain"), None);
    // No templates.txt: random init of --n-ctx vectors, anchor "a photo of a {}.".
    let out = d.join("random");
    train(coop(&plain, out.clone(), None)).unwrap();
    assert_eq!(learner_of(&plain, &out), (None, Some("a photo of a {}.".into()), 3));
    // The built-in anchor is exactly a templates.txt of "a photo of a {}." (whose words
    // are then the default init): same step losses, bit for bit.
    let builtin = d.join("builtin");
    train(coop(&plain, builtin.clone(), Some("a photo of a"))).unwrap();
    let same = model_with_templates(&d.join("same"), Some("a photo of a {}.\n"));
    let from_file = d.join("from-file");
    train(coop(&same, from_file.clone(), None)).unwrap();
    assert_eq!(learner_of(&same, &from_file).0.as_deref(), Some("a photo of a"));
    assert_eq!(log_of(&builtin), log_of(&from_file));
    // Another template moves the anchor: the KgCoOp term, and so the losses, change.
    let other = model_with_templates(&d.join("other"), Some("a drawing of a {}.\n"));
    let moved = d.join("moved");
    train(coop(&other, moved.clone(), Some("a photo of a"))).unwrap();
    assert_ne!(log_of(&builtin), log_of(&moved));
}

#[test]
fn a_bad_templates_txt_is_an_error_naming_it() {
    let d = fresh("tmpl-bad");
    for (name, text) in [("empty", "\n\n"), ("no-slot", "a photo of a cat.\n")] {
        let model = model_with_templates(&d.join(name), Some(text));
        let msg = err_msg(train(coop(&model, d.join(name).join("out"), None)));
        assert!(msg.contains("templates.txt"), "{name}: {msg}");
        assert!(
            !d.join(name).join("out").join("prompt.safetensors").exists(),
            "{name}: nothing written"
        );
    }
}

#[test]
fn the_binary_says_which_template_and_init_a_run_uses() {
    let d = fresh("tmpl-cli");
    let model = model_with_templates(&d, Some("a drawing of a {}.\n"));
    let run = |out: &str, extra: &[&str]| {
        let mut c = common::cli::bin();
        c.args([
            "train", "--device", "cpu", "--method", "prompt", "--epochs", "1", "--batch", "4",
        ])
        .args(["--min-steps", "0", "--model"])
        .arg(&model)
        .arg("--data")
        .arg(fixture("data/classes"))
        .arg("--out")
        .arg(d.join(out))
        .args(extra);
        common::cli::run_ok(&mut c).1
    };
    common::cli::assert_contains(
        &run("default", &[]),
        &[
            "template \"a drawing of a {}.\" (the model's templates.txt)",
            "context init \"a drawing of a\"",
            "KgCoOp weight 8 anchors to it",
        ],
    );
    common::cli::assert_contains(
        &run("plain", &["--ctx-init", "a photo of", "--kgcoop", "0"]),
        &["context init \"a photo of\"", "KgCoOp off"],
    );
}
