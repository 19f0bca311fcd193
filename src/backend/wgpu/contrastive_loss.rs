#![allow(unused)]
use crate::backend::*;
use crate::error::{Error, Result};
use crate::tensor::{DType, Tensor};
use super::GpuBackend;

pub fn contrastive_loss(g: &GpuBackend, img: &Tensor, txt: &Tensor, log_scale: &Tensor) -> Result<(Tensor, Tensor, Tensor)> {
    Err(Error::unsupported("contrastive_loss", "wgpu"))
}

pub fn contrastive_loss_bwd(g: &GpuBackend, img: &Tensor, txt: &Tensor, log_scale: &Tensor, lse_img: &Tensor, lse_txt: &Tensor, dloss: &Tensor) -> Result<(Tensor, Tensor, Tensor)> {
    Err(Error::unsupported("contrastive_loss_bwd", "wgpu"))
}

pub fn cross_entropy(g: &GpuBackend, logits: &Tensor, labels: &Tensor) -> Result<(Tensor, Tensor)> {
    Err(Error::unsupported("cross_entropy", "wgpu"))
}

pub fn cross_entropy_bwd(g: &GpuBackend, logits: &Tensor, labels: &Tensor, lse: &Tensor, dloss: &Tensor) -> Result<Tensor> {
    Err(Error::unsupported("cross_entropy_bwd", "wgpu"))
}
