#![no_main]
//! See `streamhost::fuzzing::sse_frames`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| streamhost::fuzzing::sse_frames(data));
