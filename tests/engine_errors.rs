//! What a user can get wrong at the engine level ends in one clear `Err` naming the
//! op and the shapes/devices, never a panic or a GPU validation crash; and the GPU
//! path batches dispatches and reuses pooled buffers.
mod common;
use cliptune::autograd::{Param, Tape, Var};
use cliptune::backend::{Act, Device, MatmulSpec};
use cliptune::train::{check_loss, AdamW};
use cliptune::{ErrorKind, Tensor};

#[test]
fn shape_mismatches_name_the_op_and_shapes() {
    let d = Device::Cpu;
    let a = Tensor::zeros(&[3, 4], &d).unwrap();
    let b = Tensor::zeros(&[5, 6], &d).unwrap();
    let e = a.matmul(&b).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Shape);
    assert!(
        e.msg.contains("matmul") && e.msg.contains("[3, 4]") && e.msg.contains("[5, 6]"),
        "{}",
        e.msg
    );
    let e = a.add(&Tensor::zeros(&[3], &d).unwrap()).unwrap_err();
    assert!(e.msg.contains("add") && e.msg.contains("[3]"), "{}", e.msg);
    let e = a.linear(&b, None, Act::None).unwrap_err();
    assert!(e.msg.contains("linear"), "{}", e.msg);
    let e = a.reshape(&[5]).unwrap_err();
    assert!(e.msg.contains("reshape") && e.msg.contains("[3, 4]"), "{}", e.msg);
    let spec = MatmulSpec {
        batch: 2,
        m: 3,
        n: 4,
        k: 5,
        trans_a: false,
        trans_b: false,
        b_shared: false,
    };
    let e = a.matmul_spec(&b, None, Act::None, &spec, false).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Shape);
    let e = Tensor::attention(
        &a.reshape(&[1, 3, 4]).unwrap(),
        &a.reshape(&[1, 3, 4]).unwrap(),
        &a.reshape(&[1, 3, 4]).unwrap(),
        3,
        false,
    )
    .unwrap_err();
    assert!(e.msg.contains("attention") && e.msg.contains("3 heads"), "{}", e.msg);
    let e = Tensor::contrastive_loss(
        &a,
        &Tensor::zeros(&[2, 4], &d).unwrap(),
        &Tensor::scalar(1.0, &d).unwrap(),
    )
    .unwrap_err();
    assert!(e.msg.contains("contrastive_loss"), "{}", e.msg);
}

#[test]
fn tensors_on_different_devices_are_refused() {
    let c = Tensor::zeros(&[2, 2], &Device::Cpu).unwrap();
    let g = Tensor::zeros(&[2, 2], &common::gpu()).unwrap();
    let e = c.add(&g).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Device);
    assert!(
        e.msg.contains("add") && e.msg.contains("different devices"),
        "{}",
        e.msg
    );
    let e = c.matmul(&g).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Device);
    // to_device moves it explicitly.
    let moved = g.to_device(&Device::Cpu).unwrap();
    assert_eq!(c.add(&moved).unwrap().to_vec().unwrap(), vec![0.0; 4]);
}

#[test]
fn non_finite_loss_names_the_step() {
    let d = Device::Cpu;
    let nan = Tensor::scalar(f32::NAN, &d).unwrap();
    let e = check_loss(&nan, 17).unwrap_err();
    assert_eq!(e.kind, ErrorKind::NonFinite);
    assert!(e.msg.contains("step 17"), "{}", e.msg);
    assert_eq!(check_loss(&Tensor::scalar(0.5, &d).unwrap(), 1).unwrap(), 0.5);
}

#[test]
fn gpu_steps_batch_dispatches_and_reuse_buffers() {
    let dev = common::gpu();
    let Device::Gpu(g) = &dev else { unreachable!() };
    let w = Param::trainable("w", Tensor::randn(&[32, 16], 0.1, 1, &dev).unwrap());
    let x = Tensor::randn(&[64, 16], 1.0, 2, &dev).unwrap();
    let t = Tensor::randn(&[64, 32], 1.0, 3, &dev).unwrap();
    let mut opt = AdamW::new(1e-3, 0.0);
    opt.max_grad_norm = Some(1.0);
    let mut params = [w];
    let step = |params: &mut [Param; 1], opt: &mut AdamW| {
        let tape = Tape::new();
        let y = tape
            .constant(x.clone())
            .linear(&tape.param(&params[0]), None, Act::QuickGelu)
            .unwrap();
        let img = y.l2norm().unwrap();
        let txt = tape.constant(t.clone()).l2norm().unwrap();
        let loss = Var::contrastive_loss(&img, &txt, &tape.constant(Tensor::scalar(2.0, &dev).unwrap())).unwrap();
        let grads = tape.backward(&loss).unwrap();
        let mut refs: Vec<&mut Param> = params.iter_mut().collect();
        opt.step(&mut refs, &grads).unwrap();
    };
    step(&mut params, &mut opt);
    dev.backend().sync().unwrap();
    let before = g.stats();
    for _ in 0..5 {
        step(&mut params, &mut opt);
    }
    dev.backend().sync().unwrap();
    let after = g.stats();
    let dispatches = after.dispatches - before.dispatches;
    let submits = after.submits - before.submits;
    eprintln!(
        "5 steps: {dispatches} dispatches, {submits} submits, {} pool hits",
        after.pool_hits - before.pool_hits
    );
    assert!(dispatches >= 5 * 10, "expected many dispatches, got {dispatches}");
    // No readback inside a step: submits happen only when the pending batch fills up
    // (or at the explicit sync).
    assert!(
        submits <= dispatches / 32 + 2,
        "{submits} submits for {dispatches} dispatches"
    );
    assert!(
        after.pool_hits - before.pool_hits >= dispatches / 2,
        "freed buffers are not being reused"
    );
    // Steady state: no new device memory after the first step.
    assert_eq!(
        after.bytes_live, before.bytes_live,
        "device memory grew during steady-state steps"
    );
}
