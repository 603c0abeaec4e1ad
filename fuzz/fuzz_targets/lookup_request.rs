#![no_main]
//! `hashforum::fuzzing::lookup_request` under libFuzzer.

libfuzzer_sys::fuzz_target!(|data: &[u8]| hashforum::fuzzing::lookup_request(data));
