#![no_main]
//! `hashforum::fuzzing::cosignature` under libFuzzer.

libfuzzer_sys::fuzz_target!(|data: &[u8]| hashforum::fuzzing::cosignature(data));
