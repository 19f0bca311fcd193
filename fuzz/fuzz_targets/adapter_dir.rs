#![no_main]
//! See `cliptune::fuzz_entry::adapter_dir`.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    static DIR: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    let dir = DIR.get_or_init(|| {
        let d = std::env::temp_dir().join(format!("cliptune-fuzz-adapter_dir-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    });
    cliptune::fuzz_entry::adapter_dir(dir, data);
});
