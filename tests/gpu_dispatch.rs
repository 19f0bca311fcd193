//! The dispatch path (src/backend/wgpu/context.rs): params in a uniform ring with
//! dynamic offsets, cached bind groups, many dispatches per pass and per submit. Each
//! dispatch must still see its own params, across batch boundaries, and a repeated
//! step must create no pipeline and no bind group. Runs on Vulkan here and on GL in
//! tests/kernel_gl.rs.
mod common;
use cliptune::backend::Device;
use cliptune::Tensor;
use common::*;

fn backend(dev: &Device) -> std::sync::Arc<cliptune::backend::wgpu::GpuBackend> {
    match dev {
        Device::Gpu(g) => g.clone(),
        Device::Cpu => panic!("not a GPU device"),
    }
}

/// 300 dispatches with 300 different params, recorded without a readback in between
/// (several batches of the ring), each read back afterwards.
#[test]
fn every_dispatch_sees_its_own_params_across_batches() {
    let dev = gpu();
    let data = randn(&[1000], 7);
    let x = Tensor::from_slice(&data, &[1000], &dev).unwrap();
    let outs: Vec<Tensor> = (0..300)
        .map(|i| x.affine(i as f32 * 0.5, -(i as f32)).unwrap())
        .collect();
    for (i, y) in outs.iter().enumerate() {
        let y = y.to_vec().unwrap();
        let want: Vec<f32> = data.iter().map(|v| v * (i as f32 * 0.5) - i as f32).collect();
        assert!(
            max_abs(&y, &want) <= 1e-4,
            "dispatch {i}: got {:?}.. want {:?}..",
            &y[..3],
            &want[..3]
        );
    }
    // A chain: each dispatch reads the previous one's output within the same pass.
    let mut y = x.clone();
    for _ in 0..150 {
        y = y.affine(1.0, 1.0).unwrap();
    }
    let want: Vec<f32> = data.iter().map(|v| v + 150.0).collect();
    assert!(max_abs(&y.to_vec().unwrap(), &want) <= 1e-3);
}

/// Once the pool has settled, an identical step reuses every pipeline and bind group
/// and still batches its dispatches. The pool hands out the lowest free id, so a step
/// gets the buffers the previous one got once the free set stops changing: warm up for
/// several steps, then demand three steps in a row that build nothing. A fresh device,
/// so other tests' dispatches do not move the counters.
#[test]
fn a_repeated_step_creates_no_pipelines_or_bind_groups() {
    let dev = fresh_gpu();
    let g = backend(&dev);
    let data = randn(&[64, 48], 3);
    let w = Tensor::from_slice(&randn(&[48, 32], 4), &[48, 32], &dev).unwrap();
    let step = || {
        let x = Tensor::from_slice(&data, &[64, 48], &dev).unwrap();
        let h = x.matmul(&w).unwrap();
        let h = h.affine(2.0, 0.5).unwrap();
        let (n, _) = h.l2norm().unwrap();
        n.softmax().unwrap().to_vec().unwrap()
    };
    let first = step();
    for _ in 0..8 {
        assert_eq!(first, step(), "the same step gave different results");
    }
    let warm = g.stats();
    assert!(
        warm.bind_groups <= 8 * 4,
        "bind groups keep growing with identical steps: {warm:?}"
    );
    let before = g.stats();
    let mut after = before.clone();
    for _ in 0..3 {
        let b = g.stats();
        assert_eq!(first, step(), "the same step gave different results");
        after = g.stats();
        assert_eq!(
            after.submits - b.submits,
            1,
            "one readback per step: {b:?} -> {after:?}"
        );
    }
    let dispatches = after.dispatches - before.dispatches;
    assert!(dispatches >= 12, "{dispatches} dispatches");
    assert_eq!(after.pipelines, before.pipelines, "a repeated step built a pipeline");
    assert_eq!(
        after.bind_groups, before.bind_groups,
        "a repeated step built a bind group"
    );
    assert!(after.dispatch_host_ns > before.dispatch_host_ns);
}
