//! The Rust client generated from Hello.tars (tests/generated/test_app.rs) calls a
//! Tars.js server built on @tars/rpc (tests/interop/hello_server.js) in v1 and v3.
//! And the other way: a Tars.js client (tests/interop/hello_client.js) calls the
//! generated dispatcher served on a loopback port by this test.
//! Needs node and `npm ci --prefix tests/interop`. Node processes are killed by pid.
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

use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::Instant;

use tarsfork_tars::frame::FrameSplitter;
use tarsfork_tars::packet::RequestPacket;
use tarsfork_tars::proxy::{
    CallError, Current, Dispatch, Protocol, Proxy, ProxyConfig, ServantError,
};
use test_app::{HelloProxy, HelloReq, HelloServant, HelloServer};

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

/// The Rust servant the Tars.js client talks to (same answers as hello_server.js).
struct Greeter;

impl HelloServant for Greeter {
    fn test_hello(&mut self, _: &Current<'_>, s_in: &str) -> Result<(i32, String), ServantError> {
        Ok((s_in.chars().count() as i32, format!("hello {s_in}")))
    }

    fn test_struct(
        &mut self,
        current: &Current<'_>,
        req: &HelloReq,
    ) -> Result<(i32, Vec<String>, BTreeMap<String, String>), ServantError> {
        let greetings = (0..req.times)
            .map(|i| format!("hi {} #{i}", req.name))
            .collect();
        let lucky: Vec<String> = req.lucky.iter().map(i32::to_string).collect();
        let info = [
            ("name", req.name.clone()),
            ("times", req.times.to_string()),
            ("lucky", lucky.join(",")),
            (
                "ctx",
                current.context().get("k").cloned().unwrap_or_default(),
            ),
            ("version", current.version().to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        Ok((req.lucky.iter().sum(), greetings, info))
    }
}

/// Serves `HelloServer(Greeter)` on a loopback port, each connection on its own
/// thread; the threads end when their peer hangs up.
fn serve_rust() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for conn in l.incoming() {
            let Ok(mut conn) = conn else { return };
            std::thread::spawn(move || {
                let mut servant = HelloServer(Greeter);
                let mut sp = FrameSplitter::default();
                loop {
                    match sp.read_from(&mut conn) {
                        Ok(0) | Err(_) => return,
                        Ok(_) => {}
                    }
                    while let Ok(Some(frame)) = sp.next_frame() {
                        let req = RequestPacket::decode(frame).unwrap();
                        if let Some(bytes) = servant.dispatch(&req).encode_frame().unwrap() {
                            if conn.write_all(&bytes).is_err() {
                                return;
                            }
                        }
                    }
                }
            });
        }
    });
    addr
}

#[test]
fn tars_js_client_calls_the_generated_dispatcher() {
    let addr = serve_rust();
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/interop");
    assert!(
        dir.join("node_modules/@tars/rpc").is_dir(),
        "@tars/rpc is not installed: run `npm ci --prefix tests/interop`"
    );
    let mut child = Command::new("node")
        .arg("hello_client.js")
        .arg(addr.port().to_string())
        .current_dir(&dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cannot start node (is it installed?)");
    let mut stdout = child.stdout.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let mut stderr = child.stderr.take().unwrap();
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "hello_client.js ran longer than 30 s; killed pid {}",
                child.id()
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let (out, err) = (out.join().unwrap(), err.join().unwrap());
    assert!(status.success(), "hello_client.js failed: {err}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    for version in ["1", "3"] {
        let r = &v[format!("v{version}")];
        assert_eq!(r["hello"]["ret"], 5, "v{version}: {r}");
        assert_eq!(r["hello"]["sOut"], "hello wörld");
        assert_eq!(r["struct"]["ret"], -5);
        assert_eq!(
            r["struct"]["greetings"],
            serde_json::json!(["hi js #0", "hi js #1"])
        );
        let info = &r["struct"]["info"];
        assert_eq!(info["name"], "js");
        assert_eq!(info["lucky"], "4,-9");
        assert_eq!(
            info["ctx"],
            format!("ctx-{version}"),
            "the Tars.js context reaches the servant"
        );
        assert_eq!(info["version"], version);
    }
    assert_eq!(v["v1"]["nofunc"]["code"], -3, "{}", v["v1"]);
    assert_eq!(v["v1"]["garbage"]["code"], -1, "{}", v["v1"]);
}
