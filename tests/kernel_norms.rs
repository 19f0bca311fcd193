//! Layer norm, softmax and L2 norm (forward and backward): wgpu vs CPU, the CPU
//! forward against the textbook formula, the CPU backwards against finite differences.
mod common;
use cliptune::backend::Device;
use cliptune::{DType, Tensor};
use common::*;

/// (rows, cols): single element, odd sizes below and above a workgroup, CLIP width,
/// and a long row (several columns per invocation).
const SHAPES: [(usize, usize); 6] = [(1, 1), (3, 7), (17, 33), (50, 768), (130, 257), (5, 5000)];
const EPS: f32 = 1e-5;

fn scaled(shape: &[usize], seed: u64, scale: f32, shift: f32) -> Vec<f32> {
    randn(shape, seed).iter().map(|v| v * scale + shift).collect()
}

fn on(dev: &Device, data: &[f32], shape: &[usize], dtype: DType) -> Tensor {
    Tensor::from_slice(data, shape, dev).unwrap().cast(dtype).unwrap()
}

// ---- layer norm ------------------------------------------------------------------

#[test]
fn layernorm_cpu_matches_formula() {
    let dev = cpu();
    let b = dev.backend();
    for &(shape, seed) in &[
        (&[3usize, 7][..], 1u64),
        (&[2, 3, 33], 2),
        (&[4, 768], 3),
        (&[2, 5000], 4),
    ] {
        let cols = *shape.last().unwrap();
        let rows = shape.iter().product::<usize>() / cols;
        let mut x = scaled(shape, seed, 3.0, 1.5);
        x[..cols].iter_mut().for_each(|v| *v = 2.0); // a constant row: var = 0
        let gamma = scaled(&[cols], seed + 10, 0.5, 1.0);
        let beta = scaled(&[cols], seed + 20, 0.5, 0.0);
        let (y, mean, rstd) = b
            .layernorm(
                &on(&cpu(), &x, shape, DType::F32),
                &on(&cpu(), &gamma, &[cols], DType::F32),
                &on(&cpu(), &beta, &[cols], DType::F32),
                EPS,
            )
            .unwrap();
        assert_eq!(y.shape(), shape);
        assert_eq!(mean.shape(), &[rows]);
        let (y, mean, rstd) = (y.to_vec().unwrap(), mean.to_vec().unwrap(), rstd.to_vec().unwrap());
        let (mut ey, mut em, mut er) = (0f64, 0f64, 0f64);
        for r in 0..rows {
            let xr: Vec<f64> = x[r * cols..(r + 1) * cols].iter().map(|&v| v as f64).collect();
            let m = xr.iter().sum::<f64>() / cols as f64;
            let var = xr.iter().map(|v| (v - m) * (v - m)).sum::<f64>() / cols as f64;
            let rs = 1.0 / (var + EPS as f64).sqrt();
            em = em.max((mean[r] as f64 - m).abs() / m.abs().max(1.0));
            er = er.max((rstd[r] as f64 - rs).abs() / rs);
            for j in 0..cols {
                let want = (xr[j] - m) * rs * gamma[j] as f64 + beta[j] as f64;
                ey = ey.max((y[r * cols + j] as f64 - want).abs() / want.abs().max(1.0));
            }
        }
        eprintln!("layernorm cpu vs formula {shape:?}: y {ey:.2e} mean {em:.2e} rstd {er:.2e}");
        assert!(
            ey < 1e-5 && em < 1e-6 && er < 1e-5,
            "layernorm {shape:?}: y {ey} mean {em} rstd {er}"
        );
    }
}

#[test]
fn layernorm_wgpu_matches_cpu() {
    for (i, &(rows, cols)) in SHAPES.iter().enumerate() {
        let seed = 100 + 10 * i as u64;
        let x = scaled(&[rows, cols], seed, 2.0, 0.7);
        let dy = randn(&[rows, cols], seed + 1);
        let gamma = scaled(&[cols], seed + 2, 0.4, 1.0);
        let beta = scaled(&[cols], seed + 3, 0.4, 0.0);
        for gdt in [DType::F32, DType::F16] {
            let run = |dev: &Device, pg: bool| {
                let b = dev.backend();
                let (xt, g) = (on(dev, &x, &[rows, cols], DType::F32), on(dev, &gamma, &[cols], gdt));
                let (y, mean, rstd) = b.layernorm(&xt, &g, &on(dev, &beta, &[cols], gdt), EPS).unwrap();
                let (dx, pgr) = b
                    .layernorm_bwd(&on(dev, &dy, &[rows, cols], DType::F32), &xt, &g, &mean, &rstd, pg)
                    .unwrap();
                (y, mean, rstd, dx, pgr)
            };
            for pg in [true, false] {
                let (cy, cm, cr, cdx, cp) = run(&cpu(), pg);
                let (gy, gm, gr, gdx, gp) = run(&gpu(), pg);
                let tag = format!("layernorm {rows}x{cols} gamma {gdt:?} param_grads {pg}");
                if pg {
                    assert_close(&format!("{tag}: y"), &cy, &gy, 1e-4);
                    assert_close(&format!("{tag}: mean"), &cm, &gm, 1e-4);
                    assert_close(&format!("{tag}: rstd"), &cr, &gr, 1e-4);
                }
                assert_close(&format!("{tag}: dx"), &cdx, &gdx, 1e-4);
                match (cp, gp) {
                    (Some((cg, cb)), Some((gg, gb))) => {
                        assert!(pg);
                        assert_eq!(gg.shape(), &[cols]);
                        assert_close(&format!("{tag}: dgamma"), &cg, &gg, 1e-4);
                        assert_close(&format!("{tag}: dbeta"), &cb, &gb, 1e-4);
                    }
                    (None, None) => assert!(!pg),
                    _ => panic!("{tag}: backends disagree on returning parameter grads"),
                }
            }
        }
    }
}

/// Batched CLIP-like layout: x [batch, seq, width] normalised over width.
#[test]
fn layernorm_3d_wgpu_matches_cpu() {
    let shape = [3usize, 77, 64];
    let x = scaled(&shape, 7, 1.0, -0.3);
    let dy = randn(&shape, 8);
    let gamma = scaled(&[64], 9, 0.2, 1.0);
    let beta = scaled(&[64], 10, 0.2, 0.0);
    let run = |dev: &Device| {
        let b = dev.backend();
        let (xt, g) = (on(dev, &x, &shape, DType::F32), on(dev, &gamma, &[64], DType::BF16));
        let (y, mean, rstd) = b.layernorm(&xt, &g, &on(dev, &beta, &[64], DType::BF16), EPS).unwrap();
        let (dx, p) = b
            .layernorm_bwd(&on(dev, &dy, &shape, DType::F32), &xt, &g, &mean, &rstd, true)
            .unwrap();
        let (dg, db) = p.unwrap();
        (y, dx, dg, db)
    };
    let (c, g) = (run(&cpu()), run(&gpu()));
    assert_eq!(g.0.shape(), &shape);
    assert_close("layernorm 3x77x64 bf16 params: y", &c.0, &g.0, 1e-4);
    assert_close("layernorm 3x77x64: dx", &c.1, &g.1, 1e-4);
    assert_close("layernorm 3x77x64: dgamma", &c.2, &g.2, 1e-4);
    assert_close("layernorm 3x77x64: dbeta", &c.3, &g.3, 1e-4);
}

// ---- softmax -----------------------------------------------------------------------

#[test]
fn softmax_wgpu_matches_cpu() {
    // Plus a vocabulary-wide row (CLIP's 49,408 tokens).
    for (i, &(rows, cols)) in SHAPES.iter().chain(&[(2, 49408)]).enumerate() {
        let seed = 300 + 10 * i as u64;
        for scale in [1.0f32, 30.0] {
            let x = scaled(&[rows, cols], seed, scale, 0.0);
            let dy = randn(&[rows, cols], seed + 1);
            let run = |dev: &Device| {
                let b = dev.backend();
                let y = b.softmax(&on(dev, &x, &[rows, cols], DType::F32)).unwrap();
                let dx = b.softmax_bwd(&on(dev, &dy, &[rows, cols], DType::F32), &y).unwrap();
                (y, dx)
            };
            let ((cy, cdx), (gy, gdx)) = (run(&cpu()), run(&gpu()));
            let tag = format!("softmax {rows}x{cols} scale {scale}");
            assert_close(&format!("{tag}: y"), &cy, &gy, 1e-4);
            assert_close(&format!("{tag}: dx"), &cdx, &gdx, 1e-4);
            // Rows sum to one.
            let y = cy.to_vec().unwrap();
            for r in 0..rows {
                let s: f64 = y[r * cols..(r + 1) * cols].iter().map(|&v| v as f64).sum();
                assert!((s - 1.0).abs() < 1e-5, "{tag}: row {r} sums to {s}");
            }
        }
    }
}

/// The CPU softmax's vectorised exp against f64: softmax([x, 0])[0] = e^x / (e^x + 1).
#[test]
fn softmax_cpu_matches_f64() {
    let dev = cpu();
    let n = 20001;
    let xs: Vec<f32> = (0..n).map(|i| -100.0 + 190.0 * i as f32 / n as f32).collect();
    let pairs: Vec<f32> = xs.iter().flat_map(|&x| [x, 0.0]).collect();
    let y = dev
        .backend()
        .softmax(&on(&dev, &pairs, &[n, 2], DType::F32))
        .unwrap()
        .to_vec()
        .unwrap();
    let mut worst = 0f64;
    for (i, &x) in xs.iter().enumerate() {
        let x = x as f64;
        let want = if x > 0.0 {
            1.0 / (1.0 + (-x).exp())
        } else {
            x.exp() / (x.exp() + 1.0)
        };
        // Below ~1e-37 the result is flushed to zero (not a denormal).
        let err = if want > 1e-37 {
            (y[2 * i] as f64 - want).abs() / want
        } else {
            (y[2 * i] as f64).abs()
        };
        worst = worst.max(err);
    }
    eprintln!("softmax cpu vs f64: max rel err {worst:.2e}");
    assert!(worst < 1e-6, "softmax cpu vs f64: rel err {worst}");
    // Masked (-inf) logits get exactly zero weight on both backends.
    for d in [cpu(), gpu()] {
        let y = d
            .backend()
            .softmax(&on(&d, &[f32::NEG_INFINITY, 0.0, 1.0], &[1, 3], DType::F32))
            .unwrap()
            .to_vec()
            .unwrap();
        assert_eq!(y[0], 0.0, "{}", d.kind_name());
        assert!((y[1] + y[2] - 1.0).abs() < 1e-6, "{}: {y:?}", d.kind_name());
    }
}

// ---- L2 norm -----------------------------------------------------------------------

#[test]
fn l2norm_wgpu_matches_cpu() {
    for (i, &(rows, cols)) in SHAPES.iter().enumerate() {
        let seed = 500 + 10 * i as u64;
        let mut x = scaled(&[rows, cols], seed, 1.5, 0.0);
        if rows > 1 {
            x[cols..2 * cols].iter_mut().for_each(|v| *v = 0.0); // zero row: the 1e-12 floor
        }
        let dy = randn(&[rows, cols], seed + 1);
        let run = |dev: &Device| {
            let b = dev.backend();
            let (y, n) = b.l2norm(&on(dev, &x, &[rows, cols], DType::F32)).unwrap();
            let dx = b.l2norm_bwd(&on(dev, &dy, &[rows, cols], DType::F32), &y, &n).unwrap();
            (y, n, dx)
        };
        let ((cy, cn, cdx), (gy, gn, gdx)) = (run(&cpu()), run(&gpu()));
        let tag = format!("l2norm {rows}x{cols}");
        assert_eq!(gn.shape(), &[rows]);
        assert_close(&format!("{tag}: y"), &cy, &gy, 1e-4);
        assert_close(&format!("{tag}: norm"), &cn, &gn, 1e-4);
        // dx of the zero row is dy / 1e-12: compare it relative to its own scale.
        let (a, b) = (cdx.to_vec().unwrap(), gdx.to_vec().unwrap());
        for r in 0..rows {
            let e = rel_err(&a[r * cols..(r + 1) * cols], &b[r * cols..(r + 1) * cols]);
            assert!(e <= 1e-4, "{tag}: dx row {r}: rel err {e}");
        }
        eprintln!(
            "{tag}: dx max row rel err {:.2e}",
            (0..rows)
                .map(|r| rel_err(&a[r * cols..(r + 1) * cols], &b[r * cols..(r + 1) * cols]))
                .fold(0f32, f32::max)
        );
        let y = cy.to_vec().unwrap();
        assert!(y.iter().all(|v| v.is_finite()), "{tag}: non-finite y");
    }
}

/// More than 65535 workgroups: only reachable on lavapipe's 128 MiB bindings with
/// one-column rows (256 rows per workgroup).
#[test]
fn l2norm_many_rows_use_2d_grid() {
    let rows = 65535 * 256 + 300;
    let x: Vec<f32> = (0..rows)
        .map(|i| {
            if i % 3 == 0 {
                -((i % 7) as f32) - 0.5
            } else {
                (i % 5) as f32 + 0.25
            }
        })
        .collect();
    let (y, n) = gpu().backend().l2norm(&on(&gpu(), &x, &[rows, 1], DType::F32)).unwrap();
    let (y, n) = (y.to_vec().unwrap(), n.to_vec().unwrap());
    for i in (0..rows).step_by(997).chain(rows - 600..rows) {
        assert_eq!(n[i], x[i].abs(), "norm of row {i}");
        assert_eq!(y[i], x[i].signum(), "y of row {i}");
    }
}

// ---- finite differences of the CPU forward ------------------------------------------

/// L(x) = sum(f(x) * w) in f64; returns the central-difference gradient.
fn numeric_grad(x: &[f32], h: f32, f: impl Fn(&[f32]) -> f64) -> Vec<f64> {
    let mut xp = x.to_vec();
    (0..x.len())
        .map(|i| {
            xp[i] = x[i] + h;
            let lp = f(&xp);
            xp[i] = x[i] - h;
            let lm = f(&xp);
            xp[i] = x[i];
            (lp - lm) / (2.0 * h as f64)
        })
        .collect()
}

fn weighted(y: &Tensor, w: &[f32]) -> f64 {
    y.to_vec()
        .unwrap()
        .iter()
        .zip(w)
        .map(|(&a, &b)| a as f64 * b as f64)
        .sum()
}

fn assert_grad(what: &str, analytic: &Tensor, numeric: &[f64]) {
    let a = analytic.to_vec().unwrap();
    let scale = numeric.iter().fold(1e-3f64, |m, v| m.max(v.abs()));
    let err = a
        .iter()
        .zip(numeric)
        .fold(0f64, |m, (&x, y)| m.max((x as f64 - y).abs()))
        / scale;
    eprintln!("{what}: analytic vs finite differences rel err {err:.2e}");
    assert!(err < 1e-2, "{what}: rel err {err}\nanalytic {a:?}\nnumeric {numeric:?}");
}

#[test]
fn layernorm_backward_matches_finite_differences() {
    let (rows, cols) = (3usize, 5usize);
    let dev = cpu();
    let b = dev.backend();
    let x = scaled(&[rows, cols], 41, 1.0, 0.3);
    let gamma = scaled(&[cols], 42, 0.5, 1.0);
    let beta = scaled(&[cols], 43, 0.5, 0.0);
    let w = randn(&[rows, cols], 44);
    let c = |d: &[f32], s: &[usize]| on(&cpu(), d, s, DType::F32);
    let loss = |x: &[f32], g: &[f32], be: &[f32]| {
        weighted(
            &b.layernorm(&c(x, &[rows, cols]), &c(g, &[cols]), &c(be, &[cols]), EPS)
                .unwrap()
                .0,
            &w,
        )
    };
    let (xt, gt) = (c(&x, &[rows, cols]), c(&gamma, &[cols]));
    let (_, mean, rstd) = b.layernorm(&xt, &gt, &c(&beta, &[cols]), EPS).unwrap();
    let (dx, p) = b
        .layernorm_bwd(&c(&w, &[rows, cols]), &xt, &gt, &mean, &rstd, true)
        .unwrap();
    let (dg, db) = p.unwrap();
    let h = 1e-2;
    assert_grad("layernorm dx", &dx, &numeric_grad(&x, h, |xp| loss(xp, &gamma, &beta)));
    assert_grad(
        "layernorm dgamma",
        &dg,
        &numeric_grad(&gamma, h, |gp| loss(&x, gp, &beta)),
    );
    assert_grad(
        "layernorm dbeta",
        &db,
        &numeric_grad(&beta, h, |bp| loss(&x, &gamma, bp)),
    );
}

#[test]
fn softmax_backward_matches_finite_differences() {
    let (rows, cols) = (3usize, 5usize);
    let dev = cpu();
    let b = dev.backend();
    let x = scaled(&[rows, cols], 51, 2.0, 0.0);
    let w = randn(&[rows, cols], 52);
    let c = |d: &[f32]| on(&cpu(), d, &[rows, cols], DType::F32);
    let y = b.softmax(&c(&x)).unwrap();
    let dx = b.softmax_bwd(&c(&w), &y).unwrap();
    assert_grad(
        "softmax dx",
        &dx,
        &numeric_grad(&x, 1e-2, |xp| weighted(&b.softmax(&c(xp)).unwrap(), &w)),
    );
}

#[test]
fn l2norm_backward_matches_finite_differences() {
    let (rows, cols) = (3usize, 5usize);
    let dev = cpu();
    let b = dev.backend();
    let x = scaled(&[rows, cols], 61, 1.0, 0.2);
    let w = randn(&[rows, cols], 62);
    let c = |d: &[f32]| on(&cpu(), d, &[rows, cols], DType::F32);
    let (y, n) = b.l2norm(&c(&x)).unwrap();
    let dx = b.l2norm_bwd(&c(&w), &y, &n).unwrap();
    assert_grad(
        "l2norm dx",
        &dx,
        &numeric_grad(&x, 1e-2, |xp| weighted(&b.l2norm(&c(xp)).unwrap().0, &w)),
    );
}

// ---- bad input ----------------------------------------------------------------------

#[test]
fn bad_shapes_are_errors() {
    for dev in [cpu(), gpu()] {
        let b = dev.backend();
        let t = |shape: &[usize]| Tensor::zeros(shape, &dev).unwrap();
        let x = t(&[3, 5]);
        let name = dev.kind_name();
        assert!(
            b.layernorm(&x, &t(&[7]), &t(&[7]), EPS).is_err(),
            "{name}: gamma 7 does not divide 15"
        );
        assert!(
            b.layernorm(&x, &t(&[5]), &t(&[4]), EPS).is_err(),
            "{name}: beta size differs"
        );
        assert!(b.layernorm(&x, &t(&[0]), &t(&[0]), EPS).is_err(), "{name}: empty gamma");
        let (_, mean, rstd) = b.layernorm(&x, &t(&[5]), &t(&[5]), EPS).unwrap();
        assert!(
            b.layernorm_bwd(&t(&[3, 4]), &x, &t(&[5]), &mean, &rstd, true).is_err(),
            "{name}: dy shape"
        );
        assert!(
            b.layernorm_bwd(&x, &x, &t(&[5]), &t(&[2]), &rstd, false).is_err(),
            "{name}: mean size"
        );
        assert!(b.softmax(&t(&[])).is_err(), "{name}: softmax of a scalar");
        assert!(b.softmax_bwd(&t(&[3, 4]), &x).is_err(), "{name}: softmax_bwd shapes");
        let (y, _) = b.l2norm(&x).unwrap();
        assert!(b.l2norm_bwd(&x, &y, &t(&[4])).is_err(), "{name}: norm size");
        let ids = Tensor::from_u32(vec![0; 15], &[3, 5], &dev).unwrap();
        assert!(b.softmax(&ids).is_err(), "{name}: u32 input");
    }
}
