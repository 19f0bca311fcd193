//! Every backward rule of the autograd layer against central finite differences of
//! its forward (CPU backend, small shapes). The kernel-level backward tests live in
//! tests/kernel_*.rs; this checks how the tape composes them (matmul transposes,
//! broadcasting, reshapes, accumulation, checkpointing).
mod common;
use cliptune::autograd::{Param, Tape, Var};
use cliptune::backend::{Act, Device, MatmulSpec};
use cliptune::nn::{Block, Module};
use cliptune::{Result, Tensor};
use common::randn;

type Build = dyn Fn(&Tape, &[Var]) -> Result<Var>;

/// Scalar loss: the output projected on a fixed random vector (or itself if scalar).
fn loss_of(tape: &Tape, f: &Build, xs: &[Var]) -> Result<Var> {
    let y = f(tape, xs)?;
    if y.value.numel() == 1 {
        return Ok(y);
    }
    let w = tape.constant(Tensor::from_vec(randn(y.shape(), 999), y.shape(), &Device::Cpu)?);
    y.mul(&w)?.sum_all()
}

fn grad_check(name: &str, shapes: &[&[usize]], f: &Build) {
    let params: Vec<Param> = shapes
        .iter()
        .enumerate()
        .map(|(i, s)| {
            Param::trainable(
                format!("x{i}"),
                Tensor::from_vec(randn(s, 100 + i as u64), s, &Device::Cpu).unwrap(),
            )
        })
        .collect();
    let tape = Tape::new();
    let xs: Vec<Var> = params.iter().map(|p| tape.param(p)).collect();
    let loss = loss_of(&tape, f, &xs).unwrap();
    let grads = tape.backward(&loss).unwrap();
    let eps = 1e-2f32;
    for (pi, p) in params.iter().enumerate() {
        let g = grads
            .get(p.id)
            .unwrap_or_else(|| panic!("{name}: no gradient for input {pi}"))
            .to_vec()
            .unwrap();
        let base = p.value.to_vec().unwrap();
        let n = base.len();
        let idx: Vec<usize> = if n <= 24 {
            (0..n).collect()
        } else {
            (0..24).map(|i| (i * 7919) % n).collect()
        };
        let mut max_err = 0f32;
        let scale = g.iter().fold(1e-3f32, |m, x| m.max(x.abs()));
        for &i in &idx {
            let eval = |delta: f32| -> f32 {
                let mut v = base.clone();
                v[i] += delta;
                let t = Tape::inference();
                let ys: Vec<Var> = params
                    .iter()
                    .enumerate()
                    .map(|(j, q)| {
                        if j == pi {
                            t.constant(Tensor::from_vec(v.clone(), q.value.shape(), &Device::Cpu).unwrap())
                        } else {
                            t.constant(q.value.clone())
                        }
                    })
                    .collect();
                loss_of(&t, f, &ys).unwrap().value.item().unwrap()
            };
            let num = (eval(eps) - eval(-eps)) / (2.0 * eps);
            max_err = max_err.max((num - g[i]).abs() / scale);
        }
        eprintln!("{name}: input {pi} max rel err {max_err:.2e}");
        assert!(
            max_err < 2e-2,
            "{name}: input {pi}: analytic vs numeric gradient rel err {max_err}"
        );
    }
}

#[test]
fn linear_with_each_activation() {
    for act in [Act::None, Act::QuickGelu, Act::Gelu] {
        grad_check(
            &format!("linear {act:?}"),
            &[&[2, 3, 4], &[5, 4], &[5]],
            &move |_, x| x[0].linear(&x[1], Some(&x[2]), act),
        );
    }
}

#[test]
fn matmul_transposes_batches_and_shared_b() {
    for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
        for batch in [1, 2] {
            let (m, n, k) = (3, 4, 5);
            let a_shape = if ta { [batch, k, m] } else { [batch, m, k] };
            let b_shape = if tb { [batch, n, k] } else { [batch, k, n] };
            let spec = MatmulSpec {
                batch,
                m,
                n,
                k,
                trans_a: ta,
                trans_b: tb,
                b_shared: false,
            };
            grad_check(
                &format!("matmul ta={ta} tb={tb} batch={batch}"),
                &[&a_shape, &b_shape, &[n]],
                &move |_, x| x[0].matmul_spec(&x[1], Some(&x[2]), Act::QuickGelu, spec),
            );
        }
        if !ta {
            let spec = MatmulSpec {
                batch: 2,
                m: 3,
                n: 4,
                k: 5,
                trans_a: false,
                trans_b: tb,
                b_shared: true,
            };
            let b_shape: &[usize] = if tb { &[4, 5] } else { &[5, 4] };
            grad_check(
                &format!("matmul shared B tb={tb}"),
                &[&[2, 3, 5], b_shape],
                &move |_, x| x[0].matmul_spec(&x[1], None, Act::None, spec),
            );
        }
    }
}

#[test]
fn broadcast_binary_affine_act_reshape() {
    grad_check("add broadcast", &[&[3, 4], &[4]], &|_, x| x[0].add(&x[1]));
    grad_check("sub", &[&[3, 4], &[3, 4]], &|_, x| x[0].sub(&x[1]));
    grad_check("mul broadcast", &[&[2, 3, 4], &[3, 4]], &|_, x| x[0].mul(&x[1]));
    grad_check("mul same input twice", &[&[5]], &|_, x| x[0].mul(&x[0]));
    grad_check("affine", &[&[7]], &|_, x| x[0].affine(-1.5, 0.25));
    grad_check("gelu", &[&[9]], &|_, x| x[0].act(Act::Gelu));
    grad_check("reshape", &[&[2, 6]], &|_, x| {
        x[0].reshape(&[3, 4])?.mul(&x[0].reshape(&[3, 4])?)
    });
}

#[test]
fn norms_and_softmax() {
    grad_check("layernorm", &[&[3, 6], &[6], &[6]], &|_, x| {
        x[0].layernorm(&x[1], &x[2], 1e-5)
    });
    grad_check("softmax", &[&[3, 5]], &|_, x| x[0].softmax());
    grad_check("l2norm", &[&[4, 3]], &|_, x| x[0].l2norm());
}

#[test]
fn attention_causal_and_full() {
    for causal in [false, true] {
        grad_check(
            &format!("attention causal={causal}"),
            &[&[2, 4, 6], &[2, 4, 6], &[2, 4, 6]],
            &move |_, x| Var::attention(&x[0], &x[1], &x[2], 2, causal),
        );
    }
}

#[test]
fn gather_concat_narrow_patchify() {
    grad_check("gather with repeats", &[&[5, 3]], &|t, x| {
        let ids = Tensor::from_u32(vec![4, 0, 4, 2], &[2, 2], &Device::Cpu)?;
        let _ = t;
        x[0].gather_rows(&ids)
    });
    grad_check("concat", &[&[2, 1, 3], &[2, 4, 3]], &|_, x| x[0].concat1(&x[1]));
    grad_check("narrow", &[&[2, 5, 3]], &|_, x| x[0].narrow1(1, 3));
    grad_check("patchify", &[&[2, 3, 4, 6]], &|_, x| x[0].patchify(2));
}

#[test]
fn losses() {
    grad_check("contrastive with hard negatives", &[&[3, 4], &[5, 4], &[1]], &|_, x| {
        Var::contrastive_loss(&x[0].l2norm()?, &x[1].l2norm()?, &x[2])
    });
    grad_check("cross entropy", &[&[4, 6]], &|_, x| {
        let labels = Tensor::from_u32(vec![0, 5, 2, 2], &[4], &Device::Cpu)?;
        x[0].cross_entropy(&labels)
    });
}

#[test]
fn transformer_block_and_recompute_match() {
    let d = &Device::Cpu;
    let mut block = Block::random("b", 8, 2, 4, Act::QuickGelu, true, 7, d).unwrap();
    block.set_trainable(true);
    let x = Tensor::randn(&[2, 5, 8], 1.0, 3, d).unwrap();
    let grads_of = |b: &Block| {
        let tape = Tape::new();
        let y = b.forward(&tape, &tape.constant(x.clone())).unwrap();
        let w = tape.constant(Tensor::randn(&[2, 5, 8], 1.0, 5, d).unwrap());
        let loss = y.mul(&w).unwrap().sum_all().unwrap();
        let g = tape.backward(&loss).unwrap();
        (
            loss.value.item().unwrap(),
            b.params()
                .iter()
                .map(|p| g.get(p.id).unwrap().to_vec().unwrap())
                .collect::<Vec<_>>(),
        )
    };
    let (l1, g1) = grads_of(&block);
    let mut rb = block.clone();
    rb.recompute = true;
    let (l2, g2) = grads_of(&rb);
    assert_eq!(l1, l2);
    for (a, b) in g1.iter().zip(&g2) {
        assert_eq!(a, b, "recomputed block gives different gradients");
    }
    // And the block's input gradient by finite differences (all params frozen).
    let mut frozen = block.clone();
    frozen.set_trainable(false);
    grad_check("block input", &[&[2, 5, 8]], &move |t, xs| frozen.forward(t, &xs[0]));
}

/// A tower's last block runs only the pooled rows after attention (`forward_rows`): the
/// result and every gradient must equal those rows of the full block, with and without
/// recompute, causal (text: EOT rows) and not (vision: CLS rows).
#[test]
fn block_forward_rows_equals_the_selected_rows_of_forward() {
    let d = &Device::Cpu;
    for causal in [true, false] {
        let mut block = Block::random("b", 8, 2, 4, Act::QuickGelu, causal, 11, d).unwrap();
        block.set_trainable(true);
        let x = Tensor::randn(&[3, 5, 8], 1.0, 3, d).unwrap();
        let sel = vec![4u32, 5, 13]; // text 0 pos 4, text 1 pos 0, text 2 pos 3
        let rows = Tensor::from_u32(sel.clone(), &[3], d).unwrap();
        let w = Tensor::randn(&[3, 8], 1.0, 5, d).unwrap();
        let run = |b: &Block, only_rows: bool| {
            let tape = Tape::new();
            let xv = tape.constant(x.clone());
            let y = if only_rows {
                b.forward_rows(&tape, &xv, &rows).unwrap()
            } else {
                b.forward(&tape, &xv)
                    .unwrap()
                    .reshape(&[15, 8])
                    .unwrap()
                    .gather_rows(&rows)
                    .unwrap()
            };
            let loss = y.mul(&tape.constant(w.clone())).unwrap().sum_all().unwrap();
            let g = tape.backward(&loss).unwrap();
            let grads: Vec<Vec<f32>> = b
                .params()
                .iter()
                .map(|p| g.get(p.id).unwrap().to_vec().unwrap())
                .collect();
            (y.value.to_vec().unwrap(), grads)
        };
        let (y_full, g_full) = run(&block, false);
        let (y_rows, g_rows) = run(&block, true);
        let mut rb = block.clone();
        rb.recompute = true;
        let (y_rec, g_rec) = run(&rb, true);
        assert_eq!(y_rows, y_rec, "recompute changes forward_rows");
        assert_eq!(g_rows, g_rec, "recompute changes forward_rows' gradients");
        let worst = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(p, q)| (p - q).abs()).fold(0f32, f32::max);
        assert!(
            worst(&y_full, &y_rows) < 1e-5,
            "causal {causal}: rows differ by {}",
            worst(&y_full, &y_rows)
        );
        for ((p, a), b) in block.params().iter().zip(&g_full).zip(&g_rows) {
            assert!(
                worst(a, b) < 1e-5,
                "causal {causal}: gradient of {} differs by {}",
                p.name,
                worst(a, b)
            );
        }
        let mut frozen = block.clone();
        frozen.set_trainable(false);
        let rows2 = rows.clone();
        grad_check("block rows input", &[&[3, 5, 8]], &move |t, xs| {
            frozen.forward_rows(t, &xs[0], &rows2)
        });
    }
}

#[test]
fn frozen_params_get_no_gradient_and_record_nothing() {
    let d = &Device::Cpu;
    let block = Block::random("b", 8, 2, 4, Act::QuickGelu, false, 7, d).unwrap();
    let tape = Tape::new();
    let y = block
        .forward(&tape, &tape.constant(Tensor::randn(&[1, 3, 8], 1.0, 1, d).unwrap()))
        .unwrap();
    assert_eq!(tape.len(), 0, "an all-frozen forward must record nothing");
    assert!(!y.requires_grad());
    // One trainable weight deep inside: only it gets a gradient.
    let mut b2 = block.clone();
    b2.mlp.fc2.weight.trainable = true;
    let tape = Tape::new();
    let y = b2
        .forward(&tape, &tape.constant(Tensor::randn(&[1, 3, 8], 1.0, 1, d).unwrap()))
        .unwrap();
    let loss = y.sum_all().unwrap();
    // Only the leaf, fc2's matmul, its reshape, the residual add and the sum are recorded.
    assert!(tape.len() <= 5, "recorded {} nodes", tape.len());
    let g = tape.backward(&loss).unwrap();
    assert_eq!(g.param_ids(), vec![b2.mlp.fc2.weight.id]);
}
