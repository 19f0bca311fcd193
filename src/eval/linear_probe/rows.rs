//! Row-wise helpers of the probe: input checks, L2 normalisation in f64, blocked logits,
//! softmax and argmax.
use crate::error::{Error, Result};
use rayon::prelude::*;

/// Rows per block for `X W^T` in prediction.
const ROW_BLOCK: usize = 256;

pub(super) fn check_xy(op: &str, x: &[f32], y: Option<&[usize]>, n: usize, d: usize, c: usize) -> Result<()> {
    if d == 0 {
        return Err(Error::shape(op, "feature dimension d is 0"));
    }
    if x.len() != n * d {
        return Err(Error::shape(
            op,
            format!(
                "features have {} values, expected n x d = {n} x {d} = {}",
                x.len(),
                n * d
            ),
        ));
    }
    if let Some(i) = x.iter().position(|v| !v.is_finite()) {
        return Err(Error::invalid(format!(
            "{op}: features contain a non-finite value ({}) in row {}",
            x[i],
            i / d
        )));
    }
    if let Some(y) = y {
        if y.len() != n {
            return Err(Error::shape(op, format!("{} labels for {n} rows", y.len())));
        }
        if let Some((i, &l)) = y.iter().enumerate().find(|(_, &l)| l >= c) {
            return Err(Error::invalid(format!(
                "{op}: label {l} of row {i} is out of range for {c} classes"
            )));
        }
    }
    Ok(())
}

/// Rows L2-normalised, in f64 (zero rows stay zero).
pub(super) fn normalised_f64(x: &[f32], d: usize) -> Vec<f64> {
    let mut out: Vec<f64> = x.iter().map(|&v| v as f64).collect();
    out.par_chunks_mut(d).for_each(|row| {
        let nrm = row.iter().map(|v| v * v).sum::<f64>().sqrt();
        if nrm > 0.0 {
            row.iter_mut().for_each(|v| *v /= nrm);
        }
    });
    out
}

/// `z (n x c) = x (n x d) * wt (d x c) + b`, in fixed row blocks.
pub(super) fn logits(x: &[f64], n: usize, d: usize, wt: &[f64], b: &[f64], c: usize, z: &mut [f64]) {
    debug_assert_eq!(x.len(), n * d);
    debug_assert_eq!(z.len(), n * c);
    z.par_chunks_mut(ROW_BLOCK * c).enumerate().for_each(|(bi, zb)| {
        let r0 = bi * ROW_BLOCK;
        let m = zb.len() / c;
        for row in zb.chunks_mut(c) {
            row.copy_from_slice(b);
        }
        // SAFETY: x rows r0..r0+m are m x d (row stride d), wt is d x c, zb is m x c.
        unsafe {
            matrixmultiply::dgemm(
                m,
                d,
                c,
                1.0,
                x.as_ptr().add(r0 * d),
                d as isize,
                1,
                wt.as_ptr(),
                c as isize,
                1,
                1.0,
                zb.as_mut_ptr(),
                c as isize,
                1,
            );
        }
    });
}

/// In-place row softmax of `z` (n x c).
pub(super) fn softmax_rows(z: &mut [f64], c: usize) {
    z.par_chunks_mut(ROW_BLOCK * c).for_each(|zb| {
        for row in zb.chunks_mut(c) {
            let m = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let mut s = 0.0;
            for v in row.iter_mut() {
                *v = (*v - m).exp();
                s += *v;
            }
            for v in row.iter_mut() {
                *v /= s;
            }
        }
    });
}

pub(super) fn argmax_rows(z: &[f64], c: usize) -> Vec<usize> {
    z.chunks(c)
        .map(|row| {
            let mut best = 0;
            for (k, &v) in row.iter().enumerate() {
                if v > row[best] {
                    best = k;
                }
            }
            best
        })
        .collect()
}
