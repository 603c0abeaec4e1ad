#![no_main]
//! `hashforum::fuzzing::checkpoint` under libFuzzer.

libfuzzer_sys::fuzz_target!(|data: &[u8]| hashforum::fuzzing::checkpoint(data));
