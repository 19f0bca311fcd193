//! What each fine-tuning method trains, set up on a loaded model: CoOp's context vectors,
//! textual inversion's new word rows, LoRA's adapters, or every weight (full).
use crate::adapt::lora::{apply_lora, LoraConfig};
use crate::adapt::prompt::PromptLearner;
use crate::adapt::textual_inversion::TextualInversion;
use crate::autograd::Param;
use crate::clip::tokenizer::ClipTokenizer;
use crate::clip::Clip;
use crate::data::training::TrainingData;
use crate::error::{Error, Result};
use crate::nn::Module;

/// The method options that shape the trainable parameters.
pub struct MethodOptions<'a> {
    pub lora: &'a LoraConfig,
    pub n_ctx: usize,
    pub ctx_init: Option<&'a str>,
    pub class_specific: bool,
    pub new_tokens: &'a [String],
    pub init_token: Option<&'a str>,
    pub seed: u64,
}

/// The trainable part of a run.
pub enum Adaptation {
    Prompt(PromptLearner),
    TextualInversion(TextualInversion),
    /// Adapters inserted into the model's Linears.
    Lora,
    /// Every model weight.
    Full,
}

impl Adaptation {
    pub fn prompt(model: &Clip, tok: &ClipTokenizer, data: &TrainingData, o: &MethodOptions) -> Result<Adaptation> {
        if data.captions {
            return Err(Error::invalid(
                "--method prompt trains on labelled images (class folders), not a caption file",
            ));
        }
        Ok(Adaptation::Prompt(PromptLearner::new(
            model,
            tok,
            &data.classes,
            o.n_ctx,
            o.ctx_init,
            o.class_specific,
            o.seed,
        )?))
    }

    /// `spec` names the data in messages.
    pub fn textual_inversion(
        model: &Clip,
        tok: &mut ClipTokenizer,
        data: &TrainingData,
        spec: &str,
        o: &MethodOptions,
    ) -> Result<Adaptation> {
        if !data.captions || o.new_tokens.is_empty() {
            return Err(Error::invalid(
                "--method textual-inversion needs --new-token WORD and a caption file whose captions use it",
            ));
        }
        let words: Vec<&str> = o.new_tokens.iter().map(|s| s.as_str()).collect();
        let lower: Vec<String> = data.texts.iter().map(|t| t.to_lowercase()).collect();
        for w in &words {
            if !lower.iter().any(|t| t.contains(&w.to_lowercase())) {
                return Err(Error::invalid(format!(
                    "{spec}: no caption uses the new word '{w}': write captions like \"a photo of {w} on a table\"",
                )));
            }
        }
        Ok(Adaptation::TextualInversion(TextualInversion::new(
            model,
            tok,
            &words,
            o.init_token,
            o.seed,
        )?))
    }

    pub fn lora(model: &mut Clip, o: &MethodOptions) -> Result<Adaptation> {
        apply_lora(model, o.lora, o.seed)?;
        Ok(Adaptation::Lora)
    }

    pub fn full(model: &mut Clip) -> Adaptation {
        model.set_trainable(true);
        Adaptation::Full
    }

    /// The parameters trained, in a fixed order (the trainer state's order).
    pub fn params_mut<'a>(&'a mut self, model: &'a mut Clip) -> Vec<&'a mut Param> {
        match self {
            Adaptation::Prompt(p) => p.params_mut(),
            Adaptation::TextualInversion(t) => t.params_mut(),
            Adaptation::Lora | Adaptation::Full => model.params_mut().into_iter().filter(|p| p.trainable).collect(),
        }
    }

    /// How many values are trained.
    pub fn count(&self, model: &Clip) -> usize {
        match self {
            Adaptation::Prompt(p) => p.ctx.value.numel(),
            Adaptation::TextualInversion(t) => t.embeddings.value.numel(),
            Adaptation::Lora | Adaptation::Full => model.num_trainable(),
        }
    }

    /// The image tower is frozen: features can be computed once before the loop.
    pub fn frozen_image_tower(&self) -> bool {
        matches!(self, Adaptation::Prompt(_) | Adaptation::TextualInversion(_))
    }
}
