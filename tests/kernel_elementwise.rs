//! Element-wise maps, repeating binary ops, reductions, concat/slice, gather/scatter
//! and patchify: wgpu vs CPU, finite-difference and adjoint checks of the CPU
//! backward kernels, and bad inputs.
mod common;
use cliptune::backend::{Act, BinaryOp, PatchSpec};
use cliptune::tensor::Rng;
use cliptune::{DType, Tensor};
use common::*;

const ACTS: [Act; 3] = [Act::None, Act::QuickGelu, Act::Gelu];
const SIZES: [usize; 4] = [1, 3, 257, 70_001];

fn be(d: &cliptune::Device) -> &dyn cliptune::backend::Backend {
    d.backend()
}

fn ids_pair(ids: &[u32]) -> (Tensor, Tensor) {
    (
        Tensor::from_u32(ids.to_vec(), &[ids.len()], &cpu()).unwrap(),
        Tensor::from_u32(ids.to_vec(), &[ids.len()], &gpu()).unwrap(),
    )
}

fn dot64(a: &[f32], b: &[f32]) -> f64 {
    a.iter().zip(b).map(|(&x, &y)| x as f64 * y as f64).sum()
}

#[test]
fn act_and_act_bwd_match_cpu() {
    for &n in &SIZES {
        let (xc, xg) = rand_pair(&[n], 1 + n as u64);
        let (dc, dg) = rand_pair(&[n], 2 + n as u64);
        for act in ACTS {
            let yc = be(&cpu()).act(&xc, act).unwrap();
            let yg = be(&gpu()).act(&xg, act).unwrap();
            assert_close(&format!("act {act:?} n={n}"), &yc, &yg, 1e-5);
            let bc = be(&cpu()).act_bwd(&dc, &xc, act).unwrap();
            let bg = be(&gpu()).act_bwd(&dg, &xg, act).unwrap();
            assert_close(&format!("act_bwd {act:?} n={n}"), &bc, &bg, 1e-5);
        }
    }
}

/// L(x) = sum(act(x) * w); dL/dx by central differences (f64 sums) vs act_bwd(w, x).
#[test]
fn act_bwd_matches_finite_differences() {
    let n = 37;
    let x = randn(&[n], 11);
    let w = randn(&[n], 12);
    let c = cpu();
    let wt = Tensor::from_slice(&w, &[n], &c).unwrap();
    let xt = Tensor::from_slice(&x, &[n], &c).unwrap();
    for act in ACTS {
        let loss = |x: &[f32]| {
            let y = be(&c)
                .act(&Tensor::from_slice(x, &[n], &c).unwrap(), act)
                .unwrap()
                .to_vec()
                .unwrap();
            dot64(&y, &w)
        };
        let grad = be(&c).act_bwd(&wt, &xt, act).unwrap().to_vec().unwrap();
        let eps = 1e-2f32;
        let mut worst = 0.0f64;
        for i in 0..n {
            let (mut xp, mut xm) = (x.clone(), x.clone());
            xp[i] += eps;
            xm[i] -= eps;
            let fd = (loss(&xp) - loss(&xm)) / (2.0 * eps as f64);
            worst = worst.max((fd - grad[i] as f64).abs() / fd.abs().max(1.0));
        }
        eprintln!("act_bwd {act:?} vs finite differences: rel err {worst:.2e}");
        assert!(worst < 1e-2, "act_bwd {act:?}: {worst}");
    }
}

#[test]
fn binary_repeats_b_and_matches_cpu() {
    // (a elements, b elements): b = 1, 7 and full, over odd sizes.
    let mut cases = vec![];
    for &n in &SIZES {
        cases.push((n, 1));
        if n > 1 {
            cases.push((n, n));
        }
    }
    cases.extend([(7, 7), (77, 7), (70_007, 7), (130 * 33, 33)]);
    for (i, &(an, bn)) in cases.iter().enumerate() {
        let (ac, ag) = rand_pair(&[an / bn, bn], 100 + i as u64);
        let (bc, bg) = rand_pair(&[bn], 200 + i as u64);
        for op in [BinaryOp::Add, BinaryOp::Sub, BinaryOp::Mul] {
            let yc = be(&cpu()).binary(op, &ac, &bc).unwrap();
            let yg = be(&gpu()).binary(op, &ag, &bg).unwrap();
            assert_eq!(yc.shape(), ac.shape());
            assert_close(&format!("binary {op:?} a={an} b={bn}"), &yc, &yg, 1e-6);
        }
        // Exact reference for the repeat semantics.
        let (av, bv) = (ac.to_vec().unwrap(), bc.to_vec().unwrap());
        let got = be(&cpu()).binary(BinaryOp::Sub, &ac, &bc).unwrap().to_vec().unwrap();
        for (j, g) in got.iter().enumerate() {
            assert_eq!(*g, av[j] - bv[j % bn]);
        }
    }
}

#[test]
fn affine_and_scalar_tensor_match_cpu() {
    for &n in &SIZES {
        let (xc, xg) = rand_pair(&[n], 300 + n as u64);
        let yc = be(&cpu()).affine(&xc, -1.5, 0.25).unwrap();
        let yg = be(&gpu()).affine(&xg, -1.5, 0.25).unwrap();
        assert_close(&format!("affine n={n}"), &yc, &yg, 1e-6);
        let (sc, sg) = pair(&[0.375], &[1]);
        let yc = be(&cpu()).mul_scalar_tensor(&xc, &sc).unwrap();
        let yg = be(&gpu()).mul_scalar_tensor(&xg, &sg).unwrap();
        assert_close(&format!("mul_scalar_tensor n={n}"), &yc, &yg, 1e-6);
        let x = xc.to_vec().unwrap();
        assert!(yc.to_vec().unwrap().iter().zip(&x).all(|(y, x)| *y == x * 0.375));
    }
}

/// min(x, hi) bit for bit on both backends; NaN stays NaN (pretrain's temperature clamp
/// runs on the device and must not hide a diverged scale).
#[test]
fn clamp_max_is_exact_and_keeps_nan() {
    let hi = 4.605_170_2f32;
    let x = vec![
        0.0,
        hi,
        hi + 1e-6,
        -7.0,
        100.0,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::NAN,
        2.659_26,
    ];
    let want: Vec<u32> = x
        .iter()
        .map(|&v| if v > hi { hi } else { v })
        .map(f32::to_bits)
        .collect();
    for dev in [cpu(), gpu()] {
        let t = Tensor::from_slice(&x, &[x.len()], &dev).unwrap();
        let y = t.clamp_max(hi).unwrap();
        let got: Vec<u32> = y.to_vec().unwrap().iter().map(|v| v.to_bits()).collect();
        assert_eq!(got, want, "clamp_max on {}", dev.kind_name());
        assert!(y.to_vec().unwrap()[7].is_nan());
    }
    for &n in &SIZES {
        let (xc, xg) = rand_pair(&[n], 900 + n as u64);
        let (yc, yg) = (xc.clamp_max(0.5).unwrap(), xg.clamp_max(0.5).unwrap());
        assert_eq!(yc.to_vec().unwrap(), yg.to_vec().unwrap(), "clamp_max n={n}");
    }
    let half = Tensor::from_slice(&x, &[x.len()], &gpu())
        .unwrap()
        .cast(DType::F16)
        .unwrap();
    let e = half
        .clamp_max(hi)
        .expect_err("f16 clamp_max must be refused")
        .to_string();
    assert!(e.contains("clamp_max"), "{e}");
}

/// `clamp_max_assign` gives `clamp_max`'s bits; on a GPU it overwrites a tensor nothing
/// else holds (pretrain's temperature then keeps one buffer from step to step) and never
/// one held elsewhere, whose values must not change.
#[test]
fn clamp_max_assign_overwrites_only_tensors_nothing_else_holds() {
    let hi = 0.5f32;
    let mut x = randn(&[257], 901);
    x[7] = f32::NAN;
    let bits = |t: &Tensor| -> Vec<u32> { t.to_vec().unwrap().iter().map(|v| v.to_bits()).collect() };
    let at = |t: &Tensor| std::ptr::from_ref(t.storage()) as usize;
    for dev in [cpu(), gpu()] {
        let name = dev.kind_name();
        let want = bits(&Tensor::from_slice(&x, &[x.len()], &dev).unwrap().clamp_max(hi).unwrap());
        let mut held = Tensor::from_slice(&x, &[x.len()], &dev).unwrap();
        let other = held.clone();
        let before = at(&held);
        held.clamp_max_assign(hi).unwrap();
        assert_ne!(at(&held), before, "{name}: a held tensor was overwritten");
        assert_eq!(
            bits(&other),
            x.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            "{name}"
        );
        assert_eq!(bits(&held), want, "{name}: held");
        let mut own = Tensor::from_slice(&x, &[x.len()], &dev).unwrap();
        let before = at(&own);
        own.clamp_max_assign(hi).unwrap();
        assert_eq!(at(&own) == before, name != "cpu", "{name}: in place only on a GPU");
        assert_eq!(bits(&own), want, "{name}: in place");
    }
}

#[test]
fn sum_rows_matches_cpu() {
    for &(rows, cols) in &[(1usize, 1usize), (3, 5), (1600, 768), (5000, 3), (70_001, 1), (300, 17)] {
        let (xc, xg) = rand_pair(&[rows, cols], (rows * 31 + cols) as u64);
        let yc = be(&cpu()).sum_rows(&xc, rows, cols).unwrap();
        let yg = be(&gpu()).sum_rows(&xg, rows, cols).unwrap();
        assert_eq!(yc.shape(), &[cols]);
        // f32 chunked sums on the GPU vs f64 on the CPU, over at most 70k terms.
        assert_close(&format!("sum_rows {rows}x{cols}"), &yc, &yg, 1e-5);
        if rows * cols <= 15 {
            let x = xc.to_vec().unwrap();
            let want: Vec<f32> = (0..cols)
                .map(|c| (0..rows).map(|r| x[r * cols + c] as f64).sum::<f64>() as f32)
                .collect();
            assert_eq!(yc.to_vec().unwrap(), want);
        }
    }
}

/// f32 partial sums (8 values per invocation, then tree sums) on the GPU vs f64 on the
/// CPU: the error grows like eps * log2(n) * sum|x|; with a positive mean the total is
/// comparable to sum|x|, so ~1e-5 relative holds with margin.
#[test]
fn sum_all_and_sumsq_match_cpu() {
    for &n in &[1usize, 3, 257, 1_000_003] {
        let data: Vec<f32> = randn(&[n], 77 + n as u64).iter().map(|v| v + 0.5).collect();
        let (xc, xg) = pair(&data, &[n]);
        for (name, c, g) in [
            (
                "sum_all",
                be(&cpu()).sum_all(&xc).unwrap(),
                be(&gpu()).sum_all(&xg).unwrap(),
            ),
            ("sumsq", be(&cpu()).sumsq(&xc).unwrap(), be(&gpu()).sumsq(&xg).unwrap()),
        ] {
            assert_eq!(c.shape(), &[1]);
            let (cv, gv) = (c.item().unwrap() as f64, g.item().unwrap() as f64);
            let rel = (cv - gv).abs() / cv.abs().max(1.0);
            eprintln!("{name} n={n}: cpu {cv} gpu {gv} rel err {rel:.2e} (tol 1e-5)");
            assert!(rel < 1e-5, "{name} n={n}: {rel}");
        }
        let exact: f64 = data.iter().map(|&v| v as f64).sum();
        let cpu_sum = be(&cpu()).sum_all(&xc).unwrap().item().unwrap() as f64;
        assert!((exact - cpu_sum).abs() <= 1e-6 * exact.abs().max(1.0));
    }
}

#[test]
fn concat_slice_round_trip() {
    for &(outer, ia, ib) in &[(1usize, 1usize, 1usize), (3, 5, 2), (17, 33, 1), (77, 130, 64)] {
        let (ac, ag) = rand_pair(&[outer, ia], (outer * ia) as u64);
        let (bc, bg) = rand_pair(&[outer, ib], (outer * ib + 1) as u64);
        for d in [cpu(), gpu()] {
            let (a, b) = if d.is_gpu() { (&ag, &bg) } else { (&ac, &bc) };
            let cat = be(&d).concat(a, b, outer).unwrap();
            assert_eq!(cat.shape(), &[outer, ia + ib]);
            let a2 = be(&d).slice_cols(&cat, outer, 0, ia).unwrap();
            let b2 = be(&d).slice_cols(&cat, outer, ia, ib).unwrap();
            assert_eq!(a2.to_vec().unwrap(), ac.to_vec().unwrap(), "{} a", d.name());
            assert_eq!(b2.to_vec().unwrap(), bc.to_vec().unwrap(), "{} b", d.name());
        }
        let cc = be(&cpu()).concat(&ac, &bc, outer).unwrap();
        let cg = be(&gpu()).concat(&ag, &bg, outer).unwrap();
        assert_close(&format!("concat {outer}x({ia}+{ib})"), &cc, &cg, 0.0);
        let sc = be(&cpu()).slice_cols(&cc, outer, 1, ia + ib - 1).unwrap();
        let sg = be(&gpu()).slice_cols(&cg, outer, 1, ia + ib - 1).unwrap();
        assert_close(&format!("slice_cols {outer}x{}", ia + ib - 1), &sc, &sg, 0.0);
    }
    assert!(be(&cpu())
        .slice_cols(&Tensor::zeros(&[2, 3], &cpu()).unwrap(), 2, 2, 2)
        .is_err());
    assert!(be(&gpu())
        .slice_cols(&Tensor::zeros(&[2, 3], &gpu()).unwrap(), 2, 2, 2)
        .is_err());
}

fn repeated_ids(n: usize, rows: usize, seed: u64) -> Vec<u32> {
    let mut r = Rng::new(seed);
    // Few distinct ids so most repeat; always include the last row.
    let mut ids: Vec<u32> = (0..n)
        .map(|_| r.below(rows.min(5)) as u32 * (rows as u32 / 5).max(1))
        .collect();
    ids[n / 2] = rows as u32 - 1;
    ids
}

#[test]
fn gather_rows_f32_f16_bf16_match_cpu() {
    for &(rows, width, n) in &[(1usize, 1usize, 1usize), (50, 33, 17), (49, 77, 130), (7, 3, 5)] {
        let ids = repeated_ids(n, rows, rows as u64);
        let (ic, ig) = ids_pair(&ids);
        let (tc, tg) = rand_pair(&[rows, width], 500 + rows as u64);
        for dt in [DType::F32, DType::F16, DType::BF16] {
            let (tc, tg) = (tc.cast(dt).unwrap(), tg.cast(dt).unwrap());
            let yc = be(&cpu()).gather_rows(&tc, &ic).unwrap();
            let yg = be(&gpu()).gather_rows(&tg, &ig).unwrap();
            assert_eq!(yc.shape(), &[n, width]);
            // Both read the same stored halves: exact.
            assert_close(&format!("gather_rows {dt:?} [{rows},{width}] n={n}"), &yc, &yg, 0.0);
            let t = tc.to_vec().unwrap();
            let y = yc.to_vec().unwrap();
            for (i, &id) in ids.iter().enumerate() {
                assert_eq!(
                    &y[i * width..(i + 1) * width],
                    &t[id as usize * width..(id as usize + 1) * width]
                );
            }
        }
    }
    // Output keeps the ids' shape: [batch, seq] ids -> [batch, seq, width].
    let ids = Tensor::from_u32(vec![0, 1, 2, 1, 0, 2], &[2, 3], &gpu()).unwrap();
    let t = Tensor::randn(&[3, 4], 1.0, 5, &gpu()).unwrap();
    assert_eq!(be(&gpu()).gather_rows(&t, &ids).unwrap().shape(), &[2, 3, 4]);
}

#[test]
fn gather_out_of_range_id() {
    let (tc, tg) = rand_pair(&[4, 3], 9);
    let (ic, ig) = ids_pair(&[1, 4, 0]);
    let err = be(&cpu()).gather_rows(&tc, &ic).unwrap_err();
    assert!(err.msg.contains('4') && err.msg.contains("4 rows"), "{}", err.msg);
    // GPU: documented zero row for an out-of-range id, the others intact.
    let y = be(&gpu()).gather_rows(&tg, &ig).unwrap().to_vec().unwrap();
    let t = tc.to_vec().unwrap();
    assert_eq!(&y[0..3], &t[3..6]);
    assert_eq!(&y[3..6], &[0.0, 0.0, 0.0]);
    assert_eq!(&y[6..9], &t[0..3]);
    assert!(be(&cpu()).scatter_add_rows(&tc, &ic, 2).is_err());
}

#[test]
fn scatter_add_rows_matches_cpu() {
    for &(rows, width, n) in &[
        (1usize, 1usize, 1usize),
        (50, 33, 17),
        (49, 77, 130),
        (7, 3, 5),
        (1000, 5, 40),
    ] {
        let ids = repeated_ids(n, rows, 7 + rows as u64);
        let (ic, ig) = ids_pair(&ids);
        let (dc, dg) = rand_pair(&[n, width], 600 + n as u64);
        let yc = be(&cpu()).scatter_add_rows(&dc, &ic, rows).unwrap();
        let yg = be(&gpu()).scatter_add_rows(&dg, &ig, rows).unwrap();
        assert_eq!(yc.shape(), &[rows, width]);
        // Same summation order on both: exact.
        assert_close(&format!("scatter_add_rows [{rows},{width}] n={n}"), &yc, &yg, 0.0);
    }
}

/// <gather(T), Y> == <T, scatter(Y)>, and dL/dT of L = <gather(T), Y> by central
/// differences equals scatter(Y) (on CPU, repeated ids, f64 dot products).
#[test]
fn scatter_is_adjoint_of_gather() {
    let (rows, width, n) = (9usize, 4usize, 13usize);
    let ids = repeated_ids(n, rows, 3);
    let c = cpu();
    let idt = Tensor::from_u32(ids.clone(), &[n], &c).unwrap();
    let t = randn(&[rows, width], 21);
    let y = randn(&[n, width], 22);
    let tt = Tensor::from_slice(&t, &[rows, width], &c).unwrap();
    let yt = Tensor::from_slice(&y, &[n, width], &c).unwrap();
    let g = be(&c).gather_rows(&tt, &idt).unwrap().to_vec().unwrap();
    let s = be(&c).scatter_add_rows(&yt, &idt, rows).unwrap().to_vec().unwrap();
    let (lhs, rhs) = (dot64(&g, &y), dot64(&t, &s));
    eprintln!("gather/scatter adjoint: {lhs} vs {rhs}");
    assert!((lhs - rhs).abs() <= 1e-5 * lhs.abs().max(1.0));
    let loss = |t: &[f32]| {
        let tt = Tensor::from_slice(t, &[rows, width], &c).unwrap();
        dot64(&be(&c).gather_rows(&tt, &idt).unwrap().to_vec().unwrap(), &y)
    };
    let eps = 1e-2f32;
    let mut worst = 0.0f64;
    for i in 0..rows * width {
        let (mut tp, mut tm) = (t.clone(), t.clone());
        tp[i] += eps;
        tm[i] -= eps;
        let fd = (loss(&tp) - loss(&tm)) / (2.0 * eps as f64);
        worst = worst.max((fd - s[i] as f64).abs() / fd.abs().max(1.0));
    }
    eprintln!("scatter_add_rows vs finite differences: rel err {worst:.2e}");
    assert!(worst < 1e-2);
}

/// Direct definition: out[b, py*gw+px, (c*p+ky)*p+kx] = img[b, c, py*p+ky, px*p+kx].
fn naive_patchify(img: &[f32], s: &PatchSpec) -> Vec<f32> {
    let (gh, gw) = s.grid();
    let p = s.patch;
    let mut out = vec![f32::NAN; s.batch * s.num_patches() * s.patch_len()];
    for b in 0..s.batch {
        for py in 0..gh {
            for px in 0..gw {
                for c in 0..s.channels {
                    for ky in 0..p {
                        for kx in 0..p {
                            let o = (b * s.num_patches() + py * gw + px) * s.patch_len() + (c * p + ky) * p + kx;
                            let i = ((b * s.channels + c) * s.height + py * p + ky) * s.width + px * p + kx;
                            out[o] = img[i];
                        }
                    }
                }
            }
        }
    }
    out
}

#[test]
fn patchify_unpatchify_exact_and_match_reference() {
    let specs = [
        PatchSpec {
            batch: 1,
            channels: 3,
            height: 8,
            width: 8,
            patch: 4,
        },
        PatchSpec {
            batch: 2,
            channels: 3,
            height: 6,
            width: 9,
            patch: 3,
        },
        PatchSpec {
            batch: 3,
            channels: 3,
            height: 32,
            width: 32,
            patch: 8,
        },
        PatchSpec {
            batch: 1,
            channels: 1,
            height: 5,
            width: 5,
            patch: 1,
        },
    ];
    for (k, s) in specs.iter().enumerate() {
        let shape = [s.batch, s.channels, s.height, s.width];
        let img = randn(&shape, 40 + k as u64);
        let want = naive_patchify(&img, s);
        let (ic, ig) = pair(&img, &shape);
        for d in [cpu(), gpu()] {
            let i = if d.is_gpu() { &ig } else { &ic };
            let p = be(&d).patchify(i, s).unwrap();
            assert_eq!(p.shape(), &[s.batch, s.num_patches(), s.patch_len()]);
            assert_eq!(p.to_vec().unwrap(), want, "patchify {s:?} on {}", d.name());
            let back = be(&d).unpatchify(&p, s).unwrap();
            assert_eq!(back.shape(), &shape);
            assert_eq!(
                back.to_vec().unwrap(),
                img,
                "unpatchify round trip {s:?} on {}",
                d.name()
            );
        }
        eprintln!("patchify {s:?}: exact on both backends (rel err 0)");
    }
}

/// <patchify(X), Y> == <X, unpatchify(Y)>; with central differences on a few entries.
#[test]
fn unpatchify_is_adjoint_of_patchify() {
    let s = PatchSpec {
        batch: 2,
        channels: 3,
        height: 6,
        width: 9,
        patch: 3,
    };
    let c = cpu();
    let shape = [s.batch, s.channels, s.height, s.width];
    let pshape = [s.batch, s.num_patches(), s.patch_len()];
    let x = randn(&shape, 31);
    let y = randn(&pshape, 32);
    let xt = Tensor::from_slice(&x, &shape, &c).unwrap();
    let yt = Tensor::from_slice(&y, &pshape, &c).unwrap();
    let px = be(&c).patchify(&xt, &s).unwrap().to_vec().unwrap();
    let uy = be(&c).unpatchify(&yt, &s).unwrap().to_vec().unwrap();
    let (lhs, rhs) = (dot64(&px, &y), dot64(&x, &uy));
    eprintln!("patchify/unpatchify adjoint: {lhs} vs {rhs}");
    assert!((lhs - rhs).abs() <= 1e-6 * lhs.abs().max(1.0));
    let loss = |x: &[f32]| {
        let xt = Tensor::from_slice(x, &shape, &c).unwrap();
        dot64(&be(&c).patchify(&xt, &s).unwrap().to_vec().unwrap(), &y)
    };
    let eps = 1e-2f32;
    let mut r = Rng::new(5);
    for _ in 0..40 {
        let i = r.below(x.len());
        let (mut xp, mut xm) = (x.clone(), x.clone());
        xp[i] += eps;
        xm[i] -= eps;
        let fd = (loss(&xp) - loss(&xm)) / (2.0 * eps as f64);
        assert!(
            (fd - uy[i] as f64).abs() <= 1e-2 * fd.abs().max(1.0),
            "entry {i}: fd {fd} vs {}",
            uy[i]
        );
    }
}

#[test]
fn bad_inputs_are_errors() {
    for d in [cpu(), gpu()] {
        let b = be(&d);
        let a = Tensor::zeros(&[10], &d).unwrap();
        let b3 = Tensor::zeros(&[3], &d).unwrap();
        let e = b.binary(BinaryOp::Add, &a, &b3).unwrap_err();
        assert!(e.msg.contains("binary"), "{}", e.msg);
        let img = Tensor::zeros(&[1, 3, 7, 8], &d).unwrap();
        let s = PatchSpec {
            batch: 1,
            channels: 3,
            height: 7,
            width: 8,
            patch: 4,
        };
        assert!(b.patchify(&img, &s).unwrap_err().msg.contains("divisible"));
        assert!(b.unpatchify(&img, &s).is_err());
        let s = PatchSpec {
            batch: 2,
            channels: 3,
            height: 8,
            width: 8,
            patch: 4,
        };
        assert!(b.patchify(&img, &s).is_err(), "size mismatch");
        assert!(b.sum_rows(&a, 3, 3).is_err());
        assert!(b.act_bwd(&a, &b3, Act::Gelu).is_err());
        assert!(b.mul_scalar_tensor(&a, &b3).is_err());
        assert!(b.concat(&a, &b3, 4).is_err());
        let ids = Tensor::from_u32(vec![0, 1], &[2], &d).unwrap();
        assert!(b.scatter_add_rows(&b3, &ids, 4).is_err(), "3 values over 2 ids");
        assert!(b.gather_rows(&a, &a).is_err(), "f32 ids");
    }
}
