//! CLIP's pre-LN transformer block: `x += attn(ln1(x)); x += mlp(ln2(x))`.
use super::{LayerNorm, Mlp, Module, MultiHeadAttention};
use crate::autograd::{Param, Tape, Var};
use crate::backend::{Act, Device};
use crate::error::Result;
use crate::tensor::Tensor;

#[derive(Clone)]
pub struct Block {
    pub ln1: LayerNorm,
    pub attn: MultiHeadAttention,
    pub ln2: LayerNorm,
    pub mlp: Mlp,
    /// Recompute this block's activations in backward instead of keeping them.
    pub recompute: bool,
}

impl Block {
    #[allow(clippy::too_many_arguments)]
    pub fn random(
        name: &str,
        d: usize,
        heads: usize,
        mlp_ratio: usize,
        act: Act,
        causal: bool,
        seed: u64,
        device: &Device,
    ) -> Result<Block> {
        Ok(Block {
            ln1: LayerNorm::random(&format!("{name}.layer_norm1"), d, seed + 10, device)?,
            attn: MultiHeadAttention::random(&format!("{name}.self_attn"), d, heads, causal, seed + 20, device)?,
            ln2: LayerNorm::random(&format!("{name}.layer_norm2"), d, seed + 30, device)?,
            mlp: Mlp::random(&format!("{name}.mlp"), d, d * mlp_ratio, act, seed + 40, device)?,
            recompute: false,
        })
    }

    fn forward_inner(&self, tape: &Tape, x: &Var) -> Result<Var> {
        let h = self.attn.forward(tape, &self.ln1.forward(tape, x)?)?;
        let x = x.add(&h)?;
        let h = self.mlp.forward(tape, &self.ln2.forward(tape, &x)?)?;
        x.add(&h)
    }

    fn forward_rows_inner(&self, tape: &Tape, x: &Var, rows: &Tensor) -> Result<Var> {
        let (b, t, d) = (x.shape()[0], x.shape()[1], x.shape()[2]);
        let h = self.attn.forward_rows(tape, &self.ln1.forward(tape, x)?, rows)?;
        let x = x.reshape(&[b * t, d])?.gather_rows(rows)?.add(&h)?;
        let h = self.mlp.forward(tape, &self.ln2.forward(tape, &x)?)?;
        x.add(&h)
    }

    /// The block's output only at flat rows `rows` (u32 indices into [batch * seq]) of
    /// x [batch, seq, d]: [rows, d], equal to those rows of [`Self::forward`]. For a
    /// tower's last block, where only the pooled token (CLS, or each text's EOT) is read:
    /// after attention, the output projection, residuals and MLP run on those rows only,
    /// which skips ~3/4 of the block's work.
    pub fn forward_rows(&self, tape: &Tape, x: &Var, rows: &Tensor) -> Result<Var> {
        if self.recompute && tape.is_recording() {
            let (me, rows) = (self.clone(), rows.clone());
            tape.checkpoint(&[x], move |t, xs| me.forward_rows_inner(t, &xs[0], &rows))
        } else {
            self.forward_rows_inner(tape, x, rows)
        }
    }

    /// The block over `[prefix; suffix]` sequences that share one prefix (causal towers
    /// only): `xp` [1, P, d] is computed once, `xs` [B, S, d] per sequence. See
    /// [`MultiHeadAttention::forward_shared_prefix`]. Not recomputed in backward.
    pub fn forward_shared_prefix(&self, tape: &Tape, xp: &Var, xs: &Var) -> Result<(Var, Var)> {
        let (hp, hs) =
            self.attn
                .forward_shared_prefix(tape, &self.ln1.forward(tape, xp)?, &self.ln1.forward(tape, xs)?)?;
        let (xp, xs) = (xp.add(&hp)?, xs.add(&hs)?);
        let hp = self.mlp.forward(tape, &self.ln2.forward(tape, &xp)?)?;
        let hs = self.mlp.forward(tape, &self.ln2.forward(tape, &xs)?)?;
        Ok((xp.add(&hp)?, xs.add(&hs)?))
    }

    /// x: [batch, seq, d].
    pub fn forward(&self, tape: &Tape, x: &Var) -> Result<Var> {
        if self.recompute && tape.is_recording() {
            let me = self.clone();
            tape.checkpoint(&[x], move |t, xs| me.forward_inner(t, &xs[0]))
        } else {
            self.forward_inner(tape, x)
        }
    }
}

impl Module for Block {
    fn params(&self) -> Vec<&Param> {
        let mut v = self.ln1.params();
        v.extend(self.attn.params());
        v.extend(self.ln2.params());
        v.extend(self.mlp.params());
        v
    }
    fn params_mut(&mut self) -> Vec<&mut Param> {
        let mut v = self.ln1.params_mut();
        v.extend(self.attn.params_mut());
        v.extend(self.ln2.params_mut());
        v.extend(self.mlp.params_mut());
        v
    }
}
