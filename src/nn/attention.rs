//! Multi-head self-attention with separate q/k/v/out projections (HF layout; open_clip's
//! stacked in_proj is split at load time). The fused kernel takes the projections'
//! [batch, seq, heads*head_dim] outputs directly: no head transposes.
use super::{Linear, Module};
use crate::autograd::{Param, Tape, Var};
use crate::backend::{Act, Device};
use crate::error::Result;
use crate::tensor::Tensor;

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

    /// The attention output only at flat rows `rows` (indices into [batch * seq]) of
    /// x [batch, seq, d]: [rows, d]. Every position still gives its keys and values; the
    /// output projection runs on the selected rows only (a tower's last block, whose
    /// other rows nothing reads).
    pub fn forward_rows(&self, tape: &Tape, x: &Var, rows: &Tensor) -> Result<Var> {
        let (b, t, d) = (x.shape()[0], x.shape()[1], x.shape()[2]);
        let q = self.q.forward(tape, x, Act::None)?;
        let k = self.k.forward(tape, x, Act::None)?;
        let v = self.v.forward(tape, x, Act::None)?;
        let o = Var::attention(&q, &k, &v, self.heads, self.causal)?;
        let o = o.reshape(&[b * t, d])?.gather_rows(rows)?;
        self.out.forward(tape, &o, Act::None)
    }
}

impl MultiHeadAttention {
    /// Causal attention over `[prefix; suffix]` when every sequence of the batch starts with
    /// the same prefix: the prefix `xp` [1, P, W] goes through q/k/v/out once instead of once
    /// per sequence, the suffixes `xs` [B, S, W] attend to the broadcast prefix keys and
    /// values. Exact for causal attention (prefix positions never see the suffix). Used by
    /// CoOp's shared context, where 16 of ~20 tokens are the same for every class.
    pub fn forward_shared_prefix(&self, tape: &Tape, xp: &Var, xs: &Var) -> Result<(Var, Var)> {
        let (b, p, w) = (xs.shape()[0], xp.shape()[1], xp.shape()[2]);
        let s = xs.shape()[1];
        let dev = xp.value.device().clone();
        let rep: Vec<u32> = (0..b).flat_map(|_| 0..p as u32).collect();
        let rep = crate::tensor::Tensor::from_u32(rep, &[b, p], &dev)?;
        // [1, P, W] -> [B, P, W]; backward sums the copies (scatter-add).
        let bcast = |v: &Var| v.reshape(&[p, w])?.gather_rows(&rep);
        let full = |lin: &crate::nn::Linear| -> Result<Var> {
            bcast(&lin.forward(tape, xp, Act::None)?)?.concat1(&lin.forward(tape, xs, Act::None)?)
        };
        let o = Var::attention(&full(&self.q)?, &full(&self.k)?, &full(&self.v)?, self.heads, true)?;
        let os = o.narrow1(p, s)?;
        // Every sequence's prefix rows are equal: keep the first sequence's.
        let first = crate::tensor::Tensor::from_u32(vec![0], &[1], &dev)?;
        let op = o
            .narrow1(0, p)?
            .reshape(&[b, p * w])?
            .gather_rows(&first)?
            .reshape(&[1, p, w])?;
        Ok((
            self.out.forward(tape, &op, Act::None)?,
            self.out.forward(tape, &os, Act::None)?,
        ))
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
