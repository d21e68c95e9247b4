//! Fuzz target: the incremental frame splitter against a one-shot parse.
#![no_main]

mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::frame_splitter(data));
