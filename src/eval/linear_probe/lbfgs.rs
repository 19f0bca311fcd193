//! L-BFGS (two-loop recursion, history 10) with a strong-Wolfe line search with cubic
//! interpolation (Nocedal & Wright, Alg. 3.5 / 3.6), in f64.
use super::objective::{Problem, Workspace};
use super::{FitInfo, GRAD_TOL};

/// L-BFGS history length.
const HISTORY: usize = 10;

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
pub(super) fn lbfgs(prob: &Problem, theta: &mut Vec<f64>, max_iter: usize) -> FitInfo {
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
