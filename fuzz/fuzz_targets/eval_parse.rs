//! Fuzzes `tessera eval`'s expression parser: see `check_eval_parse` for the properties.
#![no_main]

#[path = "../../tests/common/fuzz_properties.rs"]
mod fuzz_properties;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(why) = fuzz_properties::check_eval_parse(data) {
        panic!("{why}");
    }
});
