//! Fuzz target: vigil::fuzzing::condition (see src/fuzzing.rs).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| vigil::fuzzing::condition(data));
