#![allow(unused)]
use crate::backend::*;
use crate::error::{Error, Result};
use crate::tensor::{DType, Tensor};

pub fn layernorm(x: &Tensor, gamma: &Tensor, beta: &Tensor, eps: f32) -> Result<(Tensor, Tensor, Tensor)> {
    Err(Error::unsupported("layernorm", "cpu"))
}

pub fn layernorm_bwd(dy: &Tensor, x: &Tensor, gamma: &Tensor, mean: &Tensor, rstd: &Tensor, param_grads: bool) -> Result<(Tensor, Option<(Tensor, Tensor)>)> {
    Err(Error::unsupported("layernorm_bwd", "cpu"))
}

pub fn softmax(x: &Tensor) -> Result<Tensor> {
    Err(Error::unsupported("softmax", "cpu"))
}

pub fn softmax_bwd(dy: &Tensor, y: &Tensor) -> Result<Tensor> {
    Err(Error::unsupported("softmax_bwd", "cpu"))
}

pub fn l2norm(x: &Tensor) -> Result<(Tensor, Tensor)> {
    Err(Error::unsupported("l2norm", "cpu"))
}

pub fn l2norm_bwd(dy: &Tensor, y: &Tensor, norm: &Tensor) -> Result<Tensor> {
    Err(Error::unsupported("l2norm_bwd", "cpu"))
}
