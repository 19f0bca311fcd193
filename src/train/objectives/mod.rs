//! The training objectives, one per file, composed by weight into one loss per step.
//!
//! - [`contrastive`]: symmetric InfoNCE between images and their captions (in-batch and
//!   hard negatives): caption data, and textual inversion.
//! - [`class_ce`]: cross-entropy of image features against class-prompt embeddings:
//!   labelled data (LoRA, full, and CoOp through its learned prompts).
//! - [`kgcoop`]: learned prompts' class embeddings near the hand-crafted prompt's (CoOp;
//!   the model's own template, see [`kgcoop::HandTemplate`]).
//! - [`feature_preservation`]: the adapted model's features on the training batch near
//!   the frozen model's (LoRA, full).
//! - [`distillation`]: the base model's image-text similarities on a reference set kept
//!   (LoRA, full; `--reference`).
//!
//! The primary objective follows from the method and the data; the regularising terms are
//! added on top with their weights (a zero weight adds nothing, not even a rounding).
pub mod class_ce;
pub mod contrastive;
pub mod distillation;
pub mod feature_preservation;
pub mod kgcoop;

use crate::adapt::trainable::Adaptation;
use crate::autograd::{Tape, Var};
use crate::clip::model::TextInput;
use crate::clip::tokenizer::ClipTokenizer;
use crate::clip::zero_shot::{class_embeddings, tokenize};
use crate::clip::Clip;
use crate::data::training::{gather_rows, ReferenceSet, TrainingData};
use crate::error::{Error, Result};
use crate::tensor::Tensor;
use crate::Device;

/// The target template of class-prompt objectives (LoRA and full on labelled data), and
/// the KgCoOp anchor of a model that ships no `templates.txt`.
pub const CLASS_TEMPLATE: &str = "a photo of a {}.";

/// The regularising terms' weights (0: the term is off and costs nothing).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ObjectiveWeights {
    /// KgCoOp (prompt tuning).
    pub kgcoop: f32,
    /// Feature preservation (LoRA, full).
    pub feature_preservation: f32,
    /// Reference distillation (LoRA, full): needs `reference`.
    pub reference_weight: f32,
    /// A captioned reference set (caption file, or a sprite sheet with captions).
    pub reference: Option<String>,
}

impl ObjectiveWeights {
    /// `cliptune train`'s defaults: the cheap terms on (KgCoOp 8 as in the paper; feature
    /// preservation 1), no reference set.
    pub fn defaults() -> ObjectiveWeights {
        ObjectiveWeights {
            kgcoop: 8.0,
            feature_preservation: 1.0,
            reference_weight: 0.0,
            reference: None,
        }
    }

    /// Weights must be finite and non-negative, and each term must fit the method.
    pub fn check(&self, adaptation: &Adaptation) -> Result<()> {
        for (flag, w) in [
            ("--kgcoop", self.kgcoop),
            ("--feature-preservation", self.feature_preservation),
            ("--reference-weight", self.reference_weight),
        ] {
            if !w.is_finite() || w < 0.0 {
                return Err(Error::invalid(format!(
                    "{flag} {w}: a weight must be a finite number >= 0"
                )));
            }
        }
        let image_tower = matches!(adaptation, Adaptation::Lora | Adaptation::Full);
        if self.reference.is_some() && !image_tower {
            return Err(Error::invalid(
                "--reference: reference distillation applies to --method lora and full (the other methods leave the \
                 reference set's similarities unchanged)",
            ));
        }
        Ok(())
    }
}

/// Features of the frozen (base) model, computed once.
struct Frozen {
    /// L2-normalised image features of every training image `[n, P]` (host).
    images: Option<Vec<f32>>,
    /// L2-normalised class-prompt features `[C, P]` (feature preservation, labelled data).
    class_text: Option<Tensor>,
    /// Hand-crafted prompt class embeddings `[C, P]` (KgCoOp).
    hand: Option<Tensor>,
}

/// The reference set and the base model's features of it.
struct Reference {
    set: ReferenceSet,
    /// L2-normalised base image / caption features `[R, P]` (host).
    images: Vec<f32>,
    texts: Vec<f32>,
    batch: usize,
}

/// The fixed inputs of the objectives, prepared once before the loop.
pub struct Objectives {
    /// Image features of the frozen image tower `[n, P]` (prompt tuning, textual inversion).
    cached: Option<Vec<f32>>,
    /// Tokenised class prompts (LoRA / full on labelled data).
    class_prompts: Option<TextInput>,
    /// exp(logit_scale) of the base model, fixed for the class-prompt objective.
    scale: f32,
    p_dim: usize,
    weights: ObjectiveWeights,
    frozen: Frozen,
    reference: Option<Reference>,
}

/// One step's inputs.
pub struct Step<'a> {
    pub model: &'a Clip,
    /// The model before training (frozen text features of captions).
    pub base: &'a Clip,
    pub tok: &'a ClipTokenizer,
    pub adaptation: &'a Adaptation,
    pub data: &'a TrainingData,
    pub tape: &'a Tape,
    pub idx: &'a [usize],
    /// 0-based step (the reference batch rotates with it).
    pub step: usize,
    pub device: &'a Device,
}

impl Objectives {
    /// `base`: the model before training (the adaptation not yet applied, or applied with
    /// a zero update); `batch`: the training batch (the reference batch's size too);
    /// `hand_template`: KgCoOp's hand-crafted prompt ([`kgcoop::HandTemplate`]).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        model: &Clip,
        base: &Clip,
        tok: &ClipTokenizer,
        adaptation: &Adaptation,
        data: &TrainingData,
        weights: &ObjectiveWeights,
        hand_template: &str,
        reference: Option<ReferenceSet>,
        batch: usize,
        device: &Device,
    ) -> Result<Objectives> {
        weights.check(adaptation)?;
        let cached = if adaptation.frozen_image_tower() {
            Some(model.encode_image(&data.all_pixels(device)?, 64)?.to_vec()?)
        } else {
            None
        };
        let class_prompts = if !data.captions && matches!(adaptation, Adaptation::Lora | Adaptation::Full) {
            let t: Vec<String> = data.classes.iter().map(|c| CLASS_TEMPLATE.replace("{}", c)).collect();
            Some(tokenize(model, tok, &t)?.0)
        } else {
            None
        };
        let preserve = weights.feature_preservation > 0.0 && matches!(adaptation, Adaptation::Lora | Adaptation::Full);
        let frozen = Frozen {
            images: if preserve {
                Some(base.encode_image(&data.all_pixels(device)?, 64)?.to_vec()?)
            } else {
                None
            },
            class_text: match (&class_prompts, preserve) {
                (Some(cp), true) => Some(base.encode_text(cp, 256)?),
                _ => None,
            },
            hand: if weights.kgcoop > 0.0 && matches!(adaptation, Adaptation::Prompt(_)) {
                Some(class_embeddings(
                    base,
                    tok,
                    &data.classes,
                    &[hand_template.to_string()],
                )?)
            } else {
                None
            },
        };
        let reference = match reference {
            Some(set) if weights.reference_weight > 0.0 => {
                let images = base.encode_image(&set.all_pixels(device)?, 64)?.to_vec()?;
                let (input, _) = tokenize(base, tok, &set.captions)?;
                let texts = base.encode_text(&input, 256)?.to_vec()?;
                let batch = batch.min(set.len()).max(1);
                Some(Reference {
                    set,
                    images,
                    texts,
                    batch,
                })
            }
            _ => None,
        };
        Ok(Objectives {
            cached,
            class_prompts,
            scale: model.logit_scale.value.item()?.exp(),
            p_dim: model.config.projection_dim,
            weights: weights.clone(),
            frozen,
            reference,
        })
    }

    /// The frozen image features of images `idx`.
    fn cached_features(&self, s: &Step) -> Result<Tensor> {
        let cached = self.cached.as_ref().expect("frozen image tower features");
        Tensor::from_vec(
            gather_rows(cached, s.idx, self.p_dim),
            &[s.idx.len(), self.p_dim],
            s.device,
        )
    }

    /// The step's loss: the method's objective plus each weighted term.
    pub fn loss(&self, s: &Step) -> Result<Var> {
        let w = &self.weights;
        match s.adaptation {
            Adaptation::Prompt(p) => {
                let f = self.cached_features(s)?;
                let labels = s.data.batch_labels(s.idx, s.device)?;
                match &self.frozen.hand {
                    None => class_ce::prompt_loss(s.model, s.tape, p, &f, &labels, self.scale),
                    Some(hand) => {
                        let feats = p.class_features(s.model, s.tape)?;
                        let ce = p.loss_from_class_features(s.model, s.tape, &feats, &f, &labels, self.scale)?;
                        ce.add(&kgcoop::kgcoop_term(s.tape, &feats, hand, w.kgcoop)?)
                    }
                }
            }
            Adaptation::TextualInversion(ti) => {
                let f = self.cached_features(s)?;
                let (input, _) = tokenize(s.model, s.tok, &s.data.batch_texts(s.idx))?;
                contrastive::textual_inversion_loss(s.model, s.tape, ti, &f, &input)
            }
            Adaptation::Lora | Adaptation::Full => {
                let x = s.data.batch_pixels(s.idx, s.device)?;
                let img = s.model.image_features(s.tape, &s.tape.constant(x))?.l2norm()?;
                let (mut loss, txt, frozen_txt) = match &self.class_prompts {
                    Some(cp) => {
                        let txt = s.model.text_features(s.tape, cp)?.l2norm()?;
                        let loss =
                            class_ce::image_class_loss(&img, &txt, self.scale, &s.data.batch_labels(s.idx, s.device)?)?;
                        (loss, txt, self.frozen.class_text.clone())
                    }
                    None => {
                        let (input, _) = tokenize(s.model, s.tok, &s.data.batch_texts(s.idx))?;
                        let txt = s.model.text_features(s.tape, &input)?.l2norm()?;
                        let loss = contrastive::clip_loss(s.model, s.tape, &img, &txt)?;
                        // Kept on the device (no readback inside a step); a non-finite
                        // feature shows up in the loss, which the loop checks.
                        let frozen = if self.frozen.images.is_some() {
                            let tape = Tape::inference();
                            Some(s.base.text_features(&tape, &input)?.value.l2norm()?.0)
                        } else {
                            None
                        };
                        (loss, txt, frozen)
                    }
                };
                if let (Some(frozen_img), Some(frozen_txt)) = (&self.frozen.images, frozen_txt) {
                    let fi = Tensor::from_vec(
                        gather_rows(frozen_img, s.idx, self.p_dim),
                        &[s.idx.len(), self.p_dim],
                        s.device,
                    )?;
                    let wf = w.feature_preservation;
                    loss = loss.add(&feature_preservation::preservation_term(s.tape, &img, &fi, wf)?)?;
                    loss = loss.add(&feature_preservation::preservation_term(s.tape, &txt, &frozen_txt, wf)?)?;
                }
                if let Some(r) = &self.reference {
                    loss = loss.add(&self.reference_term(s, r)?)?;
                }
                Ok(loss)
            }
        }
    }

    /// The distillation term on this step's reference batch (the set in a fixed rotation).
    fn reference_term(&self, s: &Step, r: &Reference) -> Result<Var> {
        let n = r.set.len();
        let idx: Vec<usize> = (0..r.batch).map(|j| (s.step * r.batch + j) % n).collect();
        let p = self.p_dim;
        let (fi, ft) = (gather_rows(&r.images, &idx, p), gather_rows(&r.texts, &idx, p));
        let b = idx.len();
        let mut sim0 = vec![0f32; b * b];
        for i in 0..b {
            for j in 0..b {
                sim0[i * b + j] = (0..p).map(|k| fi[i * p + k] * ft[j * p + k]).sum();
            }
        }
        let x = r.set.batch_pixels(&idx, s.device)?;
        let img = s.model.image_features(s.tape, &s.tape.constant(x))?.l2norm()?;
        let captions: Vec<String> = idx.iter().map(|&i| r.set.captions[i].clone()).collect();
        let (input, _) = tokenize(s.model, s.tok, &captions)?;
        let txt = s.model.text_features(s.tape, &input)?.l2norm()?;
        distillation::distillation_term(
            s.tape,
            &img,
            &txt,
            &Tensor::from_vec(sim0, &[b, b], s.device)?,
            self.weights.reference_weight,
        )
    }
}
