//! The probe's objective: mean cross-entropy plus the quadratic penalties, and its
//! gradient, computed deterministically whatever the thread count.
use rayon::prelude::*;

/// The objective splits the rows into at most this many parts (fixed by `n`)...
const MAX_PARTS: usize = 8;
/// ...of at least this many rows each...
const MIN_PART_ROWS: usize = 128;
/// ...and walks each part in sub-blocks of this many rows (kept in cache between
/// the forward and the gradient product).
const SUB_ROWS: usize = 64;

/// Parameters are laid out as `[W^T (d x c), b (c)]`.
pub(super) struct Problem<'a> {
    pub(super) x: &'a [f64],
    pub(super) y: &'a [usize],
    pub(super) n: usize,
    pub(super) d: usize,
    pub(super) c: usize,
    /// `(l2 / 2) * ||W||^2`.
    pub(super) l2: f64,
    /// The zero-shot anchor, if any: `(1/2) * sum_k lambda_k * (||w_k - w0_k||^2 + b_k^2)`.
    pub(super) anchor: Option<AnchorF64>,
}

/// The anchor in the solver's layout: `w0t` is `W0^T` (`d x c`), `lambda` one weight
/// per class.
pub(super) struct AnchorF64 {
    pub(super) w0t: Vec<f64>,
    pub(super) lambda: Vec<f64>,
}

/// Per-part scratch of the objective: each part owns a fixed row range and
/// accumulates its own gradient contribution; parts are summed in order.
struct Part {
    z: Vec<f64>,
    gwt: Vec<f64>,
    gb: Vec<f64>,
    ce: f64,
}

pub(super) struct Workspace {
    parts: Vec<Part>,
    rows_per_part: usize,
    pub(super) evals: usize,
}

impl Workspace {
    pub(super) fn new(n: usize, d: usize, c: usize) -> Self {
        let rows_per_part = n.div_ceil(MAX_PARTS).max(MIN_PART_ROWS);
        let n_parts = n.div_ceil(rows_per_part);
        let parts = (0..n_parts)
            .map(|_| Part {
                z: vec![0.0; SUB_ROWS * c],
                gwt: vec![0.0; d * c],
                gb: vec![0.0; c],
                ce: 0.0,
            })
            .collect();
        Workspace {
            parts,
            rows_per_part,
            evals: 0,
        }
    }
}

impl Problem<'_> {
    pub(super) fn dim(&self) -> usize {
        self.d * self.c + self.c
    }

    /// Objective at `theta`, gradient written to `grad`.
    ///
    /// One pass over `X`: for each sub-block of rows (small enough to stay in
    /// cache), logits, softmax, cross-entropy and `G = (P - Y)/n`, then
    /// `gW^T += X_sub^T G`. Rows are split into a fixed number of parts that
    /// depends only on `n`, so results do not depend on the thread count.
    pub(super) fn eval(&self, theta: &[f64], grad: &mut [f64], ws: &mut Workspace) -> f64 {
        let (n, d, c) = (self.n, self.d, self.c);
        ws.evals += 1;
        let (wt, b) = theta.split_at(d * c);
        let inv_n = 1.0 / n as f64;
        let rpp = ws.rows_per_part;
        let (x, y) = (self.x, self.y);
        ws.parts.par_iter_mut().enumerate().for_each(|(pi, part)| {
            let p0 = pi * rpp;
            let p1 = (p0 + rpp).min(n);
            part.ce = 0.0;
            part.gwt.iter_mut().for_each(|v| *v = 0.0);
            part.gb.iter_mut().for_each(|v| *v = 0.0);
            let mut r0 = p0;
            while r0 < p1 {
                let m = SUB_ROWS.min(p1 - r0);
                let z = &mut part.z[..m * c];
                for row in z.chunks_mut(c) {
                    row.copy_from_slice(b);
                }
                let xs = &x[r0 * d..(r0 + m) * d];
                // SAFETY: xs is m x d (row stride d), wt is d x c, z is m x c.
                unsafe {
                    matrixmultiply::dgemm(
                        m,
                        d,
                        c,
                        1.0,
                        xs.as_ptr(),
                        d as isize,
                        1,
                        wt.as_ptr(),
                        c as isize,
                        1,
                        1.0,
                        z.as_mut_ptr(),
                        c as isize,
                        1,
                    );
                }
                for (i, row) in z.chunks_mut(c).enumerate() {
                    let yi = y[r0 + i];
                    let mx = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                    let zy = row[yi];
                    let mut sum = 0.0;
                    for v in row.iter_mut() {
                        *v = (*v - mx).exp();
                        sum += *v;
                    }
                    // Cross-entropy of the row: logsumexp(z) - z[y].
                    part.ce += mx + sum.ln() - zy;
                    let scale = inv_n / sum;
                    for v in row.iter_mut() {
                        *v *= scale;
                    }
                    row[yi] -= inv_n;
                    for (acc, v) in part.gb.iter_mut().zip(row.iter()) {
                        *acc += v;
                    }
                }
                // gW^T (d x c) += xs^T (d x m) * G (m x c).
                // SAFETY: xs^T has strides (1, d); z is m x c; gwt is d x c.
                unsafe {
                    matrixmultiply::dgemm(
                        d,
                        m,
                        c,
                        1.0,
                        xs.as_ptr(),
                        1,
                        d as isize,
                        z.as_ptr(),
                        c as isize,
                        1,
                        1.0,
                        part.gwt.as_mut_ptr(),
                        c as isize,
                        1,
                    );
                }
                r0 += m;
            }
        });
        let (gwt, gb) = grad.split_at_mut(d * c);
        let mut ce = 0.0;
        gwt.iter_mut().for_each(|v| *v = 0.0);
        gb.iter_mut().for_each(|v| *v = 0.0);
        for part in &ws.parts {
            ce += part.ce;
            gwt.iter_mut().zip(&part.gwt).for_each(|(a, v)| *a += v);
            gb.iter_mut().zip(&part.gb).for_each(|(a, v)| *a += v);
        }
        let mut reg = 0.0;
        for (gv, &wv) in gwt.iter_mut().zip(wt) {
            *gv += self.l2 * wv;
            reg += wv * wv;
        }
        let mut f = ce * inv_n + 0.5 * self.l2 * reg;
        // Kept out of the plain probe's arithmetic so that path stays bit for bit as before.
        if let Some(an) = &self.anchor {
            let mut pen = 0.0;
            for (grow, (wrow, w0row)) in gwt.chunks_mut(c).zip(wt.chunks(c).zip(an.w0t.chunks(c))) {
                for k in 0..c {
                    let diff = wrow[k] - w0row[k];
                    grow[k] += an.lambda[k] * diff;
                    pen += an.lambda[k] * diff * diff;
                }
            }
            for k in 0..c {
                gb[k] += an.lambda[k] * b[k];
                pen += an.lambda[k] * b[k] * b[k];
            }
            f += 0.5 * pen;
        }
        f
    }
}
