//! Contrastive (CLIP InfoNCE) and cross-entropy losses: CPU vs a naive f64 reference,
//! CPU backward vs central finite differences, and wgpu vs CPU.
mod common;
use cliptune::backend::Device;
use cliptune::tensor::Rng;
use cliptune::Tensor;
use common::*;

/// Row-normalised random [rows, d] (CLIP features are L2-normalised before the loss).
fn normed(rows: usize, d: usize, seed: u64) -> Vec<f32> {
    let mut x = randn(&[rows, d], seed);
    for r in x.chunks_mut(d) {
        let n = r.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
        r.iter_mut().for_each(|v| *v /= n);
    }
    x
}

/// max |a - b| / max |a|: relative to the reference's own scale (stricter than
/// `rel_err` for gradients, which are much smaller than 1).
fn scaled_err(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    let scale = a.iter().fold(0.0f32, |m, x| m.max(x.abs())).max(1e-30);
    if a.iter().chain(b).any(|x| !x.is_finite()) {
        return f32::INFINITY;
    }
    a.iter().zip(b).fold(0.0f32, |m, (x, y)| m.max((x - y).abs())) / scale
}

fn check(what: &str, reference: &[f32], got: &[f32], tol: f32) {
    let e = scaled_err(reference, got);
    eprintln!("{what}: rel err {e:.2e} (tol {tol:.0e})");
    assert!(e <= tol, "{what}: relative error {e} > {tol}");
}

fn vals(t: &Tensor) -> Vec<f32> {
    t.to_vec().unwrap()
}

/// (b, m, d); m > b adds hard-negative captions. (260, 300, 9) spans more than one
/// 256-wide column chunk in both GPU row kernels.
const SHAPES: [(usize, usize, usize); 7] = [
    (1, 1, 1),
    (2, 2, 3),
    (7, 7, 16),
    (8, 13, 33),
    (64, 64, 512),
    (130, 130, 64),
    (260, 300, 9),
];
fn log_scales() -> [f32; 2] {
    [(1.0f32 / 0.07).ln(), 0.0]
}

/// PyTorch semantics on an explicit f64 logit matrix L [b, m]: (CE(L, arange(b)) +
/// CE(L[:, :b].T, arange(b))) / 2. Returns (loss, lse_img, lse_txt).
fn reference(img: &[f32], txt: &[f32], b: usize, m: usize, d: usize, log_scale: f32) -> (f64, Vec<f64>, Vec<f64>) {
    let s = (log_scale as f64).exp();
    let l: Vec<Vec<f64>> = (0..b)
        .map(|i| {
            (0..m)
                .map(|j| {
                    s * (0..d)
                        .map(|k| img[i * d + k] as f64 * txt[j * d + k] as f64)
                        .sum::<f64>()
                })
                .collect()
        })
        .collect();
    let lse = |xs: &mut dyn Iterator<Item = f64>| {
        let v: Vec<f64> = xs.collect();
        let mx = v.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        mx + v.iter().map(|x| (x - mx).exp()).sum::<f64>().ln()
    };
    let lse_img: Vec<f64> = (0..b).map(|i| lse(&mut l[i].iter().cloned())).collect();
    let lse_txt: Vec<f64> = (0..b).map(|j| lse(&mut (0..b).map(|i| l[i][j]))).collect();
    let ce_img = (0..b).map(|i| lse_img[i] - l[i][i]).sum::<f64>() / b as f64;
    let ce_txt = (0..b).map(|j| lse_txt[j] - l[j][j]).sum::<f64>() / b as f64;
    (0.5 * (ce_img + ce_txt), lse_img, lse_txt)
}

fn to32(v: &[f64]) -> Vec<f32> {
    v.iter().map(|&x| x as f32).collect()
}

#[test]
fn contrastive_forward_cpu_matches_reference() {
    for (b, m, d) in SHAPES {
        for ls in log_scales() {
            let (img, txt) = (normed(b, d, 1), normed(m, d, 2));
            let (loss, li, lt) = reference(&img, &txt, b, m, d, ls);
            let c = cpu();
            let (cl, cli, clt) = c
                .backend()
                .contrastive_loss(
                    &Tensor::from_slice(&img, &[b, d], &c).unwrap(),
                    &Tensor::from_slice(&txt, &[m, d], &c).unwrap(),
                    &Tensor::scalar(ls, &c).unwrap(),
                )
                .unwrap();
            let tag = format!("ref b={b} m={m} d={d} ls={ls:.2}");
            check(&format!("{tag} loss"), &[loss as f32], &vals(&cl), 1e-5);
            check(&format!("{tag} lse_img"), &to32(&li), &vals(&cli), 1e-5);
            check(&format!("{tag} lse_txt"), &to32(&lt), &vals(&clt), 1e-5);
        }
    }
}

/// Forward and backward on one device; dloss = 0.7 checks the scaling by dloss.
fn run_contrastive(dev: &Device, img: &[f32], txt: &[f32], b: usize, m: usize, d: usize, ls: f32) -> [Vec<f32>; 6] {
    let it = Tensor::from_slice(img, &[b, d], dev).unwrap();
    let tt = Tensor::from_slice(txt, &[m, d], dev).unwrap();
    let lt = Tensor::scalar(ls, dev).unwrap();
    let be = dev.backend();
    let (loss, li, lx) = be.contrastive_loss(&it, &tt, &lt).unwrap();
    let dloss = Tensor::scalar(0.7, dev).unwrap();
    let (di, dt, dls) = be.contrastive_loss_bwd(&it, &tt, &lt, &li, &lx, &dloss).unwrap();
    [vals(&loss), vals(&li), vals(&lx), vals(&di), vals(&dt), vals(&dls)]
}

#[test]
fn contrastive_wgpu_matches_cpu() {
    let names = ["loss", "lse_img", "lse_txt", "dimg", "dtxt", "dlog_scale"];
    for (b, m, d) in SHAPES {
        for ls in log_scales() {
            let (img, txt) = (normed(b, d, 3 + b as u64), normed(m, d, 4 + m as u64));
            let c = run_contrastive(&cpu(), &img, &txt, b, m, d, ls);
            let g = run_contrastive(&gpu(), &img, &txt, b, m, d, ls);
            for (k, name) in names.iter().enumerate() {
                check(&format!("wgpu b={b} m={m} d={d} ls={ls:.2} {name}"), &c[k], &g[k], 1e-4);
            }
        }
    }
}

/// Central differences of the CPU forward (f32) for img, txt and log_scale.
#[test]
fn contrastive_backward_finite_differences() {
    let (b, m, d) = (3, 4, 5);
    let c = cpu();
    for ls in log_scales() {
        let (img, txt) = (normed(b, d, 11), normed(m, d, 12));
        let loss = |img: &[f32], txt: &[f32], ls: f32| -> f64 {
            let (l, _, _) = c
                .backend()
                .contrastive_loss(
                    &Tensor::from_slice(img, &[b, d], &c).unwrap(),
                    &Tensor::from_slice(txt, &[m, d], &c).unwrap(),
                    &Tensor::scalar(ls, &c).unwrap(),
                )
                .unwrap();
            l.item().unwrap() as f64
        };
        let an = run_contrastive(&c, &img, &txt, b, m, d, ls);
        let eps = 1e-3f32;
        let fd = |f: &dyn Fn(f32) -> f64| 0.7 * ((f(eps) - f(-eps)) / (2.0 * eps as f64)) as f32;
        let fd_img: Vec<f32> = (0..img.len())
            .map(|k| {
                fd(&|e| {
                    let mut x = img.clone();
                    x[k] += e;
                    loss(&x, &txt, ls)
                })
            })
            .collect();
        let fd_txt: Vec<f32> = (0..txt.len())
            .map(|k| {
                fd(&|e| {
                    let mut x = txt.clone();
                    x[k] += e;
                    loss(&img, &x, ls)
                })
            })
            .collect();
        let fd_ls = fd(&|e| loss(&img, &txt, ls + e));
        check(&format!("fd ls={ls:.2} dimg"), &fd_img, &an[3], 1e-2);
        check(&format!("fd ls={ls:.2} dtxt"), &fd_txt, &an[4], 1e-2);
        check(&format!("fd ls={ls:.2} dlog_scale"), &[fd_ls], &an[5], 1e-2);
    }
}

#[test]
fn contrastive_bad_input_is_an_error() {
    for dev in [cpu(), gpu()] {
        let be = dev.backend();
        let t = |rows: usize, d: usize| Tensor::from_vec(normed(rows, d, 5), &[rows, d], &dev).unwrap();
        let ls = Tensor::scalar(1.0, &dev).unwrap();
        assert!(be.contrastive_loss(&t(4, 8), &t(4, 9), &ls).is_err(), "mismatched d");
        assert!(be.contrastive_loss(&t(4, 8), &t(3, 8), &ls).is_err(), "m < b");
        let two = Tensor::from_vec(vec![1.0, 2.0], &[2], &dev).unwrap();
        assert!(
            be.contrastive_loss(&t(4, 8), &t(4, 8), &two).is_err(),
            "2-element log scale"
        );
        let (img, txt) = (t(4, 8), t(4, 8));
        let (_, li, lt) = be.contrastive_loss(&img, &txt, &ls).unwrap();
        let dl = Tensor::scalar(1.0, &dev).unwrap();
        assert!(
            be.contrastive_loss_bwd(&img, &txt, &ls, &two, &lt, &dl).is_err(),
            "short lse_img"
        );
        assert!(
            be.contrastive_loss_bwd(&img, &t(4, 7), &ls, &li, &lt, &dl).is_err(),
            "bwd mismatched d"
        );
        assert!(
            be.contrastive_loss_bwd(&img, &txt, &ls, &li, &lt, &two).is_err(),
            "2-element dloss"
        );
    }
}

// ---- cross-entropy -------------------------------------------------------------------

fn labels(rows: usize, classes: usize, seed: u64) -> Vec<u32> {
    let mut r = Rng::new(seed);
    (0..rows).map(|_| r.below(classes) as u32).collect()
}

fn run_ce(dev: &Device, x: &[f32], y: &[u32], rows: usize, classes: usize) -> [Vec<f32>; 3] {
    let xt = Tensor::from_slice(x, &[rows, classes], dev).unwrap();
    let yt = Tensor::from_u32(y.to_vec(), &[rows], dev).unwrap();
    let be = dev.backend();
    let (loss, lse) = be.cross_entropy(&xt, &yt).unwrap();
    let dx = be
        .cross_entropy_bwd(&xt, &yt, &lse, &Tensor::scalar(0.7, dev).unwrap())
        .unwrap();
    [vals(&loss), vals(&lse), vals(&dx)]
}

const CE_SHAPES: [(usize, usize); 4] = [(1, 1), (5, 10), (64, 1000), (130, 77)];

#[test]
fn cross_entropy_cpu_matches_reference_and_wgpu() {
    for (rows, classes) in CE_SHAPES {
        let x: Vec<f32> = randn(&[rows, classes], 21).iter().map(|v| 3.0 * v).collect();
        let y = labels(rows, classes, 22);
        let c = run_ce(&cpu(), &x, &y, rows, classes);
        // f64 reference: mean of lse - x[label].
        let lse: Vec<f64> = x
            .chunks(classes)
            .map(|r| {
                let mx = r.iter().fold(f64::NEG_INFINITY, |a, &v| a.max(v as f64));
                mx + r.iter().map(|&v| (v as f64 - mx).exp()).sum::<f64>().ln()
            })
            .collect();
        let loss = (0..rows)
            .map(|r| lse[r] - x[r * classes + y[r] as usize] as f64)
            .sum::<f64>()
            / rows as f64;
        check(&format!("ce ref ({rows},{classes}) loss"), &[loss as f32], &c[0], 1e-5);
        check(&format!("ce ref ({rows},{classes}) lse"), &to32(&lse), &c[1], 1e-5);
        let g = run_ce(&gpu(), &x, &y, rows, classes);
        for (k, name) in ["loss", "lse", "dlogits"].iter().enumerate() {
            check(&format!("ce wgpu ({rows},{classes}) {name}"), &c[k], &g[k], 1e-4);
        }
    }
}

#[test]
fn cross_entropy_backward_finite_differences() {
    let (rows, classes) = (5, 10);
    let c = cpu();
    let x: Vec<f32> = randn(&[rows, classes], 31).iter().map(|v| 2.0 * v).collect();
    let y = labels(rows, classes, 32);
    let yt = Tensor::from_u32(y.clone(), &[rows], &c).unwrap();
    let loss = |x: &[f32]| -> f64 {
        let xt = Tensor::from_slice(x, &[rows, classes], &c).unwrap();
        c.backend().cross_entropy(&xt, &yt).unwrap().0.item().unwrap() as f64
    };
    let an = run_ce(&c, &x, &y, rows, classes);
    let eps = 1e-3f32;
    let fd: Vec<f32> = (0..x.len())
        .map(|k| {
            let (mut xp, mut xm) = (x.clone(), x.clone());
            xp[k] += eps;
            xm[k] -= eps;
            0.7 * ((loss(&xp) - loss(&xm)) / (2.0 * eps as f64)) as f32
        })
        .collect();
    check("ce fd dlogits", &fd, &an[2], 1e-2);
}

#[test]
fn cross_entropy_bad_labels() {
    let c = cpu();
    let x = Tensor::from_vec(randn(&[3, 4], 41), &[3, 4], &c).unwrap();
    let bad = Tensor::from_u32(vec![0, 4, 1], &[3], &c).unwrap();
    let err = c.backend().cross_entropy(&x, &bad).unwrap_err();
    assert!(err.msg.contains("label 4"), "{}", err.msg);
    let lse = Tensor::from_vec(vec![0.0; 3], &[3], &c).unwrap();
    let one = Tensor::scalar(1.0, &c).unwrap();
    assert!(c.backend().cross_entropy_bwd(&x, &bad, &lse, &one).is_err());
    let short = Tensor::from_u32(vec![0, 1], &[2], &c).unwrap();
    assert!(c.backend().cross_entropy(&x, &short).is_err(), "label count");

    // GPU: labels are on the device; an out-of-range row is ignored (0 loss, 0 grad).
    let g = gpu();
    let xv = randn(&[3, 4], 41);
    let gx = Tensor::from_slice(&xv, &[3, 4], &g).unwrap();
    let gbad = Tensor::from_u32(vec![0, 4, 1], &[3], &g).unwrap();
    let (loss, lse) = g.backend().cross_entropy(&gx, &gbad).unwrap();
    let dx = g
        .backend()
        .cross_entropy_bwd(&gx, &gbad, &lse, &Tensor::scalar(1.0, &g).unwrap())
        .unwrap();
    let lse = vals(&lse);
    let want = ((lse[0] - xv[0]) + (lse[2] - xv[2 * 4 + 1])) / 3.0;
    check("ce wgpu ignored label loss", &[want], &vals(&loss), 1e-5);
    assert!(vals(&dx)[4..8].iter().all(|&v| v == 0.0), "ignored row has a gradient");
    assert!(g
        .backend()
        .cross_entropy(&gx, &Tensor::from_u32(vec![0, 1], &[2], &g).unwrap())
        .is_err());
}
