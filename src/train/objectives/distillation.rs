//! Reference distillation (in the spirit of ZSCL, Zheng et al. 2023): on a general
//! captioned reference set, keep the image-text similarities the base model gives. ZSCL
//! matches softmax distributions; this matches the cosine similarities themselves (a
//! squared error, so a zero-change model costs exactly 0).
use crate::autograd::{Tape, Var};
use crate::backend::{Act, MatmulSpec};
use crate::error::Result;
use crate::tensor::Tensor;

/// `weight / (B * T) * sum |img @ txt^T - frozen|^2` for L2-normalised reference image
/// features `img` `[B, P]`, caption features `txt` `[T, P]` and the base model's
/// similarities `frozen` `[B, T]`.
pub fn distillation_term(tape: &Tape, img: &Var, txt: &Var, frozen: &Tensor, weight: f32) -> Result<Var> {
    let (b, p) = (img.shape()[0], img.shape()[1]);
    let t = txt.shape()[0];
    let spec = MatmulSpec {
        batch: 1,
        m: b,
        n: t,
        k: p,
        trans_a: false,
        trans_b: true,
        b_shared: false,
    };
    let sim = img.matmul_spec(txt, None, Act::None, spec)?;
    let d = sim.sub(&tape.constant(frozen.clone()))?;
    d.mul(&d)?.sum_all()?.scale(weight / (b * t).max(1) as f32)
}
