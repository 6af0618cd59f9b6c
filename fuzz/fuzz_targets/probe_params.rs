//! Fuzz target: vigil::fuzzing::probe_params (see src/fuzzing.rs).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| vigil::fuzzing::probe_params(data));
