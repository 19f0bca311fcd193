//! Feature preservation (after LDIFS, Mukhoti et al. 2023): keep the adapted model's
//! features on the training batch near the frozen model's, which largely removes the
//! forgetting of concepts the training data does not show. LDIFS compares features of
//! many layers; this compares the final L2-normalised embeddings (the ones zero-shot
//! classification and retrieval use), of both towers.
use crate::autograd::{Tape, Var};
use crate::error::Result;
use crate::tensor::Tensor;

/// `weight / N * sum_i |now_i - frozen_i|^2` over the rows of `now` `[N, P]` (on the tape)
/// and the constant `frozen` `[N, P]`.
pub fn preservation_term(tape: &Tape, now: &Var, frozen: &Tensor, weight: f32) -> Result<Var> {
    let n = now.shape()[0].max(1);
    let d = now.sub(&tape.constant(frozen.clone()))?;
    d.mul(&d)?.sum_all()?.scale(weight / n as f32)
}
