//! KgCoOp (Yao et al., CVPR 2023): keep the learned prompts' class embeddings near the
//! hand-crafted prompt's, so the context keeps working on classes it was not trained on.
//! The anchor is computed once by the frozen model.
use crate::autograd::{Tape, Var};
use crate::error::Result;
use crate::tensor::Tensor;

/// `weight / C * sum_c |learned_c - hand_c|^2` for L2-normalised class embeddings
/// `learned` `[C, P]` (on the tape) and the constant `hand` `[C, P]`.
pub fn kgcoop_term(tape: &Tape, learned: &Var, hand: &Tensor, weight: f32) -> Result<Var> {
    let c = learned.shape()[0].max(1);
    let d = learned.sub(&tape.constant(hand.clone()))?;
    d.mul(&d)?.sum_all()?.scale(weight / c as f32)
}
