//! `--lora-scale`: how much of the trained LoRA update the adapter keeps.
//!
//! A LoRA update is `scale x B A` with `scale = alpha / r`; multiplying it by a factor
//! walks the adapted model back toward the base, trading target accuracy for retention
//! (the weight-space analogue of WiSE-FT, free because only `alpha` changes). A number
//! fixes the factor; `auto` holds out a stratified validation split of `--data`, trains on
//! the rest, then tries each factor of [`SWEEP`] on the validation split (target top-1)
//! and the retention set (zero-shot top-1 relative to the base model), and keeps the best
//! target top-1 whose retention meets `--min-retention`. The chosen factor is stored the
//! way PEFT reads it: `lora_alpha` becomes `alpha x factor`, and the manifest records the
//! sweep.
use std::path::Path;

use super::args::TrainArgs;
use super::linear_probe::PROBE_TEMPLATE;
use crate::adapt::lora::{adapter_sites, linear_mut, LoraConfig};
use crate::clip::tokenizer::ClipTokenizer;
use crate::clip::zero_shot::{class_embeddings, templates};
use crate::clip::Clip;
use crate::data::training::TrainingData;
use crate::error::{Error, Result};
use crate::eval::linear_probe::split_train_val;
use crate::eval::metrics::topk_accuracy;
use crate::eval::suite::{load_labeled, zero_shot, LabeledSet};

/// `--lora-scale`: a fixed factor, or chosen by a sweep.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum LoraScale {
    Fixed(f32),
    Auto,
}

impl Default for LoraScale {
    fn default() -> Self {
        LoraScale::Fixed(1.0)
    }
}

impl std::str::FromStr for LoraScale {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        if s.eq_ignore_ascii_case("auto") {
            return Ok(LoraScale::Auto);
        }
        match s.trim().parse::<f32>() {
            Ok(f) if f.is_finite() && f > 0.0 && f <= 4.0 => Ok(LoraScale::Fixed(f)),
            _ => Err(Error::invalid(format!(
                "--lora-scale {s:?}: give auto or a factor in (0, 4] for the trained LoRA update (1 keeps it as trained)"
            ))),
        }
    }
}

impl std::fmt::Display for LoraScale {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LoraScale::Auto => write!(f, "auto"),
            LoraScale::Fixed(x) => write!(f, "{x}"),
        }
    }
}

/// The factors `auto` tries, largest first. Not 0: an adapter with `lora_alpha` 0 is the
/// base model, which PEFT and cliptune refuse to load as an adapter.
pub const SWEEP: [f32; 6] = [1.0, 0.8, 0.6, 0.4, 0.2, 0.1];

/// Fraction of each class `auto` holds out for validation.
pub const VAL_FRACTION: f32 = 0.2;

/// One factor of the sweep and what it measured.
#[derive(Clone, Debug)]
pub struct Tried {
    pub factor: f32,
    pub val_top1: f32,
    /// Retention-set top-1 over the base model's.
    pub retention: f32,
}

/// What `auto` needs before training: the validation split and the retention set.
pub(crate) struct Sweep {
    pub(crate) val_idx: Vec<usize>,
    pub(crate) retention: LabeledSet,
    pub(crate) retention_spec: String,
    pub(crate) templates: Vec<String>,
}

/// The retention set: `--retention-set`, else the model's shipped `heldout.json`.
pub(crate) fn retention_spec(given: Option<&str>, model_dir: &Path, who: &str) -> Result<String> {
    if let Some(s) = given {
        return Ok(s.to_string());
    }
    let shipped = model_dir.join("heldout.json");
    if shipped.is_file() {
        return Ok(shipped.display().to_string());
    }
    Err(Error::invalid(format!(
        "{who}: no retention set: give --retention-set DATA (general labelled images whose zero-shot top-1 must \
         be kept, e.g. fashion-mnist:test:20 or a class-folder tree); the model {} ships none (no heldout.json)",
        model_dir.display()
    )))
}

/// The model's own prompt templates (`templates.txt`), else the 80 OpenAI templates.
pub(crate) fn templates_of(model_dir: &Path) -> Result<Vec<String>> {
    let f = model_dir.join("templates.txt");
    if f.is_file() {
        templates(&f.display().to_string())
    } else {
        templates("openai")
    }
}

/// Check `auto`'s inputs and split `data`: returns the sweep's inputs and the training
/// rows. Runs before anything is trained, so a missing retention set or unlabelled data
/// costs nothing.
pub(crate) fn prepare(a: &TrainArgs, data: &TrainingData) -> Result<(Sweep, Vec<usize>)> {
    if !(a.min_retention > 0.0 && a.min_retention <= 1.0) {
        return Err(Error::invalid(format!(
            "--min-retention {} must be within (0, 1]: the fraction of the base model's zero-shot top-1 to keep",
            a.min_retention
        )));
    }
    if data.captions || data.classes.len() < 2 {
        return Err(Error::invalid(format!(
            "{}: --lora-scale auto measures target top-1 on a held-out split, so it needs labelled images of at \
             least 2 classes (class folders, a sprite sheet or fashion-mnist:...); give a number instead, e.g. \
             --lora-scale 0.5",
            a.data
        )));
    }
    let spec = retention_spec(a.retention_set.as_deref(), &a.model_dir, "--lora-scale auto")?;
    let retention = load_labeled(&spec, None)?;
    if retention.is_empty() {
        return Err(Error::invalid(format!("{spec}: the retention set has no images")));
    }
    let (train_idx, val_idx) = split_train_val(data.len(), &data.labels, VAL_FRACTION, a.seed);
    if val_idx.is_empty() {
        return Err(Error::invalid(format!(
            "{}: no class has 2 or more images, so nothing can be held out to choose --lora-scale auto; give a \
             number instead",
            a.data
        )));
    }
    let sweep = Sweep {
        val_idx,
        retention,
        retention_spec: spec,
        templates: templates_of(&a.model_dir)?,
    };
    Ok((sweep, train_idx))
}

/// Give every LoRA update in `model` (trained with `alpha`) the scale an adapter saved
/// with `lora_alpha` = `alpha x factor` loads with, so what the sweep measured is what a
/// reload computes.
pub(crate) fn set_factor(model: &mut Clip, alpha: f32, factor: f32) {
    let scaled = LoraConfig {
        alpha: alpha * factor,
        ..Default::default()
    };
    for site in adapter_sites(model) {
        if let Some(l) = linear_mut(model, &site).and_then(|l| l.lora.as_mut()) {
            l.scale = LoraConfig {
                rank: l.rank(),
                ..scaled.clone()
            }
            .scale();
        }
    }
}

/// Top-1 of the classifier "a photo of a {class}." on images `idx` of `data`.
fn val_top1(model: &Clip, tok: &ClipTokenizer, data: &TrainingData, idx: &[usize]) -> Result<f32> {
    let dev = model.device();
    let px = data.batch_pixels(idx, dev)?;
    let img = model.encode_image(&px, 64)?.to_vec()?;
    let t = vec![PROBE_TEMPLATE.to_string()];
    let cls = class_embeddings(model, tok, &data.classes, &t)?.to_vec()?;
    let labels: Vec<usize> = idx.iter().map(|&i| data.labels[i]).collect();
    top1(&img, &cls, model.config.projection_dim, &labels)
}

/// Top-1 of image embeddings `img` against class embeddings `cls` (both normalised).
pub(crate) fn top1(img: &[f32], cls: &[f32], p: usize, labels: &[usize]) -> Result<f32> {
    let c = cls.len() / p;
    let s: Vec<f32> = img
        .chunks(p)
        .flat_map(|x| {
            cls.chunks(p)
                .map(move |t| x.iter().zip(t).map(|(a, b)| a * b).sum::<f32>())
        })
        .collect();
    topk_accuracy(&s, labels.len(), c, labels, 1)
}

/// Try every factor of [`SWEEP`] on the trained `model` (with `base_retention_top1`, the
/// base model's retention-set top-1), leave the chosen one applied, and return it, whether
/// it meets `--min-retention`, the table and the reason.
pub(crate) fn sweep(
    a: &TrainArgs,
    s: &Sweep,
    model: &mut Clip,
    tok: &ClipTokenizer,
    data: &TrainingData,
    base_retention_top1: f32,
) -> Result<(f32, bool, Vec<Tried>, String)> {
    let mut tried = vec![];
    for &factor in &SWEEP {
        set_factor(model, a.lora.alpha, factor);
        let v = val_top1(model, tok, data, &s.val_idx)?;
        let r = zero_shot(model, tok, Some(&a.model_dir), &s.retention, &s.templates)?.top1;
        let retention = if base_retention_top1 > 0.0 {
            r / base_retention_top1
        } else {
            1.0
        };
        eprintln!(
            "[lora-scale] x{factor:.1}: validation top-1 {:.2}%, retention {retention:.3}",
            100.0 * v
        );
        tried.push(Tried {
            factor,
            val_top1: v,
            retention,
        });
    }
    let (i, met, why) = choose(&tried, a.min_retention);
    set_factor(model, a.lora.alpha, tried[i].factor);
    Ok((tried[i].factor, met, tried, why))
}

/// The best validation top-1 among factors whose retention meets `floor` (ties: the larger
/// retention); when none meets it, the best retention (the caller says so and fails).
pub fn choose(tried: &[Tried], floor: f32) -> (usize, bool, String) {
    let mut best: Option<usize> = None;
    for (i, t) in tried.iter().enumerate() {
        if t.retention + 1e-6 < floor {
            continue;
        }
        best = match best {
            Some(b)
                if tried[b].val_top1 > t.val_top1
                    || (tried[b].val_top1 == t.val_top1 && tried[b].retention >= t.retention) =>
            {
                Some(b)
            }
            _ => Some(i),
        };
    }
    match best {
        Some(i) => {
            let t = &tried[i];
            let dropped = tried.iter().filter(|x| x.retention + 1e-6 < floor).count();
            (
                i,
                true,
                format!(
                    "x{:.1}: the best validation top-1 ({:.2}%) with retention {:.3} >= {floor} ({dropped} of {} \
                     factors fell below it)",
                    t.factor,
                    100.0 * t.val_top1,
                    t.retention,
                    tried.len()
                ),
            )
        }
        None => {
            let i = (0..tried.len())
                .max_by(|&x, &y| tried[x].retention.total_cmp(&tried[y].retention))
                .unwrap_or(0);
            (
                i,
                false,
                format!(
                    "no factor keeps retention {floor}; kept the best retention ({:.3})",
                    tried[i].retention
                ),
            )
        }
    }
}

/// The sweep as the manifest records it.
pub(crate) fn to_json(factor: f32, tried: &[Tried], why: &str, s: &Sweep, floor: f32) -> serde_json::Value {
    serde_json::json!({
        "factor": factor,
        "chosen_by": "auto",
        "why": why,
        "min_retention": floor,
        "retention_set": s.retention_spec,
        "validation_images": s.val_idx.len(),
        "sweep": tried.iter().map(|t| serde_json::json!({
            "factor": t.factor, "val_top1": t.val_top1, "retention": t.retention
        })).collect::<Vec<_>>(),
    })
}

/// The base model's retention-set top-1 (before training).
pub(crate) fn base_retention(a: &TrainArgs, s: &Sweep, model: &Clip, tok: &ClipTokenizer) -> Result<f32> {
    Ok(zero_shot(model, tok, Some(&a.model_dir), &s.retention, &s.templates)?.top1)
}

/// Rows `idx` of `data` (the training split of `auto`).
pub(crate) fn select(data: &TrainingData, idx: &[usize]) -> TrainingData {
    let per = data.per_image();
    TrainingData {
        pixels: idx
            .iter()
            .flat_map(|&i| data.pixels[i * per..(i + 1) * per].iter().copied())
            .collect(),
        image_shape: data.image_shape.clone(),
        labels: idx.iter().map(|&i| data.labels[i]).collect(),
        classes: data.classes.clone(),
        texts: idx.iter().filter_map(|&i| data.texts.get(i).cloned()).collect(),
        negatives: idx.iter().filter_map(|&i| data.negatives.get(i).cloned()).collect(),
        captions: data.captions,
    }
}
