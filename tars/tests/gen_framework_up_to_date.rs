//! The generated files checked into the tree must be what the generator makes of
//! their IDL today: `tars/src/framework/` from `tars/idl/*.tars`, and the test
//! clients in `tars/tests/generated/` from `tars/tests/idl/*.tars` (whose `Hello.tars`
//! is a copy of the shared one). Run with `TARS2RS_BLESS=1` to rewrite them after a generator change.
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
    let mut stale = check(
        &tars_files(&root.join("tests/idl")),
        &root.join("tests/generated"),
        "::tarsfork_tars",
    );
    // tests/idl/Hello.tars is a copy of the shared one; keep them the same.
    let shared = root.join("../../shared/tars/Hello.tars");
    if let Ok(text) = std::fs::read_to_string(&shared) {
        let ours = std::fs::read_to_string(root.join("tests/idl/Hello.tars")).unwrap();
        if ours != text {
            stale.push(format!(
                "tests/idl/Hello.tars differs from {}",
                shared.display()
            ));
        }
    }
    assert!(
        stale.is_empty(),
        "regenerate with TARS2RS_BLESS=1: {stale:#?}"
    );
}
