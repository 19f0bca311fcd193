//! The native CPU backend: the test oracle and the fast path without a GPU.
//! Kernel family `X` lives in `X.rs`; its GPU twin is `backend/wgpu/X.rs`.
mod activation;
mod attention;
mod contrastive_loss;
mod elementwise;
mod matmul;
mod memory;
mod norms;
mod optim;

use crate::backend::*;
use crate::error::Result;
use crate::tensor::{DType, Tensor};

pub use activation::{act_apply, act_code, act_grad, erf, exp_fast};

pub struct CpuBackend;

impl Backend for CpuBackend {
    fn name(&self) -> String {
        format!("cpu ({} threads)", rayon::current_num_threads())
    }
    fn from_f32(&self, data: Vec<f32>, shape: &[usize]) -> Result<Tensor> {
        memory::from_f32(data, shape)
    }
    fn from_u32(&self, data: Vec<u32>, shape: &[usize]) -> Result<Tensor> {
        memory::from_u32(data, shape)
    }
    fn fill(&self, shape: &[usize], value: f32) -> Result<Tensor> {
        memory::fill(shape, value)
    }
    fn to_vec_f32(&self, t: &Tensor) -> Result<Vec<f32>> {
        memory::to_vec_f32(t)
    }
    fn to_vec_u32(&self, t: &Tensor) -> Result<Vec<u32>> {
        memory::to_vec_u32(t)
    }
    fn cast(&self, t: &Tensor, dtype: DType) -> Result<Tensor> {
        memory::cast(t, dtype)
    }
    fn matmul(
        &self,
        a: &Tensor,
        b: &Tensor,
        bias: Option<&Tensor>,
        act: Act,
        spec: &MatmulSpec,
        keep_preact: bool,
    ) -> Result<(Tensor, Option<Tensor>)> {
        matmul::matmul(a, b, bias, act, spec, keep_preact)
    }
    fn act(&self, x: &Tensor, act: Act) -> Result<Tensor> {
        elementwise::act(x, act)
    }
    fn act_bwd(&self, dy: &Tensor, x: &Tensor, act: Act) -> Result<Tensor> {
        elementwise::act_bwd(dy, x, act)
    }
    fn binary(&self, op: BinaryOp, a: &Tensor, b: &Tensor) -> Result<Tensor> {
        elementwise::binary(op, a, b)
    }
    fn affine(&self, x: &Tensor, alpha: f32, beta: f32) -> Result<Tensor> {
        elementwise::affine(x, alpha, beta)
    }
    fn clamp_max(&self, x: &Tensor, hi: f32) -> Result<Tensor> {
        elementwise::clamp_max(x, hi)
    }
    fn mul_scalar_tensor(&self, x: &Tensor, s: &Tensor) -> Result<Tensor> {
        elementwise::mul_scalar_tensor(x, s)
    }
    fn sum_rows(&self, x: &Tensor, rows: usize, cols: usize) -> Result<Tensor> {
        elementwise::sum_rows(x, rows, cols)
    }
    fn sum_all(&self, x: &Tensor) -> Result<Tensor> {
        elementwise::sum_all(x)
    }
    fn sumsq(&self, x: &Tensor) -> Result<Tensor> {
        elementwise::sumsq(x)
    }
    fn concat(&self, a: &Tensor, b: &Tensor, outer: usize) -> Result<Tensor> {
        elementwise::concat(a, b, outer)
    }
    fn slice_cols(&self, x: &Tensor, outer: usize, start: usize, len: usize) -> Result<Tensor> {
        elementwise::slice_cols(x, outer, start, len)
    }
    fn gather_rows(&self, table: &Tensor, ids: &Tensor) -> Result<Tensor> {
        elementwise::gather_rows(table, ids)
    }
    fn scatter_add_rows(&self, dy: &Tensor, ids: &Tensor, rows: usize) -> Result<Tensor> {
        elementwise::scatter_add_rows(dy, ids, rows)
    }
    fn patchify(&self, img: &Tensor, spec: &PatchSpec) -> Result<Tensor> {
        elementwise::patchify(img, spec)
    }
    fn unpatchify(&self, patches: &Tensor, spec: &PatchSpec) -> Result<Tensor> {
        elementwise::unpatchify(patches, spec)
    }
    fn layernorm(&self, x: &Tensor, gamma: &Tensor, beta: &Tensor, eps: f32) -> Result<(Tensor, Tensor, Tensor)> {
        norms::layernorm(x, gamma, beta, eps)
    }
    fn layernorm_bwd(
        &self,
        dy: &Tensor,
        x: &Tensor,
        gamma: &Tensor,
        mean: &Tensor,
        rstd: &Tensor,
        param_grads: bool,
    ) -> Result<(Tensor, Option<(Tensor, Tensor)>)> {
        norms::layernorm_bwd(dy, x, gamma, mean, rstd, param_grads)
    }
    fn softmax(&self, x: &Tensor) -> Result<Tensor> {
        norms::softmax(x)
    }
    fn softmax_bwd(&self, dy: &Tensor, y: &Tensor) -> Result<Tensor> {
        norms::softmax_bwd(dy, y)
    }
    fn l2norm(&self, x: &Tensor) -> Result<(Tensor, Tensor)> {
        norms::l2norm(x)
    }
    fn l2norm_bwd(&self, dy: &Tensor, y: &Tensor, norm: &Tensor) -> Result<Tensor> {
        norms::l2norm_bwd(dy, y, norm)
    }
    fn attention(&self, q: &Tensor, k: &Tensor, v: &Tensor, spec: &AttnSpec) -> Result<(Tensor, Tensor)> {
        attention::attention(q, k, v, spec)
    }
    fn attention_bwd(
        &self,
        dout: &Tensor,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        out: &Tensor,
        lse: &Tensor,
        spec: &AttnSpec,
    ) -> Result<(Tensor, Tensor, Tensor)> {
        attention::attention_bwd(dout, q, k, v, out, lse, spec)
    }
    fn contrastive_loss(&self, img: &Tensor, txt: &Tensor, log_scale: &Tensor) -> Result<(Tensor, Tensor, Tensor)> {
        contrastive_loss::contrastive_loss(img, txt, log_scale)
    }
    fn contrastive_loss_bwd(
        &self,
        img: &Tensor,
        txt: &Tensor,
        log_scale: &Tensor,
        lse_img: &Tensor,
        lse_txt: &Tensor,
        dloss: &Tensor,
    ) -> Result<(Tensor, Tensor, Tensor)> {
        contrastive_loss::contrastive_loss_bwd(img, txt, log_scale, lse_img, lse_txt, dloss)
    }
    fn cross_entropy(&self, logits: &Tensor, labels: &Tensor) -> Result<(Tensor, Tensor)> {
        contrastive_loss::cross_entropy(logits, labels)
    }
    fn cross_entropy_bwd(&self, logits: &Tensor, labels: &Tensor, lse: &Tensor, dloss: &Tensor) -> Result<Tensor> {
        contrastive_loss::cross_entropy_bwd(logits, labels, lse, dloss)
    }
    fn adamw(
        &self,
        param: &Tensor,
        grad: &Tensor,
        m: &Tensor,
        v: &Tensor,
        spec: &AdamWSpec,
        grad_scale: Option<&Tensor>,
    ) -> Result<(Tensor, Tensor, Tensor)> {
        optim::adamw(param, grad, m, v, spec, grad_scale)
    }
    fn clip_coef(&self, sumsq: &Tensor, max_norm: f32) -> Result<Tensor> {
        optim::clip_coef(sumsq, max_norm)
    }
}
