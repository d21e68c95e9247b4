//! The Rust client generated from Hello.tars (tests/generated/test_app.rs) calls a
//! Tars.js server built on @tars/rpc (tests/interop/hello_server.js) in v1 and v3.
//! Needs node and `npm ci --prefix tests/interop`. The server is killed by pid.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[allow(dead_code)]
#[rustfmt::skip]
#[path = "generated/test_app.rs"]
mod test_app;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use tarsfork_tars::proxy::{CallError, Protocol, Proxy, ProxyConfig};
use test_app::{HelloProxy, HelloReq};

const SERVANT: &str = "TestApp.HelloServer.HelloObj";

/// The node server; killed (by its pid) and reaped when dropped, even on panic.
struct NodeServer {
    child: Child,
    // Held open: the script exits when its stdin closes, in case we die unkilled.
    _stdin: Option<ChildStdin>,
    addr: SocketAddr,
}

impl Drop for NodeServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_server() -> NodeServer {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/interop");
    assert!(
        dir.join("node_modules/@tars/rpc").is_dir(),
        "@tars/rpc is not installed: run `npm ci --prefix tests/interop`"
    );
    let mut child = Command::new("node")
        .arg("hello_server.js")
        .current_dir(&dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("cannot start node (is it installed?)");
    let stdin = child.stdin.take();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(p) = line.strip_prefix("PORT ") {
                let _ = tx.send(p.trim().parse::<u16>().ok());
                break;
            }
        }
    });
    let mut server = NodeServer {
        child,
        _stdin: stdin,
        addr: "127.0.0.1:0".parse().unwrap(),
    };
    let port = rx
        .recv_timeout(Duration::from_secs(20))
        .ok()
        .flatten()
        .expect("hello_server.js did not print its port within 20 s");
    server.addr = SocketAddr::from(([127, 0, 0, 1], port));
    server
}

fn raw_proxy(addr: SocketAddr, protocol: Protocol) -> Proxy {
    let config = ProxyConfig {
        timeout: Duration::from_secs(5),
        protocol,
        ..ProxyConfig::default()
    };
    Proxy::with_config(addr, SERVANT, config)
}

fn client(addr: SocketAddr, protocol: Protocol) -> HelloProxy {
    HelloProxy::new(raw_proxy(addr, protocol))
}

#[test]
fn generated_client_calls_tars_js_in_v1_and_v3() {
    let server = start_server();
    for (protocol, version) in [(Protocol::Tars, "1"), (Protocol::Tup, "3")] {
        let mut hello = client(server.addr, protocol);

        let (ret, out) = hello.test_hello("wörld").unwrap();
        // Tars.js counts UTF-16 units; "wörld" has 5.
        assert_eq!((ret, out.as_str()), (5, "hello wörld"), "{protocol:?}");
        let long = "x".repeat(70_000);
        let (ret, out) = hello.test_hello(&long).unwrap();
        assert_eq!((ret, out.len()), (70_000, 70_006), "STRING4 both ways");

        hello
            .proxy_mut()
            .context_mut()
            .insert("k".into(), format!("ctx-{version}"));
        let req = HelloReq {
            name: "rust".into(),
            times: 3,
            lucky: vec![7, -2, 100_000],
        };
        let (ret, greetings, info) = hello.test_struct(&req).unwrap();
        assert_eq!(ret, 100_005);
        assert_eq!(greetings, ["hi rust #0", "hi rust #1", "hi rust #2"]);
        let want: BTreeMap<String, String> = [
            ("name", "rust"),
            ("times", "3"),
            ("lucky", "7,-2,100000"),
            ("ctx", &format!("ctx-{version}")),
            ("version", version),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(info, want);

        // The IDL default (times = 1) is what Tars.js sees when we send the default.
        let (ret, greetings, _) = hello
            .test_struct(&HelloReq {
                name: "d".into(),
                ..HelloReq::default()
            })
            .unwrap();
        assert_eq!((ret, greetings.len()), (0, 1));
    }
}

#[test]
fn tars_js_error_codes_reach_the_client() {
    let server = start_server();
    for protocol in [Protocol::Tars, Protocol::Tup] {
        let mut proxy = raw_proxy(server.addr, protocol);
        // No such function: -3.
        let args = proxy.args();
        match proxy.invoke("noSuchFunction", args) {
            Err(CallError::Server { code, .. }) => assert_eq!(code, -3, "{protocol:?}"),
            other => panic!("{protocol:?}: {other:?}"),
        }
        // An int where a string is expected: Tars.js fails to decode, -1.
        let mut args = proxy.args();
        args.put(1, "sIn", &42i32);
        match proxy.invoke("testHello", args) {
            Err(CallError::Server { code, .. }) => assert_eq!(code, -1, "{protocol:?}"),
            other => panic!("{protocol:?}: {other:?}"),
        }
    }
}
