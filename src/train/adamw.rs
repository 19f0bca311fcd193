//! AdamW over a set of parameters, with global gradient-norm clipping computed on the
//! device (no readback inside a step).
use std::collections::HashMap;

use crate::autograd::{Grads, Param, ParamId};
use crate::backend::AdamWSpec;
use crate::error::{Error, Result};
use crate::tensor::Tensor;

pub struct AdamW {
    pub lr: f32,
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    pub weight_decay: f32,
    /// Clip the global gradient norm to this value (None: no clipping).
    pub max_grad_norm: Option<f32>,
    /// Decay vectors (biases, layernorm gains, logit_scale) too. Fine-tuning keeps
    /// PyTorch's behaviour (true); pretraining decays only matrices, as CLIP does.
    pub decay_vectors: bool,
    pub step: u32,
    state: HashMap<ParamId, (Tensor, Tensor)>,
}

impl AdamW {
    /// PyTorch defaults (betas 0.9/0.999, eps 1e-8) with the given lr and weight decay.
    pub fn new(lr: f32, weight_decay: f32) -> AdamW {
        AdamW {
            lr,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay,
            max_grad_norm: None,
            decay_vectors: true,
            step: 0,
            state: HashMap::new(),
        }
    }

    /// Update every trainable parameter that has a gradient.
    pub fn step(&mut self, params: &mut [&mut Param], grads: &Grads) -> Result<()> {
        self.step += 1;
        let scale = match (self.max_grad_norm, grads.sumsq()?) {
            (Some(max), Some(ss)) => Some(ss.device().backend().clip_coef(&ss, max)?),
            _ => None,
        };
        let mut spec = AdamWSpec {
            lr: self.lr,
            beta1: self.beta1,
            beta2: self.beta2,
            eps: self.eps,
            weight_decay: self.weight_decay,
            step: self.step,
        };
        for p in params.iter_mut().filter(|p| p.trainable) {
            let Some(g) = grads.get(p.id) else { continue };
            if g.numel() != p.value.numel() {
                return Err(Error::shape(
                    "adamw",
                    format!(
                        "gradient {:?} does not match parameter '{}' {:?}",
                        g.shape(),
                        p.name,
                        p.value.shape()
                    ),
                ));
            }
            let (m, v) = match self.state.remove(&p.id) {
                Some(s) => s,
                None => (
                    Tensor::zeros(p.value.shape(), p.value.device())?,
                    Tensor::zeros(p.value.shape(), p.value.device())?,
                ),
            };
            spec.weight_decay = if self.decay_vectors || p.value.shape().len() >= 2 {
                self.weight_decay
            } else {
                0.0
            };
            let (np, nm, nv) = p
                .value
                .adamw(&g.reshape(p.value.shape())?, &m, &v, &spec, scale.as_ref())?;
            p.value = np;
            self.state.insert(p.id, (nm, nv));
        }
        Ok(())
    }

    /// First and second moments of a parameter (for checkpoints).
    pub fn moments(&self, id: ParamId) -> Option<&(Tensor, Tensor)> {
        self.state.get(&id)
    }

    /// Restore a parameter's moments (resuming from a checkpoint).
    pub fn set_moments(&mut self, id: ParamId, m: Tensor, v: Tensor) {
        self.state.insert(id, (m, v));
    }
}
