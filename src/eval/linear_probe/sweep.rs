//! The CLIP paper's regularisation sweep and the stratified train/validation split.
use rayon::prelude::*;

use super::rows::{argmax_rows, check_xy, logits, normalised_f64};
use super::{fit_normalised, LinearProbe, DEFAULT_MAX_ITER};
use crate::error::{Error, Result};

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
