//! AdamW and the gradient-clipping coefficient: wgpu vs CPU, and the CPU update vs a
//! scalar f64 transcription of PyTorch's AdamW.
mod common;
use cliptune::backend::{AdamWSpec, Device};
use cliptune::{DType, Tensor};
use common::*;

fn spec(step: u32) -> AdamWSpec {
    AdamWSpec {
        lr: 1e-2,
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
        weight_decay: 0.1,
        step,
    }
}

/// torch.optim.AdamW's single-tensor step (decoupled decay, lerp for m, bias
/// corrections as Python floats), in f64 on one element.
fn torch_adamw(p: &mut f64, m: &mut f64, v: &mut f64, g: f64, s: &AdamWSpec) {
    let (lr, b1, b2, eps, wd) = (
        s.lr as f64,
        s.beta1 as f64,
        s.beta2 as f64,
        s.eps as f64,
        s.weight_decay as f64,
    );
    *p *= 1.0 - lr * wd;
    *m += (g - *m) * (1.0 - b1);
    *v = *v * b2 + (1.0 - b2) * g * g;
    let bc1 = 1.0 - b1.powi(s.step as i32);
    let bc2 = 1.0 - b2.powi(s.step as i32);
    let denom = v.sqrt() / bc2.sqrt() + eps;
    *p -= lr / bc1 * *m / denom;
}

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

#[test]
fn adamw_wgpu_matches_cpu_and_torch_formula() {
    for n in [1usize, 3, 1000, 70_001] {
        for scaled in [false, true] {
            let p0 = randn(&[n], 1 + n as u64);
            let (mut cp, mut gp) = pair(&p0, &[n]);
            let (mut cm, mut gm) = pair(&vec![0.0; n], &[n]);
            let (mut cv, mut gv) = pair(&vec![0.0; n], &[n]);
            let mut rp: Vec<f64> = p0.iter().map(|&x| x as f64).collect();
            let (mut rm, mut rv) = (vec![0.0f64; n], vec![0.0f64; n]);
            for step in 1..=3u32 {
                let s = spec(step);
                let grad = randn(&[n], 100 * step as u64 + n as u64);
                let (cg, gg) = pair(&grad, &[n]);
                let gs = 0.37f32;
                let (cs, gsc) = pair(&[gs], &[1]);
                let (cs, gsc) = if scaled { (Some(&cs), Some(&gsc)) } else { (None, None) };
                (cp, cm, cv) = cpu().backend().adamw(&cp, &cg, &cm, &cv, &s, cs).unwrap();
                (gp, gm, gv) = gpu().backend().adamw(&gp, &gg, &gm, &gv, &s, gsc).unwrap();
                let k = if scaled { gs as f64 } else { 1.0 };
                for i in 0..n {
                    torch_adamw(&mut rp[i], &mut rm[i], &mut rv[i], grad[i] as f64 * k, &s);
                }
                let tag = format!("n={n} scaled={scaled} step={step}");
                let (c3, g3) = ([&cp, &cm, &cv], [&gp, &gm, &gv]);
                let refs = [&rp, &rm, &rv];
                for (j, name) in ["param", "m", "v"].iter().enumerate() {
                    let cvec = c3[j].to_vec().unwrap();
                    check(&format!("{tag} {name} wgpu"), &cvec, &g3[j].to_vec().unwrap(), 1e-5);
                    let r: Vec<f32> = refs[j].iter().map(|&x| x as f32).collect();
                    check(&format!("{tag} {name} torch"), &r, &cvec, 1e-5);
                }
                // The parameter's drift from its start, so the small update itself is
                // checked and not hidden by the parameter's scale (f32 cancellation: 1e-4).
                let drift = |p: &[f32]| -> Vec<f32> { p.iter().zip(&p0).map(|(a, b)| a - b).collect() };
                let rdrift: Vec<f32> = rp.iter().zip(&p0).map(|(a, &b)| (a - b as f64) as f32).collect();
                check(
                    &format!("{tag} param drift torch"),
                    &rdrift,
                    &drift(&cp.to_vec().unwrap()),
                    1e-4,
                );
            }
        }
    }
}

#[test]
fn clip_coef_both_backends() {
    for (ss, max_norm) in [(0.0f32, 1.0f32), (0.25, 1.0), (4.0, 1.0), (1e6, 5.0), (2.0, 100.0)] {
        let want = (max_norm as f64 / ((ss as f64).sqrt() + 1e-6)).min(1.0) as f32;
        for dev in [cpu(), gpu()] {
            let t = Tensor::scalar(ss, &dev).unwrap();
            let got = dev.backend().clip_coef(&t, max_norm).unwrap().item().unwrap();
            eprintln!(
                "clip_coef({ss}, {max_norm}) on {}: {got} (want {want})",
                dev.kind_name()
            );
            assert!((got - want).abs() <= 1e-6 * want.abs().max(1e-30), "{got} vs {want}");
        }
    }
}

#[test]
fn optim_bad_input_is_an_error() {
    for dev in [cpu(), gpu()] {
        let be = dev.backend();
        let t = |n: usize| Tensor::from_vec(randn(&[n], 7), &[n], &dev).unwrap();
        let (p, g, m, v) = (t(5), t(5), t(5), t(5));
        assert!(be.adamw(&p, &t(4), &m, &v, &spec(1), None).is_err(), "grad size");
        assert!(be.adamw(&p, &g, &m, &t(6), &spec(1), None).is_err(), "v size");
        assert!(be.adamw(&p, &g, &m, &v, &spec(0), None).is_err(), "step 0");
        assert!(
            be.adamw(&p, &g, &m, &v, &spec(1), Some(&t(2))).is_err(),
            "2-element grad scale"
        );
        let half = p.cast(DType::F16).unwrap();
        assert!(be.adamw(&half, &g, &m, &v, &spec(1), None).is_err(), "f16 param");
        assert!(be.clip_coef(&t(2), 1.0).is_err(), "2-element sumsq");
        assert!(be.clip_coef(&t(1), 0.0).is_err(), "max_norm 0");
        check_device(&dev);
    }
}

/// A half-precision gradient is converted on read (only the parameter must be f32).
fn check_device(dev: &Device) {
    let p = Tensor::from_vec(vec![1.0, -2.0], &[2], dev).unwrap();
    let g = Tensor::from_vec(vec![0.5, 0.25], &[2], dev)
        .unwrap()
        .cast(DType::F16)
        .unwrap();
    let z = Tensor::zeros(&[2], dev).unwrap();
    let (p1, _, _) = dev.backend().adamw(&p, &g, &z, &z, &spec(1), None).unwrap();
    let p1 = p1.to_vec().unwrap();
    // First step: |update| = lr (m/sqrt(v) = sign(g) after bias correction), after decay.
    let want = [1.0 * (1.0 - 1e-3) - 1e-2, -2.0 * (1.0 - 1e-3) - 1e-2];
    for (a, b) in p1.iter().zip(want) {
        assert!((a - b).abs() < 1e-6, "{a} vs {b}");
    }
}

/// The GPU update overwrites the parameter and its moments only when nothing else holds
/// them (a training step then keeps its buffers: tests/gpu_bind_groups.rs); a tensor
/// still held elsewhere keeps its old values. Both ways give the same bits.
#[test]
fn adamw_overwrites_only_tensors_nothing_else_holds() {
    let dev = gpu();
    let n = 1000;
    let p0 = randn(&[n], 11);
    let grad = Tensor::from_vec(randn(&[n], 12), &[n], &dev).unwrap();
    let scale = Tensor::scalar(0.5, &dev).unwrap();
    let fresh = || {
        (
            Tensor::from_vec(p0.clone(), &[n], &dev).unwrap(),
            Tensor::from_vec(randn(&[n], 13), &[n], &dev).unwrap(),
            Tensor::from_vec(randn(&[n], 14).iter().map(|x| x * x).collect(), &[n], &dev).unwrap(),
        )
    };
    let bits = |t: &Tensor| -> Vec<u32> { t.to_vec().unwrap().iter().map(|x| x.to_bits()).collect() };
    for s in [None, Some(&scale)] {
        let (p, m, v) = fresh();
        let (held_p, held_m) = (p.clone(), m.clone());
        let (m_before, v_before) = (bits(&m), bits(&v));
        let shared = dev.backend().adamw(&p, &grad, &m, &v, &spec(2), s).unwrap();
        assert!(!shared.0.same_storage(&p) && !shared.1.same_storage(&m));
        assert_eq!(bits(&held_p), bits(&Tensor::from_vec(p0.clone(), &[n], &dev).unwrap()));
        assert_eq!(bits(&held_m), m_before, "a held moment was overwritten");
        drop((p, m, held_p, held_m));
        assert_eq!(bits(&v), v_before);

        let (p, m, v) = fresh();
        let own = dev.backend().adamw(&p, &grad, &m, &v, &spec(2), s).unwrap();
        assert!(own.0.same_storage(&p) && own.1.same_storage(&m) && own.2.same_storage(&v));
        for (a, b) in [(&shared.0, &own.0), (&shared.1, &own.1), (&shared.2, &own.2)] {
            assert_eq!(bits(a), bits(b), "in place and not in place differ (scale {s:?})");
        }
        assert_ne!(bits(&own.0), bits(&Tensor::from_vec(p0.clone(), &[n], &dev).unwrap()));
    }
}
