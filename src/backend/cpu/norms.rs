//! Row normalisations on the CPU: layer norm, softmax and L2 norm, with backwards.
//! Each row is a contiguous slice of the last dimension; rayon splits rows across
//! cores. Row reductions accumulate in f64 lanes: this backend is the oracle the
//! WGSL kernels are tested against, and the extra cost is lost in memory traffic.
//! WGSL twin: src/backend/wgpu/norms.rs + shaders/norms.wgsl.
use super::activation::exp_fast;
use rayon::prelude::*;

use super::memory::{f32s, wrap};
use crate::backend::checks::{l2norm_bwd_rows, layernorm_bwd_rows, layernorm_rows, row_grad_rows, rows_of_last_dim};
use crate::error::Result;
use crate::tensor::Tensor;

/// Floor on the L2 norm (as `torch.nn.functional.normalize`).
const L2_EPS: f32 = 1e-12;

/// Rows per rayon task so that each task has ~16k elements of work.
fn rows_per_task(cols: usize) -> usize {
    (16384 / cols.max(1)).max(1)
}

/// sum f(a_i) with four f64 lanes (vectorises, and stays exact enough for an oracle).
#[inline(always)]
fn sum1(a: &[f32], f: impl Fn(f64) -> f64) -> f64 {
    let mut acc = [0f64; 4];
    let mut it = a.chunks_exact(4);
    for c in &mut it {
        for l in 0..4 {
            acc[l] += f(c[l] as f64);
        }
    }
    let tail: f64 = it.remainder().iter().map(|&v| f(v as f64)).sum();
    (acc[0] + acc[1]) + (acc[2] + acc[3]) + tail
}

/// sum a_i * b_i with four f64 lanes.
fn dot(a: &[f32], b: &[f32]) -> f64 {
    let mut acc = [0f64; 4];
    let (mut ia, mut ib) = (a.chunks_exact(4), b.chunks_exact(4));
    for (ca, cb) in (&mut ia).zip(&mut ib) {
        for l in 0..4 {
            acc[l] += ca[l] as f64 * cb[l] as f64;
        }
    }
    let tail: f64 = ia
        .remainder()
        .iter()
        .zip(ib.remainder())
        .map(|(&x, &y)| x as f64 * y as f64)
        .sum();
    (acc[0] + acc[1]) + (acc[2] + acc[3]) + tail
}

/// (sum g*dy, sum g*dy*xhat) over one row, four f64 lanes each.
fn ln_bwd_sums(dy: &[f32], x: &[f32], g: &[f32], m: f32, rs: f32) -> (f64, f64) {
    let (mut sa, mut sb) = ([0f64; 4], [0f64; 4]);
    let (mut id, mut ix, mut ig) = (dy.chunks_exact(4), x.chunks_exact(4), g.chunks_exact(4));
    for ((cd, cx), cg) in (&mut id).zip(&mut ix).zip(&mut ig) {
        for l in 0..4 {
            let gdy = cg[l] * cd[l];
            sa[l] += gdy as f64;
            sb[l] += (gdy * ((cx[l] - m) * rs)) as f64;
        }
    }
    let (mut ta, mut tb) = (0f64, 0f64);
    for ((&d, &xj), &gj) in id.remainder().iter().zip(ix.remainder()).zip(ig.remainder()) {
        let gdy = gj * d;
        ta += gdy as f64;
        tb += (gdy * ((xj - m) * rs)) as f64;
    }
    (
        (sa[0] + sa[1]) + (sa[2] + sa[3]) + ta,
        (sb[0] + sb[1]) + (sb[2] + sb[3]) + tb,
    )
}

fn row_max(a: &[f32]) -> f32 {
    let mut acc = [f32::NEG_INFINITY; 8];
    let mut it = a.chunks_exact(8);
    for c in &mut it {
        for l in 0..8 {
            acc[l] = acc[l].max(c[l]);
        }
    }
    it.remainder()
        .iter()
        .chain(acc.iter())
        .fold(f32::NEG_INFINITY, |m, &v| m.max(v))
}

pub fn layernorm(x: &Tensor, gamma: &Tensor, beta: &Tensor, eps: f32) -> Result<(Tensor, Tensor, Tensor)> {
    const OP: &str = "layernorm";
    let (rows, cols) = layernorm_rows(OP, x, gamma, beta)?;
    let (xv, g, b) = (f32s(x, OP)?, f32s(gamma, OP)?, f32s(beta, OP)?);
    let (xv, g, b) = (&xv[..], &g[..], &b[..]);
    let mut y = vec![0f32; rows * cols];
    let mut mean = vec![0f32; rows];
    let mut rstd = vec![0f32; rows];
    y.par_chunks_mut(cols)
        .zip(xv.par_chunks(cols))
        .zip(mean.par_iter_mut().zip(rstd.par_iter_mut()))
        .with_min_len(rows_per_task(cols))
        .for_each(|((yr, xr), (mo, ro))| {
            let m = sum1(xr, |v| v) / cols as f64;
            let var = sum1(xr, |v| (v - m) * (v - m)) / cols as f64;
            // Two-pass variance in f64 then one rounding: the biased variance PyTorch uses.
            let r = (1.0 / (var + eps as f64).sqrt()) as f32;
            let m = m as f32;
            for (((yo, &xv), &gv), &bv) in yr.iter_mut().zip(xr).zip(g).zip(b) {
                *yo = (xv - m) * r * gv + bv;
            }
            *mo = m;
            *ro = r;
        });
    Ok((wrap(y, x.shape()), wrap(mean, &[rows]), wrap(rstd, &[rows])))
}

/// Column sums (dgamma, dbeta) of one block of rows, in f64.
type ParamPartial = (Vec<f64>, Vec<f64>);

fn add_partials(a: ParamPartial, b: ParamPartial) -> ParamPartial {
    if a.0.is_empty() {
        return b;
    }
    if b.0.is_empty() {
        return a;
    }
    let (mut g, mut bb) = a;
    g.iter_mut().zip(&b.0).for_each(|(s, v)| *s += v);
    bb.iter_mut().zip(&b.1).for_each(|(s, v)| *s += v);
    (g, bb)
}

pub fn layernorm_bwd(
    dy: &Tensor,
    x: &Tensor,
    gamma: &Tensor,
    mean: &Tensor,
    rstd: &Tensor,
    param_grads: bool,
) -> Result<(Tensor, Option<(Tensor, Tensor)>)> {
    const OP: &str = "layernorm_bwd";
    let (rows, cols) = layernorm_bwd_rows(OP, dy, x, gamma, mean, rstd)?;
    let (dyv, xv, g, mv, rv) = (
        f32s(dy, OP)?,
        f32s(x, OP)?,
        f32s(gamma, OP)?,
        f32s(mean, OP)?,
        f32s(rstd, OP)?,
    );
    let (dyv, xv, g, mv, rv) = (&dyv[..], &xv[..], &g[..], &mv[..], &rv[..]);
    let mut dx = vec![0f32; rows * cols];
    // Blocks of rows: few enough that the per-block dgamma/dbeta partials stay cheap,
    // enough to keep every core busy.
    let block = rows
        .div_ceil(4 * rayon::current_num_threads())
        .max(rows_per_task(cols))
        .max(1);
    let run_block = |bi: usize, dxb: &mut [f32]| -> ParamPartial {
        let mut part = if param_grads {
            (vec![0f64; cols], vec![0f64; cols])
        } else {
            (Vec::new(), Vec::new())
        };
        for (ri, dxr) in dxb.chunks_mut(cols).enumerate() {
            let r = bi * block + ri;
            let (dyr, xr) = (&dyv[r * cols..(r + 1) * cols], &xv[r * cols..(r + 1) * cols]);
            let (m, rs) = (mv[r], rv[r]);
            // dx = rstd * (g*dy - mean(g*dy) - xhat * mean(g*dy*xhat))
            let (sa, sb) = ln_bwd_sums(dyr, xr, g, m, rs);
            let a = (sa / cols as f64) as f32;
            let b = (sb / cols as f64) as f32;
            for (((o, &d), &xj), &gj) in dxr.iter_mut().zip(dyr).zip(xr).zip(g) {
                *o = rs * (gj * d - a - (xj - m) * rs * b);
            }
            if param_grads {
                for (((pg, pb), &d), &xj) in part.0.iter_mut().zip(part.1.iter_mut()).zip(dyr).zip(xr) {
                    *pg += (d * ((xj - m) * rs)) as f64;
                    *pb += d as f64;
                }
            }
        }
        part
    };
    let part = dx
        .par_chunks_mut(block * cols)
        .enumerate()
        .map(|(bi, dxb)| run_block(bi, dxb))
        .reduce(|| (Vec::new(), Vec::new()), add_partials);
    let dx = wrap(dx, x.shape());
    if !param_grads {
        return Ok((dx, None));
    }
    let (pg, pb) = if part.0.is_empty() {
        (vec![0f64; cols], vec![0f64; cols])
    } else {
        part
    };
    let dg = pg.into_iter().map(|v| v as f32).collect();
    let db = pb.into_iter().map(|v| v as f32).collect();
    Ok((dx, Some((wrap(dg, gamma.shape()), wrap(db, gamma.shape())))))
}

pub fn softmax(x: &Tensor) -> Result<Tensor> {
    const OP: &str = "softmax";
    let (rows, cols) = rows_of_last_dim(OP, x)?;
    let xv = f32s(x, OP)?;
    let mut y = vec![0f32; rows * cols];
    y.par_chunks_mut(cols)
        .zip(xv.par_chunks(cols))
        .with_min_len(rows_per_task(cols))
        .for_each(|(yr, xr)| {
            let m = row_max(xr);
            // Separate loops: a running sum in the exp loop would keep it scalar.
            for (o, &v) in yr.iter_mut().zip(xr) {
                *o = exp_fast(v - m);
            }
            let inv = (1.0 / sum1(yr, |v| v)) as f32;
            yr.iter_mut().for_each(|o| *o *= inv);
        });
    Ok(wrap(y, x.shape()))
}

pub fn softmax_bwd(dy: &Tensor, y: &Tensor) -> Result<Tensor> {
    const OP: &str = "softmax_bwd";
    let (rows, cols) = row_grad_rows(OP, dy, y)?;
    let (dyv, yv) = (f32s(dy, OP)?, f32s(y, OP)?);
    let mut dx = vec![0f32; rows * cols];
    dx.par_chunks_mut(cols)
        .zip(dyv.par_chunks(cols).zip(yv.par_chunks(cols)))
        .with_min_len(rows_per_task(cols))
        .for_each(|(o, (d, yr))| {
            let s = dot(d, yr) as f32;
            for ((o, &d), &yv) in o.iter_mut().zip(d).zip(yr) {
                *o = yv * (d - s);
            }
        });
    Ok(wrap(dx, y.shape()))
}

pub fn l2norm(x: &Tensor) -> Result<(Tensor, Tensor)> {
    const OP: &str = "l2norm";
    let (rows, cols) = rows_of_last_dim(OP, x)?;
    let xv = f32s(x, OP)?;
    let mut y = vec![0f32; rows * cols];
    let mut norm = vec![0f32; rows];
    y.par_chunks_mut(cols)
        .zip(xv.par_chunks(cols))
        .zip(norm.par_iter_mut())
        .with_min_len(rows_per_task(cols))
        .for_each(|((yr, xr), no)| {
            let n = sum1(xr, |v| v * v).sqrt() as f32;
            let den = n.max(L2_EPS);
            for (o, &v) in yr.iter_mut().zip(xr) {
                *o = v / den;
            }
            *no = n;
        });
    Ok((wrap(y, x.shape()), wrap(norm, &[rows])))
}

pub fn l2norm_bwd(dy: &Tensor, y: &Tensor, norm: &Tensor) -> Result<Tensor> {
    const OP: &str = "l2norm_bwd";
    let (rows, cols) = l2norm_bwd_rows(OP, dy, y, norm)?;
    let (dyv, yv, nv) = (f32s(dy, OP)?, f32s(y, OP)?, f32s(norm, OP)?);
    let mut dx = vec![0f32; rows * cols];
    dx.par_chunks_mut(cols)
        .zip(dyv.par_chunks(cols).zip(yv.par_chunks(cols)))
        .zip(nv.par_iter())
        .with_min_len(rows_per_task(cols))
        .for_each(|((o, (d, yr)), &n)| {
            let s = dot(d, yr) as f32;
            let den = n.max(L2_EPS);
            for ((o, &d), &yv) in o.iter_mut().zip(d).zip(yr) {
                *o = (d - yv * s) / den;
            }
        });
    Ok(wrap(dx, y.shape()))
}
