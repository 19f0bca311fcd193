//! Layers on the autograd tape: Linear, LayerNorm, multi-head attention, MLP and the
//! pre-LN transformer block CLIP uses. Parameters are frozen or trainable per tensor.
mod attention;
mod block;
mod layernorm;
mod linear;
mod mlp;

pub use attention::MultiHeadAttention;
pub use block::Block;
pub use layernorm::LayerNorm;
pub use linear::{Linear, LoraAdapter};
pub use mlp::Mlp;

use crate::autograd::Param;
use crate::backend::Device;
use crate::error::Result;
use crate::tensor::Tensor;

/// Anything that owns parameters.
pub trait Module {
    fn params(&self) -> Vec<&Param>;
    fn params_mut(&mut self) -> Vec<&mut Param>;
    /// Make every parameter trainable or frozen.
    fn set_trainable(&mut self, trainable: bool) {
        for p in self.params_mut() {
            p.trainable = trainable;
        }
    }
    fn num_params(&self) -> usize {
        self.params().iter().map(|p| p.value.numel()).sum()
    }
    fn num_trainable(&self) -> usize {
        self.params()
            .iter()
            .filter(|p| p.trainable)
            .map(|p| p.value.numel())
            .sum()
    }
}

/// Normal(0, std) init with a per-tensor seed.
pub(crate) fn init(name: &str, shape: &[usize], std: f32, seed: u64, device: &Device) -> Result<Param> {
    Ok(Param::frozen(name, Tensor::randn(shape, std, seed, device)?))
}
