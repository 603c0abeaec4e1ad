#![no_main]
//! `hashforum::fuzzing::vkey` under libFuzzer.

libfuzzer_sys::fuzz_target!(|data: &[u8]| hashforum::fuzzing::vkey(data));
