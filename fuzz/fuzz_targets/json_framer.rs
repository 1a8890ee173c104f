//! The JSON framer must never panic; every element it returns must itself be one valid value.
#![no_main]

use durable_streams_core::json;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(ranges) = json::split_array(data) {
        for (a, b) in ranges {
            assert_eq!(json::validate_value(&data[a..b]), Ok((0, b - a)));
        }
    }
    let _ = json::validate_value(data);
});
