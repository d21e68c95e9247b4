//! Tars RPC adapters over real sockets: the demo's HelloObj called through the
//! tars2rs-generated client in v1 and v3, error codes, pipelining, bad frames.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

#[allow(clippy::all, dead_code)]
#[rustfmt::skip]
#[path = "../bin/generated/test_app.rs"]
mod test_app;

use std::process::Command;
use std::time::Duration;

use support::*;
use tarsfork_tars::packet::RequestPacket;
use tarsfork_tars::proxy::{CallError, Protocol, Proxy};
use test_app::{HelloProxy, HelloReq};

const SERVANT: &str = HELLO_SERVANT;

/// A started server with the Tars adapter; its port.
fn tars_server() -> (Server, u16) {
    let s = Server::new(Opts::default().with_tars());
    s.start();
    let port = s.tars_port();
    (s, port)
}

fn hello(port: u16, protocol: Protocol) -> HelloProxy {
    let mut p = Proxy::new(local(port), SERVANT);
    p.set_protocol(protocol);
    p.set_timeout(Duration::from_secs(5));
    HelloProxy::new(p)
}

#[test]
fn generated_client_calls_hello_obj_in_v1_and_v3() {
    let (s, port) = tars_server();
    for protocol in [Protocol::Tars, Protocol::Tup] {
        let mut h = hello(port, protocol);
        assert_eq!(h.test_hello("ping").unwrap(), (0, "ping".to_string()));
        h.proxy_mut()
            .context_mut()
            .insert("k".into(), "ctx-value".into());
        let req = HelloReq {
            name: "ann".into(),
            times: 2,
            lucky: vec![3, 4],
        };
        let (ret, greetings, info) = h.test_struct(&req).unwrap();
        assert_eq!(ret, 7);
        assert_eq!(greetings, vec!["hi ann #0", "hi ann #1"]);
        assert_eq!(info["name"], "ann");
        assert_eq!(info["lucky"], "3,4");
        assert_eq!(info["ctx"], "ctx-value", "context is passed through");
        assert_eq!(info["version"], protocol.version().to_string());
    }
    // The HTTP adapter keeps working beside it.
    assert_eq!(s.get("/").0, 200);
    s.stop();
}

fn server_code(e: CallError) -> i32 {
    match e {
        CallError::Server { code, .. } => code,
        other => panic!("expected a server error code, got {other}"),
    }
}

#[test]
fn unknown_servant_function_and_bad_arguments_get_their_codes() {
    let (s, port) = tars_server();
    for protocol in [Protocol::Tars, Protocol::Tup] {
        let mut other = Proxy::new(local(port), "TestApp.HelloServer.NopeObj");
        other.set_protocol(protocol);
        let args = other.args();
        assert_eq!(
            server_code(other.invoke("testHello", args).unwrap_err()),
            -4
        );

        let mut p = Proxy::new(local(port), SERVANT);
        p.set_protocol(protocol);
        let args = p.args();
        assert_eq!(
            server_code(p.invoke("noSuchFunction", args).unwrap_err()),
            -3
        );
        let mut args = p.args();
        args.put(1, "sIn", &42i64);
        assert_eq!(server_code(p.invoke("testHello", args).unwrap_err()), -1);
        // The connection survives error replies.
        let args = {
            let mut a = p.args();
            a.put(1, "sIn", "still here");
            a
        };
        let r = p.invoke("testHello", args).unwrap();
        assert_eq!(r.get::<String>(2, "sOut").unwrap(), "still here");
    }
    s.stop();
}

fn request(id: i32, func: &str, arg: &str) -> RequestPacket {
    let mut w = tarsfork_tars::codec::TarsWriter::new();
    w.write(1, arg);
    RequestPacket {
        version: 1,
        request_id: id,
        servant_name: SERVANT.into(),
        func_name: func.into(),
        buffer: tarsfork_tars::codec::Bytes(w.into_bytes()),
        timeout: 3000,
        ..RequestPacket::default()
    }
}

#[test]
fn pipelined_requests_and_oneway_on_one_connection() {
    let (s, port) = tars_server();
    let mut c = Conn::open(port);
    let mut bytes = Vec::new();
    for i in 1..=3 {
        bytes.extend(
            request(i, "testHello", &format!("m{i}"))
                .encode_frame()
                .unwrap(),
        );
    }
    let mut oneway = request(9, "testHello", "quiet");
    oneway.packet_type = 1;
    bytes.extend(oneway.encode_frame().unwrap());
    bytes.extend(request(4, "testHello", "m4").encode_frame().unwrap());
    c.send(&bytes);
    let rs = c.expect_frames(4);
    assert_eq!(
        rs.iter().map(|r| r.request_id).collect::<Vec<_>>(),
        vec![1, 2, 3, 4],
        "no reply to the oneway call"
    );
    assert!(rs.iter().all(|r| r.ret == 0));
    s.stop();
}

#[test]
fn garbage_and_oversized_frames_close_only_their_connection() {
    let (s, port) = tars_server();
    let workers = s.pids_of("worker");
    let mut good = Conn::open(port);
    good.send(&request(1, "testHello", "a").encode_frame().unwrap());
    assert_eq!(good.expect_frames(1)[0].request_id, 1);
    let cases: [&[u8]; 3] = [
        &[0, 0, 0, 2],                               // a length below 4
        &[0x7f, 0xff, 0xff, 0xff, 1, 2, 3],          // 2 GiB announced
        &[0, 0, 0, 9, 0xff, 0xff, 0xff, 0xff, 0xff], // a frame that is no RequestPacket
    ];
    for bad in cases {
        let mut c = Conn::open(port);
        c.send(bad);
        assert_eq!(
            c.until_end(),
            (vec![], Outcome::Closed),
            "closed without an answer: {bad:?}"
        );
    }
    good.send(&request(2, "testHello", "b").encode_frame().unwrap());
    let rs = good.expect_frames(1);
    assert_eq!(rs[0].request_id, 2, "the other connection is untouched");
    assert_eq!(s.pids_of("worker"), workers, "no worker died");
    s.stop();
}

#[test]
fn demo_hello_code_is_what_tars2rs_generates_today() {
    let idl = tarsfork_tars::idl::parse_files(&[concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tars/tests/idl/Hello.tars"
    )])
    .unwrap();
    let files = tarsfork_tars::gen::generate(&idl).unwrap();
    let fresh = files
        .iter()
        .find(|f| f.file_name == "test_app.rs")
        .expect("test_app.rs generated");
    let checked_in = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/bin/generated/test_app.rs"
    ))
    .unwrap();
    assert_eq!(
        fresh.code, checked_in,
        "regenerate with: cargo run --bin tars2rs -- tars/tests/idl/Hello.tars -o bin/generated"
    );
}

#[test]
fn a_tars_js_client_calls_hello_obj_and_gets_the_error_codes() {
    let (s, port) = tars_server();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop");
    assert!(
        dir.join("node_modules/@tars/rpc").is_dir(),
        "@tars/rpc is not installed: run `npm ci --prefix tests/interop`"
    );
    let output = run_within(
        Command::new("node")
            .arg("hello_client.js")
            .arg(port.to_string())
            .arg("TestApp.HelloServer.NopeObj")
            .current_dir(&dir),
        Duration::from_secs(30),
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    for version in ["1", "3"] {
        let r = &v[format!("v{version}")];
        assert_eq!(r["hello"]["ret"], 0, "v{version}: {r}");
        assert_eq!(r["hello"]["sOut"], "wörld");
        assert_eq!(r["struct"]["ret"], -5, "sum of lucky 4 + -9");
        assert_eq!(
            r["struct"]["greetings"],
            serde_json::json!(["hi js #0", "hi js #1"])
        );
        assert_eq!(r["struct"]["info"]["ctx"], format!("ctx-{version}"));
        assert_eq!(r["struct"]["info"]["version"], version);
    }
    assert_eq!(v["v1"]["nofunc"]["code"], -3, "{}", v["v1"]);
    assert_eq!(v["v1"]["garbage"]["code"], -1, "{}", v["v1"]);
    assert_eq!(v["v1"]["noservant"]["code"], -4, "{}", v["v1"]);
    s.stop();
}

#[test]
fn idle_tars_connections_close_after_the_endpoint_timeout() {
    let s = Server::new(Opts {
        tars_idle_ms: 400,
        ..Opts::default().with_tars()
    });
    s.start();
    let mut c = Conn::open(s.tars_port());
    c.send(&request(1, "testHello", "a").encode_frame().unwrap());
    assert_eq!(c.expect_frames(1).len(), 1);
    let took = c.time_to_close();
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_secs(3),
        "{took:?}"
    );
    s.stop();
}
