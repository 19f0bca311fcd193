//! `y = x @ W^T + b` with W in PyTorch layout [out, in]; activation fused in the matmul.
use super::{init, Module};
use crate::autograd::{Param, Tape, Var};
use crate::backend::{Act, Device};
use crate::error::Result;
use crate::tensor::Tensor;

#[derive(Clone)]
pub struct Linear {
    pub weight: Param,
    pub bias: Option<Param>,
}

impl Linear {
    pub fn new(weight: Param, bias: Option<Param>) -> Linear {
        Linear { weight, bias }
    }
    pub fn random(name: &str, d_in: usize, d_out: usize, bias: bool, seed: u64, device: &Device) -> Result<Linear> {
        let w = init(
            &format!("{name}.weight"),
            &[d_out, d_in],
            (d_in as f32).powf(-0.5),
            seed,
            device,
        )?;
        let b = if bias {
            Some(Param::frozen(
                format!("{name}.bias"),
                Tensor::randn(&[d_out], 0.02, seed ^ 0xb1a5, device)?,
            ))
        } else {
            None
        };
        Ok(Linear { weight: w, bias: b })
    }
    pub fn forward(&self, tape: &Tape, x: &Var, act: Act) -> Result<Var> {
        let w = tape.param(&self.weight);
        let b = self.bias.as_ref().map(|b| tape.param(b));
        x.linear(&w, b.as_ref(), act)
    }
    pub fn d_out(&self) -> usize {
        self.weight.value.dim(0)
    }
}

impl Module for Linear {
    fn params(&self) -> Vec<&Param> {
        std::iter::once(&self.weight).chain(self.bias.as_ref()).collect()
    }
    fn params_mut(&mut self) -> Vec<&mut Param> {
        std::iter::once(&mut self.weight).chain(self.bias.as_mut()).collect()
    }
}
