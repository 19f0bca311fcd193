//! Optimizer kernels on the GPU (`shaders/optim.wgsl`): the AdamW update and the
//! gradient-clipping coefficient, both without a readback. CPU twin:
//! src/backend/cpu/optim.rs.
use super::memory::as_f32;
use super::{grid_1d, GpuBackend};
use crate::backend::checks::{adamw_consts, check_clip};
use crate::backend::AdamWSpec;
use crate::error::{Error, Result};
use crate::tensor::{DType, Tensor};

const WGSL: &str = include_str!("../../../shaders/optim.wgsl");

#[repr(C)]
#[derive(Clone, Copy, Default, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    n: u32,
    has_scale: u32,
    beta1: f32,
    beta2: f32,
    eps: f32,
    decay: f32,
    step_size: f32,
    bc2_sqrt: f32,
    max_norm: f32,
    _pad: [u32; 3],
}

/// Checks the operands and fills the per-step scalars (both shared with the CPU twin).
fn adamw_params(
    op: &str,
    param: &Tensor,
    grad: &Tensor,
    m: &Tensor,
    v: &Tensor,
    spec: &AdamWSpec,
    grad_scale: Option<&Tensor>,
) -> Result<Params> {
    let k = adamw_consts(op, param, grad, m, v, spec, grad_scale)?;
    let n = param.numel();
    let n = u32::try_from(n)
        .map_err(|_| Error::limit(format!("{op}: {n} elements exceed the 2^32 a GPU kernel can index")))?;
    Ok(Params {
        n,
        has_scale: grad_scale.is_some() as u32,
        beta1: spec.beta1,
        beta2: spec.beta2,
        eps: spec.eps,
        decay: k.decay,
        step_size: k.step_size,
        bc2_sqrt: k.bc2_sqrt,
        ..Default::default()
    })
}

pub fn adamw(
    g: &GpuBackend,
    param: &Tensor,
    grad: &Tensor,
    m: &Tensor,
    v: &Tensor,
    spec: &AdamWSpec,
    grad_scale: Option<&Tensor>,
) -> Result<(Tensor, Tensor, Tensor)> {
    let op = "adamw";
    let p = adamw_params(op, param, grad, m, v, spec, grad_scale)?;
    if in_place_ok(param, grad, m, v, grad_scale) {
        // Without a scale the kernel never reads binding 2; the gradient stands in for it.
        let scale = grad_scale.unwrap_or(grad);
        let ins = [grad.gpu(op)?, scale.gpu(op)?];
        let outs = [param.gpu(op)?, m.gpu(op)?, v.gpu(op)?];
        g.dispatch(WGSL, "adamw_inplace", &p, &ins, &outs, grid_1d(p.n as usize, 256))?;
        return Ok((param.clone(), m.clone(), v.clone()));
    }
    let (gr, m0, v0) = (as_f32(g, grad)?, as_f32(g, m)?, as_f32(g, v)?);
    // Without a scale the kernel never reads binding 5; the parameter stands in for it.
    let scale = match grad_scale {
        Some(s) => as_f32(g, s)?,
        None => param.clone(),
    };
    let shape = param.shape();
    let (p1, m1, v1) = (
        g.empty(op, shape, DType::F32)?,
        g.empty(op, shape, DType::F32)?,
        g.empty(op, shape, DType::F32)?,
    );
    let ins = [param.gpu(op)?, gr.gpu(op)?, m0.gpu(op)?, v0.gpu(op)?, scale.gpu(op)?];
    g.dispatch(
        WGSL,
        "adamw",
        &p,
        &ins,
        &[p1.gpu(op)?, m1.gpu(op)?, v1.gpu(op)?],
        grid_1d(p.n as usize, 256),
    )?;
    Ok((p1, m1, v1))
}

/// The update may overwrite the parameter and its moments when all are f32 (no cast
/// temporaries), nothing else holds them (no one can see the old values change: the
/// training loop's tape has dropped its saved tensors by now) and no two of the
/// written buffers or the read ones coincide (a buffer bound writable twice, or both
/// read and written, is a validation error). Otherwise the update writes new tensors.
/// Writing in place keeps a step's parameters in the same buffers from step to step, so
/// the bind groups of every kernel that reads them repeat (docs/PERFORMANCE.md).
fn in_place_ok(param: &Tensor, grad: &Tensor, m: &Tensor, v: &Tensor, scale: Option<&Tensor>) -> bool {
    let written = [param, m, v];
    let read = [Some(grad), scale];
    written.iter().all(|t| t.dtype() == DType::F32 && t.storage_is_unique())
        && grad.dtype() == DType::F32
        && scale.is_none_or(|s| s.dtype() == DType::F32)
        && !param.same_storage(m)
        && !param.same_storage(v)
        && !m.same_storage(v)
        && written
            .iter()
            .all(|w| read.iter().flatten().all(|r| !w.same_storage(r)))
}

pub fn clip_coef(g: &GpuBackend, sumsq: &Tensor, max_norm: f32) -> Result<Tensor> {
    let op = "clip_coef";
    check_clip(op, sumsq, max_norm)?;
    let ss = as_f32(g, sumsq)?;
    let out = g.empty(op, &[1], DType::F32)?;
    let p = Params {
        max_norm,
        ..Default::default()
    };
    g.dispatch(WGSL, "clip_coef", &p, &[ss.gpu(op)?], &[out.gpu(op)?], [1, 1, 1])?;
    Ok(out)
}
