#![no_main]
//! `hashforum::fuzzing::match_request` under libFuzzer.

libfuzzer_sys::fuzz_target!(|data: &[u8]| hashforum::fuzzing::match_request(data));
