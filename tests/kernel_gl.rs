//! The kernel tests again, on GL: llvmpipe through EGL in CI (tests/common pins the GL
//! adapter in this binary by its crate name), so each WGSL kernel is checked against the
//! CPU oracle on a second real backend with GL's own limits and shader translation.
//!
//! Two files are left out, on purpose and by name (see [`NOT_ON_GL`]): on llvmpipe's GL
//! path, Mesa 22.3 / LLVM 15 spends minutes per pipeline in LLVM's coroutine split
//! (workgroup barriers become suspend points) for the attention kernels and the tiled
//! matmul's f16/bf16 variants: `attn_fwd` 95 s of CPU, `attn_bwd_*` and
//! `attn_fwd_d64` over 8 minutes each, against 1-7 s for the same WGSL on lavapipe
//! (measured with wgpu-py on this machine, first dispatch, shader cache off). That
//! would put CI past its time limit. Their WGSL still goes through naga's GLSL ES
//! writer in tests/shader_translate.rs, and runs on Vulkan in their own binaries.
mod common;
#[path = "gpu_dispatch.rs"]
mod gpu_dispatch;
#[path = "kernel_elementwise.rs"]
mod kernel_elementwise;
#[path = "kernel_loss.rs"]
mod kernel_loss;
#[path = "kernel_memory.rs"]
mod kernel_memory;
#[path = "kernel_norms.rs"]
mod kernel_norms;
#[path = "kernel_optim.rs"]
mod kernel_optim;

/// Kernel test files that do not run on GL, and why (see the top of this file).
const NOT_ON_GL: &[(&str, &str)] = &[
    (
        "kernel_attention.rs",
        "llvmpipe-GL compiles the attention pipelines in minutes each",
    ),
    (
        "kernel_matmul.rs",
        "llvmpipe-GL compiles the f16/bf16 tiled variants in minutes each",
    ),
];

/// A new tests/kernel_*.rs must be listed above (or in NOT_ON_GL, with the reason), or
/// it would run on Vulkan only.
#[test]
fn every_kernel_test_file_runs_on_gl() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests");
    let me = include_str!("kernel_gl.rs");
    let mut missing = vec![];
    for e in std::fs::read_dir(&dir).unwrap() {
        let name = e.unwrap().file_name().to_string_lossy().into_owned();
        if name.starts_with("kernel_") && name.ends_with(".rs") && name != "kernel_gl.rs" {
            let excluded = NOT_ON_GL.iter().any(|(f, _)| *f == name);
            if !me.contains(&format!("#[path = \"{name}\"]")) && !excluded {
                missing.push(name);
            }
        }
    }
    assert!(missing.is_empty(), "tests/kernel_gl.rs does not include {missing:?}");
}

/// The binary really runs on GL: a Vulkan fallback would test one backend twice.
#[test]
fn the_gl_binary_runs_on_a_gl_adapter() {
    let dev = common::gpu();
    match dev {
        cliptune::backend::Device::Gpu(g) => {
            assert_eq!(g.api(), Some(cliptune::backend::GpuApi::Gl), "{}", g.adapter_name())
        }
        _ => panic!("not a GPU device"),
    }
}

/// The f32 tiled matmul (the path every model's linear layers take) does compile
/// quickly on llvmpipe-GL: it runs here against the CPU, so GL keeps one matmul check.
#[test]
fn f32_tiled_matmul_matches_cpu_on_gl() {
    use cliptune::backend::{Act, MatmulSpec};
    use cliptune::Tensor;
    let (m, k, n) = (67, 40, 36);
    let a = common::randn(&[m, k], 11);
    let b = common::randn(&[n, k], 12);
    let spec = MatmulSpec {
        batch: 1,
        m,
        n,
        k,
        trans_a: false,
        trans_b: true,
        b_shared: false,
    };
    let mut outs = vec![];
    for dev in [cliptune::backend::Device::Cpu, common::gpu()] {
        let ta = Tensor::from_slice(&a, &[m, k], &dev).unwrap();
        let tb = Tensor::from_slice(&b, &[n, k], &dev).unwrap();
        let (c, _) = dev.backend().matmul(&ta, &tb, None, Act::None, &spec, false).unwrap();
        outs.push(c.to_vec().unwrap());
    }
    let err = common::max_abs(&outs[0], &outs[1]);
    assert!(err <= 1e-4, "GL tiled matmul differs from the CPU by {err}");
}
