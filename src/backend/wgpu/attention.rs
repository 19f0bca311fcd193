#![allow(unused)]
use crate::backend::*;
use crate::error::{Error, Result};
use crate::tensor::{DType, Tensor};
use super::GpuBackend;

pub fn attention(g: &GpuBackend, q: &Tensor, k: &Tensor, v: &Tensor, spec: &AttnSpec) -> Result<(Tensor, Tensor)> {
    Err(Error::unsupported("attention", "wgpu"))
}

pub fn attention_bwd(g: &GpuBackend, dout: &Tensor, q: &Tensor, k: &Tensor, v: &Tensor, out: &Tensor, lse: &Tensor, spec: &AttnSpec) -> Result<(Tensor, Tensor, Tensor)> {
    Err(Error::unsupported("attention_bwd", "wgpu"))
}
