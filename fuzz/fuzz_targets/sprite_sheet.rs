#![no_main]
//! See `cliptune::fuzz_entry::sprite_sheet`: an `Err` is the reader refusing the input, a panic
//! (a violated invariant included) is the bug libFuzzer reports.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = cliptune::fuzz_entry::sprite_sheet(data);
});
