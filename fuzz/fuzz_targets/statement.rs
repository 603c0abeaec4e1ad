#![no_main]
//! `hashforum::fuzzing::statement` under libFuzzer.

libfuzzer_sys::fuzz_target!(|data: &[u8]| hashforum::fuzzing::statement(data));
