//! Fuzzes the `.npy` header reader: see `check_npy_header` for the properties.
#![no_main]

#[path = "../../tests/common/fuzz_properties.rs"]
mod fuzz_properties;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(why) = fuzz_properties::check_npy_header(data) {
        panic!("{why}");
    }
});
