//! The `tars2rs` command, run as the real binary in a fresh temporary directory.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

/// Runs tars2rs with `args` in `dir`, bounded to 60 s (killed by pid after that).
fn tars2rs(dir: &Path, args: &[&str]) -> Output {
    support::run_within(
        Command::new(env!("CARGO_BIN_EXE_tars2rs"))
            .args(args)
            .current_dir(dir),
        Duration::from_secs(60),
    )
}

#[test]
fn writes_one_file_per_module() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    std::fs::create_dir(d.join("inc")).unwrap();
    std::fs::write(
        d.join("inc/common.tars"),
        "module Common { struct Id { 0 require long id; }; };",
    )
    .unwrap();
    std::fs::write(
        d.join("app.tars"),
        "#include \"inc/common.tars\"\nmodule App { struct User { 0 require Common::Id id; 1 optional string name = \"n\"; };\n\
         interface Users { User get(Common::Id id); void drop(Common::Id id); }; };\n\
         module AppExtra { enum Kind { A, B }; };",
    )
    .unwrap();
    let out = tars2rs(d, &["app.tars", "inc/common.tars", "-o", "gen"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut names: Vec<String> = std::fs::read_dir(d.join("gen"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["app.rs", "app_extra.rs", "common.rs"]);
    let app = std::fs::read_to_string(d.join("gen/app.rs")).unwrap();
    assert!(app.contains("pub struct User {"));
    assert!(app.contains("pub id: super::common::Id,"));
    assert!(app.contains("pub trait UsersServant"));
    assert!(app.contains("pub struct UsersProxy"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(stdout.lines().count(), 3, "{stdout}");
}

#[test]
fn a_bad_idl_exits_non_zero_with_file_line_column() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    std::fs::write(
        d.join("bad.tars"),
        "module M {\n  struct S {\n    0 require int a\n  };\n};\n",
    )
    .unwrap();
    let out = tars2rs(d, &["bad.tars", "-o", "gen"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        err.trim(),
        "bad.tars:4:3: expected `;` after field, found `}`"
    );
    assert!(!d.join("gen").exists(), "nothing is written for a bad IDL");

    // An error inside an included file names that file.
    std::fs::write(d.join("top.tars"), "#include \"bad.tars\"\nmodule T { };\n").unwrap();
    let out = tars2rs(d, &["top.tars", "-o", "gen"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).starts_with("bad.tars:4:3: "));

    // A missing file and bad usage.
    let out = tars2rs(d, &["missing.tars", "-o", "gen"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).starts_with("missing.tars:1:1: cannot read"));
    let out = tars2rs(d, &["bad.tars"]);
    assert_eq!(out.status.code(), Some(2), "no -o is a usage error");
}
