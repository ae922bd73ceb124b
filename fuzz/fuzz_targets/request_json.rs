#![no_main]
//! See `streamhost::fuzzing::request_json`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| streamhost::fuzzing::request_json(data));
