#![allow(unused)]
use crate::backend::*;
use crate::error::{Error, Result};
use crate::tensor::{DType, Tensor};

pub fn attention(q: &Tensor, k: &Tensor, v: &Tensor, spec: &AttnSpec) -> Result<(Tensor, Tensor)> {
    Err(Error::unsupported("attention", "cpu"))
}

pub fn attention_bwd(dout: &Tensor, q: &Tensor, k: &Tensor, v: &Tensor, out: &Tensor, lse: &Tensor, spec: &AttnSpec) -> Result<(Tensor, Tensor, Tensor)> {
    Err(Error::unsupported("attention_bwd", "cpu"))
}
