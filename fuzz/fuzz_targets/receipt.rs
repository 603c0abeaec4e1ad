#![no_main]
//! `hashforum::fuzzing::receipt` under libFuzzer.

libfuzzer_sys::fuzz_target!(|data: &[u8]| hashforum::fuzzing::receipt(data));
