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
//! - the reference term (LoRA, full; `--reference`): on a general reference set, the base
//!   model's image and caption features kept ([`feature_preservation`], the default), its
//!   image features only, or its image-text similarities ([`distillation`]). For prompt tuning the reference set's class names get
//!   the KgCoOp term instead: the learned context applied to general names stays near the
//!   hand-crafted prompt (the image tower is frozen, so only the prompts can drift).
//!
//! The primary objective follows from the method and the data; the regularising terms are
//! added on top with their weights (a zero weight adds nothing, not even a rounding).
pub mod class_ce;
pub mod contrastive;
pub mod distillation;
pub mod feature_preservation;
pub mod kgcoop;

use crate::adapt::prompt::PromptLearner;
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

/// What the reference term keeps on the reference set (LoRA, full).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ReferenceLoss {
    /// The base model's image and caption features (LDIFS on general data): the squared
    /// distance of each, like `--feature-preservation` on the training batch.
    #[default]
    Features,
    /// The base model's image features only (the caption batch is not encoded).
    ImageFeatures,
    /// The base model's image-caption cosine similarities (ZSCL-style, squared error).
    Similarity,
}

impl std::str::FromStr for ReferenceLoss {
    type Err = Error;
    fn from_str(s: &str) -> Result<ReferenceLoss> {
        match s {
            "features" => Ok(ReferenceLoss::Features),
            "image-features" => Ok(ReferenceLoss::ImageFeatures),
            "similarity" => Ok(ReferenceLoss::Similarity),
            _ => Err(Error::invalid(format!(
                "--reference-loss {s:?}: expected features, image-features or similarity"
            ))),
        }
    }
}

impl std::fmt::Display for ReferenceLoss {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ReferenceLoss::Features => "features",
            ReferenceLoss::ImageFeatures => "image-features",
            ReferenceLoss::Similarity => "similarity",
        })
    }
}

/// The regularising terms' weights (0: the term is off and costs nothing).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ObjectiveWeights {
    /// KgCoOp (prompt tuning).
    pub kgcoop: f32,
    /// Feature preservation (LoRA, full).
    pub feature_preservation: f32,
    /// The reference term: distillation (LoRA, full) or KgCoOp on the reference set's class
    /// names (prompt tuning); needs `reference`.
    pub reference_weight: f32,
    /// A captioned reference set (caption file, or a sprite sheet with captions).
    pub reference: Option<String>,
    /// What the reference term keeps (LoRA, full).
    pub reference_loss: ReferenceLoss,
    /// Reference items per step (None: the training batch), at most the set's size.
    pub reference_batch: Option<usize>,
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
            reference_loss: ReferenceLoss::Features,
            reference_batch: None,
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
        if self.reference_batch == Some(0) {
            return Err(Error::invalid(
                "--reference-batch 0: at least 1 reference item per step",
            ));
        }
        let applies = matches!(adaptation, Adaptation::Lora | Adaptation::Full | Adaptation::Prompt(_));
        if self.reference.is_some() && !applies {
            return Err(Error::invalid(
                "--reference: the reference term applies to --method lora, full and prompt (the other methods leave \
                 the reference set's similarities unchanged)",
            ));
        }
        if let (Some(spec), Adaptation::Prompt(p)) = (&self.reference, adaptation) {
            if p.class_specific {
                return Err(Error::invalid(format!(
                    "--reference {spec}: a class-specific context (--class-specific) has no context for the \
                     reference set's classes; use the shared context"
                )));
            }
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
    /// L2-normalised base image / caption features `[R, P]` (host); no caption features
    /// for `--reference-loss image-features`.
    images: Vec<f32>,
    texts: Vec<f32>,
    batch: usize,
}

/// Prompt tuning's reference term: the reference set's class names and their hand-crafted
/// prompt embeddings under the base model.
struct PromptReference {
    /// A learner over the reference class names (its suffixes; the context is the live one).
    names: PromptLearner,
    /// `[R, P]` (host).
    hand: Vec<f32>,
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
    prompt_reference: Option<PromptReference>,
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
        let mut prompt_reference = None;
        let reference = match (reference, adaptation) {
            (Some(set), Adaptation::Prompt(p)) if weights.reference_weight > 0.0 => {
                if set.classes.is_empty() {
                    return Err(Error::invalid(format!(
                        "--reference {}: prompt tuning applies the learned context to the reference set's class \
                         names, and a caption file has none; give a sprite sheet (its \"classes\")",
                        weights.reference.as_deref().unwrap_or("")
                    )));
                }
                let names = p.for_classes(model, tok, &set.classes)?;
                let hand = class_embeddings(base, tok, &set.classes, &[hand_template.to_string()])?.to_vec()?;
                prompt_reference = Some(PromptReference {
                    batch: weights.reference_batch.unwrap_or(batch).min(set.classes.len()).max(1),
                    names,
                    hand,
                });
                None
            }
            (Some(set), _) if weights.reference_weight > 0.0 => {
                let images = base.encode_image(&set.all_pixels(device)?, 64)?.to_vec()?;
                // Image features only: the captions are never encoded, not even once.
                let texts = if weights.reference_loss == ReferenceLoss::ImageFeatures {
                    vec![]
                } else {
                    let (input, _) = tokenize(base, tok, &set.captions)?;
                    base.encode_text(&input, 256)?.to_vec()?
                };
                let batch = weights.reference_batch.unwrap_or(batch).min(set.len()).max(1);
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
            prompt_reference,
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
                let loss = match &self.frozen.hand {
                    None => class_ce::prompt_loss(s.model, s.tape, p, &f, &labels, self.scale)?,
                    Some(hand) => {
                        let feats = p.class_features(s.model, s.tape)?;
                        let ce = p.loss_from_class_features(s.model, s.tape, &feats, &f, &labels, self.scale)?;
                        ce.add(&kgcoop::kgcoop_term(s.tape, &feats, hand, w.kgcoop)?)?
                    }
                };
                match &self.prompt_reference {
                    None => Ok(loss),
                    Some(r) => loss.add(&self.prompt_reference_term(s, p, r)?),
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

    /// Prompt tuning's reference term on this step's batch of reference class names (in a
    /// fixed rotation): KgCoOp between the live context applied to them and their
    /// hand-crafted prompt embeddings.
    fn prompt_reference_term(&self, s: &Step, p: &PromptLearner, r: &PromptReference) -> Result<Var> {
        let n = r.names.classes.len();
        let idx: Vec<usize> = (0..r.batch).map(|j| (s.step * r.batch + j) % n).collect();
        let mut q = r.names.subset(&idx);
        q.ctx = p.ctx.clone();
        let feats = q.class_features(s.model, s.tape)?;
        let hand = Tensor::from_vec(
            gather_rows(&r.hand, &idx, self.p_dim),
            &[idx.len(), self.p_dim],
            s.device,
        )?;
        kgcoop::kgcoop_term(s.tape, &feats, &hand, self.weights.reference_weight)
    }

    /// The reference term on this step's reference batch (the set in a fixed rotation):
    /// feature preservation or similarity distillation, by `--reference-loss`.
    fn reference_term(&self, s: &Step, r: &Reference) -> Result<Var> {
        let n = r.set.len();
        let idx: Vec<usize> = (0..r.batch).map(|j| (s.step * r.batch + j) % n).collect();
        let p = self.p_dim;
        let fi = gather_rows(&r.images, &idx, p);
        let b = idx.len();
        let w = self.weights.reference_weight;
        let x = r.set.batch_pixels(&idx, s.device)?;
        let img = s.model.image_features(s.tape, &s.tape.constant(x))?.l2norm()?;
        let keep_img = || -> Result<Var> {
            let frozen_img = Tensor::from_vec(fi.clone(), &[b, p], s.device)?;
            feature_preservation::preservation_term(s.tape, &img, &frozen_img, w)
        };
        if self.weights.reference_loss == ReferenceLoss::ImageFeatures {
            return keep_img();
        }
        let ft = gather_rows(&r.texts, &idx, p);
        let captions: Vec<String> = idx.iter().map(|&i| r.set.captions[i].clone()).collect();
        let (input, _) = tokenize(s.model, s.tok, &captions)?;
        let txt = s.model.text_features(s.tape, &input)?.l2norm()?;
        if self.weights.reference_loss == ReferenceLoss::Features {
            let frozen_txt = Tensor::from_vec(ft, &[b, p], s.device)?;
            return keep_img()?.add(&feature_preservation::preservation_term(s.tape, &txt, &frozen_txt, w)?);
        }
        let mut sim0 = vec![0f32; b * b];
        for i in 0..b {
            for j in 0..b {
                sim0[i * b + j] = (0..p).map(|k| fi[i * p + k] * ft[j * p + k]).sum();
            }
        }
        distillation::distillation_term(s.tape, &img, &txt, &Tensor::from_vec(sim0, &[b, b], s.device)?, w)
    }
}
