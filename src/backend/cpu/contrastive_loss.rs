//! Losses on the CPU: the symmetric CLIP InfoNCE (forward and backward) and plain
//! cross-entropy. WGSL twin: shaders/contrastive_loss.wgsl.
//!
//! Unlike the GPU kernels, the CPU path does materialise the b x m logit matrix: it
//! is a few MB at CLIP batch sizes and lets both directions run as GEMMs
//! (`matmul::sgemm`), far faster than per-pair dot products.
use rayon::prelude::*;

use super::matmul::sgemm;
use super::memory::{f32s, u32s, wrap};
use crate::backend::checks::{check_len, contrastive_dims, one_element};
use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// Columns per task when reducing logit columns (texts over images).
const COL_BLOCK: usize = 64;

/// (rows, classes) of logits [rows, classes >= 1] with labels [rows].
fn ce_dims(op: &str, logits: &Tensor, labels: &Tensor) -> Result<(usize, usize)> {
    let s = logits.shape();
    if s.len() != 2 || s[0] == 0 || s[1] == 0 || labels.numel() != s[0] {
        return Err(Error::shape(
            op,
            format!(
                "need logits [rows, classes] (non-empty) and labels [rows], got {:?} and {:?}",
                s,
                labels.shape()
            ),
        ));
    }
    Ok((s[0], s[1]))
}

fn one(op: &str, what: &str, t: &Tensor) -> Result<f32> {
    one_element(op, what, t)?;
    Ok(f32s(t, op)?[0])
}

/// log(sum(exp(row))) with the max subtracted first.
fn lse(row: &[f32]) -> f32 {
    let mx = row.iter().fold(f32::NEG_INFINITY, |a, &x| a.max(x));
    if mx == f32::NEG_INFINITY {
        return mx;
    }
    let s: f32 = row.iter().map(|&x| (x - mx).exp()).sum();
    mx + s.ln()
}

/// s * img @ txt^T as a row-major [b, m] matrix.
fn logits(img: &[f32], txt: &[f32], s: f32, b: usize, m: usize, d: usize) -> Result<Vec<f32>> {
    let mut l = vec![0.0f32; b * m];
    sgemm(b, m, d, s, img, false, txt, true, 0.0, &mut l, true)?;
    Ok(l)
}

pub fn contrastive_loss(img: &Tensor, txt: &Tensor, log_scale: &Tensor) -> Result<(Tensor, Tensor, Tensor)> {
    let op = "contrastive_loss";
    let (b, m, d) = contrastive_dims(op, img, txt, log_scale)?;
    let s = one(op, "log_scale", log_scale)?.exp();
    let l = logits(&f32s(img, op)?, &f32s(txt, op)?, s, b, m, d)?;

    let mut lse_img = vec![0.0f32; b];
    lse_img
        .par_iter_mut()
        .zip(l.par_chunks(m))
        .for_each(|(o, row)| *o = lse(row));

    // Columns j < b over the b image rows: two passes (max, then sum) per column block.
    let mut lse_txt = vec![0.0f32; b];
    lse_txt.par_chunks_mut(COL_BLOCK).enumerate().for_each(|(blk, out)| {
        let j0 = blk * COL_BLOCK;
        let w = out.len();
        let mut mx = vec![f32::NEG_INFINITY; w];
        for row in l.chunks_exact(m) {
            mx.iter_mut().zip(&row[j0..j0 + w]).for_each(|(a, &x)| *a = a.max(x));
        }
        let mut sum = vec![0.0f32; w];
        for row in l.chunks_exact(m) {
            sum.iter_mut()
                .zip(&row[j0..j0 + w])
                .zip(&mx)
                .for_each(|((a, &x), &mx)| *a += (x - mx).exp());
        }
        out.iter_mut()
            .zip(mx.iter().zip(&sum))
            .for_each(|(o, (&mx, &s))| *o = mx + s.ln());
    });

    let total: f64 = (0..b)
        .map(|i| lse_img[i] as f64 + lse_txt[i] as f64 - 2.0 * l[i * m + i] as f64)
        .sum();
    let loss = (total / (2.0 * b as f64)) as f32;
    Ok((wrap(vec![loss], &[1]), wrap(lse_img, &[b]), wrap(lse_txt, &[b])))
}

pub fn contrastive_loss_bwd(
    img: &Tensor,
    txt: &Tensor,
    log_scale: &Tensor,
    lse_img: &Tensor,
    lse_txt: &Tensor,
    dloss: &Tensor,
) -> Result<(Tensor, Tensor, Tensor)> {
    let op = "contrastive_loss_bwd";
    let (b, m, d) = contrastive_dims(op, img, txt, log_scale)?;
    check_len(op, "lse_img", lse_img, b)?;
    check_len(op, "lse_txt", lse_txt, b)?;
    let s = one(op, "log_scale", log_scale)?.exp();
    let coef = one(op, "dloss", dloss)? / (2.0 * b as f32);
    let (img, txt) = (f32s(img, op)?, f32s(txt, op)?);
    let (lse_img, lse_txt) = (f32s(lse_img, op)?, f32s(lse_txt, op)?);

    // Logits become dloss/dL in place: G_ij = coef * (P_ij + Q_ij - 2 [i == j]).
    let mut g = logits(&img, &txt, s, b, m, d)?;
    let dlog_scale: f64 = g
        .par_chunks_mut(m)
        .enumerate()
        .map(|(i, row)| {
            let li = lse_img[i];
            let mut part = 0.0f64;
            for (j, x) in row.iter_mut().enumerate() {
                let l = *x;
                let mut q = (l - li).exp();
                if j < b {
                    q += (l - lse_txt[j]).exp();
                }
                if j == i {
                    q -= 2.0;
                }
                *x = coef * q;
                part += *x as f64 * l as f64;
            }
            part
        })
        .sum();

    let mut dimg = vec![0.0f32; b * d];
    sgemm(b, d, m, s, &g, false, &txt, false, 0.0, &mut dimg, true)?;
    let mut dtxt = vec![0.0f32; m * d];
    sgemm(m, d, b, s, &g, true, &img, false, 0.0, &mut dtxt, true)?;
    Ok((
        wrap(dimg, &[b, d]),
        wrap(dtxt, &[m, d]),
        wrap(vec![dlog_scale as f32], &[1]),
    ))
}

/// Labels are on the host here, so out-of-range ones are an error (the GPU kernel
/// cannot report them and ignores such rows instead).
fn check_labels(op: &str, labels: &[u32], classes: usize) -> Result<()> {
    if let Some((r, &c)) = labels.iter().enumerate().find(|(_, &c)| c as usize >= classes) {
        return Err(Error::shape(
            op,
            format!("label {c} at row {r} is out of range for {classes} classes"),
        ));
    }
    Ok(())
}

pub fn cross_entropy(logits: &Tensor, labels: &Tensor) -> Result<(Tensor, Tensor)> {
    let op = "cross_entropy";
    let (rows, classes) = ce_dims(op, logits, labels)?;
    let labels = u32s(labels, op)?;
    check_labels(op, labels, classes)?;
    let x = f32s(logits, op)?;
    let mut lse_v = vec![0.0f32; rows];
    lse_v
        .par_iter_mut()
        .zip(x.par_chunks(classes))
        .for_each(|(o, row)| *o = lse(row));
    let total: f64 = (0..rows)
        .map(|r| lse_v[r] as f64 - x[r * classes + labels[r] as usize] as f64)
        .sum();
    Ok((wrap(vec![(total / rows as f64) as f32], &[1]), wrap(lse_v, &[rows])))
}

pub fn cross_entropy_bwd(logits: &Tensor, labels: &Tensor, lse: &Tensor, dloss: &Tensor) -> Result<Tensor> {
    let op = "cross_entropy_bwd";
    let (rows, classes) = ce_dims(op, logits, labels)?;
    check_len(op, "lse", lse, rows)?;
    let labels = u32s(labels, op)?;
    check_labels(op, labels, classes)?;
    let coef = one(op, "dloss", dloss)? / rows as f32;
    let (x, lse) = (f32s(logits, op)?, f32s(lse, op)?);
    let mut dx = vec![0.0f32; rows * classes];
    dx.par_chunks_mut(classes)
        .zip(x.par_chunks(classes))
        .enumerate()
        .for_each(|(r, (out, row))| {
            let l = lse[r];
            out.iter_mut().zip(row).for_each(|(o, &v)| *o = coef * (v - l).exp());
            out[labels[r] as usize] -= coef;
        });
    Ok(wrap(dx, &[rows, classes]))
}
