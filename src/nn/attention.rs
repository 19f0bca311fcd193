//! Multi-head self-attention with separate q/k/v/out projections (HF layout; open_clip's
//! stacked in_proj is split at load time). The fused kernel takes the projections'
//! [batch, seq, heads*head_dim] outputs directly: no head transposes.
use super::{Linear, Module};
use crate::autograd::{Param, Tape, Var};
use crate::backend::{Act, Device};
use crate::error::Result;

#[derive(Clone)]
pub struct MultiHeadAttention {
    pub q: Linear,
    pub k: Linear,
    pub v: Linear,
    pub out: Linear,
    pub heads: usize,
    pub causal: bool,
}

impl MultiHeadAttention {
    pub fn random(name: &str, d: usize, heads: usize, causal: bool, seed: u64, device: &Device) -> Result<Self> {
        Ok(MultiHeadAttention {
            q: Linear::random(&format!("{name}.q_proj"), d, d, true, seed + 1, device)?,
            k: Linear::random(&format!("{name}.k_proj"), d, d, true, seed + 2, device)?,
            v: Linear::random(&format!("{name}.v_proj"), d, d, true, seed + 3, device)?,
            out: Linear::random(&format!("{name}.out_proj"), d, d, true, seed + 4, device)?,
            heads,
            causal,
        })
    }
    /// x: [batch, seq, d].
    pub fn forward(&self, tape: &Tape, x: &Var) -> Result<Var> {
        let q = self.q.forward(tape, x, Act::None)?;
        let k = self.k.forward(tape, x, Act::None)?;
        let v = self.v.forward(tape, x, Act::None)?;
        let o = Var::attention(&q, &k, &v, self.heads, self.causal)?;
        self.out.forward(tape, &o, Act::None)
    }
}

impl Module for MultiHeadAttention {
    fn params(&self) -> Vec<&Param> {
        [&self.q, &self.k, &self.v, &self.out]
            .into_iter()
            .flat_map(|l| l.params())
            .collect()
    }
    fn params_mut(&mut self) -> Vec<&mut Param> {
        [&mut self.q, &mut self.k, &mut self.v, &mut self.out]
            .into_iter()
            .flat_map(|l| l.params_mut())
            .collect()
    }
}
