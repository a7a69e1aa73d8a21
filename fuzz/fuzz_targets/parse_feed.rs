#![no_main]
include!("../bodies.rs");

libfuzzer_sys::fuzz_target!(|data: &[u8]| parse_feed_body(data));
