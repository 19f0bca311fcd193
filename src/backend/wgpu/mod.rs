//! The WGSL backend. `context.rs` owns the device and pool, `adapters.rs` the adapter
//! choice, `dispatch.rs` recording dispatches, `requirements.rs` what each kernel needs
//! of an adapter; each other file is the launch code of one kernel family whose WGSL is `shaders/<same name>.wgsl`
//! and whose CPU twin is `backend/cpu/<same name>.rs`.
mod adapters;
mod attention;
mod context;
mod context_lock;
mod contrastive_loss;
mod dispatch;
mod elementwise;
mod matmul;
mod memory;
mod norms;
mod optim;
mod readback;
pub mod requirements;

pub use adapters::{compiled_apis, list_adapters, AdapterReport};
pub use attention::{subgroup_wgsl as attention_subgroup_source, uses_subgroups as attention_uses_subgroups};
pub use context::{grid_1d, GpuBackend, GpuStats, GpuStorage, MAX_GROUPS};
pub use matmul::{matmul_variant, variant_sources as matmul_variant_sources, MatmulVariant};
pub use readback::PendingRead;

use crate::backend::*;
use crate::error::Result;
use crate::tensor::{DType, Tensor};

impl Backend for GpuBackend {
    fn name(&self) -> String {
        self.adapter_name()
    }
    fn sync(&self) -> Result<()> {
        self.wait()
    }
    fn from_f32(&self, data: Vec<f32>, shape: &[usize]) -> Result<Tensor> {
        memory::from_f32(self, data, shape)
    }
    fn from_u32(&self, data: Vec<u32>, shape: &[usize]) -> Result<Tensor> {
        memory::from_u32(self, data, shape)
    }
    fn fill(&self, shape: &[usize], value: f32) -> Result<Tensor> {
        memory::fill(self, shape, value)
    }
    fn to_vec_f32(&self, t: &Tensor) -> Result<Vec<f32>> {
        memory::to_vec_f32(self, t)
    }
    fn to_vec_u32(&self, t: &Tensor) -> Result<Vec<u32>> {
        memory::to_vec_u32(self, t)
    }
    fn cast(&self, t: &Tensor, dtype: DType) -> Result<Tensor> {
        memory::cast(self, t, dtype)
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
        matmul::matmul(self, a, b, bias, act, spec, keep_preact)
    }
    fn act(&self, x: &Tensor, act: Act) -> Result<Tensor> {
        elementwise::act(self, x, act)
    }
    fn act_bwd(&self, dy: &Tensor, x: &Tensor, act: Act) -> Result<Tensor> {
        elementwise::act_bwd(self, dy, x, act)
    }
    fn binary(&self, op: BinaryOp, a: &Tensor, b: &Tensor) -> Result<Tensor> {
        elementwise::binary(self, op, a, b)
    }
    fn affine(&self, x: &Tensor, alpha: f32, beta: f32) -> Result<Tensor> {
        elementwise::affine(self, x, alpha, beta)
    }
    fn clamp_max(&self, x: &Tensor, hi: f32) -> Result<Tensor> {
        elementwise::clamp_max(self, x, hi)
    }
    fn mul_scalar_tensor(&self, x: &Tensor, s: &Tensor) -> Result<Tensor> {
        elementwise::mul_scalar_tensor(self, x, s)
    }
    fn sum_rows(&self, x: &Tensor, rows: usize, cols: usize) -> Result<Tensor> {
        elementwise::sum_rows(self, x, rows, cols)
    }
    fn sum_all(&self, x: &Tensor) -> Result<Tensor> {
        elementwise::sum_all(self, x)
    }
    fn sumsq(&self, x: &Tensor) -> Result<Tensor> {
        elementwise::sumsq(self, x)
    }
    fn concat(&self, a: &Tensor, b: &Tensor, outer: usize) -> Result<Tensor> {
        elementwise::concat(self, a, b, outer)
    }
    fn slice_cols(&self, x: &Tensor, outer: usize, start: usize, len: usize) -> Result<Tensor> {
        elementwise::slice_cols(self, x, outer, start, len)
    }
    fn gather_rows(&self, table: &Tensor, ids: &Tensor) -> Result<Tensor> {
        elementwise::gather_rows(self, table, ids)
    }
    fn scatter_add_rows(&self, dy: &Tensor, ids: &Tensor, rows: usize) -> Result<Tensor> {
        elementwise::scatter_add_rows(self, dy, ids, rows)
    }
    fn patchify(&self, img: &Tensor, spec: &PatchSpec) -> Result<Tensor> {
        elementwise::patchify(self, img, spec)
    }
    fn unpatchify(&self, patches: &Tensor, spec: &PatchSpec) -> Result<Tensor> {
        elementwise::unpatchify(self, patches, spec)
    }
    fn layernorm(&self, x: &Tensor, gamma: &Tensor, beta: &Tensor, eps: f32) -> Result<(Tensor, Tensor, Tensor)> {
        norms::layernorm(self, x, gamma, beta, eps)
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
        norms::layernorm_bwd(self, dy, x, gamma, mean, rstd, param_grads)
    }
    fn softmax(&self, x: &Tensor) -> Result<Tensor> {
        norms::softmax(self, x)
    }
    fn softmax_bwd(&self, dy: &Tensor, y: &Tensor) -> Result<Tensor> {
        norms::softmax_bwd(self, dy, y)
    }
    fn l2norm(&self, x: &Tensor) -> Result<(Tensor, Tensor)> {
        norms::l2norm(self, x)
    }
    fn l2norm_bwd(&self, dy: &Tensor, y: &Tensor, norm: &Tensor) -> Result<Tensor> {
        norms::l2norm_bwd(self, dy, y, norm)
    }
    fn attention(&self, q: &Tensor, k: &Tensor, v: &Tensor, spec: &AttnSpec) -> Result<(Tensor, Tensor)> {
        attention::attention(self, q, k, v, spec)
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
        attention::attention_bwd(self, dout, q, k, v, out, lse, spec)
    }
    fn contrastive_loss(&self, img: &Tensor, txt: &Tensor, log_scale: &Tensor) -> Result<(Tensor, Tensor, Tensor)> {
        contrastive_loss::contrastive_loss(self, img, txt, log_scale)
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
        contrastive_loss::contrastive_loss_bwd(self, img, txt, log_scale, lse_img, lse_txt, dloss)
    }
    fn cross_entropy(&self, logits: &Tensor, labels: &Tensor) -> Result<(Tensor, Tensor)> {
        contrastive_loss::cross_entropy(self, logits, labels)
    }
    fn cross_entropy_bwd(&self, logits: &Tensor, labels: &Tensor, lse: &Tensor, dloss: &Tensor) -> Result<Tensor> {
        contrastive_loss::cross_entropy_bwd(self, logits, labels, lse, dloss)
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
        optim::adamw(self, param, grad, m, v, spec, grad_scale)
    }
    fn clip_coef(&self, sumsq: &Tensor, max_norm: f32) -> Result<Tensor> {
        optim::clip_coef(self, sumsq, max_norm)
    }
}
