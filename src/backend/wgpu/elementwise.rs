#![allow(unused)]
use crate::backend::*;
use crate::error::{Error, Result};
use crate::tensor::{DType, Tensor};
use super::GpuBackend;

pub fn act(g: &GpuBackend, x: &Tensor, act: Act) -> Result<Tensor> {
    Err(Error::unsupported("act", "wgpu"))
}

pub fn act_bwd(g: &GpuBackend, dy: &Tensor, x: &Tensor, act: Act) -> Result<Tensor> {
    Err(Error::unsupported("act_bwd", "wgpu"))
}

pub fn binary(g: &GpuBackend, op: BinaryOp, a: &Tensor, b: &Tensor) -> Result<Tensor> {
    Err(Error::unsupported("binary", "wgpu"))
}

pub fn affine(g: &GpuBackend, x: &Tensor, alpha: f32, beta: f32) -> Result<Tensor> {
    Err(Error::unsupported("affine", "wgpu"))
}

pub fn mul_scalar_tensor(g: &GpuBackend, x: &Tensor, s: &Tensor) -> Result<Tensor> {
    Err(Error::unsupported("mul_scalar_tensor", "wgpu"))
}

pub fn sum_rows(g: &GpuBackend, x: &Tensor, rows: usize, cols: usize) -> Result<Tensor> {
    Err(Error::unsupported("sum_rows", "wgpu"))
}

pub fn sum_all(g: &GpuBackend, x: &Tensor) -> Result<Tensor> {
    Err(Error::unsupported("sum_all", "wgpu"))
}

pub fn sumsq(g: &GpuBackend, x: &Tensor) -> Result<Tensor> {
    Err(Error::unsupported("sumsq", "wgpu"))
}

pub fn concat(g: &GpuBackend, a: &Tensor, b: &Tensor, outer: usize) -> Result<Tensor> {
    Err(Error::unsupported("concat", "wgpu"))
}

pub fn slice_cols(g: &GpuBackend, x: &Tensor, outer: usize, start: usize, len: usize) -> Result<Tensor> {
    Err(Error::unsupported("slice_cols", "wgpu"))
}

pub fn gather_rows(g: &GpuBackend, table: &Tensor, ids: &Tensor) -> Result<Tensor> {
    Err(Error::unsupported("gather_rows", "wgpu"))
}

pub fn scatter_add_rows(g: &GpuBackend, dy: &Tensor, ids: &Tensor, rows: usize) -> Result<Tensor> {
    Err(Error::unsupported("scatter_add_rows", "wgpu"))
}

pub fn patchify(g: &GpuBackend, img: &Tensor, spec: &PatchSpec) -> Result<Tensor> {
    Err(Error::unsupported("patchify", "wgpu"))
}

pub fn unpatchify(g: &GpuBackend, patches: &Tensor, spec: &PatchSpec) -> Result<Tensor> {
    Err(Error::unsupported("unpatchify", "wgpu"))
}
