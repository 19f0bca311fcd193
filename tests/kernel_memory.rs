//! Uploads, fills, readback and f16/bf16 storage: wgpu vs CPU.
mod common;
use cliptune::{DType, Tensor};
use common::*;

#[test]
fn upload_fill_readback_roundtrip() {
    for n in [1usize, 3, 255, 257, 70_001] {
        let data = randn(&[n], n as u64);
        let (c, g) = pair(&data, &[n]);
        assert_eq!(c.to_vec().unwrap(), data);
        assert_eq!(g.to_vec().unwrap(), data);
        let f = Tensor::full(&[n], 2.5, &gpu()).unwrap();
        assert!(f.to_vec().unwrap().iter().all(|&x| x == 2.5));
    }
    let ids = Tensor::from_u32(vec![1, 5, 49407], &[3], &gpu()).unwrap();
    assert_eq!(ids.to_vec_u32().unwrap(), vec![1, 5, 49407]);
}

#[test]
fn half_storage_matches_cpu() {
    for n in [1usize, 2, 7, 1000, 1001] {
        let data: Vec<f32> = randn(&[n], 9).iter().map(|x| x * 100.0).collect();
        let (c, g) = pair(&data, &[n]);
        for dt in [DType::F16, DType::BF16] {
            let ch = c.cast(dt).unwrap();
            let gh = g.cast(dt).unwrap();
            // Bit-exact rounding on both backends.
            assert_eq!(ch.to_vec().unwrap(), gh.to_vec().unwrap(), "{dt:?} n={n}");
            let back = gh.cast(DType::F32).unwrap().to_vec().unwrap();
            assert_eq!(back, ch.to_vec().unwrap());
            let rel = if dt == DType::F16 { 1e-3 } else { 8e-3 };
            for (x, y) in data.iter().zip(&back) {
                assert!((x - y).abs() <= rel * x.abs() + 1e-3, "{dt:?}: {x} -> {y}");
            }
        }
    }
}

#[test]
fn oversized_buffer_is_an_error_not_a_crash() {
    let g = gpu();
    let cliptune::backend::Device::Gpu(b) = &g else {
        unreachable!()
    };
    let max = b.limits.max_storage_buffer_binding_size as u64;
    let err = b.check_binding("embedding table", max + 4).unwrap_err();
    assert_eq!(err.kind, cliptune::ErrorKind::Limit);
    assert!(err.msg.contains("embedding table"), "{}", err.msg);
}
