//! Hostile inputs for the IDL parser and generator, replayed through the fuzz
//! property (`idl_fuzz_check.rs`). Fuzzing (`cargo fuzz run idl_parser`) has found no
//! crash so far; these guard the limits that keep it so (nesting depth, include depth
//! and cycles, long struct chains, huge numbers). Add every future crash input here.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod idl_fuzz_check;

use idl_fuzz_check::check;
use tarsfork_tars::idl::{parse_str, MAX_TYPE_DEPTH};

#[test]
fn deep_type_nesting_is_refused_not_overflowed() {
    for n in [MAX_TYPE_DEPTH - 1, MAX_TYPE_DEPTH, 100_000] {
        let src = format!(
            "module M {{ struct S {{ 0 require {}int{} v; }}; }};",
            "vector<".repeat(n),
            ">".repeat(n)
        );
        check(src.as_bytes());
        let ok = parse_str("a.tars", &src, &[]).is_ok();
        assert_eq!(ok, n < MAX_TYPE_DEPTH, "depth {n}");
    }
    let maps = format!(
        "module M {{ const {}int, int{} x = 1; }};",
        "map<int, ".repeat(50_000),
        ">".repeat(50_000)
    );
    check(maps.as_bytes());
}

#[test]
fn include_chains_and_cycles_end() {
    // A chain of 200 files each including the next: refused past the depth limit.
    let files: Vec<(String, String)> = (0..200)
        .map(|i| {
            (
                format!("f{i}.tars"),
                format!("#include \"f{}.tars\"\nmodule M{i} {{ }};", i + 1),
            )
        })
        .collect();
    let others: Vec<(&str, &str)> = files
        .iter()
        .skip(1)
        .map(|(n, t)| (n.as_str(), t.as_str()))
        .collect();
    let e = parse_str("f0.tars", &files[0].1, &others).unwrap_err();
    assert!(
        e.message.contains("nested deeper") || e.message.contains("cannot read"),
        "{e}"
    );
    // Self-inclusion, and a three-file cycle through a subdirectory.
    check(b"#include \"a.tars\"");
    check(b"#include \"b.tars\"\0#include \"dir/c.tars\"\0#include \"../a.tars\"");
    let e = parse_str("a.tars", "#include \"./a.tars\"", &[]).unwrap_err();
    assert!(e.message.contains("include cycle"), "{e}");
}

#[test]
fn long_struct_chains_and_mutual_recursion_generate() {
    // 3000 structs, each holding the next, the last a float: all lose Eq, no recursion.
    let mut src = String::from("module M {\n");
    for i in 0..3000 {
        src.push_str(&format!("struct S{i} {{ 0 optional S{} next; }};\n", i + 1));
    }
    src.push_str("struct S3000 { 0 optional float f; }; };");
    check(src.as_bytes());
    let idl = parse_str("a.tars", &src, &[]).unwrap();
    let files = tarsfork_tars::gen::generate(&idl).unwrap();
    assert!(
        !files[0].code.contains("Eq, Hash"),
        "a float at the end of the chain removes Eq"
    );
    // A struct that holds itself directly is an error; through a vector it is fine.
    check(b"module M { struct A { 0 optional B b; }; struct B { 0 optional A a; }; };");
    check(b"module M { struct A { 0 optional vector<A> kids; 1 optional map<A, A> m; }; };");
}

#[test]
fn odd_tokens_and_numbers() {
    for src in [
        "module M { const long x = -9223372036854775808; };",
        "module M { const long x = -9223372036854775809; };",
        "module M { const long x = 99999999999999999999999; };",
        "module M { const double d = 1e999; const float f = 1e300; const float g = -0.0; };",
        "module M { const int o = 0777; const int h = 0xFFFFFFFFFFFFFFFFFF; };",
        "module M { enum E { A = -2147483648, B }; enum F { X = 2147483647 }; };",
        "module M { struct S { 0 optional string s = \"\\q\"; }; };",
        "module M { struct S { 0 optional string s = \"\u{0}\u{7f}é\"; }; };",
        "module \u{1F600} { };",
        "/* unterminated",
        "module M { : };",
        "#",
        "#include",
        "#include 5",
        "module M { key[; };",
        "module M { interface I { void f(out out int x); }; };",
        "module M { interface I { int f(int a, int a); }; };",
        "module M { struct S { 255 require int a; 0 require int b; }; };",
        "module type { struct self { 0 require int crate; 1 require int Self; 2 require int fn; }; interface super { void r#in(); }; };",
        "module M { struct S { 0 require int aB; 1 require int a_b; }; };",
        "module a_b { }; module aB { };",
    ] {
        check(src.as_bytes());
    }
    check(&[0; 64]);
    check(&[b'{'; 10_000]);
    check("module M {".repeat(5_000).as_bytes());
}
