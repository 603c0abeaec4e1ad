#![no_main]
//! `hashforum::fuzzing::submit_request` under libFuzzer.

libfuzzer_sys::fuzz_target!(|data: &[u8]| hashforum::fuzzing::submit_request(data));
