//! Optimizer kernels on the CPU: the AdamW update and the gradient-clipping
//! coefficient. WGSL twin: shaders/optim.wgsl.
use rayon::prelude::*;

use super::memory::{f32s, wrap};
use crate::backend::checks::{adamw_consts, check_clip};
use crate::backend::AdamWSpec;
use crate::error::Result;
use crate::tensor::Tensor;

/// Elements per rayon task: large enough to amortise scheduling, small enough to split.
const CHUNK: usize = 1 << 14;

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
