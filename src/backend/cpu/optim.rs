//! Optimizer kernels on the CPU: the AdamW update and the gradient-clipping
//! coefficient. WGSL twin: shaders/optim.wgsl.
use rayon::prelude::*;

use super::memory::{f32s, wrap};
use crate::backend::AdamWSpec;
use crate::error::{Error, Result};
use crate::tensor::{DType, Tensor};

/// Elements per rayon task: large enough to amortise scheduling, small enough to split.
const CHUNK: usize = 1 << 14;

/// Per-step scalars of PyTorch's AdamW, computed once in f64 like PyTorch's Python
/// floats: the update is `p = p * decay - step_size * m / (sqrt(v) / bc2_sqrt + eps)`.
#[derive(Clone, Copy, Debug)]
struct AdamWConsts {
    decay: f32,
    step_size: f32,
    bc2_sqrt: f32,
}

/// Validates the spec and the operands (the GPU twin repeats these checks).
fn adamw_consts(
    op: &str,
    param: &Tensor,
    grad: &Tensor,
    m: &Tensor,
    v: &Tensor,
    spec: &AdamWSpec,
    grad_scale: Option<&Tensor>,
) -> Result<AdamWConsts> {
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
    let (lr, step) = (spec.lr as f64, spec.step.min(i32::MAX as u32) as i32);
    let bc1 = 1.0 - (spec.beta1 as f64).powi(step);
    let bc2 = 1.0 - (spec.beta2 as f64).powi(step);
    Ok(AdamWConsts {
        decay: (1.0 - lr * spec.weight_decay as f64) as f32,
        step_size: (lr / bc1) as f32,
        bc2_sqrt: bc2.sqrt() as f32,
    })
}

pub fn adamw(
    param: &Tensor,
    grad: &Tensor,
    m: &Tensor,
    v: &Tensor,
    spec: &AdamWSpec,
    grad_scale: Option<&Tensor>,
) -> Result<(Tensor, Tensor, Tensor)> {
    let op = "adamw";
    let k = adamw_consts(op, param, grad, m, v, spec, grad_scale)?;
    let gs = match grad_scale {
        Some(s) => f32s(s, op)?[0],
        None => 1.0,
    };
    let (p0, g0, m0, v0) = (f32s(param, op)?, f32s(grad, op)?, f32s(m, op)?, f32s(v, op)?);
    let n = p0.len();
    let (b1, b2, eps) = (spec.beta1, spec.beta2, spec.eps);
    let (mut p1, mut m1, mut v1) = (vec![0.0f32; n], vec![0.0f32; n], vec![0.0f32; n]);
    p1.par_chunks_mut(CHUNK)
        .zip(m1.par_chunks_mut(CHUNK))
        .zip(v1.par_chunks_mut(CHUNK))
        .enumerate()
        .for_each(|(c, ((po, mo), vo))| {
            let r = c * CHUNK..c * CHUNK + po.len();
            let it = p0[r.clone()].iter().zip(&g0[r.clone()]).zip(&m0[r.clone()]).zip(&v0[r]);
            for ((((&p, &g), &m), &v), (po, (mo, vo))) in it.zip(po.iter_mut().zip(mo.iter_mut().zip(vo.iter_mut()))) {
                let g = g * gs;
                let m = b1 * m + (1.0 - b1) * g;
                let v = b2 * v + (1.0 - b2) * g * g;
                *po = p * k.decay - k.step_size * m / (v.sqrt() / k.bc2_sqrt + eps);
                *mo = m;
                *vo = v;
            }
        });
    let shape = param.shape();
    Ok((wrap(p1, shape), wrap(m1, shape), wrap(v1, shape)))
}

pub fn clip_coef(sumsq: &Tensor, max_norm: f32) -> Result<Tensor> {
    let op = "clip_coef";
    check_clip(op, sumsq, max_norm)?;
    let ss = f32s(sumsq, op)?[0];
    Ok(wrap(vec![(max_norm / (ss.sqrt() + 1e-6)).min(1.0)], &[1]))
}

fn check_clip(op: &str, sumsq: &Tensor, max_norm: f32) -> Result<()> {
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
    Ok(())
}
