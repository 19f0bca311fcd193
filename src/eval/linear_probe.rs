//! Linear probe: multinomial logistic regression on L2-normalised features, as in
//! the CLIP paper's linear-probe protocol.
//!
//! The objective is
//!
//! ```text
//! f(W, b) = (1/n) * sum_i CE(softmax(W x_i + b), y_i) + (l2 / 2) * ||W||^2
//! ```
//!
//! with `W` (`c x d`) regularised and the bias `b` (`c`) not. This is the
//! minimiser of scikit-learn's `LogisticRegression(C=...)` (multinomial, lbfgs)
//! with `l2 = 1 / (C * n)`.
//!
//! It is minimised with L-BFGS (two-loop recursion, history 10, strong-Wolfe line
//! search with cubic interpolation) from zero, in `f64`, until the Euclidean norm
//! of the full gradient is below `1e-6` or `max_iter` iterations are done.
//! Everything is deterministic: the rows are split into a fixed number of parts
//! that depends only on `n`, each part's gradient is accumulated on its own and
//! the parts are summed in order, so the same inputs give bit-identical outputs
//! whatever the number of threads (on the same machine: the GEMM kernel is picked
//! by CPU features at run time).
//!
//! Rows of `x` are L2-normalised inside [`LinearProbe::fit`] and the predict
//! functions (zero rows stay zero), so callers may pass raw or normalised features.
use crate::error::{Error, Result};
use rayon::prelude::*;

/// Default iteration cap (the CLIP paper's `max_iter`).
pub const DEFAULT_MAX_ITER: usize = 1000;
/// Convergence: stop when `||grad||_2` is below this.
pub const GRAD_TOL: f64 = 1e-6;
/// L-BFGS history length.
const HISTORY: usize = 10;
/// Rows per block for `X W^T` in prediction.
const ROW_BLOCK: usize = 256;
/// The objective splits the rows into at most this many parts (fixed by `n`)...
const MAX_PARTS: usize = 8;
/// ...of at least this many rows each...
const MIN_PART_ROWS: usize = 128;
/// ...and walks each part in sub-blocks of this many rows (kept in cache between
/// the forward and the gradient product).
const SUB_ROWS: usize = 64;

/// A fitted linear probe.
#[derive(Debug, Clone, PartialEq)]
pub struct LinearProbe {
    /// `c x d`, row-major.
    pub weight: Vec<f32>,
    /// `c` (centred: sums to zero, like scikit-learn's multinomial intercept).
    pub bias: Vec<f32>,
    pub c: usize,
    pub d: usize,
    /// Regularisation strength it was fitted with (see the module docs).
    pub l2: f32,
}

/// How a fit went.
#[derive(Debug, Clone, PartialEq)]
pub struct FitInfo {
    /// L-BFGS iterations done.
    pub iterations: usize,
    /// Objective + gradient evaluations done.
    pub evaluations: usize,
    /// Final objective value.
    pub loss: f64,
    /// Final Euclidean norm of the gradient.
    pub grad_norm: f64,
    /// `grad_norm < 1e-6` was reached (otherwise: `max_iter`, or the line search
    /// could not make progress any more, which happens at the limit of f64 precision).
    pub converged: bool,
}

// ---------------------------------------------------------------------------
// Input checks and helpers
// ---------------------------------------------------------------------------

fn check_xy(op: &str, x: &[f32], y: Option<&[usize]>, n: usize, d: usize, c: usize) -> Result<()> {
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
fn normalised_f64(x: &[f32], d: usize) -> Vec<f64> {
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
fn logits(x: &[f64], n: usize, d: usize, wt: &[f64], b: &[f64], c: usize, z: &mut [f64]) {
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
fn softmax_rows(z: &mut [f64], c: usize) {
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

// ---------------------------------------------------------------------------
// The objective
// ---------------------------------------------------------------------------

/// Parameters are laid out as `[W^T (d x c), b (c)]`.
struct Problem<'a> {
    x: &'a [f64],
    y: &'a [usize],
    n: usize,
    d: usize,
    c: usize,
    l2: f64,
}

/// Per-part scratch of the objective: each part owns a fixed row range and
/// accumulates its own gradient contribution; parts are summed in order.
struct Part {
    z: Vec<f64>,
    gwt: Vec<f64>,
    gb: Vec<f64>,
    ce: f64,
}

struct Workspace {
    parts: Vec<Part>,
    rows_per_part: usize,
    evals: usize,
}

impl Workspace {
    fn new(n: usize, d: usize, c: usize) -> Self {
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
    fn dim(&self) -> usize {
        self.d * self.c + self.c
    }

    /// Objective at `theta`, gradient written to `grad`.
    ///
    /// One pass over `X`: for each sub-block of rows (small enough to stay in
    /// cache), logits, softmax, cross-entropy and `G = (P - Y)/n`, then
    /// `gW^T += X_sub^T G`. Rows are split into a fixed number of parts that
    /// depends only on `n`, so results do not depend on the thread count.
    fn eval(&self, theta: &[f64], grad: &mut [f64], ws: &mut Workspace) -> f64 {
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
        ce * inv_n + 0.5 * self.l2 * reg
    }
}

// ---------------------------------------------------------------------------
// L-BFGS with a strong-Wolfe line search
// ---------------------------------------------------------------------------

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn norm(a: &[f64]) -> f64 {
    dot(a, a).sqrt()
}

/// A point of the line search: step, value, directional derivative, and the
/// parameters / gradient there.
struct Point {
    a: f64,
    f: f64,
    dphi: f64,
    x: Vec<f64>,
    g: Vec<f64>,
}

struct LineSearch<'p, 'a> {
    prob: &'p Problem<'a>,
    x0: &'p [f64],
    p: &'p [f64],
    f0: f64,
    dphi0: f64,
}

const C1: f64 = 1e-4;
const C2: f64 = 0.9;
const LS_MAX: usize = 30;

impl LineSearch<'_, '_> {
    fn at(&self, a: f64, ws: &mut Workspace, buf: Option<Point>) -> Point {
        let dim = self.x0.len();
        let mut pt = buf.unwrap_or_else(|| Point {
            a,
            f: 0.0,
            dphi: 0.0,
            x: vec![0.0; dim],
            g: vec![0.0; dim],
        });
        for ((xv, x0), pv) in pt.x.iter_mut().zip(self.x0).zip(self.p) {
            *xv = x0 + a * pv;
        }
        pt.a = a;
        pt.f = self.prob.eval(&pt.x, &mut pt.g, ws);
        if !pt.f.is_finite() {
            pt.f = f64::INFINITY;
        }
        pt.dphi = dot(&pt.g, self.p);
        pt
    }

    fn armijo_fails(&self, pt: &Point) -> bool {
        pt.f > self.f0 + C1 * pt.a * self.dphi0
    }

    fn curvature_ok(&self, pt: &Point) -> bool {
        pt.dphi.abs() <= -C2 * self.dphi0
    }

    /// Strong-Wolfe search (Nocedal & Wright, Alg. 3.5). Returns an accepted point,
    /// or, if the conditions cannot be met, the best sufficient-decrease point seen
    /// (if any).
    fn search(&self, a_init: f64, ws: &mut Workspace) -> Option<Point> {
        let mut prev: Option<Point> = None; // a_{i-1} (None == step 0)
        let mut a = a_init;
        for i in 0..LS_MAX {
            let pt = self.at(a, ws, None);
            let prev_f = prev.as_ref().map_or(self.f0, |q| q.f);
            if self.armijo_fails(&pt) || (i > 0 && pt.f >= prev_f) {
                return self.zoom(prev, pt, ws);
            }
            if self.curvature_ok(&pt) {
                return Some(pt);
            }
            if pt.dphi >= 0.0 {
                return self.zoom(Some(pt), prev.unwrap_or_else(|| self.origin()), ws);
            }
            a *= 4.0;
            prev = Some(pt);
        }
        prev
    }

    fn origin(&self) -> Point {
        Point {
            a: 0.0,
            f: self.f0,
            dphi: self.dphi0,
            x: self.x0.to_vec(),
            g: Vec::new(),
        }
    }

    /// Nocedal & Wright Alg. 3.6. `lo` satisfies sufficient decrease (None == step 0).
    fn zoom(&self, lo: Option<Point>, hi: Point, ws: &mut Workspace) -> Option<Point> {
        let mut lo = lo.unwrap_or_else(|| self.origin());
        let mut hi = hi;
        let mut spare: Option<Point> = None;
        for _ in 0..LS_MAX {
            let width = hi.a - lo.a;
            if width.abs() <= 1e-14 * lo.a.abs().max(hi.a.abs()).max(1e-300) {
                break;
            }
            let a = cubic_min(lo.a, lo.f, lo.dphi, hi.a, hi.f, hi.dphi)
                .filter(|t| {
                    let (l, h) = if lo.a < hi.a { (lo.a, hi.a) } else { (hi.a, lo.a) };
                    let margin = 0.1 * (h - l);
                    *t >= l + margin && *t <= h - margin
                })
                .unwrap_or(lo.a + 0.5 * width);
            let pt = self.at(a, ws, spare.take().filter(|s| !s.g.is_empty()));
            if self.armijo_fails(&pt) || pt.f >= lo.f {
                spare = Some(std::mem::replace(&mut hi, pt));
            } else {
                if self.curvature_ok(&pt) {
                    return Some(pt);
                }
                if pt.dphi * (hi.a - lo.a) >= 0.0 {
                    let old_lo = std::mem::replace(&mut lo, pt);
                    spare = Some(std::mem::replace(&mut hi, old_lo));
                } else {
                    spare = Some(std::mem::replace(&mut lo, pt));
                }
            }
        }
        // Could not meet the curvature condition: accept lo if it moved and decreased.
        if lo.a > 0.0 && lo.f < self.f0 && !lo.g.is_empty() {
            Some(lo)
        } else {
            None
        }
    }
}

/// Minimiser of the cubic interpolating (a, fa, da) and (b, fb, db), if defined.
fn cubic_min(a: f64, fa: f64, da: f64, b: f64, fb: f64, db: f64) -> Option<f64> {
    if !(fa.is_finite() && fb.is_finite()) || a == b {
        return None;
    }
    let d1 = da + db - 3.0 * (fa - fb) / (a - b);
    let disc = d1 * d1 - da * db;
    if !(disc >= 0.0) {
        return None;
    }
    let d2 = (b - a).signum() * disc.sqrt();
    let den = db - da + 2.0 * d2;
    if den == 0.0 {
        return None;
    }
    let t = b - (b - a) * (db + d2 - d1) / den;
    t.is_finite().then_some(t)
}

/// L-BFGS from `theta` (updated in place). Returns the fit info.
fn lbfgs(prob: &Problem, theta: &mut Vec<f64>, max_iter: usize) -> FitInfo {
    let dim = prob.dim();
    let mut ws = Workspace::new(prob.n, prob.d, prob.c);
    let mut g = vec![0.0; dim];
    let mut f = prob.eval(theta, &mut g, &mut ws);
    let mut gnorm = norm(&g);
    let mut s_hist: Vec<Vec<f64>> = Vec::with_capacity(HISTORY);
    let mut y_hist: Vec<Vec<f64>> = Vec::with_capacity(HISTORY);
    let mut rho_hist: Vec<f64> = Vec::with_capacity(HISTORY);
    let mut alpha = vec![0.0; HISTORY];
    let mut dir = vec![0.0; dim];
    let mut iterations = 0;
    let mut converged = gnorm < GRAD_TOL;
    while !converged && iterations < max_iter {
        // Two-loop recursion: dir = -H g.
        dir.copy_from_slice(&g);
        let m = s_hist.len();
        for k in (0..m).rev() {
            alpha[k] = rho_hist[k] * dot(&s_hist[k], &dir);
            for (dv, yv) in dir.iter_mut().zip(&y_hist[k]) {
                *dv -= alpha[k] * yv;
            }
        }
        if m > 0 {
            let gamma = dot(&s_hist[m - 1], &y_hist[m - 1]) / dot(&y_hist[m - 1], &y_hist[m - 1]);
            dir.iter_mut().for_each(|v| *v *= gamma);
        }
        for k in 0..m {
            let beta = rho_hist[k] * dot(&y_hist[k], &dir);
            for (dv, sv) in dir.iter_mut().zip(&s_hist[k]) {
                *dv += (alpha[k] - beta) * sv;
            }
        }
        dir.iter_mut().for_each(|v| *v = -*v);
        let mut dphi0 = dot(&g, &dir);
        let mut steepest = m == 0;
        if !(dphi0 < 0.0) {
            // Not a descent direction (numerical trouble): restart from steepest descent.
            s_hist.clear();
            y_hist.clear();
            rho_hist.clear();
            dir.iter_mut().zip(&g).for_each(|(dv, gv)| *dv = -gv);
            dphi0 = -gnorm * gnorm;
            steepest = true;
        }
        let a_init = if steepest { (1.0 / gnorm).min(1.0) } else { 1.0 };
        let ls = LineSearch {
            prob,
            x0: theta,
            p: &dir,
            f0: f,
            dphi0,
        };
        let found = ls.search(a_init, &mut ws);
        let pt = match found {
            Some(pt) => pt,
            None if !steepest => {
                // Retry once along steepest descent with a fresh memory.
                s_hist.clear();
                y_hist.clear();
                rho_hist.clear();
                continue;
            }
            None => break, // no progress possible (f64 precision limit)
        };
        iterations += 1;
        let s: Vec<f64> = pt.x.iter().zip(theta.iter()).map(|(a, b)| a - b).collect();
        let yv: Vec<f64> = pt.g.iter().zip(&g).map(|(a, b)| a - b).collect();
        let sy = dot(&s, &yv);
        if sy > 1e-12 * norm(&s) * norm(&yv) && sy > 0.0 {
            if s_hist.len() == HISTORY {
                s_hist.remove(0);
                y_hist.remove(0);
                rho_hist.remove(0);
            }
            s_hist.push(s);
            y_hist.push(yv);
            rho_hist.push(1.0 / sy);
        }
        *theta = pt.x;
        g = pt.g;
        f = pt.f;
        gnorm = norm(&g);
        converged = gnorm < GRAD_TOL;
    }
    FitInfo {
        iterations,
        evaluations: ws.evals,
        loss: f,
        grad_norm: gnorm,
        converged,
    }
}

// ---------------------------------------------------------------------------
// Public API
// ---------------------------------------------------------------------------

impl LinearProbe {
    /// Fit on `x` (`n x d`, row-major; rows are L2-normalised here) and labels
    /// `y` (`n` values in `0..c`), minimising mean cross-entropy +
    /// `l2/2 * ||W||^2` (bias unregularised) with L-BFGS from zero.
    /// `max_iter` caps the L-BFGS iterations ([`DEFAULT_MAX_ITER`] = 1000 is the
    /// CLIP paper's setting). Deterministic: bit-identical outputs for identical inputs.
    ///
    /// Errors: `n == 0`, `d == 0`, `c < 2`, size mismatches, a label `>= c`,
    /// non-finite features, or a negative / non-finite `l2`.
    pub fn fit(x: &[f32], y: &[usize], n: usize, d: usize, c: usize, l2: f32, max_iter: usize) -> Result<LinearProbe> {
        Self::fit_with_info(x, y, n, d, c, l2, max_iter).map(|(p, _)| p)
    }

    /// [`LinearProbe::fit`], also returning how the optimisation went.
    pub fn fit_with_info(
        x: &[f32],
        y: &[usize],
        n: usize,
        d: usize,
        c: usize,
        l2: f32,
        max_iter: usize,
    ) -> Result<(LinearProbe, FitInfo)> {
        const OP: &str = "linear_probe::fit";
        if n == 0 {
            return Err(Error::shape(OP, "no training rows"));
        }
        if c < 2 {
            return Err(Error::invalid(format!("{OP}: need at least 2 classes, got {c}")));
        }
        if !(l2.is_finite() && l2 >= 0.0) {
            return Err(Error::invalid(format!("{OP}: l2 must be finite and >= 0, got {l2}")));
        }
        check_xy(OP, x, Some(y), n, d, c)?;
        let xn = normalised_f64(x, d);
        Ok(fit_normalised(&xn, y, n, d, c, l2, max_iter))
    }

    /// Class probabilities (`n x c`, row-major; softmax of the logits) for `x`
    /// (`n x d`; rows are L2-normalised here, as in `fit`).
    pub fn predict_scores(&self, x: &[f32], n: usize) -> Result<Vec<f32>> {
        let mut z = self.logits_f64("LinearProbe::predict_scores", x, n)?;
        softmax_rows(&mut z, self.c);
        Ok(z.into_iter().map(|v| v as f32).collect())
    }

    /// Logits `W x + b` (`n x c`) for `x` (`n x d`, L2-normalised here).
    pub fn predict_logits(&self, x: &[f32], n: usize) -> Result<Vec<f32>> {
        let z = self.logits_f64("LinearProbe::predict_logits", x, n)?;
        Ok(z.into_iter().map(|v| v as f32).collect())
    }

    /// Predicted class of each row (argmax; ties go to the lower class index).
    pub fn predict(&self, x: &[f32], n: usize) -> Result<Vec<usize>> {
        let z = self.logits_f64("LinearProbe::predict", x, n)?;
        Ok(argmax_rows(&z, self.c))
    }

    /// Top-1 accuracy on `x` (`n x d`) with labels `y`, as a fraction.
    pub fn accuracy(&self, x: &[f32], y: &[usize], n: usize) -> Result<f32> {
        const OP: &str = "LinearProbe::accuracy";
        if n == 0 {
            return Err(Error::shape(OP, "no rows"));
        }
        check_xy(OP, x, Some(y), n, self.d, self.c)?;
        let pred = self.predict(x, n)?;
        Ok(pred.iter().zip(y).filter(|(p, t)| p == t).count() as f32 / n as f32)
    }

    fn logits_f64(&self, op: &str, x: &[f32], n: usize) -> Result<Vec<f64>> {
        if self.c == 0 || self.weight.len() != self.c * self.d || self.bias.len() != self.c {
            return Err(Error::shape(
                op,
                format!(
                    "probe is inconsistent: weight {} values, bias {} values for c = {}, d = {}",
                    self.weight.len(),
                    self.bias.len(),
                    self.c,
                    self.d
                ),
            ));
        }
        check_xy(op, x, None, n, self.d, self.c)?;
        let (c, d) = (self.c, self.d);
        let xn = normalised_f64(x, d);
        let mut wt = vec![0f64; d * c];
        for k in 0..c {
            for j in 0..d {
                wt[j * c + k] = self.weight[k * d + j] as f64;
            }
        }
        let b: Vec<f64> = self.bias.iter().map(|&v| v as f64).collect();
        let mut z = vec![0f64; n * c];
        logits(&xn, n, d, &wt, &b, c, &mut z);
        Ok(z)
    }
}

fn argmax_rows(z: &[f64], c: usize) -> Vec<usize> {
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

/// Fit on already-normalised f64 features (inputs checked by the caller).
fn fit_normalised(
    xn: &[f64],
    y: &[usize],
    n: usize,
    d: usize,
    c: usize,
    l2: f32,
    max_iter: usize,
) -> (LinearProbe, FitInfo) {
    let prob = Problem {
        x: xn,
        y,
        n,
        d,
        c,
        l2: l2 as f64,
    };
    let mut theta = vec![0f64; prob.dim()];
    let info = lbfgs(&prob, &mut theta, max_iter);
    let (wt, b) = theta.split_at(d * c);
    let mut weight = vec![0f32; c * d];
    for j in 0..d {
        for k in 0..c {
            weight[k * d + j] = wt[j * c + k] as f32;
        }
    }
    // The softmax is invariant to a common shift of the bias; centre it (it already
    // sums to ~0 from a zero start, since every bias gradient sums to zero).
    let mean = b.iter().sum::<f64>() / c as f64;
    let bias = b.iter().map(|v| (v - mean) as f32).collect();
    (LinearProbe { weight, bias, c, d, l2 }, info)
}

/// The coarse grid of [`sweep`]: `l2 = 10^e` for `e` in `-6..=2`.
pub fn coarse_grid() -> Vec<f32> {
    (-6..=2).map(|e| 10f64.powi(e) as f32).collect()
}

/// Regularisation sweep, as in the CLIP paper's linear-probe protocol: fit on the
/// training split for each `l2` of a coarse log grid (`10^-6 .. 10^2`, 9 values),
/// then refine around the best with 2 points on each side at quarter decades
/// (`best * 10^{±0.25, ±0.5}`), pick the highest validation accuracy (ties: the
/// stronger regularisation, i.e. the larger `l2`), and refit on train + val with
/// the chosen `l2`. Each fit uses [`DEFAULT_MAX_ITER`].
///
/// Returns the refitted probe and every `(l2, validation accuracy)` tried, sorted
/// by `l2`.
#[allow(clippy::too_many_arguments)]
pub fn sweep(
    x_train: &[f32],
    y_train: &[usize],
    x_val: &[f32],
    y_val: &[usize],
    n_train: usize,
    n_val: usize,
    d: usize,
    c: usize,
) -> Result<(LinearProbe, Vec<(f32, f32)>)> {
    const OP: &str = "linear_probe::sweep";
    if n_train == 0 || n_val == 0 {
        return Err(Error::shape(
            OP,
            format!("need training and validation rows, got {n_train} and {n_val}"),
        ));
    }
    if c < 2 {
        return Err(Error::invalid(format!("{OP}: need at least 2 classes, got {c}")));
    }
    check_xy(&format!("{OP} (train)"), x_train, Some(y_train), n_train, d, c)?;
    check_xy(&format!("{OP} (val)"), x_val, Some(y_val), n_val, d, c)?;
    let xt = normalised_f64(x_train, d);
    let xv = normalised_f64(x_val, d);

    let val_acc = |l2: f32| -> f32 {
        let (probe, _) = fit_normalised(&xt, y_train, n_train, d, c, l2, DEFAULT_MAX_ITER);
        let mut wt = vec![0f64; d * c];
        for k in 0..c {
            for j in 0..d {
                wt[j * c + k] = probe.weight[k * d + j] as f64;
            }
        }
        let b: Vec<f64> = probe.bias.iter().map(|&v| v as f64).collect();
        let mut z = vec![0f64; n_val * c];
        logits(&xv, n_val, d, &wt, &b, c, &mut z);
        let pred = argmax_rows(&z, c);
        pred.iter().zip(y_val).filter(|(p, t)| p == t).count() as f32 / n_val as f32
    };
    let best_of = |res: &[(f32, f32)]| -> (f32, f32) {
        let mut best = res[0];
        for &(l2, acc) in res {
            if acc > best.1 || (acc == best.1 && l2 > best.0) {
                best = (l2, acc);
            }
        }
        best
    };

    let mut results: Vec<(f32, f32)> = coarse_grid().par_iter().map(|&l2| (l2, val_acc(l2))).collect();
    let (best_l2, _) = best_of(&results);
    let fine: Vec<f32> = [-0.5f64, -0.25, 0.25, 0.5]
        .iter()
        .map(|e| ((best_l2 as f64) * 10f64.powf(*e)) as f32)
        .collect();
    let fine_res: Vec<(f32, f32)> = fine.par_iter().map(|&l2| (l2, val_acc(l2))).collect();
    results.extend(fine_res);
    results.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (chosen, _) = best_of(&results);

    // Refit on train + val.
    let n_all = n_train + n_val;
    let mut x_all = xt;
    x_all.extend_from_slice(&xv);
    let y_all: Vec<usize> = y_train.iter().chain(y_val).copied().collect();
    let (probe, _) = fit_normalised(&x_all, &y_all, n_all, d, c, chosen, DEFAULT_MAX_ITER);
    Ok((probe, results))
}

/// Stratified, deterministic split of rows `0..n` into (train, val) index lists,
/// both sorted ascending. Within each class the rows are shuffled with a PRNG
/// seeded from `seed` and `round(val_fraction * count)` go to validation, but at
/// least one row of each class stays in training. `val_fraction` is clamped to
/// `[0, 1]` (NaN counts as 0); only rows with a label (`i < labels.len()`) are split.
pub fn split_train_val(n: usize, labels: &[usize], val_fraction: f32, seed: u64) -> (Vec<usize>, Vec<usize>) {
    let frac = if val_fraction.is_nan() {
        0.0
    } else {
        val_fraction.clamp(0.0, 1.0) as f64
    };
    let n = n.min(labels.len());
    let mut by_class: std::collections::BTreeMap<usize, Vec<usize>> = std::collections::BTreeMap::new();
    for (i, &l) in labels[..n].iter().enumerate() {
        by_class.entry(l).or_default().push(i);
    }
    let mut train = Vec::with_capacity(n);
    let mut val = Vec::new();
    for (&class, idx) in by_class.iter_mut() {
        let mut rng = SplitMix64(seed ^ (class as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        for i in (1..idx.len()).rev() {
            let j = (rng.next() % (i as u64 + 1)) as usize;
            idx.swap(i, j);
        }
        // Few-shot classes still give one validation image when they have two or more.
        let k = ((frac * idx.len() as f64).round() as usize)
            .max(usize::from(frac > 0.0))
            .min(idx.len().saturating_sub(1));
        val.extend_from_slice(&idx[..k]);
        train.extend_from_slice(&idx[k..]);
    }
    train.sort_unstable();
    val.sort_unstable();
    (train, val)
}

struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}
