//! The zero-shot-initialised, constrained probe (CLAP, Silva-Rodriguez et al. 2024;
//! LP++): the text classifier `W0` (class-prompt embeddings times the logit scale) is
//! both the starting point and the anchor of the penalty,
//!
//! ```text
//! f(W, b) = (1/n) * sum_i CE(softmax(W x_i + b), y_i)
//!         + (1/2) * sum_k lambda_k * (||w_k - w0_k||^2 + b_k^2)
//! ```
//!
//! so with few shots the probe can only move as far from zero-shot as the data pays
//! for. The weights follow CLAP's class-adaptive rule: `lambda_k` is proportional to
//! the zero-shot model's mean confidence in class `k` on that class's training images
//! (classes the text already gets right are held close; classes it gets wrong may
//! move). `W` lives in logit space (scale included), so `lambda` is per logit unit.
use super::objective::{AnchorF64, Problem};
use super::rows::{check_xy, normalised_f64};
use super::{solve, FitInfo, LinearProbe};
use crate::error::{Error, Result};

/// Where the probe starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProbeInit {
    /// The zero-shot text classifier (needs class names).
    ZeroShot,
    /// From zero with no text prior, l2 swept on a validation split (the CLIP paper's
    /// protocol; what the probe did before the zero-shot start existed).
    Random,
}

impl std::str::FromStr for ProbeInit {
    type Err = Error;
    fn from_str(s: &str) -> Result<ProbeInit> {
        match s {
            "zero-shot" => Ok(ProbeInit::ZeroShot),
            "random" => Ok(ProbeInit::Random),
            _ => Err(Error::invalid(format!(
                "--probe-init '{s}': expected zero-shot or random"
            ))),
        }
    }
}

/// How strongly the probe is held to the zero-shot classifier.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ProbeWeight {
    /// CLAP's class-adaptive weights ([`clap_weights`] with [`AUTO_SCALE`]).
    Auto,
    /// One weight for every class (0: no constraint).
    Fixed(f32),
}

impl std::str::FromStr for ProbeWeight {
    type Err = Error;
    fn from_str(s: &str) -> Result<ProbeWeight> {
        if s == "auto" {
            return Ok(ProbeWeight::Auto);
        }
        match s.parse::<f32>() {
            Ok(w) if w.is_finite() && w >= 0.0 => Ok(ProbeWeight::Fixed(w)),
            _ => Err(Error::invalid(format!(
                "--probe-weight '{s}': expected auto or a number >= 0"
            ))),
        }
    }
}

impl std::fmt::Display for ProbeWeight {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProbeWeight::Auto => write!(f, "auto"),
            ProbeWeight::Fixed(w) => write!(f, "{w}"),
        }
    }
}

/// `lambda_k = AUTO_SCALE * mean zero-shot probability of k on class k's images`.
/// Chosen on Fashion-MNIST with cliptune-mini at 1, 2 and 4 shots per class (see
/// tests/probe_zero_shot_init.rs): strong enough that one shot never drags a class
/// below its zero-shot accuracy, weak enough that four shots still help.
pub const AUTO_SCALE: f32 = 0.1;

/// CLAP's class-adaptive weights: `scale` times the mean, over the training rows of
/// each class, of the zero-shot probability of that class. `probs` is `n x c`.
/// A class without training rows gets the largest weight of the others (it cannot
/// be learned, so it stays at zero-shot).
pub fn clap_weights(probs: &[f32], y: &[usize], n: usize, c: usize, scale: f32) -> Result<Vec<f32>> {
    if probs.len() != n * c || y.len() != n {
        return Err(Error::shape(
            "clap_weights",
            format!(
                "{} probabilities and {} labels for {n} rows x {c} classes",
                probs.len(),
                y.len()
            ),
        ));
    }
    let mut sum = vec![0f64; c];
    let mut count = vec![0usize; c];
    for (row, &l) in probs.chunks(c).zip(y) {
        if l >= c {
            return Err(Error::invalid(format!(
                "clap_weights: label {l} out of range for {c} classes"
            )));
        }
        sum[l] += row[l] as f64;
        count[l] += 1;
    }
    let mut w: Vec<Option<f32>> = (0..c)
        .map(|k| (count[k] > 0).then(|| scale * (sum[k] / count[k] as f64) as f32))
        .collect();
    let top = w.iter().flatten().cloned().fold(0f32, f32::max);
    Ok(w.iter_mut().map(|v| v.unwrap_or(top)).collect())
}

/// The zero-shot classifier the probe starts from and is held to.
#[derive(Clone, Debug, PartialEq)]
pub struct Anchor {
    /// `c x d`, row-major: normalised class-prompt embeddings times the logit scale.
    pub weight: Vec<f32>,
    /// One penalty weight per class (all 0: unconstrained from the zero-shot start).
    pub lambda: Vec<f32>,
}

impl Anchor {
    /// `exp(logit_scale) * class_embeds` (`c x d`) with per-class weights `lambda`.
    pub fn zero_shot(class_embeds: &[f32], c: usize, logit_scale: f32, lambda: Vec<f32>) -> Result<Anchor> {
        if c == 0 || class_embeds.len() % c != 0 || lambda.len() != c {
            return Err(Error::shape(
                "Anchor::zero_shot",
                format!(
                    "{} values and {} weights for {c} classes",
                    class_embeds.len(),
                    lambda.len()
                ),
            ));
        }
        if let Some(bad) = lambda.iter().find(|l| !(l.is_finite() && **l >= 0.0)) {
            return Err(Error::invalid(format!("probe weight {bad} must be finite and >= 0")));
        }
        Ok(Anchor {
            weight: class_embeds.iter().map(|v| v * logit_scale).collect(),
            lambda,
        })
    }

    /// The anchor as a probe (bias 0): exactly the zero-shot classifier.
    pub fn as_probe(&self) -> LinearProbe {
        let c = self.lambda.len();
        LinearProbe {
            weight: self.weight.clone(),
            bias: vec![0.0; c],
            c,
            d: self.weight.len() / c.max(1),
            l2: 0.0,
        }
    }
}

impl LinearProbe {
    /// Fit from the anchor's classifier, minimising mean cross-entropy plus the anchor
    /// penalty (module docs). `x` is `n x d` (rows normalised here), `y` in `0..c`.
    /// Deterministic, like [`LinearProbe::fit`]. The returned probe's `l2` is 0.
    pub fn fit_anchored(
        x: &[f32],
        y: &[usize],
        n: usize,
        d: usize,
        anchor: &Anchor,
        max_iter: usize,
    ) -> Result<(LinearProbe, FitInfo)> {
        const OP: &str = "linear_probe::fit_anchored";
        let c = anchor.lambda.len();
        if n == 0 {
            return Err(Error::shape(OP, "no training rows"));
        }
        if c < 2 {
            return Err(Error::invalid(format!("{OP}: need at least 2 classes, got {c}")));
        }
        if anchor.weight.len() != c * d {
            return Err(Error::shape(
                OP,
                format!(
                    "anchor has {} values, expected {c} classes x {d} features",
                    anchor.weight.len()
                ),
            ));
        }
        if anchor.weight.iter().chain(&anchor.lambda).any(|v| !v.is_finite()) {
            return Err(Error::invalid(format!("{OP}: the anchor has non-finite values")));
        }
        check_xy(OP, x, Some(y), n, d, c)?;
        let xn = normalised_f64(x, d);
        let mut w0t = vec![0f64; d * c];
        for k in 0..c {
            for j in 0..d {
                w0t[j * c + k] = anchor.weight[k * d + j] as f64;
            }
        }
        let mut theta = w0t.clone();
        theta.extend(std::iter::repeat_n(0.0, c));
        let prob = Problem {
            x: &xn,
            y,
            n,
            d,
            c,
            l2: 0.0,
            anchor: Some(AnchorF64 {
                w0t,
                lambda: anchor.lambda.iter().map(|&l| l as f64).collect(),
            }),
        };
        Ok(solve(&prob, theta, 0.0, max_iter))
    }
}
