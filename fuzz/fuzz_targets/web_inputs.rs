//! Fuzz target: vigil::fuzzing::web_inputs (see src/fuzzing.rs).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| vigil::fuzzing::web_inputs(data));
