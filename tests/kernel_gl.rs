//! The kernel tests again, on GL: llvmpipe through EGL in CI (tests/common pins the GL
//! adapter in this binary by its crate name), so each WGSL kernel is checked against the
//! CPU oracle on a second real backend with GL's own limits and shader translation.
//!
//! Every tests/kernel_*.rs is included; a test below checks that a new one is not
//! forgotten. The test threads of this binary share one GL device, as a multi-threaded
//! user would: the backend serialises their wgpu calls (src/backend/wgpu/context_lock.rs),
//! since wgpu-hal's GL backend panics when a thread waits more than 6 s for the GL
//! context while another compiles an attention pipeline (tests/gpu_gl_threads.rs).
mod common;
#[path = "gpu_dispatch.rs"]
mod gpu_dispatch;
#[path = "kernel_attention.rs"]
mod kernel_attention;
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

/// A new tests/kernel_*.rs must be listed above, or it would run on Vulkan only.
#[test]
fn every_kernel_test_file_runs_on_gl() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests");
    let me = include_str!("kernel_gl.rs");
    let mut missing = vec![];
    for e in std::fs::read_dir(&dir).unwrap() {
        let name = e.unwrap().file_name().to_string_lossy().into_owned();
        let test_file = name.starts_with("kernel_") && name.ends_with(".rs") && name != "kernel_gl.rs";
        if test_file && !me.contains(&format!("#[path = \"{name}\"]")) {
            missing.push(name);
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
