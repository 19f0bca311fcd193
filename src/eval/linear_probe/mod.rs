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
//!
//! Files: [`rows`] (input checks, normalisation, logits), [`objective`] (the loss and its
//! gradient), [`lbfgs`] (the optimiser), [`sweep`] (the CLIP paper's l2 sweep and the
//! stratified split), [`anchored`] (the zero-shot-initialised, constrained probe).
mod anchored;
mod lbfgs;
mod objective;
mod rows;
mod sweep;

use crate::error::{Error, Result};
use lbfgs::lbfgs;
use objective::Problem;
use rows::{argmax_rows, check_xy, logits, normalised_f64, softmax_rows};

pub use anchored::{clap_weights, Anchor, ProbeInit, ProbeWeight, AUTO_SCALE};
pub use sweep::{coarse_grid, split_train_val, sweep};

/// Default iteration cap (the CLIP paper's `max_iter`).
pub const DEFAULT_MAX_ITER: usize = 1000;
/// Convergence: stop when `||grad||_2` is below this.
pub const GRAD_TOL: f64 = 1e-6;

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
        anchor: None,
    };
    let theta = vec![0f64; prob.dim()];
    solve(&prob, theta, l2, max_iter)
}

/// L-BFGS from `theta`, unpacked into a probe (bias centred).
fn solve(prob: &Problem, mut theta: Vec<f64>, l2: f32, max_iter: usize) -> (LinearProbe, FitInfo) {
    let (d, c) = (prob.d, prob.c);
    let info = lbfgs(prob, &mut theta, max_iter);
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
