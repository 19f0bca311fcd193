#![no_main]
//! See `cliptune::fuzz_entry::image`.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    cliptune::fuzz_entry::image(data);
});
