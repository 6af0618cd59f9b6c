//! Fuzz target: vigil::fuzzing::perfdata (see src/fuzzing.rs).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| vigil::fuzzing::perfdata(data));
