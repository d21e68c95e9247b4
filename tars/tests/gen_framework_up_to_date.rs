//! The generated files checked into the tree must be what the generator makes of
//! their IDL today: `tars/src/framework/` from `tars/idl/*.tars`, and the test
//! clients in `tars/tests/generated/` from `tars/tests/idl/*.tars`. Run with
//! `TARS2RS_BLESS=1` to rewrite them after a generator change. The reference copies
//! (`tests/fixtures/`, and `tests/idl/Hello.tars`, the platform's demo IDL) must be the
//! files recorded in `tests/fixtures/SHA256SUMS`: missing or edited, they fail.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use tarsfork_tars::gen::{generate_with, GenOptions};
use tarsfork_tars::idl::parse_files;

fn manifest() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn tars_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "tars"))
        .collect();
    v.sort();
    v
}

/// Regenerates `inputs` and compares (or, blessing, writes) the files in `out_dir`.
fn check(inputs: &[PathBuf], out_dir: &Path, runtime: &str) -> Vec<String> {
    let idl = parse_files(inputs).unwrap();
    let opts = GenOptions {
        runtime: runtime.to_owned(),
    };
    let files = generate_with(&idl, &opts).unwrap();
    assert!(!files.is_empty());
    let bless = std::env::var_os("TARS2RS_BLESS").is_some();
    let mut stale = Vec::new();
    for f in &files {
        let path = out_dir.join(&f.file_name);
        if bless {
            std::fs::create_dir_all(out_dir).unwrap();
            std::fs::write(&path, &f.code).unwrap();
            continue;
        }
        match std::fs::read_to_string(&path) {
            Ok(text) if text == f.code => {}
            Ok(_) => stale.push(format!(
                "{} differs from the generator's output",
                path.display()
            )),
            Err(e) => stale.push(format!("{}: {e}", path.display())),
        }
    }
    stale
}

#[test]
fn framework_files_match_their_idl() {
    let root = manifest();
    let inputs = tars_files(&root.join("idl"));
    let names: Vec<String> = inputs
        .iter()
        .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    for want in [
        "AdminF",
        "ConfigF",
        "LogF",
        "PropertyF",
        "QueryF",
        "ServerF",
        "StatF",
    ] {
        assert!(
            names.iter().any(|n| n == want),
            "tars/idl/{want}.tars is missing"
        );
    }
    let stale = check(&inputs, &root.join("src/framework"), "crate");
    assert!(
        stale.is_empty(),
        "regenerate with TARS2RS_BLESS=1: {stale:#?}"
    );
}

#[test]
fn generated_test_clients_match_their_idl() {
    let root = manifest();
    let stale = check(
        &tars_files(&root.join("tests/idl")),
        &root.join("tests/generated"),
        "::tarsfork_tars",
    );
    assert!(
        stale.is_empty(),
        "regenerate with TARS2RS_BLESS=1: {stale:#?}"
    );
}

#[test]
fn reference_copies_are_the_recorded_files() {
    let dir = manifest().join("tests/fixtures");
    let sums = std::fs::read_to_string(dir.join("SHA256SUMS")).unwrap();
    let listed: Vec<&str> = sums
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1))
        .collect();
    for want in [
        "tars-stream-vectors.json",
        "tarscpp-vectors.json",
        "../idl/Hello.tars",
    ] {
        assert!(listed.contains(&want), "SHA256SUMS lacks {want}: {sums}");
    }
    // A missing file fails here too (sha256sum -c reports it and exits 1).
    let out = std::process::Command::new("sha256sum")
        .args(["--check", "--strict", "SHA256SUMS"])
        .current_dir(&dir)
        .output()
        .expect("run sha256sum");
    assert!(
        out.status.success(),
        "a reference copy is missing or was edited (see tests/fixtures/README.md):\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
