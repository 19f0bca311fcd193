//! Optimizer kernels on the GPU (`shaders/optim.wgsl`): the AdamW update and the
//! gradient-clipping coefficient, both without a readback. CPU twin:
//! src/backend/cpu/optim.rs.
use super::memory::as_f32;
use super::{grid_1d, GpuBackend};
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

/// Checks the operands and fills the per-step scalars exactly as the CPU twin does.
fn adamw_params(
    op: &str,
    param: &Tensor,
    grad: &Tensor,
    m: &Tensor,
    v: &Tensor,
    spec: &AdamWSpec,
    grad_scale: Option<&Tensor>,
) -> Result<Params> {
    if param.dtype() != DType::F32 {
        return Err(Error::shape(
            op,
            format!("the parameter must be stored as f32 (got {param:?}); half-precision weights are frozen"),
        ));
    }
    let n = param.numel();
    if grad.numel() != n || m.numel() != n || v.numel() != n {
        return Err(Error::shape(
            op,
            format!(
                "param {:?}, grad {:?}, m {:?} and v {:?} must have the same size",
                param.shape(),
                grad.shape(),
                m.shape(),
                v.shape()
            ),
        ));
    }
    if let Some(s) = grad_scale {
        if s.numel() != 1 {
            return Err(Error::shape(
                op,
                format!("grad_scale must have one element, got {:?}", s.shape()),
            ));
        }
    }
    if spec.step == 0 || !(0.0..1.0).contains(&spec.beta1) || !(0.0..1.0).contains(&spec.beta2) {
        return Err(Error::invalid(format!(
            "{op}: need step >= 1 and betas in [0, 1), got {spec:?}"
        )));
    }
    let n = u32::try_from(n)
        .map_err(|_| Error::limit(format!("{op}: {n} elements exceed the 2^32 a GPU kernel can index")))?;
    let (lr, step) = (spec.lr as f64, spec.step.min(i32::MAX as u32) as i32);
    let bc1 = 1.0 - (spec.beta1 as f64).powi(step);
    let bc2 = 1.0 - (spec.beta2 as f64).powi(step);
    Ok(Params {
        n,
        has_scale: grad_scale.is_some() as u32,
        beta1: spec.beta1,
        beta2: spec.beta2,
        eps: spec.eps,
        decay: (1.0 - lr * spec.weight_decay as f64) as f32,
        step_size: (lr / bc1) as f32,
        bc2_sqrt: bc2.sqrt() as f32,
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

pub fn clip_coef(g: &GpuBackend, sumsq: &Tensor, max_norm: f32) -> Result<Tensor> {
    let op = "clip_coef";
    if sumsq.numel() != 1 {
        return Err(Error::shape(
            op,
            format!("sumsq must have one element, got {:?}", sumsq.shape()),
        ));
    }
    if !(max_norm > 0.0 && max_norm.is_finite()) {
        return Err(Error::invalid(format!(
            "{op}: max_norm must be a positive number, got {max_norm}"
        )));
    }
    let ss = as_f32(g, sumsq)?;
    let out = g.empty(op, &[1], DType::F32)?;
    let p = Params {
        max_norm,
        ..Default::default()
    };
    g.dispatch(WGSL, "clip_coef", &p, &[ss.gpu(op)?], &[out.gpu(op)?], [1, 1, 1])?;
    Ok(out)
}
