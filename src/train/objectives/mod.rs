//! The training objectives, one per file, composed by weight into one loss per step.
//!
//! - [`contrastive`]: symmetric InfoNCE between images and their captions (in-batch and
//!   hard negatives): caption data, and textual inversion.
//! - [`class_ce`]: cross-entropy of image features against class-prompt embeddings:
//!   labelled data (LoRA, full, and CoOp through its learned prompts).
//!
//! The primary objective follows from the method and the data; the regularising terms are
//! added on top with their weights (a zero weight adds nothing, not even a rounding).
pub mod class_ce;
pub mod contrastive;

use crate::adapt::trainable::Adaptation;
use crate::autograd::{Tape, Var};
use crate::clip::model::TextInput;
use crate::clip::tokenizer::ClipTokenizer;
use crate::clip::zero_shot::tokenize;
use crate::clip::Clip;
use crate::data::training::{gather_rows, TrainingData};
use crate::error::Result;
use crate::tensor::Tensor;
use crate::Device;

/// The target template of class-prompt objectives.
pub const CLASS_TEMPLATE: &str = "a photo of a {}.";

/// The fixed inputs of the objectives, prepared once before the loop.
pub struct Objectives {
    /// Image features of the frozen image tower `[n, P]` (prompt tuning, textual inversion).
    cached: Option<Vec<f32>>,
    /// Tokenised class prompts (LoRA / full on labelled data).
    class_prompts: Option<TextInput>,
    /// exp(logit_scale) of the base model, fixed for the class-prompt objective.
    scale: f32,
    p_dim: usize,
}

/// One step's inputs.
pub struct Step<'a> {
    pub model: &'a Clip,
    pub tok: &'a ClipTokenizer,
    pub adaptation: &'a Adaptation,
    pub data: &'a TrainingData,
    pub tape: &'a Tape,
    pub idx: &'a [usize],
    pub device: &'a Device,
}

impl Objectives {
    pub fn new(
        model: &Clip,
        tok: &ClipTokenizer,
        adaptation: &Adaptation,
        data: &TrainingData,
        device: &Device,
    ) -> Result<Objectives> {
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
        Ok(Objectives {
            cached,
            class_prompts,
            scale: model.logit_scale.value.item()?.exp(),
            p_dim: model.config.projection_dim,
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

    /// The step's loss.
    pub fn loss(&self, s: &Step) -> Result<Var> {
        match s.adaptation {
            Adaptation::Prompt(p) => {
                let f = self.cached_features(s)?;
                class_ce::prompt_loss(s.model, s.tape, p, &f, &s.data.batch_labels(s.idx, s.device)?)
            }
            Adaptation::TextualInversion(ti) => {
                let f = self.cached_features(s)?;
                let (input, _) = tokenize(s.model, s.tok, &s.data.batch_texts(s.idx))?;
                contrastive::textual_inversion_loss(s.model, s.tape, ti, &f, &input)
            }
            Adaptation::Lora | Adaptation::Full => {
                let x = s.data.batch_pixels(s.idx, s.device)?;
                let img = s.model.image_features(s.tape, &s.tape.constant(x))?.l2norm()?;
                match &self.class_prompts {
                    Some(cp) => {
                        let txt = s.model.text_features(s.tape, cp)?.l2norm()?;
                        class_ce::image_class_loss(&img, &txt, self.scale, &s.data.batch_labels(s.idx, s.device)?)
                    }
                    None => {
                        let (input, _) = tokenize(s.model, s.tok, &s.data.batch_texts(s.idx))?;
                        let txt = s.model.text_features(s.tape, &input)?.l2norm()?;
                        contrastive::clip_loss(s.model, s.tape, &img, &txt)
                    }
                }
            }
        }
    }
}
