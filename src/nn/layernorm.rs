//! Layer norm over the last dim.
use super::Module;
use crate::autograd::{Param, Tape, Var};
use crate::backend::Device;
use crate::error::Result;
use crate::tensor::Tensor;

#[derive(Clone)]
pub struct LayerNorm {
    pub gamma: Param,
    pub beta: Param,
    pub eps: f32,
}

impl LayerNorm {
    pub fn new(gamma: Param, beta: Param, eps: f32) -> LayerNorm {
        LayerNorm { gamma, beta, eps }
    }
    /// Non-trivial random affine parameters (tests must not pass by gamma=1, beta=0).
    pub fn random(name: &str, d: usize, seed: u64, device: &Device) -> Result<LayerNorm> {
        let g: Vec<f32> = Tensor::randn(&[d], 0.1, seed, &Device::Cpu)?
            .to_vec()?
            .iter()
            .map(|x| 1.0 + x)
            .collect();
        Ok(LayerNorm {
            gamma: Param::frozen(format!("{name}.weight"), Tensor::from_vec(g, &[d], device)?),
            beta: Param::frozen(format!("{name}.bias"), Tensor::randn(&[d], 0.1, seed ^ 0xbe7a, device)?),
            eps: 1e-5,
        })
    }
    pub fn forward(&self, tape: &Tape, x: &Var) -> Result<Var> {
        x.layernorm(&tape.param(&self.gamma), &tape.param(&self.beta), self.eps)
    }
}

impl Module for LayerNorm {
    fn params(&self) -> Vec<&Param> {
        vec![&self.gamma, &self.beta]
    }
    fn params_mut(&mut self) -> Vec<&mut Param> {
        vec![&mut self.gamma, &mut self.beta]
    }
}
