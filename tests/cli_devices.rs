//! `cliptune devices` on a headless machine: the adapter list, and no stray
//! "XDG_RUNTIME_DIR" errors from Mesa's device-select Vulkan layer (lavapipe in CI has
//! it) that would read like ours.
use std::process::Command;

#[test]
fn devices_lists_the_cpu_and_is_quiet_without_a_display() {
    let out = Command::new(env!("CARGO_BIN_EXE_cliptune"))
        .arg("devices")
        .env_remove("XDG_RUNTIME_DIR")
        .env_remove("NODEVICE_SELECT")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "devices failed: {stderr}");
    assert!(stdout.contains("cpu backend"), "no CPU line in: {stdout}");
    assert!(stdout.contains("--device auto picks"), "no auto choice in: {stdout}");
    assert!(
        !stderr.contains("XDG_RUNTIME_DIR") && !stdout.contains("XDG_RUNTIME_DIR"),
        "a Vulkan layer's display probe leaked out: {stderr}"
    );
}

fn cliptune(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_cliptune"))
        .args(args)
        .env(
            "XDG_RUNTIME_DIR",
            std::env::var("XDG_RUNTIME_DIR").unwrap_or("/tmp".into()),
        )
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Both CI adapters are listed with their API, the limits the kernels need and the
/// kernel families that run there.
#[test]
fn devices_lists_vulkan_and_gl_adapters_with_kernel_limits() {
    let (ok, stdout, stderr) = cliptune(&["devices"]);
    assert!(ok, "devices failed: {stderr}");
    for api in ["vulkan", "gl"] {
        let line = stdout
            .lines()
            .find(|l| l.starts_with("GPU adapter:") && l.contains(&format!("[--backend {api} /")))
            .unwrap_or_else(|| panic!("no {api} adapter listed (CI installs lavapipe and EGL/llvmpipe):\n{stdout}"));
        assert!(line.contains("software"), "{line}");
    }
    assert!(stdout.contains("storage buffers per stage"), "{stdout}");
    assert!(stdout.contains("KiB workgroup memory"), "{stdout}");
    assert!(
        stdout
            .contains("kernels that run here: memory, elementwise, norms, matmul, attention, contrastive_loss, optim"),
        "{stdout}"
    );
    let (ok, json, stderr) = cliptune(&["devices", "--json"]);
    assert!(ok, "{stderr}");
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let adapters = v["adapters"].as_array().unwrap();
    assert!(
        adapters
            .iter()
            .any(|a| a["backend"] == "gl" && a["max_storage_buffers_per_stage"].as_u64().unwrap() >= 8),
        "{json}"
    );
    assert!(
        v["compiled_backends"].as_array().unwrap().iter().any(|b| b == "gl"),
        "{json}"
    );
}

/// `cliptune check` passes on both CI adapters (lavapipe's Vulkan and llvmpipe's GL)
/// and says which adapter it used.
#[test]
fn check_passes_on_vulkan_and_gl() {
    for (api, marker) in [("vulkan", "(Vulkan)"), ("gl", "(Gl)")] {
        let (ok, stdout, stderr) = cliptune(&["check", "--backend", api]);
        assert!(ok, "check --backend {api} failed:\n{stdout}\n{stderr}");
        let first = stdout.lines().next().unwrap_or("");
        assert!(
            first.starts_with("device: ") && first.contains(marker),
            "not on {api}: {first}"
        );
        assert!(!stdout.contains("FAIL"), "{stdout}");
    }
}

#[test]
fn a_bad_or_missing_backend_is_a_clear_error() {
    let (ok, _, stderr) = cliptune(&["check", "--backend", "glide"]);
    assert!(
        !ok && stderr.contains("--backend: expected vulkan, metal, dx12 or gl, got 'glide'"),
        "{stderr}"
    );
    let (ok, _, stderr) = cliptune(&["check", "--device", "cpu", "--backend", "gl"]);
    assert!(
        !ok && stderr.contains("--backend gl") && stderr.contains("--device is cpu"),
        "{stderr}"
    );
    // Metal exists only on Apple platforms: elsewhere the flag names what is compiled in.
    if !cfg!(target_vendor = "apple") {
        let (ok, _, stderr) = cliptune(&["check", "--backend", "metal"]);
        assert!(!ok, "{stderr}");
        assert!(
            stderr.contains("--backend metal") && stderr.contains("no metal support") && stderr.contains("vulkan"),
            "{stderr}"
        );
    }
}
