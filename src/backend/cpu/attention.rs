//! Fused multi-head attention, forward and backward (CPU twin of shaders/attention.wgsl).
//!
//! One rayon task per (batch, head): the seq x seq score block is small (77 x 77 for
//! CLIP text, 257 x 257 for ViT-L/14) and lives in a per-thread scratch buffer. The
//! GEMMs are single-threaded `gemm` crate calls (Parallelism::None) reading q/k/v in place
//! through strides, so no head transposes are materialised on the way in. Results are
//! written head-major ([batch, heads, seq, head_dim], contiguous per task) and then
//! interleaved back to the token-major layout in one parallel pass.
use super::activation::exp_fast;
use rayon::prelude::*;

use super::memory::{f32s, wrap};
use crate::backend::checks::attn_numel;
use crate::backend::AttnSpec;
use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// Sizes derived from a validated spec.
struct Dims {
    b: usize,
    s: usize,
    h: usize,
    dh: usize,
    /// Row stride of q/k/v/out: heads * head_dim.
    hd: usize,
    /// Elements of q (and k, v, out).
    n: usize,
    /// Elements of lse: batch * heads * seq.
    nl: usize,
}

fn dims(op: &str, spec: &AttnSpec) -> Result<Dims> {
    if spec.head_dim == 0 {
        return Err(Error::shape(
            op,
            format!("head_dim must be at least 1, got spec {spec:?}"),
        ));
    }
    let overflow = || Error::shape(op, format!("spec {spec:?} overflows the address space"));
    let hd = spec.heads.checked_mul(spec.head_dim).ok_or_else(overflow)?;
    let n = spec
        .batch
        .checked_mul(spec.seq)
        .and_then(|x| x.checked_mul(hd))
        .ok_or_else(overflow)?;
    let nl = spec
        .batch
        .checked_mul(spec.heads)
        .and_then(|x| x.checked_mul(spec.seq))
        .ok_or_else(overflow)?;
    Ok(Dims {
        b: spec.batch,
        s: spec.seq,
        h: spec.heads,
        dh: spec.head_dim,
        hd,
        n,
        nl,
    })
}

/// `C = alpha * A B + beta * C` for strided row-major views, bounds-checked so that a
/// wrong stride is an error instead of an out-of-bounds access.
#[allow(clippy::too_many_arguments)]
fn gemm(
    m: usize,
    k: usize,
    n: usize,
    alpha: f32,
    a: &[f32],
    (rsa, csa): (usize, usize),
    b: &[f32],
    (rsb, csb): (usize, usize),
    beta: f32,
    c: &mut [f32],
    rsc: usize,
) -> Result<()> {
    if m == 0 || n == 0 {
        return Ok(());
    }
    let last = |r: usize, rs: usize, cc: usize, cs: usize| (r - 1) * rs + (cc - 1) * cs;
    let ok =
        (k == 0 || (last(m, rsa, k, csa) < a.len() && last(k, rsb, n, csb) < b.len())) && last(m, rsc, n, 1) < c.len();
    if !ok {
        return Err(Error::shape(
            "attention",
            format!("internal gemm view {m}x{k}x{n} out of bounds"),
        ));
    }
    // SAFETY: every index the GEMM touches is checked above to lie inside its slice.
    // `gemm` computes dst = alpha * dst + beta * lhs @ rhs (its alpha/beta are the other
    // way round from BLAS) and reads dst only when asked.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            1,
            rsc as isize,
            beta != 0.0,
            a.as_ptr(),
            csa as isize,
            rsa as isize,
            b.as_ptr(),
            csb as isize,
            rsb as isize,
            beta,
            alpha,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
    Ok(())
}

/// Keys a query row may see: all of them, or 0..=i when causal.
#[inline]
fn visible(i: usize, seq: usize, causal: bool) -> usize {
    if causal {
        i + 1
    } else {
        seq
    }
}

/// Sum with eight independent lanes (vectorises; a plain fold is a serial chain).
#[inline]
fn sum8(x: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let chunks = x.chunks_exact(8);
    let tail: f32 = chunks.remainder().iter().sum();
    for c in chunks {
        for (a, v) in acc.iter_mut().zip(c) {
            *a += v;
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// [batch, heads, seq, dh] -> [batch, seq, heads * dh].
fn interleave_heads(tmp: &[f32], d: &Dims) -> Vec<f32> {
    let mut out = vec![0.0f32; d.n];
    if d.n == 0 {
        return out;
    }
    out.par_chunks_mut(d.hd).enumerate().for_each(|(r, row)| {
        let (b, s) = (r / d.s, r % d.s);
        for (h, dst) in row.chunks_exact_mut(d.dh).enumerate() {
            let src = ((b * d.h + h) * d.s + s) * d.dh;
            dst.copy_from_slice(&tmp[src..src + d.dh]);
        }
    });
    out
}

pub fn attention(q: &Tensor, k: &Tensor, v: &Tensor, spec: &AttnSpec) -> Result<(Tensor, Tensor)> {
    const OP: &str = "attention";
    let d = dims(OP, spec)?;
    attn_numel(OP, spec, d.n, &[("q", q), ("k", k), ("v", v)])?;
    let (qs, ks, vs) = (f32s(q, OP)?, f32s(k, OP)?, f32s(v, OP)?);
    let mut o_tmp = vec![0.0f32; d.n];
    let mut lse = vec![0.0f32; d.nl];
    if d.n > 0 {
        let task = d.s * d.dh;
        o_tmp
            .par_chunks_mut(task)
            .zip(lse.par_chunks_mut(d.s))
            .enumerate()
            .try_for_each_init(Vec::new, |scores: &mut Vec<f32>, (t, (o, l))| -> Result<()> {
                let (b, h) = (t / d.h, t % d.h);
                let off = b * d.s * d.hd + h * d.dh;
                scores.resize(d.s * d.s, 0.0);
                let (qh, kh, vh) = (&qs[off..], &ks[off..], &vs[off..]);
                gemm(
                    d.s,
                    d.dh,
                    d.s,
                    spec.scale,
                    qh,
                    (d.hd, 1),
                    kh,
                    (1, d.hd),
                    0.0,
                    scores,
                    d.s,
                )?;
                for (i, (row, li)) in scores.chunks_exact_mut(d.s).zip(l.iter_mut()).enumerate() {
                    let (live, dead) = row.split_at_mut(visible(i, d.s, spec.causal));
                    let m = live.iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x));
                    live.iter_mut().for_each(|x| *x = exp_fast(*x - m));
                    let sum = sum8(live);
                    let inv = 1.0 / sum;
                    live.iter_mut().for_each(|x| *x *= inv);
                    dead.fill(0.0);
                    *li = m + sum.ln();
                }
                gemm(d.s, d.s, d.dh, 1.0, scores, (d.s, 1), vh, (d.hd, 1), 0.0, o, d.dh)
            })?;
    }
    let out = interleave_heads(&o_tmp, &d);
    Ok((wrap(out, q.shape()), wrap(lse, &[d.b, d.h, d.s])))
}

pub fn attention_bwd(
    dout: &Tensor,
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    out: &Tensor,
    lse: &Tensor,
    spec: &AttnSpec,
) -> Result<(Tensor, Tensor, Tensor)> {
    const OP: &str = "attention_bwd";
    let d = dims(OP, spec)?;
    let like_q = [("dout", dout), ("q", q), ("k", k), ("v", v), ("out", out)];
    attn_numel(OP, spec, d.n, &like_q)?;
    attn_numel(OP, spec, d.nl, &[("lse", lse)])?;
    let (dos, qs, ks, vs, os, ls) = (
        f32s(dout, OP)?,
        f32s(q, OP)?,
        f32s(k, OP)?,
        f32s(v, OP)?,
        f32s(out, OP)?,
        f32s(lse, OP)?,
    );
    let mut dq_t = vec![0.0f32; d.n];
    let mut dk_t = vec![0.0f32; d.n];
    let mut dv_t = vec![0.0f32; d.n];
    if d.n > 0 {
        let task = d.s * d.dh;
        dq_t.par_chunks_mut(task)
            .zip(dk_t.par_chunks_mut(task))
            .zip(dv_t.par_chunks_mut(task))
            .enumerate()
            .try_for_each_init(
                || (Vec::new(), Vec::new()),
                |(p, dp): &mut (Vec<f32>, Vec<f32>), (t, ((dq, dk), dv))| -> Result<()> {
                    let (b, h) = (t / d.h, t % d.h);
                    let off = b * d.s * d.hd + h * d.dh;
                    let (qh, kh, vh, doh, oh) = (&qs[off..], &ks[off..], &vs[off..], &dos[off..], &os[off..]);
                    let lrow = &ls[t * d.s..(t + 1) * d.s];
                    p.resize(d.s * d.s, 0.0);
                    dp.resize(d.s * d.s, 0.0);
                    // P recomputed from the saved row log-sum-exp.
                    gemm(d.s, d.dh, d.s, spec.scale, qh, (d.hd, 1), kh, (1, d.hd), 0.0, p, d.s)?;
                    for (i, (row, &l)) in p.chunks_exact_mut(d.s).zip(lrow).enumerate() {
                        let (live, dead) = row.split_at_mut(visible(i, d.s, spec.causal));
                        live.iter_mut().for_each(|x| *x = exp_fast(*x - l));
                        dead.fill(0.0);
                    }
                    // dV = P^T dO; dP = dO V^T.
                    gemm(d.s, d.s, d.dh, 1.0, p, (1, d.s), doh, (d.hd, 1), 0.0, dv, d.dh)?;
                    gemm(d.s, d.dh, d.s, 1.0, doh, (d.hd, 1), vh, (1, d.hd), 0.0, dp, d.s)?;
                    // dS = P * (dP - rowsum(dO * O)), with the score scale folded in.
                    for (i, (prow, dprow)) in p.chunks_exact_mut(d.s).zip(dp.chunks_exact(d.s)).enumerate() {
                        let r = i * d.hd;
                        let di: f32 = doh[r..r + d.dh].iter().zip(&oh[r..r + d.dh]).map(|(a, b)| a * b).sum();
                        for (x, &g) in prow.iter_mut().zip(dprow) {
                            *x = spec.scale * *x * (g - di);
                        }
                    }
                    // dQ = dS K; dK = dS^T Q.
                    gemm(d.s, d.s, d.dh, 1.0, p, (d.s, 1), kh, (d.hd, 1), 0.0, dq, d.dh)?;
                    gemm(d.s, d.s, d.dh, 1.0, p, (1, d.s), qh, (d.hd, 1), 0.0, dk, d.dh)
                },
            )?;
    }
    let shape = q.shape();
    Ok((
        wrap(interleave_heads(&dq_t, &d), shape),
        wrap(interleave_heads(&dk_t, &d), shape),
        wrap(interleave_heads(&dv_t, &d), shape),
    ))
}
