#![no_main]
//! See `cliptune::fuzz_entry::captions`: an `Err` is the reader refusing the input, a panic
//! (a violated invariant included) is the bug libFuzzer reports.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    static DIR: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    // One fuzzing process per directory: libFuzzer's -fork/-jobs children each get a pid.
    let dir = DIR.get_or_init(|| {
        let d = std::env::temp_dir().join(format!("cliptune-fuzz-captions-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    });
    let _ = cliptune::fuzz_entry::captions(dir, data);
});
