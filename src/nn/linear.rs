//! `y = x @ W^T + b` with W in PyTorch layout [out, in]; activation fused in the matmul.
//!
//! With a LoRA adapter (`lora`): `y = act(x @ W^T + b + scale * (dropout(x) @ A^T) @ B^T)`,
//! computed as two thin matmuls on the tape (B @ A is never materialised in the
//! forward). The base matmul then runs without its fused activation, the low-rank term
//! is added, and the activation is applied after the sum (as PEFT does: the adapter
//! sits inside the Linear, before whatever follows it).
use super::{init, Module};
use crate::autograd::{Param, Tape, Var};
use crate::backend::{Act, Device};
use crate::error::{Error, Result};
use crate::tensor::{Rng, Tensor};

/// A low-rank update `scale * B @ A` of a Linear's weight (PEFT's `lora_A`/`lora_B`).
#[derive(Clone, Debug)]
pub struct LoraAdapter {
    /// lora_A, [r, in].
    pub a: Param,
    /// lora_B, [out, r]; starts at zero so an untrained adapter changes nothing.
    pub b: Param,
    /// alpha / r.
    pub scale: f32,
    /// Dropout probability on the adapter's input (PEFT's `lora_dropout`).
    pub dropout: f32,
    /// The train/eval switch for dropout (like PyTorch's `module.train()`): `Some(seed)`
    /// draws the mask from `seed` mixed with the adapter's name; `None` (eval, the
    /// default) skips dropout entirely. Set a new seed every training step
    /// (`adapt::lora::set_dropout_seed`) and `None` before evaluating. The same seed
    /// gives the same mask, so a block recomputed in backward (activation
    /// checkpointing, whose forward runs on an inference tape) sees the forward's mask.
    pub dropout_seed: Option<u64>,
}

impl LoraAdapter {
    pub fn rank(&self) -> usize {
        self.a.value.dim(0)
    }

    /// Inverted-dropout mask for an input of `shape`: 0 with probability p, else 1/(1-p).
    /// Drawn on the host with a seeded [`Rng`] and uploaded as a constant (there is no
    /// dropout kernel; the upload is x's size, once per adapter per step).
    fn mask(&self, seed: u64, shape: &[usize], device: &Device) -> Result<Tensor> {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325; // FNV-1a of the name: a per-adapter stream
        for byte in self.a.name.bytes() {
            h = (h ^ byte as u64).wrapping_mul(0x0100_0000_01b3);
        }
        let mut rng = Rng::new(seed ^ h);
        let keep = 1.0 / (1.0 - self.dropout);
        let n: usize = shape.iter().product();
        let data = (0..n)
            .map(|_| if rng.uniform() < self.dropout { 0.0 } else { keep })
            .collect();
        Tensor::from_vec(data, shape, device)
    }
}

#[derive(Clone)]
pub struct Linear {
    pub weight: Param,
    pub bias: Option<Param>,
    /// Optional LoRA adapter (see [`LoraAdapter`]).
    pub lora: Option<LoraAdapter>,
}

impl Linear {
    pub fn new(weight: Param, bias: Option<Param>) -> Linear {
        Linear {
            weight,
            bias,
            lora: None,
        }
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
        Ok(Linear::new(w, b))
    }
    pub fn forward(&self, tape: &Tape, x: &Var, act: Act) -> Result<Var> {
        let w = tape.param(&self.weight);
        let b = self.bias.as_ref().map(|b| tape.param(b));
        let Some(lora) = &self.lora else {
            return x.linear(&w, b.as_ref(), act);
        };
        let base = x.linear(&w, b.as_ref(), Act::None)?;
        let xd = match lora.dropout_seed {
            Some(seed) if lora.dropout > 0.0 => {
                let mask = lora.mask(seed, x.shape(), x.value.device())?;
                x.mul(&tape.constant(mask))?
            }
            _ => x.clone(),
        };
        let a = tape.param(&lora.a);
        let bb = tape.param(&lora.b);
        // The scale goes on the thin [.., r] intermediate: r values per row, not out.
        let h = xd.linear(&a, None, Act::None)?.scale(lora.scale)?;
        let y = base.add(&h.linear(&bb, None, Act::None)?)?;
        if act == Act::None {
            Ok(y)
        } else {
            y.act(act)
        }
    }
    pub fn d_out(&self) -> usize {
        self.weight.value.dim(0)
    }
    pub fn d_in(&self) -> usize {
        self.weight.value.dim(1)
    }

    /// Attach a LoRA adapter (A [r, in], B [out, r], scale = alpha / r), checking its
    /// shapes against the weight; replaces any adapter already there. Dropout starts
    /// off (`dropout_seed: None`).
    pub fn attach_lora(&mut self, a: Param, b: Param, scale: f32, dropout: f32) -> Result<()> {
        let (out, inp) = (self.d_out(), self.d_in());
        let (sa, sb) = (a.value.shape(), b.value.shape());
        if sa.len() != 2 || sb.len() != 2 || sa[1] != inp || sb[0] != out || sa[0] != sb[1] || sa[0] == 0 {
            return Err(Error::shape(
                "lora",
                format!(
                    "adapter A {sa:?} / B {sb:?} does not fit '{}' {:?} (expected A [r, {inp}] and B [{out}, r])",
                    self.weight.name,
                    self.weight.value.shape()
                ),
            ));
        }
        if !(0.0..1.0).contains(&dropout) || !scale.is_finite() {
            return Err(Error::invalid(format!(
                "lora: dropout {dropout} must be in [0, 1) and scale {scale} finite"
            )));
        }
        self.lora = Some(LoraAdapter {
            a,
            b,
            scale,
            dropout,
            dropout_seed: None,
        });
        Ok(())
    }
}

impl Module for Linear {
    fn params(&self) -> Vec<&Param> {
        let mut v: Vec<&Param> = std::iter::once(&self.weight).chain(self.bias.as_ref()).collect();
        if let Some(l) = &self.lora {
            v.push(&l.a);
            v.push(&l.b);
        }
        v
    }
    fn params_mut(&mut self) -> Vec<&mut Param> {
        let mut v: Vec<&mut Param> = std::iter::once(&mut self.weight).chain(self.bias.as_mut()).collect();
        if let Some(l) = &mut self.lora {
            v.push(&mut l.a);
            v.push(&mut l.b);
        }
        v
    }
}
