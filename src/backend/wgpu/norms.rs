#![allow(unused)]
use crate::backend::*;
use crate::error::{Error, Result};
use crate::tensor::{DType, Tensor};
use super::GpuBackend;

pub fn layernorm(g: &GpuBackend, x: &Tensor, gamma: &Tensor, beta: &Tensor, eps: f32) -> Result<(Tensor, Tensor, Tensor)> {
    Err(Error::unsupported("layernorm", "wgpu"))
}

pub fn layernorm_bwd(g: &GpuBackend, dy: &Tensor, x: &Tensor, gamma: &Tensor, mean: &Tensor, rstd: &Tensor, param_grads: bool) -> Result<(Tensor, Option<(Tensor, Tensor)>)> {
    Err(Error::unsupported("layernorm_bwd", "wgpu"))
}

pub fn softmax(g: &GpuBackend, x: &Tensor) -> Result<Tensor> {
    Err(Error::unsupported("softmax", "wgpu"))
}

pub fn softmax_bwd(g: &GpuBackend, dy: &Tensor, y: &Tensor) -> Result<Tensor> {
    Err(Error::unsupported("softmax_bwd", "wgpu"))
}

pub fn l2norm(g: &GpuBackend, x: &Tensor) -> Result<(Tensor, Tensor)> {
    Err(Error::unsupported("l2norm", "wgpu"))
}

pub fn l2norm_bwd(g: &GpuBackend, dy: &Tensor, y: &Tensor, norm: &Tensor) -> Result<Tensor> {
    Err(Error::unsupported("l2norm_bwd", "wgpu"))
}
