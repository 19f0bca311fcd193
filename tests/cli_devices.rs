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
