#![allow(unused)]
use crate::backend::*;
use crate::error::{Error, Result};
use crate::tensor::{DType, Tensor};
use super::GpuBackend;

pub fn adamw(g: &GpuBackend, param: &Tensor, grad: &Tensor, m: &Tensor, v: &Tensor, spec: &AdamWSpec, grad_scale: Option<&Tensor>) -> Result<(Tensor, Tensor, Tensor)> {
    Err(Error::unsupported("adamw", "wgpu"))
}

pub fn clip_coef(g: &GpuBackend, sumsq: &Tensor, max_norm: f32) -> Result<Tensor> {
    Err(Error::unsupported("clip_coef", "wgpu"))
}
