//! CLIP evaluation end to end: datasets in, metrics out. Zero-shot top-1/top-5 with
//! template ensembles, image-text retrieval R@1/5/10 both ways, linear-probe top-1.
//! `cliptune eval` prints this; `cliptune report` compares two of them.
use std::path::{Path, PathBuf};

use super::linear_probe::{split_train_val, sweep};
use super::metrics::{retrieval, topk_accuracy, RetrievalMetrics};
use crate::clip::tokenizer::ClipTokenizer;
use crate::clip::zero_shot::{class_embeddings, tokenize};
use crate::clip::Clip;
use crate::data::captions::load_captions;
use crate::data::sprite_sheet::{is_sprite_sheet, read_sprite_sheet};
use crate::error::{Error, Result};
use crate::tensor::Tensor;

// The loaders live in `data::labeled`; these names stay for evaluation's callers.
pub use crate::data::labeled::{image_embeddings, load_labeled, pixels, ImageSource, LabeledSet};

#[derive(Clone, Debug, PartialEq)]
pub struct ZeroShotResult {
    pub dataset: String,
    pub top1: f32,
    pub top5: f32,
    pub images: usize,
    pub classes: usize,
}

pub fn zero_shot(
    model: &Clip,
    tok: &ClipTokenizer,
    model_dir: Option<&Path>,
    set: &LabeledSet,
    templates: &[String],
) -> Result<ZeroShotResult> {
    if set.is_empty() {
        return Err(Error::invalid(format!("{}: no images", set.name)));
    }
    let cls = class_embeddings(model, tok, &set.classes, templates)?;
    let img = image_embeddings(model, model_dir, &set.source)?;
    let n = set.len();
    let p = model.config.projection_dim;
    let scores = Tensor::from_vec(img, &[n, p], model.device())?
        .matmul(&transpose(&cls)?)?
        .to_vec()?;
    let c = set.classes.len();
    Ok(ZeroShotResult {
        dataset: set.name.clone(),
        top1: topk_accuracy(&scores, n, c, &set.labels, 1)?,
        top5: topk_accuracy(&scores, n, c, &set.labels, 5.min(c))?,
        images: n,
        classes: c,
    })
}

fn transpose(t: &Tensor) -> Result<Tensor> {
    let (r, c) = (t.dim(0), t.dim(1));
    let v = t.to_vec()?;
    let mut o = vec![0f32; r * c];
    for i in 0..r {
        for j in 0..c {
            o[j * r + i] = v[i * c + j];
        }
    }
    Tensor::from_vec(o, &[c, r], t.device())
}

#[derive(Clone, Debug, PartialEq)]
pub struct RetrievalResult {
    pub dataset: String,
    pub metrics: RetrievalMetrics,
    pub images: usize,
    pub captions: usize,
}

/// Retrieval over a caption file or a sprite sheet's captioned items (several captions
/// per image are handled).
pub fn retrieval_eval(
    model: &Clip,
    tok: &ClipTokenizer,
    model_dir: Option<&Path>,
    data: &Path,
) -> Result<RetrievalResult> {
    if is_sprite_sheet(&data.to_string_lossy()) {
        return retrieval_sprite_sheet(model, tok, model_dir, data);
    }
    let records = load_captions(data)?;
    let images: Vec<PathBuf> = records.iter().map(|r| r.image.clone()).collect();
    let mut texts = vec![];
    let mut owner = vec![];
    for (i, r) in records.iter().enumerate() {
        for c in &r.captions {
            texts.push(c.clone());
            owner.push(i);
        }
    }
    let img = image_embeddings(model, model_dir, &ImageSource::Files(images))?;
    let (input, _) = tokenize(model, tok, &texts)?;
    let txt = model.encode_text(&input, 256)?.to_vec()?;
    Ok(RetrievalResult {
        dataset: data.display().to_string(),
        metrics: retrieval(&img, &txt, model.config.projection_dim, &owner)?,
        images: records.len(),
        captions: texts.len(),
    })
}

/// Retrieval over the items of a sprite sheet that have captions (the others are skipped).
fn retrieval_sprite_sheet(
    model: &Clip,
    tok: &ClipTokenizer,
    model_dir: Option<&Path>,
    data: &Path,
) -> Result<RetrievalResult> {
    let s = read_sprite_sheet(data)?;
    let mut images = vec![];
    let mut texts = vec![];
    let mut owner = vec![];
    for (it, im) in s.items.iter().zip(s.images) {
        if it.captions.is_empty() {
            continue;
        }
        for c in &it.captions {
            texts.push(c.clone());
            owner.push(images.len());
        }
        images.push(im);
    }
    if images.is_empty() {
        return Err(Error::invalid(format!(
            "{}: no item has captions; retrieval needs captioned images",
            data.display()
        )));
    }
    let n = images.len();
    let img = image_embeddings(model, model_dir, &ImageSource::Memory(images))?;
    let (input, _) = tokenize(model, tok, &texts)?;
    let txt = model.encode_text(&input, 256)?.to_vec()?;
    Ok(RetrievalResult {
        dataset: data.display().to_string(),
        metrics: retrieval(&img, &txt, model.config.projection_dim, &owner)?,
        images: n,
        captions: texts.len(),
    })
}

#[derive(Clone, Debug, PartialEq)]
pub struct LinearProbeResult {
    pub train: String,
    pub test: String,
    pub top1: f32,
    pub l2: f32,
}

/// Linear probe on frozen image features: l2 swept on a 20 % validation split of
/// the training set, refit on all of it, accuracy on the test set.
pub fn linear_probe_eval(
    model: &Clip,
    model_dir: Option<&Path>,
    train: &LabeledSet,
    test: &LabeledSet,
) -> Result<LinearProbeResult> {
    if train.classes != test.classes {
        return Err(Error::invalid(format!(
            "linear probe: {} and {} have different classes",
            train.name, test.name
        )));
    }
    let d = model.config.projection_dim;
    let c = train.classes.len();
    let xtr = image_embeddings(model, model_dir, &train.source)?;
    let xte = image_embeddings(model, model_dir, &test.source)?;
    let (tr_idx, va_idx) = split_train_val(train.len(), &train.labels, 0.2, 0);
    let pick = |idx: &[usize]| -> (Vec<f32>, Vec<usize>) {
        (
            idx.iter()
                .flat_map(|&i| xtr[i * d..(i + 1) * d].iter().copied())
                .collect(),
            idx.iter().map(|&i| train.labels[i]).collect(),
        )
    };
    let (xa, ya) = pick(&tr_idx);
    let (xv, yv) = pick(&va_idx);
    let (probe, _) = sweep(&xa, &ya, &xv, &yv, tr_idx.len(), va_idx.len(), d, c)?;
    Ok(LinearProbeResult {
        train: train.name.clone(),
        test: test.name.clone(),
        top1: probe.accuracy(&xte, &test.labels, test.len())?,
        l2: probe.l2,
    })
}

/// Everything `cliptune eval` measured, for printing and for `report`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct EvalReport {
    pub model: String,
    pub adapters: Vec<String>,
    pub zero_shot: Vec<ZeroShotResult>,
    pub retrieval: Vec<RetrievalResult>,
    pub linear_probe: Vec<LinearProbeResult>,
}

impl EvalReport {
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::json;
        json!({
            "model": self.model,
            "adapters": self.adapters,
            "zero_shot": self.zero_shot.iter().map(|z| json!({"dataset": z.dataset, "top1": z.top1, "top5": z.top5, "images": z.images, "classes": z.classes})).collect::<Vec<_>>(),
            "retrieval": self.retrieval.iter().map(|r| json!({"dataset": r.dataset, "images": r.images, "captions": r.captions,
                "i2t": {"r1": r.metrics.i2t[0], "r5": r.metrics.i2t[1], "r10": r.metrics.i2t[2]},
                "t2i": {"r1": r.metrics.t2i[0], "r5": r.metrics.t2i[1], "r10": r.metrics.t2i[2]}})).collect::<Vec<_>>(),
            "linear_probe": self.linear_probe.iter().map(|l| json!({"train": l.train, "test": l.test, "top1": l.top1, "l2": l.l2})).collect::<Vec<_>>(),
        })
    }
}

impl std::fmt::Display for EvalReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "model: {}", self.model)?;
        for a in &self.adapters {
            writeln!(f, "adapter: {a}")?;
        }
        for z in &self.zero_shot {
            writeln!(
                f,
                "zero-shot   {:<32} top-1 {:6.2}%  top-5 {:6.2}%  ({} images, {} classes)",
                z.dataset,
                100.0 * z.top1,
                100.0 * z.top5,
                z.images,
                z.classes
            )?;
        }
        for r in &self.retrieval {
            let m = &r.metrics;
            writeln!(
                f,
                "retrieval   {:<32} image->text R@1 {:5.1} R@5 {:5.1} R@10 {:5.1} | text->image R@1 {:5.1} R@5 {:5.1} R@10 {:5.1}  ({} images, {} captions)",
                r.dataset,
                100.0 * m.i2t[0],
                100.0 * m.i2t[1],
                100.0 * m.i2t[2],
                100.0 * m.t2i[0],
                100.0 * m.t2i[1],
                100.0 * m.t2i[2],
                r.images,
                r.captions
            )?;
        }
        for l in &self.linear_probe {
            writeln!(
                f,
                "linear-probe {} -> {}: top-1 {:6.2}% (l2 {:.1e})",
                l.train,
                l.test,
                100.0 * l.top1,
                l.l2
            )?;
        }
        Ok(())
    }
}
