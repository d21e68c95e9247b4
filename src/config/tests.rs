//! Unit tests of the config tree and endpoint parsers.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use super::*;
use std::path::Path;

const SERVER: [&str; 3] = ["tars", "application", "server"];

/// The fixture folder of the root crate's tests (see its README).
fn fixtures() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn example_path() -> std::path::PathBuf {
    fixtures().join("example.config.conf")
}

#[test]
fn example_config_is_the_recorded_copy() {
    // Missing or edited, the copy fails here (sha256sum -c reports a missing file).
    let out = std::process::Command::new("sha256sum")
        .args(["--check", "--strict", "SHA256SUMS"])
        .current_dir(fixtures())
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && said.contains("example.config.conf: OK"),
        "tests/fixtures/example.config.conf is missing or was edited:\n{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn parse(text: &str) -> ConfigTree {
    match ConfigTree::parse(text, "t.conf") {
        Ok(tree) => tree,
        Err(e) => panic!("unexpected parse error: {e}"),
    }
}

fn parse_err(text: &str) -> ConfigError {
    match ConfigTree::parse(text, "/x/app.conf") {
        Ok(tree) => panic!("expected an error, got {tree:?}"),
        Err(e) => e,
    }
}

#[test]
fn example_file_tree_shape_values_and_lines() {
    let tree = ConfigTree::load(example_path()).unwrap();
    assert_eq!(tree.file(), example_path());
    let root_names: Vec<&str> = tree.root().children().iter().map(Block::name).collect();
    assert_eq!(root_names, ["tars"]);

    let app = tree.block(&["tars", "application"]).unwrap();
    assert_eq!(app.line(), 2);
    assert_eq!(app.close_line(), 58);
    assert_eq!(app.get("enableset"), Some("n"));
    assert_eq!(app.get("setdivision"), Some("NULL"));
    let children: Vec<&str> = app.children().iter().map(Block::name).collect();
    assert_eq!(children, ["server", "client"]);

    let server = tree.block(&SERVER).unwrap();
    assert_eq!((server.line(), server.close_line()), (5, 46));
    let keys: Vec<&str> = server.entries().iter().map(Entry::key).collect();
    assert_eq!(
        keys,
        [
            "node",
            "app",
            "server",
            "nodename",
            "localip",
            "local",
            "basepath",
            "datapath",
            "logpath",
            "logsize",
            "lognum",
            "logLevel",
            "config",
            "notify",
            "log",
            "deactivating-timeout",
            "activating-timeout",
            "task_worker_num",
            "daemonize",
            "max_request"
        ]
    );
    // A value may contain '=' free text such as endpoint options, and spaces.
    assert_eq!(
        tree.get(&SERVER, "node"),
        Some("tars.tarsnode.ServerObj@tcp -h 127.0.0.1 -p 19386 -t 60000")
    );
    assert_eq!(tree.get(&SERVER, "app"), Some("TestApp"));
    assert_eq!(tree.entry(&SERVER, "app").unwrap().line(), 7);
    assert_eq!(tree.entry(&SERVER, "max_request").unwrap().line(), 25);
    assert_eq!(tree.get(&SERVER, "logsize"), Some("15M"));
    assert_eq!(tree.get(&SERVER, "missing"), None);

    let adapters: Vec<(&str, usize)> = server
        .children()
        .iter()
        .map(|b| (b.name(), b.line()))
        .collect();
    assert_eq!(
        adapters,
        [
            ("TestApp.HelloServer.HttpObjAdapter", 26),
            ("TestApp.HelloServer.HelloObjAdapter", 36)
        ]
    );
    let http = server.child("TestApp.HelloServer.HttpObjAdapter").unwrap();
    let allow = http.entry("allow").unwrap();
    assert!(allow.is_bare());
    assert_eq!((allow.value(), allow.line()), ("", 27));
    assert_eq!(http.get("protocol"), Some("not_tars"));
    assert_eq!(http.entry("endpoint").unwrap().line(), 28);
    assert_eq!(http.entries().len(), 8);

    let client = tree.block(&["tars", "application", "client"]).unwrap();
    assert_eq!(client.get("modulename"), Some("TestApp.HelloServer"));
    assert_eq!(client.entry("asyncthread").unwrap().line(), 55);
    assert_eq!(client.entries().len(), 9);
}

#[test]
fn escapes_in_keys_and_values() {
    let tree = parse(
        "<a>\n\
         k1=x\\=y=z\n\
         k2=back\\\\slash\n\
         k\\=3=v\n\
         k4=line\\nbreak\\ttab\\rcr\n\
         k5=C:\\dir\\q\n\
         k6=trail\\\n\
         k7\\\\=after-escaped-backslash\n\
         </a>\n",
    );
    let a = tree.block(&["a"]).unwrap();
    assert_eq!(a.get("k1"), Some("x=y=z"));
    assert_eq!(a.get("k2"), Some("back\\slash"));
    assert_eq!(a.get("k=3"), Some("v"));
    assert_eq!(a.get("k4"), Some("line\nbreak\ttab\rcr"));
    // Backslashes that start no known escape are kept literally.
    assert_eq!(a.get("k5"), Some("C:\\dir\\q"));
    assert_eq!(a.get("k6"), Some("trail\\"));
    // `\\` escapes the backslash, so the following '=' splits key and value.
    assert_eq!(a.get("k7\\"), Some("after-escaped-backslash"));
}

#[test]
fn bare_keys_empty_values_whitespace_comments() {
    let tree = parse(
        "\u{feff}# leading comment\r\n\
         <a>\r\n\
         \t  allow  \r\n\
         empty=\r\n\
         \r\n\
         \t# indented comment\r\n\
         spaced  =  some value  \r\n\
         hash=a#b\r\n\
         </a>\r\n",
    );
    let a = tree.block(&["a"]).unwrap();
    let allow = a.entry("allow").unwrap();
    assert!(allow.is_bare());
    assert_eq!(allow.line(), 3);
    let empty = a.entry("empty").unwrap();
    assert!(!empty.is_bare());
    assert_eq!(empty.value(), "");
    assert!(a.has("empty"));
    assert_eq!(a.get("spaced"), Some("some value"));
    assert_eq!(a.entry("spaced").unwrap().line(), 7);
    assert_eq!(a.get("hash"), Some("a#b"));
    assert_eq!(a.entries().len(), 4);
}

#[test]
fn duplicate_key_last_wins_and_moves_like_tc_config() {
    let tree = parse("<a>\nx=1\ny=2\nx=3\n</a>\n");
    let a = tree.block(&["a"]).unwrap();
    assert_eq!(a.get("x"), Some("3"));
    assert_eq!(a.entry("x").unwrap().line(), 4);
    let keys: Vec<&str> = a.entries().iter().map(Entry::key).collect();
    assert_eq!(keys, ["y", "x"]);
}

#[test]
fn reopened_block_merges_into_the_first() {
    let tree = parse("<a>\n<b>\nx=1\n</b>\n<c>\n</c>\n<b>\ny=2\n</b>\n</a>\n");
    let a = tree.block(&["a"]).unwrap();
    let names: Vec<&str> = a.children().iter().map(Block::name).collect();
    assert_eq!(names, ["b", "c"]);
    let b = a.child("b").unwrap();
    assert_eq!((b.get("x"), b.get("y")), (Some("1"), Some("2")));
    assert_eq!((b.line(), b.close_line()), (2, 9));
}

#[test]
fn dotted_block_names_and_paths() {
    let tree = parse("<tars>\n<X.Y.HttpObjAdapter>\nk=v\n</X.Y.HttpObjAdapter>\n</tars>\n");
    assert_eq!(tree.get(&["tars", "X.Y.HttpObjAdapter"], "k"), Some("v"));
    assert!(tree.block(&["tars", "X"]).is_none());
    assert_eq!(tree.block(&[]).map(Block::name), Some(""));
}

#[test]
fn error_unclosed_block_names_the_opening_line() {
    let e = parse_err("<tars>\n  <server>\n    app=A\n</tars>\n");
    // </tars> while <server> is open is the first problem found.
    assert_eq!(e.line(), Some(4));
    assert_eq!(
        e.to_string(),
        "/x/app.conf:4: expected </server> but found </tars>; <server> was opened on line 2 and must be closed first"
    );

    let e = parse_err("<tars>\n  <application>\n\n    <server>\n      app=A\n    </server>\n");
    assert_eq!(e.line(), Some(2));
    assert_eq!(
        e.to_string(),
        "/x/app.conf:2: unclosed block <application> opened here; add </application>"
    );
}

#[test]
fn error_mismatched_close() {
    let e = parse_err("<tars>\n<a>\n<server>\nx=1\n\n\n</client>\n</a>\n</tars>\n");
    assert!(matches!(e, ConfigError::Syntax { .. }));
    assert_eq!(e.line(), Some(7));
    assert!(
        e.to_string()
            .starts_with("/x/app.conf:7: expected </server> but found </client>"),
        "{e}"
    );
}

#[test]
fn error_stray_close_missing_gt_trailing_text_empty_key_empty_name() {
    let e = parse_err("x=1\n</a>\n");
    assert_eq!(
        e.to_string(),
        "/x/app.conf:2: found </a> but no block is open; remove it or add <a> above"
    );

    let e = parse_err("<a>\n  <b\n</a>\n");
    assert_eq!(e.line(), Some(2));
    assert_eq!(e.location().unwrap().column, Some(3));
    assert!(e.to_string().contains("has no closing '>'"), "{e}");

    let e = parse_err("<a>\n  <b>x=1\n</b>\n</a>\n");
    assert_eq!(e.location().unwrap().column, Some(6));
    assert_eq!(
        e.to_string(),
        "/x/app.conf:2:6: unexpected `x=1` after `<b>`; put it on a line of its own"
    );

    let e = parse_err("<a>\n\n   =value\n</a>\n");
    assert_eq!(e.line(), Some(3));
    assert_eq!(e.location().unwrap().column, Some(4));
    assert!(e.to_string().contains("no key before '='"), "{e}");

    let e = parse_err("<>\n</>\n");
    assert_eq!(e.line(), Some(1));
    assert!(e.to_string().contains("empty block name"), "{e}");
}

#[test]
fn error_nesting_too_deep() {
    let mut text = String::new();
    for i in 0..=MAX_DEPTH {
        text.push_str(&format!("<b{i}>\n"));
    }
    let e = parse_err(&text);
    assert_eq!(e.line(), Some(MAX_DEPTH + 1));
    assert!(e.to_string().contains("nested more than"), "{e}");

    // Exactly MAX_DEPTH levels are fine.
    let mut text = String::new();
    for i in 0..MAX_DEPTH {
        text.push_str(&format!("<b{i}>\n"));
    }
    for i in (0..MAX_DEPTH).rev() {
        text.push_str(&format!("</b{i}>\n"));
    }
    assert!(ConfigTree::parse(&text, "t").is_ok());
}

#[test]
fn load_errors_missing_file_bad_utf8_too_large() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.conf");
    let e = ConfigTree::load(&missing).unwrap_err();
    assert!(matches!(e, ConfigError::Read { .. }));
    assert!(e.to_string().starts_with("cannot read config file "), "{e}");
    assert!(e.to_string().contains("nope.conf"), "{e}");

    let bad = dir.path().join("bad.conf");
    std::fs::write(&bad, b"<a>\nok=1\nx=\xff\xfe\n</a>\n").unwrap();
    let e = ConfigTree::load(&bad).unwrap_err();
    assert_eq!(e.line(), Some(3));
    assert_eq!(e.location().unwrap().column, Some(3));
    assert!(e.to_string().contains("not valid UTF-8"), "{e}");

    let big = dir.path().join("big.conf");
    let line = "# padding padding padding padding padding padding padding padding\n";
    let copies = (MAX_CONFIG_BYTES as usize / line.len()) + 2;
    std::fs::write(&big, line.repeat(copies)).unwrap();
    let e = ConfigTree::load(&big).unwrap_err();
    assert!(matches!(e, ConfigError::TooLarge { .. }), "{e}");
}

#[test]
fn many_distinct_keys_parse_in_linear_time() {
    // 200k keys with repeats; a quadratic duplicate check would take minutes.
    let mut text = String::from("<a>\n");
    for i in 0..200_000 {
        text.push_str(&format!("k{}=v{i}\n", i % 100_000));
    }
    text.push_str("</a>\n");
    let tree = parse(&text);
    let a = tree.block(&["a"]).unwrap();
    assert_eq!(a.entries().len(), 100_000);
    assert_eq!(a.get("k5"), Some("v100005"));
}

#[test]
fn hostile_inputs_do_not_panic() {
    // Deterministic mutations of the example: every result must be Ok or Err.
    let base = std::fs::read(example_path()).unwrap();
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let alphabet = b"<>/=\\#\n\r\t a\xc3\xa9";
    for _ in 0..2000 {
        let mut bytes = base.clone();
        for _ in 0..(next() % 8 + 1) {
            let at = (next() as usize) % bytes.len();
            let c = alphabet[(next() as usize) % alphabet.len()];
            match next() % 3 {
                0 => bytes[at] = c,
                1 => bytes.insert(at, c),
                _ => {
                    bytes.remove(at);
                }
            }
        }
        let text = String::from_utf8_lossy(&bytes);
        let _ = ConfigTree::parse(&text, "fuzz.conf");
    }
}

// ---- endpoints -------------------------------------------------------------------

#[test]
fn endpoint_parse_any_order_and_round_trip() {
    let e = Endpoint::parse("tcp -h 127.0.0.1 -p 8080 -t 60000").unwrap();
    assert_eq!(e.transport, Transport::Tcp);
    assert_eq!(
        (e.host.as_str(), e.port, e.timeout_ms),
        ("127.0.0.1", 8080, Some(60000))
    );
    assert_eq!(e.to_string(), "tcp -h 127.0.0.1 -p 8080 -t 60000");
    assert_eq!(e.timeout(), std::time::Duration::from_secs(60));
    assert_eq!(e.host_port(), "127.0.0.1:8080");
    assert_eq!(e.socket_addr(), Some("127.0.0.1:8080".parse().unwrap()));

    let e = Endpoint::parse("  UDP   -t 5 -b 10.0.0.1 -p 53 -h dns.local -e 1 ").unwrap();
    assert_eq!(e.transport, Transport::Udp);
    assert_eq!(e.host, "dns.local");
    assert_eq!(e.bind.as_deref(), Some("10.0.0.1"));
    assert_eq!(e.extra, [("-e".to_string(), "1".to_string())]);
    assert_eq!(e.socket_addr(), None);
    let printed = e.to_string();
    assert_eq!(printed, "udp -h dns.local -p 53 -t 5 -b 10.0.0.1 -e 1");
    assert_eq!(printed.parse::<Endpoint>().unwrap(), e);

    let e = Endpoint::parse("ssl -p 443 -h ::1").unwrap();
    assert_eq!(e.timeout_ms, None);
    assert_eq!(
        e.timeout(),
        std::time::Duration::from_millis(DEFAULT_ENDPOINT_TIMEOUT_MS)
    );
    assert_eq!(e.host_port(), "[::1]:443");
    assert_eq!(Endpoint::parse(&e.to_string()).unwrap(), e);
}

#[test]
fn endpoint_errors_say_what_is_wrong() {
    let cases = [
        ("", EndpointError::Empty),
        (
            "http -h a -p 1",
            EndpointError::UnknownTransport("http".into()),
        ),
        ("tcp -h 127.0.0.1", EndpointError::MissingPort),
        ("tcp -p 80", EndpointError::MissingHost),
        (
            "tcp -h a -p eighty",
            EndpointError::BadPort("eighty".into()),
        ),
        ("tcp -h a -p 70000", EndpointError::BadPort("70000".into())),
        ("tcp -h a -p -1", EndpointError::BadPort("-1".into())),
        (
            "tcp -h a -p 1 -t soon",
            EndpointError::BadTimeout("soon".into()),
        ),
        ("tcp -h a -p 1 -t", EndpointError::MissingValue("-t".into())),
        ("tcp -h a -h b -p 1", EndpointError::Duplicate("-h".into())),
        (
            "tcp -h a -p 1 stray",
            EndpointError::Unexpected("stray".into()),
        ),
    ];
    for (text, want) in cases {
        assert_eq!(Endpoint::parse(text), Err(want), "{text:?}");
    }
    assert_eq!(EndpointError::MissingPort.to_string(), "missing -p PORT");
    assert_eq!(
        EndpointError::BadPort("x".into()).to_string(),
        "port `x` is not a number from 0 to 65535"
    );
}

#[test]
fn endpoint_clashes() {
    let ep = |s: &str| Endpoint::parse(s).unwrap();
    assert!(ep("tcp -h 127.0.0.1 -p 80").clashes_with(&ep("ssl -h 127.0.0.1 -p 80 -t 5")));
    assert!(ep("tcp -h 0.0.0.0 -p 80").clashes_with(&ep("tcp -h 127.0.0.1 -p 80")));
    assert!(!ep("tcp -h 127.0.0.1 -p 80").clashes_with(&ep("udp -h 127.0.0.1 -p 80")));
    assert!(!ep("tcp -h 127.0.0.1 -p 80").clashes_with(&ep("tcp -h 127.0.0.2 -p 80")));
    assert!(!ep("tcp -h 127.0.0.1 -p 0").clashes_with(&ep("tcp -h 127.0.0.1 -p 0")));
}

#[test]
fn object_refs_parse_and_round_trip() {
    let o = ObjectRef::parse("tars.tarsconfig.ConfigObj").unwrap();
    assert_eq!(o.name, "tars.tarsconfig.ConfigObj");
    assert!(o.endpoints.is_empty());
    assert_eq!(o.to_string(), "tars.tarsconfig.ConfigObj");

    let text = "tars.tarsregistry.QueryObj@tcp -h 10.0.0.1 -p 17890:tcp -h ::1 -p 17891 -t 3000";
    let o = ObjectRef::parse(text).unwrap();
    assert_eq!(o.name, "tars.tarsregistry.QueryObj");
    assert_eq!(o.endpoints.len(), 2);
    assert_eq!(o.endpoints[1].host, "::1");
    assert_eq!(o.endpoints[1].port, 17891);
    assert_eq!(o.to_string(), text);
    assert_eq!(o.to_string().parse::<ObjectRef>().unwrap(), o);

    // Whitespace around the separators, as some templates write it.
    let o = ObjectRef::parse("A.B.C @ tcp -h h1 -p 1 : udp -h h2 -p 2").unwrap();
    assert_eq!(o.name, "A.B.C");
    assert_eq!(o.endpoints[1].transport, Transport::Udp);

    assert_eq!(
        ObjectRef::parse("@tcp -h a -p 1"),
        Err(EndpointError::BadObjectName(String::new()))
    );
    assert_eq!(
        ObjectRef::parse("A@"),
        Err(EndpointError::EmptyObjectEndpoint)
    );
    assert_eq!(
        ObjectRef::parse("A@tcp -h a -p 1:"),
        Err(EndpointError::EmptyObjectEndpoint)
    );
    assert_eq!(
        ObjectRef::parse("A@tcp -h a"),
        Err(EndpointError::MissingPort)
    );
}
