//! Contrastive (CLIP's symmetric InfoNCE): each image against its caption, the other
//! captions of the batch and the hard negatives, at the model's learned logit scale.
use crate::adapt::textual_inversion::TextualInversion;
use crate::autograd::{Tape, Var};
use crate::clip::model::TextInput;
use crate::clip::Clip;
use crate::error::Result;
use crate::tensor::Tensor;

/// Normalised image features `[B, P]` against normalised caption features `[B + negatives, P]`.
pub fn clip_loss(model: &Clip, tape: &Tape, img: &Var, txt: &Var) -> Result<Var> {
    Var::contrastive_loss(img, txt, &tape.param(&model.logit_scale))
}

/// Textual inversion: frozen image features against captions using the new words.
pub fn textual_inversion_loss(
    model: &Clip,
    tape: &Tape,
    ti: &TextualInversion,
    features: &Tensor,
    captions: &TextInput,
) -> Result<Var> {
    ti.loss_contrastive(model, tape, features, captions)
}
