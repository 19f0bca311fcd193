#![allow(unused)]
use crate::backend::*;
use crate::error::{Error, Result};
use crate::tensor::{DType, Tensor};
use super::GpuBackend;

pub fn matmul(g: &GpuBackend, a: &Tensor, b: &Tensor, bias: Option<&Tensor>, act: Act, spec: &MatmulSpec, keep_preact: bool) -> Result<(Tensor, Option<Tensor>)> {
    Err(Error::unsupported("matmul", "wgpu"))
}
