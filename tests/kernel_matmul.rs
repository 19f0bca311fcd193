//! Matmul with fused bias + activation: CPU vs a naive f64 reference, wgpu vs CPU,
//! half-precision B, the activation derivative, and bad sizes.
//!
//! Tolerance: errors are relative to max(1, max |C|) (see `rel_err`). With N(0,1)
//! inputs a length-k f32 dot product accumulates rounding like a random walk, about
//! u * k / sqrt(2) absolute (u = 6e-8), while |C| grows like sqrt(k); so the relative
//! error grows like u * sqrt(k), and 1e-5 * sqrt(k) leaves ~100x headroom for the
//! different summation orders of the two backends without hiding a wrong element
//! (one wrong term in a sum is an O(1) error).
mod common;
use cliptune::backend::cpu::{act_apply, act_grad};
use cliptune::backend::wgpu::{matmul_variant, MatmulVariant};
use cliptune::backend::{Act, Device, MatmulSpec};
use cliptune::{DType, Tensor};
use common::*;

const ACTS: [Act; 3] = [Act::None, Act::QuickGelu, Act::Gelu];
const SHAPES: [(usize, usize, usize); 6] = [
    (1, 1, 1),
    (3, 5, 7),
    (17, 33, 9),
    (64, 64, 64),
    (65, 130, 77),
    (50, 96, 96),
];

fn tol(k: usize) -> f32 {
    1e-5 * (k.max(1) as f32).sqrt()
}

fn spec(batch: usize, (m, n, k): (usize, usize, usize), trans_a: bool, trans_b: bool, b_shared: bool) -> MatmulSpec {
    MatmulSpec {
        batch,
        m,
        n,
        k,
        trans_a,
        trans_b,
        b_shared,
    }
}

fn a_shape(s: &MatmulSpec) -> Vec<usize> {
    let mat = if s.trans_a { [s.k, s.m] } else { [s.m, s.k] };
    if s.batch == 1 {
        mat.to_vec()
    } else {
        vec![s.batch, mat[0], mat[1]]
    }
}

fn b_shape(s: &MatmulSpec) -> Vec<usize> {
    let mat = if s.trans_b { [s.n, s.k] } else { [s.k, s.n] };
    if s.batch == 1 || s.b_shared {
        mat.to_vec()
    } else {
        vec![s.batch, mat[0], mat[1]]
    }
}

fn out_shape(s: &MatmulSpec) -> Vec<usize> {
    if s.batch == 1 {
        vec![s.m, s.n]
    } else {
        vec![s.batch, s.m, s.n]
    }
}

/// Triple loop in f64 straight from the MatmulSpec doc: (pre-activation, output).
fn naive(a: &[f32], b: &[f32], bias: Option<&[f32]>, act: Act, s: &MatmulSpec) -> (Vec<f32>, Vec<f32>) {
    let (m, n, k) = (s.m, s.n, s.k);
    let mut pre = vec![0.0f32; s.batch * m * n];
    for z in 0..s.batch {
        let a = &a[z * m * k..];
        let b = if s.b_shared { b } else { &b[z * k * n..] };
        for i in 0..m {
            for j in 0..n {
                let mut acc = 0.0f64;
                for p in 0..k {
                    let x = if s.trans_a { a[p * m + i] } else { a[i * k + p] };
                    let y = if s.trans_b { b[j * k + p] } else { b[p * n + j] };
                    acc += x as f64 * y as f64;
                }
                if let Some(bias) = bias {
                    acc += bias[j] as f64;
                }
                pre[(z * m + i) * n + j] = acc as f32;
            }
        }
    }
    let out = pre.iter().map(|&x| act_apply(x, act)).collect();
    (pre, out)
}

struct Inputs {
    a: Vec<f32>,
    b: Vec<f32>,
    bias: Vec<f32>,
}

fn inputs(s: &MatmulSpec, seed: u64) -> Inputs {
    Inputs {
        a: randn(&a_shape(s), seed),
        b: randn(&b_shape(s), seed + 1),
        bias: randn(&[s.n], seed + 2),
    }
}

/// Runs the matmul on `dev`, B and bias stored as `b_dtype` (a frozen half-precision
/// Linear); returns (out, pre) as host vectors.
#[allow(clippy::too_many_arguments)]
fn run(
    dev: &Device,
    x: &Inputs,
    s: &MatmulSpec,
    bias: bool,
    act: Act,
    keep: bool,
    b_dtype: DType,
) -> (Vec<f32>, Option<Vec<f32>>) {
    let a = Tensor::from_slice(&x.a, &a_shape(s), dev).unwrap();
    let b = Tensor::from_slice(&x.b, &b_shape(s), dev)
        .unwrap()
        .cast(b_dtype)
        .unwrap();
    let bias_t = bias.then(|| Tensor::from_slice(&x.bias, &[s.n], dev).unwrap().cast(b_dtype).unwrap());
    let (out, pre) = dev.backend().matmul(&a, &b, bias_t.as_ref(), act, s, keep).unwrap();
    assert_eq!(out.shape(), out_shape(s).as_slice(), "{s:?}");
    assert_eq!(pre.is_some(), keep && act != Act::None, "{s:?} keep={keep} act={act:?}");
    if let Some(p) = &pre {
        assert_eq!(p.shape(), out.shape());
    }
    (out.to_vec().unwrap(), pre.map(|p| p.to_vec().unwrap()))
}

/// Every (batch, b_shared) layout worth testing for a shape.
fn layouts() -> [(usize, bool); 3] {
    [(1, false), (3, false), (3, true)]
}

fn check_cpu_vs_naive(s: &MatmulSpec, seed: u64, worst: &mut f32) {
    let x = inputs(s, seed);
    let combos = [
        (false, Act::None, false),
        (true, Act::QuickGelu, true),
        (true, Act::Gelu, false),
        (false, Act::Gelu, true),
    ];
    for (bias, act, keep) in combos {
        let (out, pre) = run(&cpu(), &x, s, bias, act, keep, DType::F32);
        let (rpre, rout) = naive(&x.a, &x.b, bias.then_some(x.bias.as_slice()), act, s);
        let e = rel_err(&rout, &out);
        assert!(e <= tol(s.k), "cpu vs naive {s:?} bias={bias} {act:?}: {e}");
        *worst = worst.max(e);
        if let Some(pre) = pre {
            let e = rel_err(&rpre, &pre);
            assert!(e <= tol(s.k), "cpu preact vs naive {s:?}: {e}");
        }
    }
}

#[test]
fn cpu_matches_naive_reference() {
    let mut worst = 0.0f32;
    let mut seed = 1;
    for &shape in &SHAPES {
        for (batch, shared) in layouts() {
            for ta in [false, true] {
                for tb in [false, true] {
                    check_cpu_vs_naive(&spec(batch, shape, ta, tb, shared), seed, &mut worst);
                    seed += 10;
                }
            }
        }
    }
    eprintln!("cpu vs naive f64, small shapes: worst rel err {worst:.2e}");
}

/// Shapes large enough to take the threaded paths: row split, column split (few rows,
/// wide C), one batch per thread, a few big batches split inside, the tall b_shared GEMM.
#[test]
fn cpu_parallel_paths_match_naive() {
    let mut worst = 0.0f32;
    let cases = [
        (1, (203, 97, 70), false),
        (1, (4, 301, 260), false),
        (1, (2, 1000, 300), false),
        // taller than the split alignment but wider than tall: the column split
        (1, (203, 517, 96), false),
        (4, (61, 203, 88), true),
        (8, (37, 29, 23), false),
        (3, (90, 70, 60), false),
        (3, (90, 70, 60), true),
        (3, (140, 130, 120), false),
        (5, (41, 130, 77), true),
    ];
    let mut seed = 500;
    for (batch, shape, shared) in cases {
        for ta in [false, true] {
            for tb in [false, true] {
                check_cpu_vs_naive(&spec(batch, shape, ta, tb, shared), seed, &mut worst);
                seed += 10;
            }
        }
    }
    eprintln!("cpu vs naive f64, threaded paths: worst rel err {worst:.2e}");
}

#[test]
fn wgpu_matches_cpu_all_combos() {
    let mut worst = 0.0f32;
    let mut worst_pre = 0.0f32;
    let mut seed = 1000;
    let mut case = 0usize;
    for &shape in &SHAPES {
        for (batch, shared) in layouts() {
            for ta in [false, true] {
                for tb in [false, true] {
                    let s = spec(batch, shape, ta, tb, shared);
                    let x = inputs(&s, seed);
                    seed += 10;
                    for bias in [false, true] {
                        for act in ACTS {
                            case += 1;
                            let keep = case % 2 == 0;
                            let (c_out, c_pre) = run(&cpu(), &x, &s, bias, act, keep, DType::F32);
                            let (g_out, g_pre) = run(&gpu(), &x, &s, bias, act, keep, DType::F32);
                            let e = rel_err(&c_out, &g_out);
                            assert!(e <= tol(s.k), "wgpu vs cpu {s:?} bias={bias} {act:?} keep={keep}: {e}");
                            worst = worst.max(e);
                            if let (Some(c), Some(g)) = (c_pre, g_pre) {
                                let e = rel_err(&c, &g);
                                assert!(e <= tol(s.k), "wgpu vs cpu preact {s:?}: {e}");
                                worst_pre = worst_pre.max(e);
                            }
                        }
                    }
                }
            }
        }
    }
    eprintln!("wgpu vs cpu, {case} cases: worst rel err {worst:.2e} (preact {worst_pre:.2e})");
}

#[test]
fn half_precision_b_wgpu_matches_cpu() {
    let mut worst = 0.0f32;
    let mut seed = 5000;
    // Odd n*k makes the last half word of B half-empty; odd k misaligns transposed rows.
    let shapes = [(3, 5, 7), (17, 33, 9), (65, 130, 77), (50, 96, 96)];
    for dt in [DType::F16, DType::BF16] {
        for &shape in &shapes {
            for (batch, shared) in layouts() {
                for tb in [false, true] {
                    let s = spec(batch, shape, false, tb, shared);
                    let x = inputs(&s, seed);
                    seed += 10;
                    let act = ACTS[seed as usize / 10 % 3];
                    let (c_out, _) = run(&cpu(), &x, &s, true, act, false, dt);
                    let (g_out, g_pre) = run(&gpu(), &x, &s, true, act, true, dt);
                    let e = rel_err(&c_out, &g_out);
                    assert!(e <= tol(s.k), "{dt:?} B: wgpu vs cpu {s:?} {act:?}: {e}");
                    worst = worst.max(e);
                    if act != Act::None {
                        let (_, c_pre) = run(&cpu(), &x, &s, true, act, true, dt);
                        let e = rel_err(&c_pre.unwrap(), &g_pre.unwrap());
                        assert!(e <= tol(s.k), "{dt:?} B preact {s:?}: {e}");
                    }
                    // Half storage means exactly "f32 B rounded to half", on the CPU too.
                    let round = |v: &[f32], shape: &[usize]| {
                        Tensor::from_slice(v, shape, &cpu())
                            .unwrap()
                            .cast(dt)
                            .unwrap()
                            .to_vec()
                            .unwrap()
                    };
                    let xr = Inputs {
                        a: x.a.clone(),
                        b: round(&x.b, &b_shape(&s)),
                        bias: round(&x.bias, &[s.n]),
                    };
                    let (c_ref, _) = run(&cpu(), &xr, &s, true, act, false, DType::F32);
                    assert_eq!(c_ref, c_out, "{dt:?} B on cpu differs from f32 B rounded to {dt:?}");
                }
            }
        }
    }
    eprintln!("half B (f16, bf16) wgpu vs cpu: worst rel err {worst:.2e}");
}

/// Runs one explicit kernel variant on the GPU (the backend's `matmul` is `Auto`).
#[allow(clippy::too_many_arguments)]
fn run_variant(
    v: MatmulVariant,
    x: &Inputs,
    s: &MatmulSpec,
    bias: bool,
    act: Act,
    keep: bool,
    b_dtype: DType,
) -> (Vec<f32>, Option<Vec<f32>>) {
    let dev = gpu();
    let Device::Gpu(g) = &dev else { unreachable!() };
    let a = Tensor::from_slice(&x.a, &a_shape(s), &dev).unwrap();
    let b = Tensor::from_slice(&x.b, &b_shape(s), &dev)
        .unwrap()
        .cast(b_dtype)
        .unwrap();
    let bias_t = bias.then(|| {
        Tensor::from_slice(&x.bias, &[s.n], &dev)
            .unwrap()
            .cast(b_dtype)
            .unwrap()
    });
    let (out, pre) = matmul_variant(g, v, &a, &b, bias_t.as_ref(), act, s, keep).unwrap();
    assert_eq!(out.shape(), out_shape(s).as_slice(), "{v:?} {s:?}");
    assert_eq!(pre.is_some(), keep && act != Act::None, "{v:?} {s:?}");
    (out.to_vec().unwrap(), pre.map(|p| p.to_vec().unwrap()))
}

/// Every kernel variant (tile shapes, split-K, the naive kernel) against the CPU on
/// shapes that make it take each path: whole interior tiles (128x128, 64x64, 128x16
/// multiples), edge tiles, a partial last k-step, scalar loads where the contiguous
/// dimension is not a multiple of 4 and vec4 loads where it is, every transpose, f16
/// and bf16 B, each epilogue (bias, both activations, the kept pre-activation).
#[test]
fn wgpu_every_variant_matches_cpu() {
    // (rows, cols, k): interior tiles of every tile shape; odd m, n, k (edge tiles,
    // scalar loads, a partial k-step); N = 8 and 12 (skinny); K = 520 and 1030 (split).
    let shapes = [
        (256, 128, 64),
        (130, 68, 77),
        (37, 12, 60),
        (96, 8, 520),
        (20, 36, 1030),
        (3, 5, 7),
    ];
    let epilogues = [
        (false, Act::None, false),
        (true, Act::QuickGelu, true),
        (true, Act::Gelu, false),
        (true, Act::None, false),
    ];
    let trans = [(false, false), (false, true), (true, false), (true, true)];
    let mut seed = 9000;
    let mut worst = 0.0f32;
    let mut cases = 0;
    let variants = [
        MatmulVariant::Tile128,
        MatmulVariant::Tile128x64,
        MatmulVariant::Tile64,
        MatmulVariant::Skinny,
        MatmulVariant::SplitK,
        MatmulVariant::Naive,
    ];
    for (vi, v) in variants.into_iter().enumerate() {
        // Rotations so each variant meets every transpose, B dtype, layout and epilogue.
        for (si, &shape) in shapes.iter().enumerate() {
            let (ta, tb) = trans[(si + vi) % 4];
            let (batch, shared) = layouts()[(2 * si + vi) % 3];
            let s = spec(batch, shape, ta, tb, shared);
            let x = inputs(&s, seed);
            seed += 10;
            let (bias, act, keep) = epilogues[(si + 2 * vi) % 4];
            let dt = [DType::F32, DType::F16, DType::BF16][(si + vi) % 3];
            let (c_out, c_pre) = run(&cpu(), &x, &s, bias, act, keep, dt);
            let (g_out, g_pre) = run_variant(v, &x, &s, bias, act, keep, dt);
            let e = rel_err(&c_out, &g_out);
            assert!(e <= tol(s.k), "{v:?} vs cpu {s:?} {dt:?} bias={bias} {act:?}: {e}");
            worst = worst.max(e);
            if let (Some(c), Some(g)) = (c_pre, g_pre) {
                let e = rel_err(&c, &g);
                assert!(e <= tol(s.k), "{v:?} preact vs cpu {s:?} {dt:?}: {e}");
            }
            cases += 1;
        }
    }
    eprintln!("every matmul variant vs cpu, {cases} cases: worst rel err {worst:.2e}");
}

#[test]
fn unknown_variant_is_an_error_naming_the_choices() {
    let e = MatmulVariant::parse("tile256").unwrap_err();
    assert!(
        e.msg.contains("tile256") && e.msg.contains("tile128") && e.msg.contains("naive"),
        "{}",
        e.msg
    );
    assert_eq!(MatmulVariant::parse("splitk").unwrap(), MatmulVariant::SplitK);
}

#[test]
fn act_grad_matches_finite_differences() {
    // x and x +- h are exact in f32 (multiples of 2^-10), so the only errors are the
    // truncation, ~h^2 |f'''| / 6 ~ 1e-5, and f32 output rounding, ~u |f| / h ~ 5e-5.
    let h = 1.0f64 / 128.0;
    for act in ACTS {
        let mut worst = 0.0f64;
        for i in -768..=768 {
            let x = i as f64 / 128.0 + 1.0 / 1024.0;
            let f = |x: f64| act_apply(x as f32, act) as f64;
            let fd = (f(x + h) - f(x - h)) / (2.0 * h);
            let g = act_grad(x as f32, act) as f64;
            let e = (fd - g).abs() / g.abs().max(1.0);
            assert!(e <= 1e-3, "{act:?} at x={x}: act_grad {g} vs finite difference {fd}");
            worst = worst.max(e);
        }
        eprintln!("act_grad {act:?} vs finite differences on [-6, 6]: worst rel err {worst:.2e}");
    }
}

/// CPU GEMM throughput at CLIP shapes (`cargo test --test kernel_matmul -- --ignored
/// --nocapture`); DESIGN.md measured 130-141 GFLOP/s on two cores for the plain GEMM.
#[test]
#[ignore]
fn cpu_throughput() {
    let cases = [
        (
            "1600x768x768 x W^T + bias",
            spec(1, (1600, 768, 768), false, true, false),
            true,
            Act::None,
        ),
        (
            "2464x2048x512 x W^T + bias + quick_gelu",
            spec(1, (2464, 2048, 512), false, true, false),
            true,
            Act::QuickGelu,
        ),
        (
            "2464x2048x512 x W^T + bias + gelu",
            spec(1, (2464, 2048, 512), false, true, false),
            true,
            Act::Gelu,
        ),
        (
            "dW = dY^T X, 768x768x1600",
            spec(1, (768, 768, 1600), true, false, false),
            false,
            Act::None,
        ),
        (
            "32 x 50x768x768 batched",
            spec(32, (50, 768, 768), false, true, false),
            false,
            Act::None,
        ),
        (
            "4x2048x768 (few rows)",
            spec(1, (4, 2048, 768), false, true, false),
            true,
            Act::None,
        ),
    ];
    for (name, s, bias, act) in cases {
        let x = inputs(&s, 7);
        let a = Tensor::from_slice(&x.a, &a_shape(&s), &cpu()).unwrap();
        let b = Tensor::from_slice(&x.b, &b_shape(&s), &cpu()).unwrap();
        let bias_t = bias.then(|| Tensor::from_slice(&x.bias, &[s.n], &cpu()).unwrap());
        let reps = (2e10 / s.flops()).clamp(3.0, 200.0) as usize;
        let mut best = f64::MAX;
        for _ in 0..reps {
            let t = std::time::Instant::now();
            let r = cpu().backend().matmul(&a, &b, bias_t.as_ref(), act, &s, false).unwrap();
            best = best.min(t.elapsed().as_secs_f64());
            drop(r);
        }
        eprintln!("{name}: {:.1} GFLOP/s ({:.2} ms)", s.flops() / best / 1e9, best * 1e3);
    }
}

#[test]
fn bad_input_is_an_error() {
    for dev in [cpu(), gpu()] {
        let be = dev.backend();
        let s = spec(2, (3, 4, 5), false, true, false);
        let a = Tensor::zeros(&[2, 3, 5], &dev).unwrap();
        let b = Tensor::zeros(&[2, 4, 5], &dev).unwrap();
        assert!(be.matmul(&a, &b, None, Act::None, &s, false).is_ok());
        let a_bad = Tensor::zeros(&[2, 3, 4], &dev).unwrap();
        let e = be.matmul(&a_bad, &b, None, Act::None, &s, false).unwrap_err();
        assert_eq!(e.kind, cliptune::ErrorKind::Shape, "{}", e.msg);
        assert!(e.msg.contains("matmul"), "{}", e.msg);
        // Shared B must not have a batch dimension's worth of elements.
        let shared = MatmulSpec { b_shared: true, ..s };
        assert!(be.matmul(&a, &b, None, Act::None, &shared, false).is_err());
        let bias = Tensor::zeros(&[5], &dev).unwrap();
        assert!(be.matmul(&a, &b, Some(&bias), Act::Gelu, &s, true).is_err());
        // Operands on the other device.
        let other = if dev.is_gpu() { cpu() } else { gpu() };
        let b_other = Tensor::zeros(&[2, 4, 5], &other).unwrap();
        assert!(be.matmul(&a, &b_other, None, Act::None, &s, false).is_err());
        let ids = Tensor::from_u32(vec![0; 40], &[2, 4, 5], &dev).unwrap();
        assert!(be.matmul(&a, &ids, None, Act::None, &s, false).is_err());
        let huge = MatmulSpec {
            batch: 1 << 40,
            m: 1 << 30,
            ..s
        };
        assert!(be.matmul(&a, &b, None, Act::None, &huge, false).is_err());
    }
}
