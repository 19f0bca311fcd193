//! Training: AdamW, the fine-tuning entry point (`run`) composed of the data
//! (`crate::data::training`), each method's parameters (`crate::adapt::trainable`), the
//! objectives (`objectives`) and the loop (`train_loop`); pretraining from scratch
//! (`pretrain`).
mod adamw;
mod args;
pub mod auto;
pub mod auto_report;
mod late_loss;
pub mod linear_probe;
pub mod lora_scale;
mod method;
pub mod objectives;
mod output;
pub mod pretrain;
mod progress;
mod retention_guard;
pub mod run;
pub mod schedule;
mod state;
mod train_loop;
pub use adamw::AdamW;

use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// Read a scalar loss back (the one readback a step may ask for) and stop with a clear
/// error naming the step when it is NaN or infinite.
pub fn check_loss(loss: &Tensor, step: usize) -> Result<f32> {
    check_loss_value(loss.item()?, step)
}

/// The check of [`check_loss`] on a value already on the host.
pub(crate) fn check_loss_value(l: f32, step: usize) -> Result<f32> {
    if !l.is_finite() {
        return Err(Error::non_finite(format!(
            "step {step}: the loss is {l}; lower the learning rate (the last good checkpoint is kept)"
        )));
    }
    Ok(l)
}
