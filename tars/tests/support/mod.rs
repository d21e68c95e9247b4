//! Shared test support: hand-written structs, JSON conventions, fixture access.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod json;
pub mod node;
pub mod structs;

use std::path::{Path, PathBuf};

/// This crate's fixture folder (`tars/tests/fixtures`).
pub fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// `tars/tests/fixtures/<name>`, read as it is; fails clearly when the file is missing.
pub fn fixture(name: &str) -> String {
    let path = fixtures_dir().join(name);
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read the fixture {}: {e}", path.display()))
}
