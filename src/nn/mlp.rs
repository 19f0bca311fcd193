//! fc1 -> activation (fused into fc1's matmul epilogue) -> fc2.
use super::{Linear, Module};
use crate::autograd::{Param, Tape, Var};
use crate::backend::{Act, Device};
use crate::error::Result;

#[derive(Clone)]
pub struct Mlp {
    pub fc1: Linear,
    pub fc2: Linear,
    pub act: Act,
}

impl Mlp {
    pub fn random(name: &str, d: usize, hidden: usize, act: Act, seed: u64, device: &Device) -> Result<Mlp> {
        Ok(Mlp {
            fc1: Linear::random(&format!("{name}.fc1"), d, hidden, true, seed + 1, device)?,
            fc2: Linear::random(&format!("{name}.fc2"), hidden, d, true, seed + 2, device)?,
            act,
        })
    }
    pub fn forward(&self, tape: &Tape, x: &Var) -> Result<Var> {
        let h = self.fc1.forward(tape, x, self.act)?;
        self.fc2.forward(tape, &h, Act::None)
    }
}

impl Module for Mlp {
    fn params(&self) -> Vec<&Param> {
        self.fc1.params().into_iter().chain(self.fc2.params()).collect()
    }
    fn params_mut(&mut self) -> Vec<&mut Param> {
        self.fc1.params_mut().into_iter().chain(self.fc2.params_mut()).collect()
    }
}
