//! Shared by the cross-backend tests; `cli` by the tests that run the binary or need
//! scratch directories.
#![allow(dead_code)]
pub mod cli;

use std::sync::OnceLock;

use cliptune::backend::{Device, GpuApi};
use cliptune::Tensor;

/// The GPU API this test binary runs its WGSL tests on. tests/kernel_gl.rs compiles
/// every kernel test file again as one binary, `kernel_gl`, which pins GL (llvmpipe
/// through EGL in CI); every other binary pins Vulkan (lavapipe) when `CI=true`, and
/// elsewhere takes the best adapter of any API. So each kernel test runs on both CI
/// backends without a loop in every test.
pub fn gpu_api() -> Option<GpuApi> {
    if env!("CARGO_CRATE_NAME") == "kernel_gl" {
        Some(GpuApi::Gl)
    } else if std::env::var("CI").as_deref() == Ok("true") {
        Some(GpuApi::Vulkan)
    } else {
        None
    }
}

/// A new device on this binary's adapter, not shared with other tests: for tests that
/// read the device's counters, which concurrent tests on the shared device would move.
pub fn fresh_gpu() -> Device {
    std::env::set_var(
        "XDG_RUNTIME_DIR",
        std::env::var("XDG_RUNTIME_DIR").unwrap_or("/tmp".into()),
    );
    match gpu_api() {
        Some(a) => Device::gpu_on(a),
        None => Device::gpu_any(),
    }
    .unwrap_or_else(|e| panic!("NO GPU ADAPTER for a fresh device: {e}"))
}

/// The WGSL device of this binary (see [`gpu_api`]). Without that adapter the test
/// fails, loudly: a WGSL test that silently skips would hide every GPU bug.
pub fn gpu() -> Device {
    static GPU: OnceLock<Device> = OnceLock::new();
    GPU.get_or_init(|| {
        std::env::set_var("XDG_RUNTIME_DIR", std::env::var("XDG_RUNTIME_DIR").unwrap_or("/tmp".into()));
        let api = gpu_api();
        let found = match api {
            Some(a) => Device::gpu_on(a),
            None => Device::gpu_any(),
        };
        match found {
            Ok(d) => {
                eprintln!("WGSL tests run on adapter: {}", d.name());
                d
            }
            Err(e) => panic!(
                "NO {} ADAPTER: the WGSL kernels cannot be tested ({e}). On Debian install mesa-vulkan-drivers libvulkan1 (lavapipe) and libegl1 libgl1-mesa-dri libegl-mesa0 (llvmpipe GL).",
                api.map_or("GPU", |a| a.name())
            ),
        }
    })
    .clone()
}

pub fn cpu() -> Device {
    Device::Cpu
}

pub fn randn(shape: &[usize], seed: u64) -> Vec<f32> {
    let mut r = cliptune::tensor::Rng::new(seed);
    (0..shape.iter().product::<usize>()).map(|_| r.normal()).collect()
}

/// The same values on both devices.
pub fn pair(data: &[f32], shape: &[usize]) -> (Tensor, Tensor) {
    (
        Tensor::from_slice(data, shape, &cpu()).unwrap(),
        Tensor::from_slice(data, shape, &gpu()).unwrap(),
    )
}

pub fn rand_pair(shape: &[usize], seed: u64) -> (Tensor, Tensor) {
    pair(&randn(shape, seed), shape)
}

/// max |a-b| / max(1, max |a|): relative to the output's scale, and absolute near 0.
pub fn rel_err(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "length mismatch");
    let scale = a.iter().fold(1.0f32, |m, x| m.max(x.abs()));
    let diff = a.iter().zip(b).fold(0.0f32, |m, (x, y)| m.max((x - y).abs()));
    if a.iter().chain(b).any(|x| !x.is_finite()) {
        return f32::INFINITY;
    }
    diff / scale
}

/// Assert the two tensors agree within `tol` relative error; prints the error.
pub fn assert_close(what: &str, cpu: &Tensor, gpu: &Tensor, tol: f32) {
    assert_eq!(cpu.shape(), gpu.shape(), "{what}: shapes differ");
    let a = cpu.to_vec().unwrap();
    let b = gpu.to_vec().unwrap();
    let e = rel_err(&a, &b);
    eprintln!("{what}: rel err {e:.2e} (tol {tol:.0e})");
    assert!(e <= tol, "{what}: cpu vs wgpu relative error {e} > {tol}");
}

/// The tiny random CLIP made by tools/make_clip_goldens.py (HF layout).
pub fn tiny_model_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny-clip/hf")
}

/// The tiny model and its tokenizer on the CPU.
pub fn load_tiny() -> (cliptune::clip::Clip, cliptune::clip::tokenizer::ClipTokenizer) {
    let dir = tiny_model_dir();
    let model = cliptune::clip::Clip::load(&dir, &cpu(), cliptune::clip::WeightStorage::AsStored).unwrap();
    let tok = cliptune::clip::tokenizer::ClipTokenizer::for_model_dir(&dir).unwrap();
    (model, tok)
}

pub fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// The message of an expected error.
pub fn err_msg<T>(r: cliptune::Result<T>) -> String {
    match r {
        Ok(_) => panic!("expected an error"),
        Err(e) => e.msg,
    }
}

pub fn max_abs(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

/// Every parameter's bits, to prove a frozen model did not change.
pub fn param_bits(model: &cliptune::clip::Clip) -> Vec<(String, Vec<u32>)> {
    use cliptune::nn::Module;
    model
        .params()
        .iter()
        .map(|p| {
            (
                p.name.clone(),
                p.value.to_vec().unwrap().iter().map(|x| x.to_bits()).collect(),
            )
        })
        .collect()
}

/// Tensor `name` of a safetensors file as f32 values with its shape (F32 and I32 stored;
/// the goldens keep token ids as I32).
pub fn read_f32(path: &std::path::Path, name: &str) -> (Vec<usize>, Vec<f32>) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let v = st
        .tensor(name)
        .unwrap_or_else(|_| panic!("{}: no tensor {name}", path.display()));
    let vals = match v.dtype() {
        safetensors::Dtype::F32 => v
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect(),
        safetensors::Dtype::I32 => v
            .data()
            .chunks_exact(4)
            .map(|c| i32::from_le_bytes(c.try_into().unwrap()) as f32)
            .collect(),
        d => panic!("{}: unexpected dtype {d:?} for {name}", path.display()),
    };
    (v.shape().to_vec(), vals)
}
