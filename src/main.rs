//! The `cliptune` binary: argument parsing and progress output only; the work is in
//! the library.
// Counts the heap so `cliptune bench` can stop with a report under a host memory budget.
#[global_allocator]
static ALLOC: cliptune::alloc_guard::GuardedAlloc = cliptune::alloc_guard::GuardedAlloc;

fn main() {
    // On a headless machine Mesa's implicit Vulkan layer VK_LAYER_MESA_device_select probes
    // for a Wayland display and prints "error: XDG_RUNTIME_DIR is invalid..." twice, which
    // reads like our own error. We choose adapters ourselves, so switch the layer off there
    // (its manifest's own off switch), unless the user steers it with MESA_VK_DEVICE_SELECT.
    // First thing in main: no other thread exists yet.
    let unset = |k: &str| std::env::var_os(k).is_none();
    if unset("XDG_RUNTIME_DIR") && unset("NODEVICE_SELECT") && unset("MESA_VK_DEVICE_SELECT") {
        std::env::set_var("NODEVICE_SELECT", "1");
    }
    if let Err(e) = cliptune::cli::run() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
