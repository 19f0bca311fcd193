//! `cliptune train --method linear-probe`: a classifier on the frozen image embeddings.
//!
//! By default it starts from the zero-shot text classifier and is held to it (CLAP /
//! LP++, see `eval::linear_probe::anchored`), fitted on every training image: with 1-4
//! shots per class it does not fall below zero-shot. `--probe-init random` is the CLIP
//! paper's probe instead: from zero, l2 swept on a 20 % validation split, refitted on all.
use std::time::Instant;

use super::run::{TrainArgs, TrainSummary};
use crate::adapt::bundle::{self, ProbeAdapter, PROBE_FILE};
use crate::clip::tokenizer::ClipTokenizer;
use crate::clip::zero_shot::class_embeddings;
use crate::clip::Clip;
use crate::error::{Error, Result};
use crate::eval::linear_probe::{
    clap_weights, split_train_val, sweep, Anchor, LinearProbe, ProbeInit, ProbeWeight, AUTO_SCALE, DEFAULT_MAX_ITER,
};
use crate::eval::suite::{image_embeddings, load_labeled};
use crate::tensor::io::write_atomic;

/// The prompt of the zero-shot start: the one the trainer's class objective uses.
pub const PROBE_TEMPLATE: &str = "a photo of a {}.";

/// How `--method linear-probe` fits.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ProbeOptions {
    pub init: ProbeInit,
    /// The anchor's weight (zero-shot start only; the random start sweeps its own l2).
    pub weight: ProbeWeight,
}

impl Default for ProbeOptions {
    /// The zero-shot start with CLAP's class-adaptive weights.
    fn default() -> ProbeOptions {
        ProbeOptions {
            init: ProbeInit::ZeroShot,
            weight: ProbeWeight::Auto,
        }
    }
}

impl ProbeOptions {
    /// The CLIP paper's probe (what `--method linear-probe` did before the zero-shot start).
    pub fn from_scratch() -> ProbeOptions {
        ProbeOptions {
            init: ProbeInit::Random,
            weight: ProbeWeight::Fixed(0.0),
        }
    }

    /// `--probe-init` and `--probe-weight` as given (None: the default for the init).
    pub fn parse(init: &str, weight: Option<&str>) -> Result<ProbeOptions> {
        let init: ProbeInit = init.parse()?;
        let weight = match (init, weight) {
            (_, Some(w)) => w.parse()?,
            (ProbeInit::ZeroShot, None) => ProbeWeight::Auto,
            (ProbeInit::Random, None) => ProbeWeight::Fixed(0.0),
        };
        if init == ProbeInit::Random && weight != ProbeWeight::Fixed(0.0) {
            return Err(Error::invalid(format!(
                "--probe-weight {weight} with --probe-init random: the weight holds the probe to the zero-shot \
                 classifier, which a random start does not have (it sweeps its own l2); drop --probe-weight \
                 or use --probe-init zero-shot"
            )));
        }
        Ok(ProbeOptions { init, weight })
    }
}

/// Fit the probe on `a.data` and write `linear_probe.json` and the manifest to `a.out`.
pub fn train_linear_probe(a: &TrainArgs, model: &Clip, tok: &ClipTokenizer, t0: Instant) -> Result<TrainSummary> {
    let set = load_labeled(&a.data, a.classes_file.as_deref())?;
    if set.is_empty() {
        return Err(Error::invalid(format!("{}: no training images", a.data)));
    }
    crate::guard::learnable::check_classes(&a.data, &set.labels, &set.classes, a.method.name())?;
    let d = model.config.projection_dim;
    let c = set.classes.len();
    let x = image_embeddings(model, Some(&a.model_dir), &set.source)?;
    let (probe, steps, info) = match a.probe.init {
        ProbeInit::Random => {
            let (tr, va) = split_train_val(set.len(), &set.labels, 0.2, a.seed);
            let pick = |idx: &[usize]| {
                (
                    idx.iter()
                        .flat_map(|&i| x[i * d..(i + 1) * d].iter().copied())
                        .collect::<Vec<f32>>(),
                    idx.iter().map(|&i| set.labels[i]).collect::<Vec<_>>(),
                )
            };
            let (xa, ya) = pick(&tr);
            let (xv, yv) = pick(&va);
            let (probe, tried) = sweep(&xa, &ya, &xv, &yv, tr.len(), va.len(), d, c)?;
            for (l2, acc) in &tried {
                eprintln!("[linear-probe] l2 {l2:.1e}: validation top-1 {:.2}%", acc * 100.0);
            }
            let info = serde_json::json!({"init": "random", "l2": probe.l2});
            (probe, tried.len(), info)
        }
        ProbeInit::ZeroShot => {
            let (probe, iters, info) = fit_zero_shot_start(model, tok, &set.classes, &x, &set.labels, a.probe.weight)?;
            (probe, iters, info)
        }
    };
    let pa = ProbeAdapter {
        probe,
        classes: set.classes.clone(),
    };
    let mut json = pa.to_json();
    if let (Some(o), Some(e)) = (json.as_object_mut(), info.as_object()) {
        o.extend(e.clone());
    }
    let probe_path = a.out.join(PROBE_FILE);
    crate::guard::finite::check_values(&probe_path, "weight", &pa.probe.weight)?;
    crate::guard::finite::check_values(&probe_path, "bias", &pa.probe.bias)?;
    write_atomic(&probe_path, json.to_string().as_bytes())?;
    let mut manifest = serde_json::json!({"final": true, "classes": set.classes});
    if let (Some(o), Some(e)) = (manifest.as_object_mut(), info.as_object()) {
        o.extend(e.clone());
    }
    bundle::write_manifest(
        &a.out,
        bundle::Method::LinearProbe,
        &a.model_dir.display().to_string(),
        model,
        manifest,
    )?;
    let acc = pa.probe.accuracy(&x, &set.labels, set.len())?;
    Ok(TrainSummary {
        guard: None,
        steps,
        first_loss: 0.0,
        last_loss: 1.0 - acc,
        trainable: pa.probe.weight.len() + pa.probe.bias.len(),
        seconds: t0.elapsed().as_secs_f32(),
        out: a.out.clone(),
    })
}

/// The zero-shot classifier of `classes` for `model` ([`PROBE_TEMPLATE`], logit scale
/// included) with per-class weights from `weight` (CLAP's rule needs the training
/// images `x` and labels `y`).
pub fn zero_shot_anchor(
    model: &Clip,
    tok: &ClipTokenizer,
    classes: &[String],
    x: &[f32],
    y: &[usize],
    weight: ProbeWeight,
) -> Result<Anchor> {
    let c = classes.len();
    let t = class_embeddings(model, tok, classes, &[PROBE_TEMPLATE.to_string()])?.to_vec()?;
    let scale = model.logit_scale.value.item()?.exp();
    let start = Anchor::zero_shot(&t, c, scale, vec![0.0; c])?;
    let lambda = match weight {
        ProbeWeight::Fixed(w) => vec![w; c],
        ProbeWeight::Auto => {
            let probs = start.as_probe().predict_scores(x, y.len())?;
            clap_weights(&probs, y, y.len(), c, AUTO_SCALE)?
        }
    };
    Anchor::zero_shot(&t, c, scale, lambda)
}

/// Fit from the zero-shot start; returns the probe, the L-BFGS iterations and what to
/// record about it.
pub fn fit_zero_shot_start(
    model: &Clip,
    tok: &ClipTokenizer,
    classes: &[String],
    x: &[f32],
    y: &[usize],
    weight: ProbeWeight,
) -> Result<(LinearProbe, usize, serde_json::Value)> {
    let d = model.config.projection_dim;
    let n = y.len();
    let anchor = zero_shot_anchor(model, tok, classes, x, y, weight)?;
    let before = anchor.as_probe().accuracy(x, y, n)?;
    let (probe, fit) = LinearProbe::fit_anchored(x, y, n, d, &anchor, DEFAULT_MAX_ITER)?;
    let after = probe.accuracy(x, y, n)?;
    let lam: Vec<String> = anchor.lambda.iter().map(|l| format!("{l:.3}")).collect();
    eprintln!(
        "[linear-probe] zero-shot start ({PROBE_TEMPLATE:?}), weight {weight} (per class: {}): training top-1 \
         {:.2}% -> {:.2}% in {} L-BFGS iterations",
        lam.join(" "),
        100.0 * before,
        100.0 * after,
        fit.iterations
    );
    let info = serde_json::json!({
        "init": "zero-shot",
        "template": PROBE_TEMPLATE,
        "probe_weight": weight.to_string(),
        "lambda": anchor.lambda,
    });
    Ok((probe, fit.iterations, info))
}
