//! End-to-end engine check: a two-tower, 2-block-per-tower transformer with the
//! contrastive loss (cliptune::selfcheck::ToyTwoTower), trained for a few dozen AdamW
//! steps on a fixed random problem. The loss must fall on both backends, and the
//! backends must agree step by step.
mod common;
use cliptune::backend::Device;
use cliptune::selfcheck::train_toy;

#[test]
fn two_tower_training_reduces_loss_and_backends_agree() {
    let steps = 30;
    let cpu = train_toy(&Device::Cpu, 16, 8, steps, |_, _| {}).unwrap();
    let gpu = train_toy(&common::gpu(), 16, 8, steps, |_, _| {}).unwrap();
    eprintln!("cpu losses: {cpu:?}");
    eprintln!("gpu losses: {gpu:?}");
    assert!(
        cpu[steps - 1] < 0.5 * cpu[0],
        "cpu loss did not fall: {} -> {}",
        cpu[0],
        cpu[steps - 1]
    );
    assert!(
        gpu[steps - 1] < 0.5 * gpu[0],
        "gpu loss did not fall: {} -> {}",
        gpu[0],
        gpu[steps - 1]
    );
    for (i, (c, g)) in cpu.iter().zip(&gpu).enumerate() {
        // Same f32 math summed in different orders; differences compound slowly.
        let tol = 1e-4 * (1.0 + i as f32) * c.abs().max(1.0);
        assert!((c - g).abs() <= tol, "step {i}: cpu loss {c} vs gpu loss {g}");
    }
}

#[test]
fn every_kernel_agrees_in_the_user_facing_check() {
    for c in cliptune::selfcheck::check_kernels(&common::gpu()).unwrap() {
        eprintln!("{}: {:.1e}", c.kernel, c.rel_err);
        assert!(c.rel_err <= c.tol, "{}: rel err {} > {}", c.kernel, c.rel_err, c.tol);
    }
}
