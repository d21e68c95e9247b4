//! Fuzz target: the .tars parser and the Rust generator on arbitrary text (split at NUL
//! bytes into up to three files that may include each other). The property lives in
//! `tars/tests/idl_fuzz_check.rs`, shared with `tars/tests/idl_fuzz_regressions.rs`.
#![no_main]

#[path = "../../tests/idl_fuzz_check.rs"]
mod idl_fuzz_check;

libfuzzer_sys::fuzz_target!(|data: &[u8]| idl_fuzz_check::check(data));
