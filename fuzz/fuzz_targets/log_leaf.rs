#![no_main]
//! `hashforum::fuzzing::log_leaf` under libFuzzer.

libfuzzer_sys::fuzz_target!(|data: &[u8]| hashforum::fuzzing::log_leaf(data));
