//! Row normalisations on the GPU (`shaders/norms.wgsl`): layer norm, softmax and L2
//! norm with backwards. CPU twin: src/backend/cpu/norms.rs.
//!
//! Every row kernel reduces a row with `tpr` invocations (a power of two up to the
//! 256-wide workgroup) so that short rows pack several per workgroup; layer-norm
//! parameter grads are column sums done in two stages (partials over row chunks,
//! then a reduce) since WGSL has no f32 atomics.
use super::memory::{as_f32, fill};
use super::{grid_1d, GpuBackend};
use crate::backend::checks::{l2norm_bwd_rows, layernorm_bwd_rows, layernorm_rows, row_grad_rows, rows_of_last_dim};
use crate::error::{Error, Result};
use crate::tensor::{DType, Tensor};

const WGSL: &str = include_str!("../../../shaders/norms.wgsl");
const WG: usize = 256;

#[repr(C)]
#[derive(Clone, Copy, Default, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    rows: u32,
    cols: u32,
    tpr: u32,
    chunk: u32,
    nchunks: u32,
    eps: f32,
    _pad: [u32; 2],
}

/// Invocations per row: about four columns each, a power of two, at most a workgroup.
fn threads_per_row(cols: usize) -> usize {
    cols.div_ceil(4).next_power_of_two().clamp(1, WG)
}

fn row_params(op: &str, rows: usize, cols: usize) -> Result<(Params, [u32; 3])> {
    // Flat indices are u32 in WGSL.
    if rows.checked_mul(cols).is_none_or(|n| n > u32::MAX as usize) {
        return Err(Error::limit(format!(
            "{op}: {rows} x {cols} elements exceed the 2^32 a GPU kernel can index"
        )));
    }
    let tpr = threads_per_row(cols);
    let p = Params {
        rows: rows as u32,
        cols: cols as u32,
        tpr: tpr as u32,
        ..Default::default()
    };
    Ok((p, grid_1d(rows, WG / tpr)))
}

pub fn layernorm(
    g: &GpuBackend,
    x: &Tensor,
    gamma: &Tensor,
    beta: &Tensor,
    eps: f32,
) -> Result<(Tensor, Tensor, Tensor)> {
    const OP: &str = "layernorm";
    let (rows, cols) = layernorm_rows(OP, x, gamma, beta)?;
    let (mut p, groups) = row_params(OP, rows, cols)?;
    p.eps = eps;
    let (x, gamma, beta) = (as_f32(g, x)?, as_f32(g, gamma)?, as_f32(g, beta)?);
    let y = g.empty(OP, x.shape(), DType::F32)?;
    let mean = g.empty(OP, &[rows], DType::F32)?;
    let rstd = g.empty(OP, &[rows], DType::F32)?;
    if rows > 0 {
        g.dispatch(
            WGSL,
            "layernorm_fwd",
            &p,
            &[x.gpu(OP)?, gamma.gpu(OP)?, beta.gpu(OP)?],
            &[y.gpu(OP)?, mean.gpu(OP)?, rstd.gpu(OP)?],
            groups,
        )?;
    }
    Ok((y, mean, rstd))
}

pub fn layernorm_bwd(
    g: &GpuBackend,
    dy: &Tensor,
    x: &Tensor,
    gamma: &Tensor,
    mean: &Tensor,
    rstd: &Tensor,
    param_grads: bool,
) -> Result<(Tensor, Option<(Tensor, Tensor)>)> {
    const OP: &str = "layernorm_bwd";
    let (rows, cols) = layernorm_bwd_rows(OP, dy, x, gamma, mean, rstd)?;
    let (p, groups) = row_params(OP, rows, cols)?;
    let (dy, x, gamma) = (as_f32(g, dy)?, as_f32(g, x)?, as_f32(g, gamma)?);
    let (mean, rstd) = (as_f32(g, mean)?, as_f32(g, rstd)?);
    let dx = g.empty(OP, x.shape(), DType::F32)?;
    if rows > 0 {
        g.dispatch(
            WGSL,
            "layernorm_bwd_dx",
            &p,
            &[dy.gpu(OP)?, x.gpu(OP)?, gamma.gpu(OP)?, mean.gpu(OP)?, rstd.gpu(OP)?],
            &[dx.gpu(OP)?],
            groups,
        )?;
    }
    if !param_grads {
        return Ok((dx, None));
    }
    if rows == 0 {
        // No rows: the column sums are zero.
        return Ok((dx, Some((fill(g, gamma.shape(), 0.0)?, fill(g, gamma.shape(), 0.0)?))));
    }
    // At least 64 rows per chunk, at most ~1024 chunks: the reduce stays short and
    // the partial buffers small while stage 1 still has rows x cols / 64 threads.
    let chunk = rows.div_ceil(1024).max(64);
    let nchunks = rows.div_ceil(chunk);
    let pp = Params {
        chunk: chunk as u32,
        nchunks: nchunks as u32,
        ..p
    };
    let pg = g.empty(OP, &[nchunks, cols], DType::F32)?;
    let pb = g.empty(OP, &[nchunks, cols], DType::F32)?;
    g.dispatch(
        WGSL,
        "layernorm_bwd_partial",
        &pp,
        &[dy.gpu(OP)?, x.gpu(OP)?, mean.gpu(OP)?, rstd.gpu(OP)?],
        &[pg.gpu(OP)?, pb.gpu(OP)?],
        [cols.div_ceil(WG) as u32, nchunks as u32, 1],
    )?;
    let dg = g.empty(OP, gamma.shape(), DType::F32)?;
    let db = g.empty(OP, gamma.shape(), DType::F32)?;
    g.dispatch(
        WGSL,
        "layernorm_bwd_reduce",
        &pp,
        &[pg.gpu(OP)?, pb.gpu(OP)?],
        &[dg.gpu(OP)?, db.gpu(OP)?],
        grid_1d(cols, WG),
    )?;
    Ok((dx, Some((dg, db))))
}

pub fn softmax(g: &GpuBackend, x: &Tensor) -> Result<Tensor> {
    const OP: &str = "softmax";
    let (rows, cols) = rows_of_last_dim(OP, x)?;
    let (p, groups) = row_params(OP, rows, cols)?;
    let x = as_f32(g, x)?;
    let y = g.empty(OP, x.shape(), DType::F32)?;
    if rows > 0 {
        g.dispatch(WGSL, "softmax_fwd", &p, &[x.gpu(OP)?], &[y.gpu(OP)?], groups)?;
    }
    Ok(y)
}

pub fn softmax_bwd(g: &GpuBackend, dy: &Tensor, y: &Tensor) -> Result<Tensor> {
    const OP: &str = "softmax_bwd";
    let (rows, cols) = row_grad_rows(OP, dy, y)?;
    let (p, groups) = row_params(OP, rows, cols)?;
    let (dy, y) = (as_f32(g, dy)?, as_f32(g, y)?);
    let dx = g.empty(OP, y.shape(), DType::F32)?;
    if rows > 0 {
        g.dispatch(
            WGSL,
            "softmax_bwd",
            &p,
            &[dy.gpu(OP)?, y.gpu(OP)?],
            &[dx.gpu(OP)?],
            groups,
        )?;
    }
    Ok(dx)
}

pub fn l2norm(g: &GpuBackend, x: &Tensor) -> Result<(Tensor, Tensor)> {
    const OP: &str = "l2norm";
    let (rows, cols) = rows_of_last_dim(OP, x)?;
    let (p, groups) = row_params(OP, rows, cols)?;
    let x = as_f32(g, x)?;
    let y = g.empty(OP, x.shape(), DType::F32)?;
    let norm = g.empty(OP, &[rows], DType::F32)?;
    if rows > 0 {
        g.dispatch(
            WGSL,
            "l2norm_fwd",
            &p,
            &[x.gpu(OP)?],
            &[y.gpu(OP)?, norm.gpu(OP)?],
            groups,
        )?;
    }
    Ok((y, norm))
}

pub fn l2norm_bwd(g: &GpuBackend, dy: &Tensor, y: &Tensor, norm: &Tensor) -> Result<Tensor> {
    const OP: &str = "l2norm_bwd";
    let (rows, cols) = l2norm_bwd_rows(OP, dy, y, norm)?;
    let (p, groups) = row_params(OP, rows, cols)?;
    let (dy, y, norm) = (as_f32(g, dy)?, as_f32(g, y)?, as_f32(g, norm)?);
    let dx = g.empty(OP, y.shape(), DType::F32)?;
    if rows > 0 {
        g.dispatch(
            WGSL,
            "l2norm_bwd",
            &p,
            &[dy.gpu(OP)?, y.gpu(OP)?, norm.gpu(OP)?],
            &[dx.gpu(OP)?],
            groups,
        )?;
    }
    Ok(dx)
}
