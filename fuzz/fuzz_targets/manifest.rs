#![no_main]
//! See `streamhost::fuzzing::manifest`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| streamhost::fuzzing::manifest(data));
