//! The .tars parser: what it accepts, what it resolves, and the errors it gives.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use tarsfork_tars::idl::{parse_file, parse_str, Item, NamedKind, Type, Value};

fn err(src: &str) -> String {
    match parse_str("t.tars", src, &[]) {
        Ok(_) => panic!("expected an error for:\n{src}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn parses_the_framework_and_hello_idl() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/idl/");
    let files: Vec<String> = ["ServerF", "StatF", "PropertyF"]
        .iter()
        .map(|f| format!("{dir}{f}.tars"))
        .collect();
    let idl = tarsfork_tars::idl::parse_files(&files).unwrap();
    let mods = idl.root_modules();
    let tars = &mods["tars"];
    let head = idl.find_struct("tars", "StatMicMsgHead").unwrap();
    assert_eq!(head.fields.len(), 11);
    assert_eq!(head.fields[10].tag, 10);
    assert!(!head.fields[10].required);
    assert_eq!(head.key.as_ref().unwrap().len(), 11);
    let prop = idl.find_struct("tars", "StatPropMsgHead").unwrap();
    assert_eq!(prop.fields[7].default, Some(Value::Int(1)));
    let ifaces: Vec<&str> = tars
        .iter()
        .filter_map(|i| match i {
            Item::Interface(i) => Some(i.name.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(ifaces, ["ServerF", "StatF", "PropertyF"]);

    let hello = parse_file(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/idl/Hello.tars")).unwrap();
    let m = &hello.root_modules()["TestApp"];
    let Item::Interface(i) = m[1] else {
        panic!("not an interface")
    };
    let f = &i.functions[1];
    assert_eq!(f.name, "testStruct");
    assert_eq!(f.ret, Some(Type::Int));
    assert!(!f.params[0].out && f.params[1].out && f.params[2].out);
    match &f.params[0].ty {
        Type::Named(r) => assert_eq!(r.resolved.as_ref().unwrap().kind, NamedKind::Struct),
        other => panic!("{other:?}"),
    }
    assert_eq!(f.params[2].ty.to_string(), "map<string, string>");
}

#[test]
fn enums_consts_defaults_and_comments() {
    let src = r#"
        /* block
           comment */
        module M {
            enum Color { RED, GREEN = 5, BLUE, NEG = -2, AFTER };   // trailing
            const int LIMIT = 0x10;
            const string NAME = "a\"b\n";
            const double PI = 3.5e0;
            const Color FAV = Color::BLUE;
            struct S {
                0 require int a = -7;
                1 optional Color c = GREEN;
                2 optional M::Color d = M::Color::RED;
                3 optional bool b = true;
                4 optional unsigned int u = 4000000000;
                5 optional vector<map<string, vector<unsigned byte>>> deep;
                6 optional float f = 1;
                255 optional string s = "x";
            };
            interface I {
                void ping();
                unsigned short get(out long x, routekey string k);
            };
        };
    "#;
    let idl = parse_str("t.tars", src, &[]).unwrap();
    let e = idl.find_enum("M", "Color").unwrap();
    let vals: Vec<(String, i32)> = e
        .members
        .iter()
        .map(|m| (m.name.clone(), m.value))
        .collect();
    assert_eq!(
        vals,
        [
            ("RED".into(), 0),
            ("GREEN".into(), 5),
            ("BLUE".into(), 6),
            ("NEG".into(), -2),
            ("AFTER".into(), -1)
        ]
    );
    let s = idl.find_struct("M", "S").unwrap();
    assert_eq!(s.fields[0].default, Some(Value::Int(-7)));
    match &s.fields[1].default {
        Some(Value::Member(m)) => assert_eq!(m.resolved.as_ref().unwrap().2, 5),
        other => panic!("{other:?}"),
    }
    match &s.fields[2].default {
        Some(Value::Member(m)) => assert_eq!(m.resolved.as_ref().unwrap().1, "RED"),
        other => panic!("{other:?}"),
    }
    assert_eq!(s.fields[6].default, Some(Value::Float(1.0)));
    assert_eq!(s.fields[7].tag, 255);
    assert_eq!(
        s.fields[5].ty.to_string(),
        "vector<map<string, vector<unsigned byte>>>"
    );
    let items = &idl.root_modules()["M"];
    let Item::Const(c) = items[2] else { panic!() };
    assert_eq!(c.value, Value::Str("a\"b\n".into()));
    let Item::Interface(i) = items.last().unwrap() else {
        panic!()
    };
    assert_eq!(i.functions[0].ret, None);
    assert_eq!(i.functions[1].ret, Some(Type::UShort));
    assert!(i.functions[1].params[0].out && !i.functions[1].params[1].out);
}

#[test]
fn errors_carry_file_line_and_column() {
    assert_eq!(
        err("module M {\n  struct S {\n    0 require int a\n  };\n};"),
        "t.tars:4:3: expected `;` after field, found `}`"
    );
    assert_eq!(
        err("module M {\n struct S { 0 require Foo a; };\n};"),
        "t.tars:2:23: unknown type `M::Foo` (is its file included?)"
    );
    assert_eq!(
        err("module M { struct S { 256 require int a; }; };"),
        "t.tars:1:23: tag 256 is out of range (0..=255)"
    );
    assert!(
        err("module M { struct S { 1 require int a; 1 optional int b; }; };")
            .contains("tag 1 is already used by field `a`")
    );
    assert!(
        err("module M { struct S { 1 require int a; 2 optional int a; }; };")
            .contains("declared twice")
    );
    assert!(err("module M { struct S { 1 require byte a = 300; }; };")
        .contains("300 is out of range for `byte`"));
    assert!(
        err("module M { struct S { 1 require string a = 3; }; };").contains("expected a string")
    );
    assert!(
        err("module M { enum E { A }; struct S { 1 require E e = B; }; };")
            .contains("`B` is not a member of enum `M::E`")
    );
    assert!(err("module M { struct S { 1 require int a; }; key[S, b]; };").contains("names `b`"));
    assert!(err("module M { struct S { 0 require S me; }; };").contains("contains itself"));
    assert!(
        err("module M { struct S { 0 require int x; }; struct S { 0 require int y; }; };")
            .contains("already declared")
    );
    assert!(
        err("module M { struct S { 0 require unsigned long x; }; };").contains("after `unsigned`")
    );
    assert!(err("module M { /* open").starts_with("t.tars:1:12: unterminated"));
    assert!(err("module M { const string s = \"abc").contains("unterminated string"));
    assert!(err("module M { struct int { }; };").contains("found keyword `int`"));
    assert!(err("module M { enum E { A = 2147483647, B }; };").contains("does not fit"));
    assert!(err("#pragma once").contains("unknown directive"));
    assert!(
        err("module M { struct S { 0 require vector<int> v = 1; }; };")
            .contains("cannot have a default")
    );
    // A struct with an unbounded nesting depth is refused, not a stack overflow.
    let deep = format!(
        "module M {{ struct S {{ 0 require {}int{} v; }}; }};",
        "vector<".repeat(10_000),
        ">".repeat(10_000)
    );
    assert!(err(&deep).contains("nested deeper"));
}

#[test]
fn includes_resolve_relative_detect_cycles_and_read_once() {
    let base = "module Base { struct P { 0 require int x; }; enum K { A, B }; };";
    let top = r#"#include "sub/base.tars"
        #include "sub/../sub/base.tars"
        module Top { struct Q { 0 require Base::P p; 1 optional Base::K k = Base::K::B; }; };"#;
    let idl = parse_str("dir/top.tars", top, &[("dir/sub/base.tars", base)]).unwrap();
    assert_eq!(idl.files.len(), 2, "a file included twice is read once");
    assert_eq!(idl.root_modules().keys().collect::<Vec<_>>(), ["Top"]);
    assert_eq!(idl.all_modules().len(), 2);

    // Without the include, Base is not visible even if it were loaded elsewhere.
    let e = parse_str(
        "dir/top.tars",
        "module Top { struct Q { 0 require Base::P p; }; };",
        &[],
    )
    .unwrap_err();
    assert!(e.to_string().contains("unknown type `Base::P`"), "{e}");

    let a = "#include \"b.tars\"\nmodule A { struct X { 0 require int a; }; };";
    let b = "\n  #include \"a.tars\"\nmodule B { struct Y { 0 require int a; }; };";
    let e = parse_str("a.tars", a, &[("b.tars", b)]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "b.tars:2:12: include cycle: a.tars -> b.tars -> a.tars"
    );

    let e = parse_str("a.tars", "#include \"missing.tars\"", &[]).unwrap_err();
    assert!(
        e.to_string()
            .starts_with("a.tars:1:10: cannot read `missing.tars`"),
        "{e}"
    );
    let e = parse_str(
        "a.tars",
        "#include \"b.tars\"",
        &[("b.tars", "module B { struct X { 0 require int a } };")],
    )
    .unwrap_err();
    assert!(
        e.to_string().starts_with("b.tars:1:39: expected `;`"),
        "{e}"
    );
}

#[test]
fn includes_on_disk_are_relative_to_the_including_file() {
    let dir = std::env::temp_dir().join(format!("idl_parser_{}", std::process::id()));
    std::fs::create_dir_all(dir.join("inc")).unwrap();
    std::fs::write(dir.join("inc/base.tars"), "module B { enum E { X = 3 }; };").unwrap();
    std::fs::write(
        dir.join("main.tars"),
        "#include \"inc/base.tars\"\nmodule A { struct S { 0 optional B::E e = X; }; };",
    )
    .unwrap();
    let idl = parse_file(dir.join("main.tars"));
    std::fs::remove_dir_all(&dir).unwrap();
    let idl = idl.unwrap();
    let s = idl.find_struct("A", "S").unwrap();
    match &s.fields[0].default {
        Some(Value::Member(m)) => assert_eq!(m.resolved.as_ref().unwrap().2, 3),
        other => panic!("{other:?}"),
    }
}
