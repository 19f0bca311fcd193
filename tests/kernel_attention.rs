//! Fused attention, forward and backward: CPU vs a naive reference and finite
//! differences, wgpu vs CPU.
mod common;
use cliptune::backend::AttnSpec;
use cliptune::{DType, Tensor};
use common::*;

fn spec(batch: usize, seq: usize, heads: usize, head_dim: usize, causal: bool) -> AttnSpec {
    AttnSpec {
        batch,
        seq,
        heads,
        head_dim,
        causal,
        scale: 1.0 / (head_dim as f32).sqrt(),
    }
}

/// (batch, seq, heads, head_dim): CLIP's head_dim 64 and odd, non-tile sizes.
/// (2, 19, 2, 128) fills every per-thread register slot of the WGSL kernels.
const SHAPES: [(usize, usize, usize, usize); 7] = [
    (1, 1, 1, 8),
    (2, 5, 3, 16),
    (2, 50, 4, 64),
    (1, 77, 2, 64),
    (3, 17, 2, 33),
    (1, 130, 1, 64),
    (2, 19, 2, 128),
];

/// Explicit scores matrix + softmax in f64: (out, lse).
fn naive_forward(q: &[f32], k: &[f32], v: &[f32], s: &AttnSpec) -> (Vec<f32>, Vec<f32>) {
    let hd = s.heads * s.head_dim;
    let mut out = vec![0.0f32; q.len()];
    let mut lse = vec![0.0f32; s.batch * s.heads * s.seq];
    for b in 0..s.batch {
        for h in 0..s.heads {
            let at = |t: usize, d: usize| b * s.seq * hd + t * hd + h * s.head_dim + d;
            for i in 0..s.seq {
                let n = if s.causal { i + 1 } else { s.seq };
                let scores: Vec<f64> = (0..n)
                    .map(|j| {
                        let dot: f64 = (0..s.head_dim).map(|d| q[at(i, d)] as f64 * k[at(j, d)] as f64).sum();
                        s.scale as f64 * dot
                    })
                    .collect();
                let m = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let sum: f64 = scores.iter().map(|x| (x - m).exp()).sum();
                lse[(b * s.heads + h) * s.seq + i] = (m + sum.ln()) as f32;
                for d in 0..s.head_dim {
                    let o: f64 = (0..n).map(|j| (scores[j] - m).exp() / sum * v[at(j, d)] as f64).sum();
                    out[at(i, d)] = o as f32;
                }
            }
        }
    }
    (out, lse)
}

fn qkv(s: &AttnSpec, seed: u64) -> [Vec<f32>; 3] {
    let shape = [s.batch, s.seq, s.heads * s.head_dim];
    [randn(&shape, seed), randn(&shape, seed + 1), randn(&shape, seed + 2)]
}

fn dims(s: &AttnSpec) -> [usize; 3] {
    [s.batch, s.seq, s.heads * s.head_dim]
}

#[test]
fn cpu_forward_matches_naive_reference() {
    for &(b, n, h, dh) in &SHAPES {
        for causal in [false, true] {
            let s = spec(b, n, h, dh, causal);
            let [q, k, v] = qkv(&s, 11);
            let t = |x: &[f32]| Tensor::from_slice(x, &dims(&s), &cpu()).unwrap();
            let (out, lse) = cpu().backend().attention(&t(&q), &t(&k), &t(&v), &s).unwrap();
            assert_eq!(out.shape(), &dims(&s));
            assert_eq!(lse.shape(), &[b, h, n]);
            let (want_o, want_l) = naive_forward(&q, &k, &v, &s);
            let eo = rel_err(&want_o, &out.to_vec().unwrap());
            let el = rel_err(&want_l, &lse.to_vec().unwrap());
            eprintln!("cpu vs naive {s:?}: out {eo:.2e}, lse {el:.2e}");
            assert!(eo <= 1e-5 && el <= 1e-5, "{s:?}: out {eo}, lse {el}");
        }
    }
}

#[test]
fn cpu_backward_matches_finite_differences() {
    for causal in [false, true] {
        let s = spec(1, 4, 2, 3, causal);
        let shape = dims(&s);
        let [q, k, v] = qkv(&s, 5);
        let w = randn(&shape, 99);
        let dev = cpu();
        let be = dev.backend();
        let t = |x: &[f32]| Tensor::from_slice(x, &shape, &dev).unwrap();
        // L = sum(out * w), accumulated in f64.
        let loss = |q: &[f32], k: &[f32], v: &[f32]| -> f64 {
            let (o, _) = be.attention(&t(q), &t(k), &t(v), &s).unwrap();
            o.to_vec()
                .unwrap()
                .iter()
                .zip(&w)
                .map(|(a, b)| *a as f64 * *b as f64)
                .sum()
        };
        let (out, lse) = be.attention(&t(&q), &t(&k), &t(&v), &s).unwrap();
        let (dq, dk, dv) = be
            .attention_bwd(&t(&w), &t(&q), &t(&k), &t(&v), &out, &lse, &s)
            .unwrap();
        let analytic = [dq.to_vec().unwrap(), dk.to_vec().unwrap(), dv.to_vec().unwrap()];
        let eps = 1e-2f32;
        for (which, grad) in analytic.iter().enumerate() {
            let mut numeric = vec![0.0f32; grad.len()];
            for (i, g) in numeric.iter_mut().enumerate() {
                let mut args = [q.clone(), k.clone(), v.clone()];
                args[which][i] += eps;
                let up = loss(&args[0], &args[1], &args[2]);
                args[which][i] -= 2.0 * eps;
                let down = loss(&args[0], &args[1], &args[2]);
                *g = ((up - down) / (2.0 * eps as f64)) as f32;
            }
            let e = rel_err(&numeric, grad);
            eprintln!(
                "finite differences d{} (causal {causal}): rel err {e:.2e}",
                ["q", "k", "v"][which]
            );
            assert!(
                e <= 1e-2,
                "d{} causal {causal}: {e}\nnumeric {numeric:?}\nanalytic {grad:?}",
                ["q", "k", "v"][which]
            );
        }
    }
}

#[test]
fn wgpu_forward_and_backward_match_cpu() {
    for &(b, n, h, dh) in &SHAPES {
        for causal in [false, true] {
            let s = spec(b, n, h, dh, causal);
            let shape = dims(&s);
            let [q, k, v] = qkv(&s, 21);
            let gout = randn(&shape, 77);
            let mut res = Vec::new();
            for dev in [cpu(), gpu()] {
                let t = |x: &[f32]| Tensor::from_slice(x, &shape, &dev).unwrap();
                let (tq, tk, tv) = (t(&q), t(&k), t(&v));
                let (out, lse) = dev.backend().attention(&tq, &tk, &tv, &s).unwrap();
                let (dq, dk, dv) = dev
                    .backend()
                    .attention_bwd(&t(&gout), &tq, &tk, &tv, &out, &lse, &s)
                    .unwrap();
                res.push([out, lse, dq, dk, dv]);
            }
            for (i, name) in ["out", "lse", "dq", "dk", "dv"].iter().enumerate() {
                assert_close(&format!("{name} {s:?}"), &res[0][i], &res[1][i], 1e-4);
            }
        }
    }
}

#[test]
fn half_precision_inputs_match_cpu() {
    let s = spec(2, 9, 2, 16, true);
    let shape = dims(&s);
    let [q, k, v] = qkv(&s, 3);
    let mut res = Vec::new();
    for dev in [cpu(), gpu()] {
        let t = |x: &[f32]| Tensor::from_slice(x, &shape, &dev).unwrap().cast(DType::F16).unwrap();
        let (out, lse) = dev.backend().attention(&t(&q), &t(&k), &t(&v), &s).unwrap();
        res.push((out, lse));
    }
    assert_close("f16 out", &res[0].0, &res[1].0, 1e-4);
    assert_close("f16 lse", &res[0].1, &res[1].1, 1e-4);
}

#[test]
fn many_heads_fold_into_the_grid() {
    // batch * heads > 65535 workgroups along one axis: the (batch, head) fold.
    let s = spec(33_000, 2, 2, 2, false);
    let shape = dims(&s);
    let [q, k, v] = qkv(&s, 8);
    let mut outs = Vec::new();
    for dev in [cpu(), gpu()] {
        let t = |x: &[f32]| Tensor::from_slice(x, &shape, &dev).unwrap();
        outs.push(dev.backend().attention(&t(&q), &t(&k), &t(&v), &s).unwrap());
    }
    assert_close("folded grid out", &outs[0].0, &outs[1].0, 1e-4);
    assert_close("folded grid lse", &outs[0].1, &outs[1].1, 1e-4);
}

#[test]
fn bad_inputs_are_errors() {
    let s = spec(2, 5, 3, 16, false);
    let good = dims(&s);
    for dev in [cpu(), gpu()] {
        let be = dev.backend();
        let ok = Tensor::zeros(&good, &dev).unwrap();
        let short = Tensor::zeros(&[2, 5, 47], &dev).unwrap();
        let lse = Tensor::zeros(&[2, 3, 5], &dev).unwrap();
        let bad_lse = Tensor::zeros(&[2, 3, 4], &dev).unwrap();
        assert!(be.attention(&short, &ok, &ok, &s).is_err());
        assert!(be.attention(&ok, &ok, &short, &s).is_err());
        assert!(be.attention_bwd(&ok, &ok, &ok, &ok, &short, &lse, &s).is_err());
        assert!(be.attention_bwd(&ok, &ok, &ok, &ok, &ok, &bad_lse, &s).is_err());
        assert!(be.attention_bwd(&ok, &ok, &ok, &ok, &ok, &lse, &s).is_ok());
        let zero_dim = AttnSpec { head_dim: 0, ..s };
        assert!(be.attention(&ok, &ok, &ok, &zero_dim).is_err());
    }
    // head_dim above the WGSL kernel's 128: an error on GPU, fine on CPU.
    let s = spec(1, 3, 1, 129, false);
    let [q, k, v] = qkv(&s, 1);
    let t = |x: &[f32], dev| Tensor::from_slice(x, &dims(&s), dev).unwrap();
    let g = gpu();
    let err = g
        .backend()
        .attention(&t(&q, &g), &t(&k, &g), &t(&v, &g), &s)
        .unwrap_err();
    assert!(err.msg.contains("head_dim"), "{}", err.msg);
    let c = cpu();
    let (out, _) = c.backend().attention(&t(&q, &c), &t(&k, &c), &t(&v, &c), &s).unwrap();
    let (want, _) = naive_forward(&q, &k, &v, &s);
    assert!(rel_err(&want, &out.to_vec().unwrap()) <= 1e-5);
}

#[test]
fn empty_shapes_give_empty_outputs() {
    for dev in [cpu(), gpu()] {
        for s in [spec(2, 0, 3, 8, true), spec(0, 5, 3, 8, false), spec(1, 4, 0, 8, false)] {
            let x = Tensor::zeros(&dims(&s), &dev).unwrap();
            let (out, lse) = dev.backend().attention(&x, &x, &x, &s).unwrap();
            assert_eq!(out.numel(), 0);
            assert_eq!(lse.shape(), &[s.batch, s.heads, s.seq]);
            let (dq, dk, dv) = dev.backend().attention_bwd(&x, &x, &x, &x, &out, &lse, &s).unwrap();
            assert_eq!(dq.numel() + dk.numel() + dv.numel(), 0);
        }
    }
}

/// Which tiled kernels ran above: on Vulkan (lavapipe offers subgroups) the dot products are
/// summed by subgroup shuffles, on GL (no subgroups there) through workgroup memory, so
/// `wgpu_forward_and_backward_match_cpu` checks both paths across the two CI backends.
#[test]
fn tiled_attention_sums_by_subgroups_where_the_adapter_has_them() {
    let dev = gpu();
    let cliptune::backend::Device::Gpu(g) = &dev else {
        panic!("the WGSL device is not a GPU device")
    };
    let uses = cliptune::backend::wgpu::attention_uses_subgroups(g);
    let offered = g.features.contains(wgpu::Features::SUBGROUP);
    eprintln!(
        "adapter {}: subgroups offered {offered}, used by attention {uses}",
        dev.name()
    );
    match gpu_api() {
        Some(cliptune::backend::GpuApi::Gl) => assert!(!uses && !offered, "GL has no subgroups"),
        Some(cliptune::backend::GpuApi::Vulkan) => {
            assert!(
                uses,
                "lavapipe offers subgroups: the subgroup kernels must be the ones under test"
            )
        }
        _ => assert!(!uses || offered, "subgroup kernels on an adapter without subgroups"),
    }
}
