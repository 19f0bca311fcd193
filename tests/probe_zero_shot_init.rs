//! The zero-shot-initialised, constrained probe (CLAP): with 1, 2 and 4 shots per class it
//! does not fall below the zero-shot classifier it starts from, where the unconstrained fit
//! from the same start does; and the anchor behaves as a penalty should.
use std::path::PathBuf;

use cliptune::clip::tokenizer::ClipTokenizer;
use cliptune::clip::{Clip, WeightStorage};
use cliptune::eval::linear_probe::{clap_weights, Anchor, LinearProbe, ProbeWeight, AUTO_SCALE, DEFAULT_MAX_ITER};
use cliptune::eval::suite::{image_embeddings, load_labeled};
use cliptune::train::linear_probe::{fit_zero_shot_start, zero_shot_anchor};
use cliptune::Device;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The first `k` images of each class after skipping `draw * k` of them.
fn shots(labels: &[usize], c: usize, k: usize, draw: usize) -> Vec<usize> {
    let mut seen = vec![0; c];
    let mut idx = vec![];
    for (i, &l) in labels.iter().enumerate() {
        seen[l] += 1;
        if seen[l] > draw * k && seen[l] <= (draw + 1) * k {
            idx.push(i);
        }
    }
    idx
}

/// cliptune-mini on the demo's Fashion-MNIST subsets (16 training and 100 test images per
/// class), three draws of 1, 2 and 4 shots per class.
#[test]
fn cliptune_mini_fashion_mnist_few_shot_is_not_below_zero_shot() {
    let md = root().join("assets/cliptune-mini");
    let model = Clip::load(&md, &Device::Cpu, WeightStorage::AsStored).unwrap();
    let tok = ClipTokenizer::for_model_dir(&md).unwrap();
    let tr = load_labeled(
        &root()
            .join("assets/demo/fashion-mnist-train.json")
            .display()
            .to_string(),
        None,
    )
    .unwrap();
    let te = load_labeled(
        &root().join("assets/demo/fashion-mnist-test.json").display().to_string(),
        None,
    )
    .unwrap();
    let d = model.config.projection_dim;
    let c = tr.classes.len();
    let xtr = image_embeddings(&model, Some(&md), &tr.source).unwrap();
    let xte = image_embeddings(&model, Some(&md), &te.source).unwrap();
    for k in [1usize, 2, 4] {
        for draw in 0..3 {
            let idx = shots(&tr.labels, c, k, draw);
            assert_eq!(idx.len(), k * c);
            let x: Vec<f32> = idx.iter().flat_map(|&i| xtr[i * d..(i + 1) * d].to_vec()).collect();
            let y: Vec<usize> = idx.iter().map(|&i| tr.labels[i]).collect();
            let anchor = zero_shot_anchor(&model, &tok, &tr.classes, &x, &y, ProbeWeight::Auto).unwrap();
            let zs = anchor.as_probe().accuracy(&xte, &te.labels, te.len()).unwrap();
            let (probe, _, _) = fit_zero_shot_start(&model, &tok, &tr.classes, &x, &y, ProbeWeight::Auto).unwrap();
            let acc = probe.accuracy(&xte, &te.labels, te.len()).unwrap();
            eprintln!("{k} shot(s), draw {draw}: zero-shot {zs:.3}, constrained probe {acc:.3}");
            assert!(
                acc >= zs,
                "{k} shot(s), draw {draw}: constrained probe {acc} < zero-shot {zs}"
            );
        }
    }
}

fn lcg(s: &mut u64) -> f32 {
    *s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    ((*s >> 33) as f32 / (1u64 << 31) as f32) * 2.0 - 1.0
}

fn unit(mut v: Vec<f32>) -> Vec<f32> {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.iter_mut().for_each(|x| *x /= n);
    v
}

/// Synthetic CLIP-like features where zero-shot is informative (about 40 % on 10 classes):
/// image features are noisy class means, "text" embeddings are the means shifted by a
/// common modality gap plus noise, logit scale 100. One noisy shot per class drags an
/// unconstrained probe below zero-shot; the constrained one holds, on average over draws.
#[test]
fn synthetic_informative_zero_shot_constrained_holds_unconstrained_drops() {
    let (d, c) = (64usize, 10usize);
    let mut s = 7u64;
    let mu: Vec<Vec<f32>> = (0..c).map(|_| unit((0..d).map(|_| lcg(&mut s)).collect())).collect();
    let gap: Vec<f32> = (0..d).map(|_| lcg(&mut s) * 0.3).collect();
    let mut text = vec![];
    for m in &mu {
        text.extend(unit(
            (0..d)
                .map(|j| m[j] + gap[j] + 2.0 * lcg(&mut s) / (d as f32).sqrt())
                .collect(),
        ));
    }
    let sample = |s: &mut u64, k: usize| {
        unit(
            (0..d)
                .map(|j| mu[k][j] + 4.0 * 1.7 * lcg(s) / (d as f32).sqrt())
                .collect(),
        )
    };
    let (mut xte, mut yte) = (vec![], vec![]);
    for i in 0..200 * c {
        xte.extend(sample(&mut s, i % c));
        yte.push(i % c);
    }
    let free = Anchor::zero_shot(&text, c, 100.0, vec![0.0; c]).unwrap();
    let zs = free.as_probe().accuracy(&xte, &yte, yte.len()).unwrap();
    assert!(zs > 0.25, "the synthetic zero-shot should be informative, got {zs}");
    for k in [1usize, 2, 4] {
        let (mut sum_c, mut sum_u) = (0.0, 0.0);
        let draws = 3;
        for _ in 0..draws {
            let (mut x, mut y) = (vec![], vec![]);
            for _ in 0..k {
                for cl in 0..c {
                    x.extend(sample(&mut s, cl));
                    y.push(cl);
                }
            }
            let probs = free.as_probe().predict_scores(&x, y.len()).unwrap();
            let lam = clap_weights(&probs, &y, y.len(), c, AUTO_SCALE).unwrap();
            let anchor = Anchor::zero_shot(&text, c, 100.0, lam).unwrap();
            let (p, _) = LinearProbe::fit_anchored(&x, &y, y.len(), d, &anchor, DEFAULT_MAX_ITER).unwrap();
            let (u, _) = LinearProbe::fit_anchored(&x, &y, y.len(), d, &free, DEFAULT_MAX_ITER).unwrap();
            sum_c += p.accuracy(&xte, &yte, yte.len()).unwrap();
            sum_u += u.accuracy(&xte, &yte, yte.len()).unwrap();
        }
        let (mc, mu_) = (sum_c / draws as f32, sum_u / draws as f32);
        eprintln!("{k} shot(s): zero-shot {zs:.3}, constrained {mc:.3}, unconstrained {mu_:.3} (mean of {draws})");
        assert!(mc >= zs, "{k} shot(s): constrained {mc} < zero-shot {zs}");
        if k == 1 {
            assert!(
                mu_ < zs,
                "the test has no teeth: one unconstrained shot ({mu_}) is not below zero-shot {zs}"
            );
        }
    }
}

#[test]
fn the_anchor_is_the_start_and_a_heavy_weight_keeps_the_probe_there() {
    let (d, c, n) = (8usize, 3usize, 12usize);
    let mut s = 3u64;
    let text: Vec<f32> = (0..c)
        .flat_map(|_| unit((0..d).map(|_| lcg(&mut s)).collect()))
        .collect();
    let x: Vec<f32> = (0..n * d).map(|_| lcg(&mut s)).collect();
    let y: Vec<usize> = (0..n).map(|i| (i * 7) % c).collect();
    let heavy = Anchor::zero_shot(&text, c, 50.0, vec![1e6; c]).unwrap();
    let (p, _) = LinearProbe::fit_anchored(&x, &y, n, d, &heavy, DEFAULT_MAX_ITER).unwrap();
    let max_dev = p
        .weight
        .iter()
        .zip(&heavy.weight)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(
        max_dev < 1e-3,
        "a weight of 1e6 let the probe move {max_dev} from the anchor"
    );
    let light = Anchor::zero_shot(&text, c, 50.0, vec![1e-3; c]).unwrap();
    let (q, info) = LinearProbe::fit_anchored(&x, &y, n, d, &light, DEFAULT_MAX_ITER).unwrap();
    let dev = q
        .weight
        .iter()
        .zip(&light.weight)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(
        dev > 0.1,
        "a light weight should let the probe fit the labels, moved only {dev}"
    );
    assert!(q.accuracy(&x, &y, n).unwrap() >= p.accuracy(&x, &y, n).unwrap());
    assert!(info.iterations > 0);
    // CLAP's weights: mean zero-shot probability of the true class, scaled.
    let probs = vec![0.5, 0.5, 0.0, 0.1, 0.9, 0.0, 0.2, 0.8, 0.0];
    let w = clap_weights(&probs, &[0, 1, 1], 3, 3, 2.0).unwrap();
    assert_eq!(w[0], 1.0);
    assert!((w[1] - 1.7).abs() < 1e-6);
    assert_eq!(w[2], 1.7, "a class without images takes the largest weight");
    assert!(clap_weights(&probs, &[0, 1, 3], 3, 3, 1.0).is_err());
    assert!(Anchor::zero_shot(&text, c, 1.0, vec![-1.0; c]).is_err());
    assert!("-2".parse::<ProbeWeight>().is_err() && "auto".parse::<ProbeWeight>().unwrap() == ProbeWeight::Auto);
}
