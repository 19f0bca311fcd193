#![allow(unused)]
use crate::backend::*;
use crate::error::{Error, Result};
use crate::tensor::{DType, Tensor};

pub fn contrastive_loss(img: &Tensor, txt: &Tensor, log_scale: &Tensor) -> Result<(Tensor, Tensor, Tensor)> {
    Err(Error::unsupported("contrastive_loss", "cpu"))
}

pub fn contrastive_loss_bwd(img: &Tensor, txt: &Tensor, log_scale: &Tensor, lse_img: &Tensor, lse_txt: &Tensor, dloss: &Tensor) -> Result<(Tensor, Tensor, Tensor)> {
    Err(Error::unsupported("contrastive_loss_bwd", "cpu"))
}

pub fn cross_entropy(logits: &Tensor, labels: &Tensor) -> Result<(Tensor, Tensor)> {
    Err(Error::unsupported("cross_entropy", "cpu"))
}

pub fn cross_entropy_bwd(logits: &Tensor, labels: &Tensor, lse: &Tensor, dloss: &Tensor) -> Result<Tensor> {
    Err(Error::unsupported("cross_entropy_bwd", "cpu"))
}
