//! The `cliptune` binary: argument parsing and progress output only; the work is in
//! the library.
// Counts the heap so `cliptune bench` can stop with a report under a host memory budget.
#[global_allocator]
static ALLOC: cliptune::alloc_guard::GuardedAlloc = cliptune::alloc_guard::GuardedAlloc;

const OOM_REPORT: &str = "error: out of memory: @@FAILURE@@ (peak resident memory @@PEAK_RSS_MIB@@ MiB); lower \
    --batch (or --rank for LoRA). Every file in --out was written atomically: --resume continues from the last \
    checkpoint.\n";

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
    // The commands that train: the first Ctrl-C / SIGTERM stops after the current step with
    // a checkpoint; running out of memory ends with a report instead of an abort.
    if matches!(std::env::args().nth(1).as_deref(), Some("train" | "pretrain")) {
        if let Err(e) = cliptune::signal::install() {
            eprintln!("warning: {e}");
        }
        cliptune::alloc_guard::set_report("", OOM_REPORT);
    }
    if let Err(e) = cliptune::cli::run() {
        if e.kind == cliptune::ErrorKind::Interrupted {
            eprintln!("\n{e}");
            let sig = cliptune::cancel::signalled().unwrap_or(libc::SIGINT);
            std::process::exit(cliptune::signal::exit_code(sig));
        }
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
