//! Classification through whatever adapters are loaded, the one path `cliptune eval
//! --zero-shot`, `cliptune zero-shot` and `train --method auto` share: a linear probe
//! classifies with its own weights (classes matched by name), a prompt adapter's learned
//! prompts replace the templates, otherwise the (possibly LoRA-adapted) model's template
//! ensemble.
use std::path::Path;

use super::metrics::topk_accuracy;
use super::suite::{image_embeddings, zero_shot, LabeledSet, ZeroShotResult};
use crate::adapt::bundle::{Adapters, ProbeAdapter};
use crate::clip::tokenizer::ClipTokenizer;
use crate::clip::Clip;
use crate::error::{Error, Result};

/// The probe that classifies, if one is loaded; two probes, or a probe next to a prompt
/// adapter, would be two classifiers for one question: an error.
pub fn the_probe(ad: &Adapters) -> Result<Option<(&Path, &ProbeAdapter)>> {
    let probes = ad.linear_probes();
    if probes.len() > 1 {
        return Err(Error::invalid(format!(
            "{} and {} are both linear-probe adapters: give one (each is a whole classifier)",
            probes[0].0.display(),
            probes[1].0.display()
        )));
    }
    if let (Some((pdir, _)), Some((qdir, _))) = (probes.first(), ad.prompt()) {
        return Err(Error::invalid(format!(
            "{} is a linear probe and {} a prompt adapter: each classifies on its own, give one",
            pdir.display(),
            qdir.display()
        )));
    }
    Ok(probes.into_iter().next())
}

/// The probe's column of each of `wanted`, or an error naming every class the probe does
/// not know (`data_label` says where `wanted` came from).
pub fn probe_columns(dir: &Path, probe: &ProbeAdapter, wanted: &[String], data_label: &str) -> Result<Vec<usize>> {
    let mut cols = Vec::with_capacity(wanted.len());
    let mut unknown = vec![];
    for w in wanted {
        match probe.classes.iter().position(|c| c == w) {
            Some(j) => cols.push(j),
            None => unknown.push(format!("{w:?}")),
        }
    }
    if !unknown.is_empty() {
        return Err(Error::invalid(format!(
            "linear-probe adapter {}: {data_label} has class{} {} that the probe was not trained on; \
             it knows {} classes: {}",
            dir.display(),
            if unknown.len() == 1 { "" } else { "es" },
            unknown.join(", "),
            probe.classes.len(),
            probe
                .classes
                .iter()
                .map(|c| format!("{c:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    Ok(cols)
}

/// Class probabilities `[n, cols.len()]` of image embeddings `x` (`n x d`): the softmax
/// of the probe's logits restricted to `cols` (all of them: the probe's own probabilities).
pub fn probe_probabilities(probe: &ProbeAdapter, x: &[f32], n: usize, cols: &[usize]) -> Result<Vec<f32>> {
    let c = probe.probe.c;
    let z = probe.probe.predict_logits(x, n)?;
    let mut out = Vec::with_capacity(n * cols.len());
    for row in z.chunks(c) {
        let m = cols.iter().map(|&j| row[j]).fold(f32::NEG_INFINITY, f32::max);
        let e: Vec<f64> = cols.iter().map(|&j| ((row[j] - m) as f64).exp()).collect();
        let s: f64 = e.iter().sum();
        out.extend(e.iter().map(|v| (v / s) as f32));
    }
    Ok(out)
}

/// Top-1/top-5 of the probe on `set`: every class of the set must be one of the probe's;
/// the probe chooses among all its classes.
pub fn probe_eval(
    model: &Clip,
    model_dir: Option<&Path>,
    dir: &Path,
    probe: &ProbeAdapter,
    set: &LabeledSet,
) -> Result<ZeroShotResult> {
    if set.is_empty() {
        return Err(Error::invalid(format!("{}: no images", set.name)));
    }
    let cols = probe_columns(dir, probe, &set.classes, &set.name)?;
    let x = image_embeddings(model, model_dir, &set.source)?;
    let n = set.len();
    let c = probe.probe.c;
    let scores = probe.probe.predict_scores(&x, n)?;
    let labels: Vec<usize> = set.labels.iter().map(|&l| cols[l]).collect();
    Ok(ZeroShotResult {
        dataset: set.name.clone(),
        top1: topk_accuracy(&scores, n, c, &labels, 1)?,
        top5: topk_accuracy(&scores, n, c, &labels, 5.min(c))?,
        images: n,
        classes: c,
    })
}

/// Top-1/top-5 on `set` with the loaded adapters: the probe if there is one, else the
/// prompt adapter's learned prompts (the set's classes must be the adapter's), else the
/// templates on the (possibly LoRA-adapted) model.
pub fn classify_set(
    model: &Clip,
    tok: &ClipTokenizer,
    model_dir: Option<&Path>,
    set: &LabeledSet,
    templates: &[String],
    ad: &Adapters,
) -> Result<ZeroShotResult> {
    if let Some((dir, probe)) = the_probe(ad)? {
        return probe_eval(model, model_dir, dir, probe, set);
    }
    if ad.prompt().is_none() {
        return zero_shot(model, tok, model_dir, set, templates);
    }
    if set.is_empty() {
        return Err(Error::invalid(format!("{}: no images", set.name)));
    }
    let cls = ad
        .class_embeddings(model, tok, &set.classes, templates, &set.name)?
        .to_vec()?;
    let img = image_embeddings(model, model_dir, &set.source)?;
    let (n, c, p) = (set.len(), set.classes.len(), model.config.projection_dim);
    let mut scores = vec![0f32; n * c];
    for i in 0..n {
        let x = &img[i * p..(i + 1) * p];
        for j in 0..c {
            scores[i * c + j] = x.iter().zip(&cls[j * p..(j + 1) * p]).map(|(a, b)| a * b).sum();
        }
    }
    Ok(ZeroShotResult {
        dataset: set.name.clone(),
        top1: topk_accuracy(&scores, n, c, &set.labels, 1)?,
        top5: topk_accuracy(&scores, n, c, &set.labels, 5.min(c))?,
        images: n,
        classes: c,
    })
}
