//! Losses on the GPU (`shaders/contrastive_loss.wgsl`): the symmetric CLIP InfoNCE and
//! cross-entropy. CPU twin: src/backend/cpu/contrastive_loss.rs.
//!
//! The b x m logit matrix is never stored: forward is one row kernel per direction
//! (images over texts, texts over images) with an online log-sum-exp, then a one-
//! workgroup loss reduction; backward recomputes the logits, once per image row for
//! dimg (also writing that row's share of dlog_scale) and once per text row for dtxt,
//! then sums the dlog_scale partials (no f32 atomics in WGSL). dloss stays on the device.
use super::memory::as_f32;
use super::{grid_1d, GpuBackend};
use crate::backend::checks::{check_len, contrastive_dims};
use crate::error::{Error, Result};
use crate::tensor::{DType, Tensor};

const WGSL: &str = include_str!("../../../shaders/contrastive_loss.wgsl");
/// Workgroup size of every kernel in the file.
const WG: usize = 256;

#[repr(C)]
#[derive(Clone, Copy, Default, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    n_a: u32,
    n_b: u32,
    d: u32,
    b: u32,
    mode: u32,
    scale: f32,
    _pad: [u32; 2],
}

/// Flat indices are u32 in WGSL.
fn fits_u32(op: &str, what: &str, n: usize) -> Result<u32> {
    u32::try_from(n).map_err(|_| {
        Error::limit(format!(
            "{op}: {what} has {n} elements, more than the 2^32 a GPU kernel can index"
        ))
    })
}

/// The shared (b, m, d) check, plus txt [m, d] within u32 indexing.
fn dims_u32(op: &str, img: &Tensor, txt: &Tensor, log_scale: &Tensor) -> Result<(u32, u32, u32)> {
    let (b, m, d) = contrastive_dims(op, img, txt, log_scale)?;
    fits_u32(op, "txt", m * d)?;
    Ok((b as u32, m as u32, d as u32))
}

/// (rows, classes) of logits [rows, classes] with u32 labels [rows].
fn ce_dims(op: &str, logits: &Tensor, labels: &Tensor) -> Result<(u32, u32)> {
    let s = logits.shape();
    if s.len() != 2 || s[0] == 0 || s[1] == 0 || labels.numel() != s[0] || labels.dtype() != DType::U32 {
        return Err(Error::shape(
            op,
            format!("need logits [rows, classes] (non-empty) and u32 labels [rows], got {logits:?} and {labels:?}"),
        ));
    }
    fits_u32(op, "logits", s[0] * s[1])?;
    Ok((s[0] as u32, s[1] as u32))
}

pub fn contrastive_loss(
    g: &GpuBackend,
    img: &Tensor,
    txt: &Tensor,
    log_scale: &Tensor,
) -> Result<(Tensor, Tensor, Tensor)> {
    let op = "contrastive_loss";
    let (b, m, d) = dims_u32(op, img, txt, log_scale)?;
    let (img, txt, ls) = (as_f32(g, img)?, as_f32(g, txt)?, as_f32(g, log_scale)?);
    let (bu, f32t) = (b as usize, DType::F32);
    let lse_img = g.empty(op, &[bu], f32t)?;
    let lse_txt = g.empty(op, &[bu], f32t)?;
    let diag = g.empty(op, &[bu], f32t)?;
    let loss = g.empty(op, &[1], f32t)?;
    let (gi, gt, gl) = (img.gpu(op)?, txt.gpu(op)?, ls.gpu(op)?);
    let rows = Params {
        n_a: b,
        n_b: m,
        d,
        b,
        mode: 0,
        ..Default::default()
    };
    g.dispatch(
        WGSL,
        "cl_lse",
        &rows,
        &[gi, gt, gl],
        &[lse_img.gpu(op)?, diag.gpu(op)?],
        grid_1d(bu, 1),
    )?;
    let cols = Params {
        n_b: b,
        mode: 1,
        ..rows
    };
    g.dispatch(
        WGSL,
        "cl_lse",
        &cols,
        &[gt, gi, gl],
        &[lse_txt.gpu(op)?, diag.gpu(op)?],
        grid_1d(bu, 1),
    )?;
    let fin = Params {
        n_a: b,
        scale: 0.5 / b as f32,
        ..Default::default()
    };
    g.dispatch(
        WGSL,
        "cl_loss",
        &fin,
        &[lse_img.gpu(op)?, lse_txt.gpu(op)?, diag.gpu(op)?],
        &[loss.gpu(op)?],
        [1, 1, 1],
    )?;
    Ok((loss, lse_img, lse_txt))
}

pub fn contrastive_loss_bwd(
    g: &GpuBackend,
    img: &Tensor,
    txt: &Tensor,
    log_scale: &Tensor,
    lse_img: &Tensor,
    lse_txt: &Tensor,
    dloss: &Tensor,
) -> Result<(Tensor, Tensor, Tensor)> {
    let op = "contrastive_loss_bwd";
    let (b, m, d) = dims_u32(op, img, txt, log_scale)?;
    let (bu, mu, du) = (b as usize, m as usize, d as usize);
    check_len(op, "lse_img", lse_img, bu)?;
    check_len(op, "lse_txt", lse_txt, bu)?;
    check_len(op, "dloss", dloss, 1)?;
    let (img, txt, ls) = (as_f32(g, img)?, as_f32(g, txt)?, as_f32(g, log_scale)?);
    let (li, lt, dl) = (as_f32(g, lse_img)?, as_f32(g, lse_txt)?, as_f32(g, dloss)?);
    let dimg = g.empty(op, &[bu, du], DType::F32)?;
    let dtxt = g.empty(op, &[mu, du], DType::F32)?;
    let part = g.empty(op, &[bu], DType::F32)?;
    let dls = g.empty(op, &[1], DType::F32)?;
    let (gi, gt) = (img.gpu(op)?, txt.gpu(op)?);
    let common = [ls.gpu(op)?, li.gpu(op)?, lt.gpu(op)?, dl.gpu(op)?];
    let rows = Params {
        n_a: b,
        n_b: m,
        d,
        b,
        mode: 0,
        ..Default::default()
    };
    let ins = [gi, gt, common[0], common[1], common[2], common[3]];
    g.dispatch(
        WGSL,
        "cl_grad",
        &rows,
        &ins,
        &[dimg.gpu(op)?, part.gpu(op)?],
        grid_1d(bu, 1),
    )?;
    let cols = Params {
        n_a: m,
        n_b: b,
        mode: 1,
        ..rows
    };
    let ins = [gt, gi, common[0], common[1], common[2], common[3]];
    g.dispatch(
        WGSL,
        "cl_grad",
        &cols,
        &ins,
        &[dtxt.gpu(op)?, part.gpu(op)?],
        grid_1d(mu, 1),
    )?;
    let fin = Params {
        n_a: b,
        scale: 1.0,
        ..Default::default()
    };
    g.dispatch(WGSL, "sum_scaled", &fin, &[part.gpu(op)?], &[dls.gpu(op)?], [1, 1, 1])?;
    Ok((dimg, dtxt, dls))
}

/// Labels stay on the device, so they are not validated here: a row whose label is out
/// of range adds 0 to the loss sum (the mean still divides by all rows) and gets a zero
/// gradient. The CPU backend returns an error instead.
pub fn cross_entropy(g: &GpuBackend, logits: &Tensor, labels: &Tensor) -> Result<(Tensor, Tensor)> {
    let op = "cross_entropy";
    let (rows, classes) = ce_dims(op, logits, labels)?;
    let x = as_f32(g, logits)?;
    let lse = g.empty(op, &[rows as usize], DType::F32)?;
    let term = g.empty(op, &[rows as usize], DType::F32)?;
    let loss = g.empty(op, &[1], DType::F32)?;
    let p = Params {
        n_a: rows,
        n_b: classes,
        ..Default::default()
    };
    g.dispatch(
        WGSL,
        "ce_rows",
        &p,
        &[x.gpu(op)?, labels.gpu(op)?],
        &[lse.gpu(op)?, term.gpu(op)?],
        grid_1d(rows as usize, 1),
    )?;
    let fin = Params {
        n_a: rows,
        scale: 1.0 / rows as f32,
        ..Default::default()
    };
    g.dispatch(WGSL, "sum_scaled", &fin, &[term.gpu(op)?], &[loss.gpu(op)?], [1, 1, 1])?;
    Ok((loss, lse))
}

/// dloss * (softmax - onehot) / rows; rows with an out-of-range label get zeros.
pub fn cross_entropy_bwd(
    g: &GpuBackend,
    logits: &Tensor,
    labels: &Tensor,
    lse: &Tensor,
    dloss: &Tensor,
) -> Result<Tensor> {
    let op = "cross_entropy_bwd";
    let (rows, classes) = ce_dims(op, logits, labels)?;
    check_len(op, "lse", lse, rows as usize)?;
    check_len(op, "dloss", dloss, 1)?;
    let (x, l, dl) = (as_f32(g, logits)?, as_f32(g, lse)?, as_f32(g, dloss)?);
    let n = rows as usize * classes as usize;
    let out = g.empty(op, &[rows as usize, classes as usize], DType::F32)?;
    let p = Params {
        n_a: rows,
        n_b: classes,
        scale: 1.0 / rows as f32,
        ..Default::default()
    };
    let ins = [x.gpu(op)?, labels.gpu(op)?, l.gpu(op)?, dl.gpu(op)?];
    g.dispatch(WGSL, "ce_bwd", &p, &ins, &[out.gpu(op)?], grid_1d(n, WG))?;
    Ok(out)
}
