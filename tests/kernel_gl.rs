//! The kernel tests again, on GL: llvmpipe through EGL in CI (tests/common pins the GL
//! adapter in this binary by its crate name), so each WGSL kernel is checked against the
//! CPU oracle on a second real backend with GL's own limits and shader translation.
//!
//! Every tests/kernel_*.rs is included (a test below checks that a new one is not
//! forgotten) but kernel_attention.rs (see [`NOT_ON_GL`]): its pipelines compile in 3-6 s
//! each on llvmpipe-GL (docs/PERFORMANCE.md, GL section), and wgpu-hal's GL backend
//! panics when another thread waits more than 6 s for the GL context
//! (CONTEXT_LOCK_TIMEOUT_SECS in wgpu-hal's egl.rs), which the parallel test threads
//! of this binary do on a loaded 2-core CI machine. `cliptune check --backend gl`
//! (tests/cli_devices.rs) runs the attention kernels on GL, single-threaded.
mod common;
#[path = "gpu_dispatch.rs"]
mod gpu_dispatch;
#[path = "kernel_elementwise.rs"]
mod kernel_elementwise;
#[path = "kernel_loss.rs"]
mod kernel_loss;
#[path = "kernel_matmul.rs"]
mod kernel_matmul;
#[path = "kernel_memory.rs"]
mod kernel_memory;
#[path = "kernel_norms.rs"]
mod kernel_norms;
#[path = "kernel_optim.rs"]
mod kernel_optim;

/// Kernel test files that do not run in this binary, and why (see the top of this file).
const NOT_ON_GL: &[(&str, &str)] = &[(
    "kernel_attention.rs",
    "a > 6 s GL pipeline compile in one test thread panics wgpu-hal's context lock in another",
)];

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
