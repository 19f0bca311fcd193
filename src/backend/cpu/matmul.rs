#![allow(unused)]
use crate::backend::*;
use crate::error::{Error, Result};
use crate::tensor::{DType, Tensor};

pub fn matmul(a: &Tensor, b: &Tensor, bias: Option<&Tensor>, act: Act, spec: &MatmulSpec, keep_preact: bool) -> Result<(Tensor, Option<Tensor>)> {
    Err(Error::unsupported("matmul", "cpu"))
}
