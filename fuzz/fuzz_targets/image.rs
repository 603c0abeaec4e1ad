#![no_main]
//! `hashforum::fuzzing::image` under libFuzzer.

libfuzzer_sys::fuzz_target!(|data: &[u8]| hashforum::fuzzing::image(data));
