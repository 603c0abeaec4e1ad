#![no_main]
//! `hashforum::fuzzing::evidence` under libFuzzer.

libfuzzer_sys::fuzz_target!(|data: &[u8]| hashforum::fuzzing::evidence(data));
