#![allow(unused)]
use crate::backend::*;
use crate::error::{Error, Result};
use crate::tensor::{DType, Tensor};

pub fn adamw(param: &Tensor, grad: &Tensor, m: &Tensor, v: &Tensor, spec: &AdamWSpec, grad_scale: Option<&Tensor>) -> Result<(Tensor, Tensor, Tensor)> {
    Err(Error::unsupported("adamw", "cpu"))
}

pub fn clip_coef(sumsq: &Tensor, max_norm: f32) -> Result<Tensor> {
    Err(Error::unsupported("clip_coef", "cpu"))
}
