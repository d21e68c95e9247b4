//! Fuzz target: decode packets, TUP maps and generic values from arbitrary bytes.
#![no_main]

mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::decoder(data));
