#![no_main]
//! `hashforum::fuzzing::proof` under libFuzzer.

libfuzzer_sys::fuzz_target!(|data: &[u8]| hashforum::fuzzing::proof(data));
