//! Training: AdamW, the fine-tuning loop (`run`) and pretraining from scratch (`pretrain`).
mod adamw;
pub mod pretrain;
pub mod run;

pub use adamw::AdamW;

use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// Read a scalar loss back (the one readback a step may ask for) and stop with a clear
/// error naming the step when it is NaN or infinite.
pub fn check_loss(loss: &Tensor, step: usize) -> Result<f32> {
    let l = loss.item()?;
    if !l.is_finite() {
        return Err(Error::non_finite(format!(
            "step {step}: the loss is {l}; lower the learning rate (the last good checkpoint is kept)"
        )));
    }
    Ok(l)
}
