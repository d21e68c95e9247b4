//! Shared test support: hand-written structs, JSON conventions, vector-file access.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod json;
pub mod node;
pub mod structs;

use std::path::PathBuf;

/// `shared/tars/<name>`, read as it is; fails clearly when the file is missing.
pub fn shared_file(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/tars")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read the shared vector file {}: {e} (the tests read /work/shared/tars as it is)",
            path.display()
        )
    })
}
