//! The generated framework interfaces (tars/src/framework) and Hello client against
//! the @tars/stream argument vectors of tests/fixtures/tars-stream-vectors.json: the
//! generated proxies send exactly the vector's argument bytes (v1 and TUP v3) and read
//! its result bytes; the generated dispatchers read the vector's argument bytes into
//! the right values and answer with its result bytes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[allow(dead_code)]
#[rustfmt::skip]
#[path = "generated/test_app.rs"]
mod test_app;

use std::collections::BTreeMap;
use std::io::Write;
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;
use tarsfork_tars::codec::Bytes;
use tarsfork_tars::frame::FrameSplitter;
use tarsfork_tars::framework::tars::*;
use tarsfork_tars::packet::{RequestPacket, ResponsePacket, TupData};
use tarsfork_tars::proxy::{Current, Protocol, Proxy, ProxyConfig, Reply, ServantError};

fn vectors() -> Vec<Value> {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tars-stream-vectors.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let v: Value = serde_json::from_str(&text).unwrap();
    v["vectors"].as_array().unwrap().clone()
}

/// The hex of the vector of `kind`/`group` for `interface::function`.
fn hex_of(group: &str, interface: &str, function: &str) -> Vec<u8> {
    let all = vectors();
    let v = all
        .iter()
        .find(|v| v["group"] == group && v["interface"] == interface && v["function"] == function)
        .unwrap_or_else(|| panic!("no {group} vector for {interface}::{function}"));
    from_hex(v["hex"].as_str().unwrap())
}

fn from_hex(h: &str) -> Vec<u8> {
    (0..h.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&h[i..i + 2], 16).unwrap())
        .collect()
}

fn server_info() -> ServerInfo {
    ServerInfo {
        application: "TestApp".into(),
        server_name: "HelloServer".into(),
        pid: 12345,
        adapter: "TestApp.HelloServer.HelloObjAdapter".into(),
    }
}

fn mic_msg() -> BTreeMap<StatMicMsgHead, StatMicMsgBody> {
    let head = StatMicMsgHead {
        master_name: "TestApp.HelloServer".into(),
        slave_name: "TestApp.OtherServer".into(),
        interface_name: "ping".into(),
        master_ip: "127.0.0.1".into(),
        slave_ip: "127.0.0.1".into(),
        slave_port: 10000,
        return_value: 0,
        slave_set_name: String::new(),
        slave_set_area: String::new(),
        slave_set_id: String::new(),
        tars_version: "3.0.0".into(),
    };
    let body = StatMicMsgBody {
        count: 10,
        timeout_count: 1,
        exec_count: 2,
        interval_count: BTreeMap::from([(100, 8), (200, 2)]),
        total_rsp_time: 1234,
        max_rsp_time: 300,
        min_rsp_time: 1,
    };
    BTreeMap::from([(head, body)])
}

fn prop_msg() -> BTreeMap<StatPropMsgHead, StatPropMsgBody> {
    let head = StatPropMsgHead {
        module_name: "TestApp.HelloServer".into(),
        ip: "127.0.0.1".into(),
        property_name: "queue".into(),
        i_property_ver: 2,
        ..StatPropMsgHead::default()
    };
    let info = |p: &str, v: &str| StatPropInfo {
        policy: p.into(),
        value: v.into(),
    };
    let body = StatPropMsgBody {
        v_info: vec![info("Sum", "10"), info("Max", "7")],
    };
    BTreeMap::from([(head, body)])
}

/// Runs `call` against a one-shot loopback peer that answers the first request with
/// `reply` (built from the request); returns the request it received.
fn one_call(
    reply: impl FnOnce(&RequestPacket) -> Vec<u8> + Send + 'static,
    call: impl FnOnce(SocketAddr),
) -> RequestPacket {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let peer = std::thread::spawn(move || {
        let (mut conn, _) = l.accept().unwrap();
        conn.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut sp = FrameSplitter::default();
        let req = loop {
            assert!(sp.read_from(&mut conn).unwrap() > 0, "client hung up");
            if let Some(f) = sp.next_frame().unwrap() {
                break RequestPacket::decode(f).unwrap();
            }
        };
        conn.write_all(&reply(&req)).unwrap();
        req
    });
    call(addr);
    peer.join().unwrap()
}

fn v1_result(buffer: Vec<u8>) -> impl FnOnce(&RequestPacket) -> Vec<u8> + Send + 'static {
    move |req| {
        ResponsePacket::reply_to(req, 0, buffer)
            .encode_frame()
            .unwrap()
    }
}

fn config(protocol: Protocol) -> ProxyConfig {
    ProxyConfig {
        timeout: Duration::from_secs(10),
        protocol,
        ..ProxyConfig::default()
    }
}

#[test]
fn framework_proxies_send_the_vector_bytes_and_read_the_results() {
    let req = one_call(
        v1_result(hex_of("response-result", "tars.ServerF", "keepAlive")),
        |addr| {
            let mut p = ServerFProxy::new(Proxy::with_config(
                addr,
                "tars.tarsnode.ServerObj",
                config(Protocol::Tars),
            ));
            assert_eq!(p.keep_alive(&server_info()).unwrap(), 0);
        },
    );
    assert_eq!((req.func_name.as_str(), req.version), ("keepAlive", 1));
    assert_eq!(
        req.buffer.0,
        hex_of("request-args", "tars.ServerF", "keepAlive")
    );

    let req = one_call(v1_result(vec![0x0C]), |addr| {
        let mut p = ServerFProxy::new(Proxy::with_config(
            addr,
            "tars.tarsnode.ServerObj",
            config(Protocol::Tars),
        ));
        assert_eq!(
            p.report_version("TestApp", "HelloServer", "3.0.0").unwrap(),
            0
        );
    });
    assert_eq!(
        req.buffer.0,
        hex_of("request-args", "tars.ServerF", "reportVersion")
    );

    let result = hex_of("response-result", "tars.ServerF", "getLatestKeepAliveTime");
    let req = one_call(v1_result(result), |addr| {
        let mut p = ServerFProxy::new(Proxy::with_config(
            addr,
            "tars.tarsnode.ServerObj",
            config(Protocol::Tars),
        ));
        assert_eq!(p.get_latest_keep_alive_time().unwrap(), u32::MAX);
    });
    assert_eq!(
        req.buffer.0,
        hex_of("request-args", "tars.ServerF", "getLatestKeepAliveTime")
    );

    let req = one_call(v1_result(vec![0x0C]), |addr| {
        let mut p = StatFProxy::new(Proxy::with_config(
            addr,
            "tars.tarsstat.StatObj",
            config(Protocol::Tars),
        ));
        assert_eq!(p.report_mic_msg(&mic_msg(), true).unwrap(), 0);
    });
    assert_eq!(
        req.buffer.0,
        hex_of("request-args", "tars.StatF", "reportMicMsg")
    );

    let req = one_call(v1_result(vec![0x0C]), |addr| {
        let mut p = PropertyFProxy::new(Proxy::with_config(
            addr,
            "tars.tarsproperty.PropertyObj",
            config(Protocol::Tars),
        ));
        assert_eq!(p.report_prop_msg(&prop_msg()).unwrap(), 0);
    });
    assert_eq!(
        req.buffer.0,
        hex_of("request-args", "tars.PropertyF", "reportPropMsg")
    );
}

#[test]
fn hello_proxy_matches_the_v1_and_tup_vectors() {
    let result = hex_of("response-result", "TestApp.Hello", "testHello");
    let req = one_call(v1_result(result), |addr| {
        let mut p = test_app::HelloProxy::new(Proxy::with_config(
            addr,
            "TestApp.HelloServer.HelloObj",
            config(Protocol::Tars),
        ));
        assert_eq!(p.test_hello("hello").unwrap(), (0, "hello".to_string()));
    });
    assert_eq!(
        req.buffer.0,
        hex_of("request-args", "TestApp.Hello", "testHello")
    );

    let tup_result =
        TupData::decode(&hex_of("tup-response-result", "TestApp.Hello", "testHello")).unwrap();
    let req = one_call(
        move |req| req.tup_reply(0, "", &tup_result).encode_frame().unwrap(),
        |addr| {
            let mut p = test_app::HelloProxy::new(Proxy::with_config(
                addr,
                "TestApp.HelloServer.HelloObj",
                config(Protocol::Tup),
            ));
            assert_eq!(p.test_hello("hello").unwrap(), (0, "hello".to_string()));
        },
    );
    assert_eq!(req.version, 3);
    assert_eq!(
        req.buffer.0,
        hex_of("tup-request-args", "TestApp.Hello", "testHello")
    );
}

#[derive(Default)]
struct Recorder {
    infos: Vec<ServerInfo>,
    versions: Vec<(String, String, String)>,
    mic: Vec<(BTreeMap<StatMicMsgHead, StatMicMsgBody>, bool)>,
    props: Vec<BTreeMap<StatPropMsgHead, StatPropMsgBody>>,
}

impl ServerFServant for Recorder {
    fn keep_alive(
        &mut self,
        _: &Current<'_>,
        server_info: &ServerInfo,
    ) -> Result<i32, ServantError> {
        self.infos.push(server_info.clone());
        Ok(0)
    }
    fn keep_activing(
        &mut self,
        c: &Current<'_>,
        server_info: &ServerInfo,
    ) -> Result<i32, ServantError> {
        self.keep_alive(c, server_info)
    }
    fn report_version(
        &mut self,
        _: &Current<'_>,
        app: &str,
        server_name: &str,
        version: &str,
    ) -> Result<i32, ServantError> {
        self.versions
            .push((app.into(), server_name.into(), version.into()));
        Ok(0)
    }
    fn get_latest_keep_alive_time(&mut self, _: &Current<'_>) -> Result<u32, ServantError> {
        Ok(u32::MAX)
    }
}

impl StatFServant for Recorder {
    fn report_mic_msg(
        &mut self,
        _: &Current<'_>,
        msg: &BTreeMap<StatMicMsgHead, StatMicMsgBody>,
        b_from_client: bool,
    ) -> Result<i32, ServantError> {
        self.mic.push((msg.clone(), b_from_client));
        Ok(0)
    }
    fn report_sample_msg(
        &mut self,
        _: &Current<'_>,
        _: &[StatSampleMsg],
    ) -> Result<i32, ServantError> {
        Ok(0)
    }
}

impl PropertyFServant for Recorder {
    fn report_prop_msg(
        &mut self,
        _: &Current<'_>,
        statmsg: &BTreeMap<StatPropMsgHead, StatPropMsgBody>,
    ) -> Result<i32, ServantError> {
        self.props.push(statmsg.clone());
        Ok(0)
    }
}

fn v1_request(func: &str, buffer: Vec<u8>) -> RequestPacket {
    RequestPacket {
        version: 1,
        request_id: 9,
        func_name: func.into(),
        buffer: Bytes(buffer),
        ..RequestPacket::default()
    }
}

fn v1_buffer(reply: Reply) -> Vec<u8> {
    match reply {
        Reply::Tars(r) => {
            assert_eq!(r.ret, 0, "{:?}", r.result_desc);
            r.buffer.0
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn framework_dispatchers_read_the_vector_bytes_and_answer_with_the_results() {
    let mut rec = Recorder::default();
    let args = |f| hex_of("request-args", "tars.ServerF", f);
    let out = v1_buffer(server_f_dispatch(
        &mut rec,
        &v1_request("keepAlive", args("keepAlive")),
    ));
    assert_eq!(out, hex_of("response-result", "tars.ServerF", "keepAlive"));
    assert_eq!(rec.infos, [server_info()]);
    let out = v1_buffer(server_f_dispatch(
        &mut rec,
        &v1_request("getLatestKeepAliveTime", vec![]),
    ));
    assert_eq!(
        out,
        hex_of("response-result", "tars.ServerF", "getLatestKeepAliveTime")
    );
    v1_buffer(server_f_dispatch(
        &mut rec,
        &v1_request("reportVersion", args("reportVersion")),
    ));
    assert_eq!(
        rec.versions,
        [("TestApp".into(), "HelloServer".into(), "3.0.0".into())]
    );

    let buf = hex_of("request-args", "tars.StatF", "reportMicMsg");
    v1_buffer(stat_f_dispatch(&mut rec, &v1_request("reportMicMsg", buf)));
    assert_eq!(rec.mic, [(mic_msg(), true)]);

    let buf = hex_of("request-args", "tars.PropertyF", "reportPropMsg");
    v1_buffer(property_f_dispatch(
        &mut rec,
        &v1_request("reportPropMsg", buf),
    ));
    assert_eq!(rec.props, [prop_msg()]);
}

struct Hello;

impl test_app::HelloServant for Hello {
    fn test_hello(&mut self, _: &Current<'_>, s_in: &str) -> Result<(i32, String), ServantError> {
        Ok((0, s_in.to_owned()))
    }
    fn test_struct(
        &mut self,
        _: &Current<'_>,
        _: &test_app::HelloReq,
    ) -> Result<(i32, Vec<String>, BTreeMap<String, String>), ServantError> {
        Ok(Default::default())
    }
}

#[test]
fn hello_dispatcher_answers_like_tars_js() {
    let buf = hex_of("request-args", "TestApp.Hello", "testHello");
    let out = v1_buffer(test_app::hello_dispatch(
        &mut Hello,
        &v1_request("testHello", buf),
    ));
    assert_eq!(out, hex_of("response-result", "TestApp.Hello", "testHello"));

    let mut req = v1_request(
        "testHello",
        hex_of("tup-request-args", "TestApp.Hello", "testHello"),
    );
    req.version = 3;
    let Reply::Tup(r) = test_app::hello_dispatch(&mut Hello, &req) else {
        panic!()
    };
    let ours = r.tup_data().unwrap();
    let theirs =
        TupData::decode(&hex_of("tup-response-result", "TestApp.Hello", "testHello")).unwrap();
    // The same items as Tars.js writes, plus `tars_ret` as TarsCpp adds.
    for (name, bytes) in theirs.items() {
        assert_eq!(ours.items().get(name), Some(bytes), "TUP item {name:?}");
    }
    assert_eq!(
        ours.items().keys().collect::<Vec<_>>(),
        ["", "sOut", "tars_ret"]
    );
}
