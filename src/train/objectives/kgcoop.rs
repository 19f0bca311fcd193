//! KgCoOp (Yao et al., CVPR 2023): keep the learned prompts' class embeddings near the
//! hand-crafted prompt's, so the context keeps working on classes it was not trained on.
//! The anchor is computed once by the frozen model.
//!
//! The hand-crafted prompt is the model's own: the first line of `MODEL/templates.txt`
//! where the model directory ships one (cliptune-mini was pretrained on "an emoji of {}."
//! captions, and "a photo of a {}." alone keeps only about half of its zero-shot accuracy),
//! else [`CLASS_TEMPLATE`]. The same template gives CoOp's default context init.
use std::path::Path;

use super::CLASS_TEMPLATE;
use crate::autograd::{Tape, Var};
use crate::clip::zero_shot::templates;
use crate::error::Result;
use crate::tensor::Tensor;

/// `weight / C * sum_c |learned_c - hand_c|^2` for L2-normalised class embeddings
/// `learned` `[C, P]` (on the tape) and the constant `hand` `[C, P]`.
pub fn kgcoop_term(tape: &Tape, learned: &Var, hand: &Tensor, weight: f32) -> Result<Var> {
    let c = learned.shape()[0].max(1);
    let d = learned.sub(&tape.constant(hand.clone()))?;
    d.mul(&d)?.sum_all()?.scale(weight / c as f32)
}

/// A model's hand-crafted class prompt and where it came from.
#[derive(Clone, Debug, PartialEq)]
pub struct HandTemplate {
    /// The template, with `{}` for the class name.
    pub template: String,
    /// True when it is the first line of the model's `templates.txt`.
    pub from_model: bool,
}

impl HandTemplate {
    /// The first template of `model_dir/templates.txt`, else [`CLASS_TEMPLATE`].
    pub fn of_model(model_dir: &Path) -> Result<HandTemplate> {
        let f = model_dir.join("templates.txt");
        if !f.is_file() {
            return Ok(HandTemplate {
                template: CLASS_TEMPLATE.into(),
                from_model: false,
            });
        }
        // `templates` refuses an empty file and a line without "{}", naming the file.
        let first = templates(&f.display().to_string())?.swap_remove(0);
        Ok(HandTemplate {
            template: first,
            from_model: true,
        })
    }

    /// The words before the class name when the template reads `"<words> {}."` (CoOp's
    /// prompt is `[context] [class name] [.]`, so only that form is reproduced exactly by
    /// a context initialised from the words); None for any other form.
    pub fn context_phrase(&self) -> Option<String> {
        let words = self.template.strip_suffix(" {}.")?.trim();
        (!words.is_empty() && !words.contains("{}")).then(|| words.to_string())
    }

    /// CoOp's context init when `--ctx-init` is not given: the phrase of the model's own
    /// template; None (random init, CoOp's default) for a model without `templates.txt`
    /// or whose first template is not of the form `"<words> {}."`.
    pub fn default_ctx_init(&self) -> Option<String> {
        if self.from_model {
            self.context_phrase()
        } else {
            None
        }
    }

    /// Where the template came from, for the progress header.
    pub fn source(&self) -> &'static str {
        if self.from_model {
            "the model's templates.txt"
        } else {
            "the built-in default; the model ships no templates.txt"
        }
    }
}
