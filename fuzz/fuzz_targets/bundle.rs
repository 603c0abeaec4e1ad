#![no_main]
//! `hashforum::fuzzing::bundle` under libFuzzer.

libfuzzer_sys::fuzz_target!(|data: &[u8]| hashforum::fuzzing::bundle(data));
