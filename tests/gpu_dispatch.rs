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

/// A third identical step reuses every pipeline and bind group (pooled buffers come
/// back in the same order) and still batches its dispatches.
#[test]
fn a_repeated_step_creates_no_pipelines_or_bind_groups() {
    let dev = gpu();
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
    // Two warm-up steps: pooled buffers may come back in a different order once.
    let first = step();
    assert_eq!(first, step(), "the same step gave different results");
    let before = g.stats();
    let second = step();
    let after = g.stats();
    assert_eq!(first, second, "the same step gave different results");
    let dispatches = after.dispatches - before.dispatches;
    assert!(dispatches >= 4, "{dispatches} dispatches");
    assert_eq!(after.pipelines, before.pipelines, "a repeated step built a pipeline");
    assert_eq!(
        after.bind_groups, before.bind_groups,
        "a repeated step built a bind group"
    );
    // One readback per step: its dispatches go out in one submit.
    assert_eq!(after.submits - before.submits, 1, "{before:?} -> {after:?}");
    assert!(after.dispatch_host_ns > before.dispatch_host_ns);
}
