#![no_main]
//! `hashforum::fuzzing::config` under libFuzzer.

libfuzzer_sys::fuzz_target!(|data: &[u8]| hashforum::fuzzing::config(data));
