#![allow(unused)]
use crate::backend::*;
use crate::error::{Error, Result};
use crate::tensor::{DType, Tensor};

pub fn act(x: &Tensor, act: Act) -> Result<Tensor> {
    Err(Error::unsupported("act", "cpu"))
}

pub fn act_bwd(dy: &Tensor, x: &Tensor, act: Act) -> Result<Tensor> {
    Err(Error::unsupported("act_bwd", "cpu"))
}

pub fn binary(op: BinaryOp, a: &Tensor, b: &Tensor) -> Result<Tensor> {
    Err(Error::unsupported("binary", "cpu"))
}

pub fn affine(x: &Tensor, alpha: f32, beta: f32) -> Result<Tensor> {
    Err(Error::unsupported("affine", "cpu"))
}

pub fn mul_scalar_tensor(x: &Tensor, s: &Tensor) -> Result<Tensor> {
    Err(Error::unsupported("mul_scalar_tensor", "cpu"))
}

pub fn sum_rows(x: &Tensor, rows: usize, cols: usize) -> Result<Tensor> {
    Err(Error::unsupported("sum_rows", "cpu"))
}

pub fn sum_all(x: &Tensor) -> Result<Tensor> {
    Err(Error::unsupported("sum_all", "cpu"))
}

pub fn sumsq(x: &Tensor) -> Result<Tensor> {
    Err(Error::unsupported("sumsq", "cpu"))
}

pub fn concat(a: &Tensor, b: &Tensor, outer: usize) -> Result<Tensor> {
    Err(Error::unsupported("concat", "cpu"))
}

pub fn slice_cols(x: &Tensor, outer: usize, start: usize, len: usize) -> Result<Tensor> {
    Err(Error::unsupported("slice_cols", "cpu"))
}

pub fn gather_rows(table: &Tensor, ids: &Tensor) -> Result<Tensor> {
    Err(Error::unsupported("gather_rows", "cpu"))
}

pub fn scatter_add_rows(dy: &Tensor, ids: &Tensor, rows: usize) -> Result<Tensor> {
    Err(Error::unsupported("scatter_add_rows", "cpu"))
}

pub fn patchify(img: &Tensor, spec: &PatchSpec) -> Result<Tensor> {
    Err(Error::unsupported("patchify", "cpu"))
}

pub fn unpatchify(patches: &Tensor, spec: &PatchSpec) -> Result<Tensor> {
    Err(Error::unsupported("unpatchify", "cpu"))
}
