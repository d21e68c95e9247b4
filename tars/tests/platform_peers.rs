//! Self-test of the fake Tars platform (tests/interop/fake_platform.js, @tars/rpc): the
//! generated framework proxies call each of its servants in v1 and v3, and its records
//! must hold, field by field under the IDL's names, exactly what was sent. Also: the
//! delay option makes a short-timeout call time out, a servant that is down refuses
//! connections (and comes back on the same port), and the config lines point at it.
//! Needs node and `npm ci --prefix tests/interop`. Node is killed by pid on drop.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod platform_support;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use platform_support::{Endpoints, FakePlatform, Options, Servant};
use serde_json::{json, Value};
use tarsfork_tars::framework::tars::{
    ConfigFProxy, ConfigInfo, EndpointF, LogFProxy, LogInfo, PropertyFProxy, QueryFProxy,
    ServerFProxy, ServerInfo, StatFProxy, StatMicMsgBody, StatMicMsgHead, StatPropInfo,
    StatPropMsgBody, StatPropMsgHead, StatSampleMsg,
};
use tarsfork_tars::proxy::{CallError, Protocol, Proxy, ProxyConfig};

const BOTH: [Protocol; 2] = [Protocol::Tars, Protocol::Tup];

fn records_dir(test: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("platform_peers")
        .join(format!("{test}-{}", std::process::id()))
}

fn start(test: &str, options: Options) -> FakePlatform {
    FakePlatform::start(&records_dir(test), &options).unwrap_or_else(|e| panic!("{e}"))
}

fn proxy(fake: &FakePlatform, servant: Servant, protocol: Protocol, timeout: Duration) -> Proxy {
    let config = ProxyConfig {
        timeout,
        connect_timeout: Duration::from_secs(2),
        protocol,
        ..ProxyConfig::default()
    };
    Proxy::with_config(fake.addr(servant), servant.object(), config)
}

fn version(protocol: Protocol) -> i64 {
    i64::from(protocol.version())
}

/// The one record of the last call to `func` on `servant`, with its version checked.
fn last_call(fake: &FakePlatform, servant: Servant, func: &str, protocol: Protocol) -> Value {
    let calls = fake.calls(servant, func);
    let last = calls
        .last()
        .unwrap_or_else(|| panic!("no {func} recorded; all: {:?}", fake.records()))
        .clone();
    assert_eq!(last["version"], version(protocol), "{last}");
    assert!(last.get("error").is_none(), "{last}");
    last
}

// ---- the expected JSON, written from the Rust values under the IDL's field names --------

fn server_info_json(s: &ServerInfo) -> Value {
    json!({"application": s.application, "serverName": s.server_name, "pid": s.pid,
           "adapter": s.adapter})
}

fn mic_head_json(h: &StatMicMsgHead) -> Value {
    json!({
        "masterName": h.master_name, "slaveName": h.slave_name,
        "interfaceName": h.interface_name, "masterIp": h.master_ip, "slaveIp": h.slave_ip,
        "slavePort": h.slave_port, "returnValue": h.return_value,
        "slaveSetName": h.slave_set_name, "slaveSetArea": h.slave_set_area,
        "slaveSetID": h.slave_set_id, "tarsVersion": h.tars_version,
    })
}

fn mic_body_json(b: &StatMicMsgBody) -> Value {
    let buckets: serde_json::Map<String, Value> = b
        .interval_count
        .iter()
        .map(|(k, v)| (k.to_string(), json!(v)))
        .collect();
    json!({
        "count": b.count, "timeoutCount": b.timeout_count, "execCount": b.exec_count,
        "intervalCount": buckets, "totalRspTime": b.total_rsp_time,
        "maxRspTime": b.max_rsp_time, "minRspTime": b.min_rsp_time,
    })
}

fn prop_head_json(h: &StatPropMsgHead) -> Value {
    json!({
        "moduleName": h.module_name, "ip": h.ip, "propertyName": h.property_name,
        "setName": h.set_name, "setArea": h.set_area, "setID": h.set_id,
        "sContainer": h.s_container, "iPropertyVer": h.i_property_ver,
    })
}

fn prop_body_json(b: &StatPropMsgBody) -> Value {
    let infos: Vec<Value> = b
        .v_info
        .iter()
        .map(|i| json!({"policy": i.policy, "value": i.value}))
        .collect();
    json!({ "vInfo": infos })
}

/// Map entries as the fake records them: `[{key, value}]`, in any order.
fn sorted_entries(v: &Value) -> Vec<Value> {
    let mut entries = v
        .as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .clone();
    entries.sort_by_key(|e| e["key"].to_string());
    entries
}

// ---- the tests ---------------------------------------------------------------------------

#[test]
fn node_records_keepalive_with_adapter_and_report_version() {
    let fake = start("node", Options::new());
    for protocol in BOTH {
        let mut node = ServerFProxy::new(proxy(
            &fake,
            Servant::Node,
            protocol,
            Duration::from_secs(5),
        ));
        let before = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        for adapter in ["TestApp.HelloServer.HelloObjAdapter", "AdminAdapter"] {
            let info = ServerInfo {
                application: "TestApp".into(),
                server_name: "HelloServer".into(),
                pid: 4_000_123,
                adapter: adapter.into(),
            };
            assert_eq!(node.keep_alive(&info).unwrap(), 0);
            let rec = last_call(&fake, Servant::Node, "keepAlive", protocol);
            assert_eq!(
                rec["args"],
                json!({ "serverInfo": server_info_json(&info) })
            );
            assert_eq!(rec["oneway"], false);
        }
        let info = ServerInfo {
            application: "TestApp".into(),
            server_name: "HelloServer".into(),
            pid: 77,
            adapter: String::new(),
        };
        assert_eq!(node.keep_activing(&info).unwrap(), 0);
        let rec = last_call(&fake, Servant::Node, "keepActiving", protocol);
        assert_eq!(rec["args"]["serverInfo"], server_info_json(&info));

        assert_eq!(
            node.report_version("TestApp", "HelloServer", "0.1.0-é")
                .unwrap(),
            0
        );
        let rec = last_call(&fake, Servant::Node, "reportVersion", protocol);
        assert_eq!(
            rec["args"],
            json!({"app": "TestApp", "serverName": "HelloServer", "version": "0.1.0-é"})
        );

        // The node remembers the last keepAlive (in seconds).
        let latest = u64::from(node.get_latest_keep_alive_time().unwrap());
        assert!(
            latest >= before && latest <= before + 60,
            "{latest} vs {before}"
        );
        let rec = last_call(&fake, Servant::Node, "getLatestKeepAliveTime", protocol);
        assert_eq!(rec["args"], json!({}));
    }
    // `peer` tells connections apart: one per proxy, all on loopback.
    let peers: Vec<String> = fake
        .calls(Servant::Node, "keepAlive")
        .iter()
        .map(|r| r["peer"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(peers.len(), 4);
    assert!(
        peers.iter().all(|p| p.starts_with("127.0.0.1:")),
        "{peers:?}"
    );
    assert_eq!(peers[0], peers[1]);
    assert_eq!(peers[2], peers[3]);
    assert_ne!(peers[0], peers[2]);
    // Oneway keepAlive is recorded too (no reply to wait for, so poll).
    let mut node = ServerFProxy::new(proxy(
        &fake,
        Servant::Node,
        Protocol::Tars,
        Duration::from_secs(5),
    ));
    let info = ServerInfo {
        application: "A".into(),
        server_name: "B".into(),
        pid: 1,
        adapter: "oneway".into(),
    };
    node.keep_alive_oneway(&info).unwrap();
    let records = fake
        .wait_for(
            |r| {
                r.iter()
                    .any(|x| x["args"]["serverInfo"]["adapter"] == "oneway")
            },
            Duration::from_secs(5),
        )
        .unwrap();
    let rec = records
        .iter()
        .find(|x| x["args"]["serverInfo"]["adapter"] == "oneway")
        .unwrap();
    assert_eq!(rec["oneway"], true);
    assert_eq!(rec["args"]["serverInfo"], server_info_json(&info));
}

#[test]
fn stat_records_mic_msg_with_every_body_field_and_buckets() {
    let fake = start("stat", Options::new());
    let server_side = StatMicMsgHead {
        master_name: "TestApp.Caller".into(),
        slave_name: "TestApp.HelloServer".into(),
        interface_name: "testHello".into(),
        master_ip: "10.0.0.7".into(),
        slave_ip: "127.0.0.1".into(),
        slave_port: 10_015,
        return_value: 0,
        slave_set_name: String::new(),
        slave_set_area: String::new(),
        slave_set_id: String::new(),
        tars_version: "tarsfork-0.1".into(),
    };
    let failing = StatMicMsgHead {
        interface_name: "testStruct".into(),
        return_value: -3,
        slave_set_name: "s".into(),
        slave_set_area: "sz".into(),
        slave_set_id: "1".into(),
        ..server_side.clone()
    };
    let busy = StatMicMsgBody {
        count: 1_000,
        timeout_count: 3,
        exec_count: 2,
        interval_count: [
            (5, 700),
            (10, 200),
            (50, 60),
            (100, 30),
            (200, 7),
            (500, 2),
            (1000, 1),
        ]
        .into_iter()
        .collect(),
        // Beyond i32, so the long travels as a full INT64.
        total_rsp_time: 5_000_000_123,
        max_rsp_time: 987,
        min_rsp_time: 1,
    };
    let idle = StatMicMsgBody {
        count: 2,
        timeout_count: 0,
        exec_count: 0,
        interval_count: [(5, 2)].into_iter().collect(),
        total_rsp_time: 3,
        max_rsp_time: 2,
        min_rsp_time: 1,
    };
    let msg: BTreeMap<StatMicMsgHead, StatMicMsgBody> = [
        (server_side.clone(), busy.clone()),
        (failing.clone(), idle.clone()),
    ]
    .into_iter()
    .collect();
    let want = sorted_entries(&json!([
        {"key": mic_head_json(&server_side), "value": mic_body_json(&busy)},
        {"key": mic_head_json(&failing), "value": mic_body_json(&idle)},
    ]));
    for protocol in BOTH {
        let mut stat = StatFProxy::new(proxy(
            &fake,
            Servant::Stat,
            protocol,
            Duration::from_secs(5),
        ));
        for from_client in [false, true] {
            assert_eq!(stat.report_mic_msg(&msg, from_client).unwrap(), 0);
            let rec = last_call(&fake, Servant::Stat, "reportMicMsg", protocol);
            assert_eq!(rec["args"]["bFromClient"], from_client, "{rec}");
            assert_eq!(sorted_entries(&rec["args"]["msg"]), want, "{protocol:?}");
        }
        let sample = StatSampleMsg {
            unid: "u-1".into(),
            master_name: "m".into(),
            slave_name: "s".into(),
            interface_name: "f".into(),
            master_ip: "1.2.3.4".into(),
            slave_ip: "5.6.7.8".into(),
            depth: 2,
            width: 3,
            parent_width: -1,
        };
        assert_eq!(
            stat.report_sample_msg(&[sample.clone(), sample]).unwrap(),
            0
        );
        let rec = last_call(&fake, Servant::Stat, "reportSampleMsg", protocol);
        let one = json!({"unid": "u-1", "masterName": "m", "slaveName": "s",
            "interfaceName": "f", "masterIp": "1.2.3.4", "slaveIp": "5.6.7.8",
            "depth": 2, "width": 3, "parentWidth": -1});
        assert_eq!(rec["args"], json!({ "msg": [one.clone(), one] }));
    }
    // An empty report decodes as an empty map, not as a missing one.
    let mut stat = StatFProxy::new(proxy(
        &fake,
        Servant::Stat,
        Protocol::Tars,
        Duration::from_secs(5),
    ));
    assert_eq!(stat.report_mic_msg(&BTreeMap::new(), true).unwrap(), 0);
    let rec = last_call(&fake, Servant::Stat, "reportMicMsg", Protocol::Tars);
    assert_eq!(rec["args"], json!({"msg": [], "bFromClient": true}));
}

#[test]
fn property_records_several_policies() {
    let fake = start("property", Options::new());
    let info = |policy: &str, value: &str| StatPropInfo {
        policy: policy.into(),
        value: value.into(),
    };
    let rss = StatPropMsgHead {
        module_name: "TestApp.HelloServer".into(),
        ip: "127.0.0.1".into(),
        property_name: "memory.rss".into(),
        i_property_ver: 1,
        ..StatPropMsgHead::default()
    };
    let latency = StatPropMsgHead {
        property_name: "app.latency".into(),
        set_name: "s".into(),
        set_area: "sz".into(),
        set_id: "2".into(),
        s_container: "pod-1".into(),
        i_property_ver: 2,
        ..rss.clone()
    };
    let rss_body = StatPropMsgBody {
        v_info: vec![info("Avg", "1048576"), info("Max", "2097152")],
    };
    let latency_body = StatPropMsgBody {
        v_info: vec![
            info("Sum", "1234"),
            info("Avg", "12.34"),
            info("Max", "99"),
            info("Min", "1"),
            info("Count", "100"),
            info("Distr", "0|10,10|80,100|10"),
        ],
    };
    let msg: BTreeMap<StatPropMsgHead, StatPropMsgBody> = [
        (rss.clone(), rss_body.clone()),
        (latency.clone(), latency_body.clone()),
    ]
    .into_iter()
    .collect();
    let want = sorted_entries(&json!([
        {"key": prop_head_json(&rss), "value": prop_body_json(&rss_body)},
        {"key": prop_head_json(&latency), "value": prop_body_json(&latency_body)},
    ]));
    for protocol in BOTH {
        let mut prop = PropertyFProxy::new(proxy(
            &fake,
            Servant::Property,
            protocol,
            Duration::from_secs(5),
        ));
        assert_eq!(prop.report_prop_msg(&msg).unwrap(), 0);
        let rec = last_call(&fake, Servant::Property, "reportPropMsg", protocol);
        assert_eq!(
            sorted_entries(&rec["args"]["statmsg"]),
            want,
            "{protocol:?}"
        );
    }
}

#[test]
fn registry_resolves_framework_objects_to_the_fake() {
    let elsewhere: std::net::SocketAddr = "127.0.0.1:4321".parse().unwrap();
    let fake = start(
        "registry",
        Options::new().resolve("TestApp.Other.OtherObj", elsewhere),
    );
    let ep = |port: u16| EndpointF {
        host: "127.0.0.1".into(),
        port: i32::from(port),
        timeout: 60_000,
        istcp: 1,
        ..EndpointF::default()
    };
    for protocol in BOTH {
        let mut query = QueryFProxy::new(proxy(
            &fake,
            Servant::Registry,
            protocol,
            Duration::from_secs(5),
        ));
        for servant in [
            Servant::Stat,
            Servant::Property,
            Servant::Config,
            Servant::Log,
        ] {
            let found = query.find_object_by_id(servant.object()).unwrap();
            assert_eq!(
                found,
                vec![ep(fake.ports().of(servant))],
                "{servant:?} {protocol:?}"
            );
            let rec = last_call(&fake, Servant::Registry, "findObjectById", protocol);
            assert_eq!(rec["args"], json!({ "id": servant.object() }));
        }
        assert_eq!(
            query.find_object_by_id("TestApp.Other.OtherObj").unwrap(),
            vec![ep(4321)]
        );
        assert!(query.find_object_by_id("No.Such.Obj").unwrap().is_empty());

        let (ret, active, inactive) = query
            .find_object_by_id4_any(Servant::Stat.object())
            .unwrap();
        assert_eq!(
            (ret, active, inactive),
            (0, vec![ep(fake.ports().stat)], vec![])
        );
        let (ret, active, _) = query
            .find_object_by_id_in_same_set(Servant::Log.object(), "s.sz.1")
            .unwrap();
        assert_eq!((ret, active), (0, vec![ep(fake.ports().log)]));
        let rec = last_call(
            &fake,
            Servant::Registry,
            "findObjectByIdInSameSet",
            protocol,
        );
        assert_eq!(
            rec["args"],
            json!({"id": Servant::Log.object(), "setId": "s.sz.1"})
        );
        let (ret, active, inactive) = query.find_object_by_id4_all("No.Such.Obj").unwrap();
        assert_eq!((ret, active.len(), inactive.len()), (0, 0, 0));
    }
}

#[test]
fn config_answers_per_file_and_minus_one_for_unknown() {
    let content = "<tars>\n  key=va\\=lue\n  ünï=1\n</tars>\n";
    let fake = start(
        "config",
        Options::new()
            .config_file("HelloServer.conf", content)
            .config_file("empty.conf", ""),
    );
    for protocol in BOTH {
        let mut config = ConfigFProxy::new(proxy(
            &fake,
            Servant::Config,
            protocol,
            Duration::from_secs(5),
        ));
        let (ret, text) = config
            .load_config("TestApp", "HelloServer", "HelloServer.conf")
            .unwrap();
        assert_eq!((ret, text.as_str()), (0, content));
        let rec = last_call(&fake, Servant::Config, "loadConfig", protocol);
        assert_eq!(
            rec["args"],
            json!({"app": "TestApp", "server": "HelloServer", "filename": "HelloServer.conf"})
        );
        assert_eq!(
            config
                .load_config("TestApp", "HelloServer", "empty.conf")
                .unwrap(),
            (0, String::new())
        );
        assert_eq!(
            config
                .load_config("TestApp", "HelloServer", "missing.conf")
                .unwrap(),
            (-1, String::new())
        );

        let (ret, files) = config.list_config("TestApp", "HelloServer").unwrap();
        assert_eq!(
            (ret, files),
            (
                0,
                vec!["HelloServer.conf".to_owned(), "empty.conf".to_owned()]
            )
        );
        let rec = last_call(&fake, Servant::Config, "ListConfig", protocol);
        assert_eq!(
            rec["args"],
            json!({"app": "TestApp", "server": "HelloServer"})
        );

        let info = ConfigInfo {
            appname: "TestApp".into(),
            servername: "HelloServer".into(),
            filename: "HelloServer.conf".into(),
            b_app_only: true,
            host: "10.1.1.1".into(),
            setdivision: "s.sz.1".into(),
        };
        let (ret, text) = config.load_config_by_info(&info).unwrap();
        assert_eq!((ret, text.as_str()), (0, content));
        let rec = last_call(&fake, Servant::Config, "loadConfigByInfo", protocol);
        assert_eq!(
            rec["args"],
            json!({"configInfo": {"appname": "TestApp", "servername": "HelloServer",
                "filename": "HelloServer.conf", "bAppOnly": true, "host": "10.1.1.1",
                "setdivision": "s.sz.1"}})
        );
    }
}

#[test]
fn log_records_logger_args() {
    let fake = start("log", Options::new());
    let lines: Vec<String> = vec!["first line".into(), String::new(), "ünïcode|x".into()];
    for protocol in BOTH {
        let mut log = LogFProxy::new(proxy(&fake, Servant::Log, protocol, Duration::from_secs(5)));
        log.logger("TestApp", "HelloServer", "access", "%Y%m%d", &lines)
            .unwrap();
        let rec = last_call(&fake, Servant::Log, "logger", protocol);
        assert_eq!(
            rec["args"],
            json!({"app": "TestApp", "server": "HelloServer", "file": "access",
                   "format": "%Y%m%d", "buffer": lines})
        );
        let info = LogInfo {
            appname: "TestApp".into(),
            servername: "HelloServer".into(),
            s_filename: "err".into(),
            s_format: "%Y%m%d%H".into(),
            setdivision: String::new(),
            b_has_sufix: false,
            b_has_app_name_prefix: true,
            b_has_square_bracket: true,
            s_concat_str: "-".into(),
            s_separ: "|".into(),
            s_log_type: "remote".into(),
        };
        log.loggerby_info(&info, &lines[..1]).unwrap();
        let rec = last_call(&fake, Servant::Log, "loggerbyInfo", protocol);
        assert_eq!(
            rec["args"],
            json!({"info": {"appname": "TestApp", "servername": "HelloServer",
                "sFilename": "err", "sFormat": "%Y%m%d%H", "setdivision": "",
                "bHasSufix": false, "bHasAppNamePrefix": true, "bHasSquareBracket": true,
                "sConcatStr": "-", "sSepar": "|", "sLogType": "remote"},
                "buffer": ["first line"]})
        );
    }
}

#[test]
fn unknown_function_and_bad_arguments_are_refused_and_recorded() {
    let fake = start("errors", Options::new());
    for protocol in BOTH {
        let mut raw = proxy(&fake, Servant::Node, protocol, Duration::from_secs(5));
        let args = raw.args();
        match raw.invoke("noSuchFunction", args) {
            Err(CallError::Server { code: -3, .. }) => {}
            other => panic!("{protocol:?}: want -3, got {other:?}"),
        }
        // keepAlive wants a ServerInfo struct at tag 1 / "serverInfo"; send a string.
        let mut args = raw.args();
        args.put(1, "serverInfo", "not a struct");
        match raw.invoke("keepAlive", args) {
            Err(CallError::Server { code: -1, .. }) => {}
            other => panic!("{protocol:?}: want -1, got {other:?}"),
        }
        let calls = fake.calls(Servant::Node, "keepAlive");
        let last = calls.last().unwrap();
        assert!(
            last["error"].as_str().unwrap().starts_with("decode"),
            "{last}"
        );
        assert!(last.get("args").is_none());
    }
    let unknown = fake.calls(Servant::Node, "noSuchFunction");
    assert_eq!(unknown.len(), 2);
    assert_eq!(unknown[0]["error"], "no such function");
}

#[test]
fn delay_makes_a_short_timeout_call_time_out() {
    // Every servant slow except stat (a per-servant value overrides the global one).
    let fake = start(
        "delay",
        Options::new().delay_ms(1_500).delay(Servant::Stat, 0),
    );
    let info = ServerInfo {
        application: "TestApp".into(),
        server_name: "HelloServer".into(),
        pid: 9,
        adapter: "AdminAdapter".into(),
    };
    let mut node = ServerFProxy::new(proxy(
        &fake,
        Servant::Node,
        Protocol::Tars,
        Duration::from_millis(300),
    ));
    // A timeout, not the late answer: the proxy gave up before the reply came.
    match node.keep_alive(&info) {
        Err(CallError::Timeout { .. }) => {}
        other => panic!("want a timeout, got {other:?}"),
    }
    // The slow node still decoded it: the timeout is the answer's, not the request's.
    assert_eq!(
        last_call(&fake, Servant::Node, "keepAlive", Protocol::Tars)["args"]["serverInfo"],
        server_info_json(&info)
    );

    // Stat answers at once.
    let mut stat = StatFProxy::new(proxy(
        &fake,
        Servant::Stat,
        Protocol::Tars,
        Duration::from_millis(1_000),
    ));
    assert_eq!(stat.report_mic_msg(&BTreeMap::new(), false).unwrap(), 0);

    // A long enough timeout gets the late answer.
    node.proxy_mut().set_timeout(Duration::from_secs(5));
    assert_eq!(node.keep_alive(&info).unwrap(), 0);

    // And the delay can be lifted while running.
    let mut fake = fake;
    fake.set_delay(None, 0).unwrap();
    let mut quick = ServerFProxy::new(proxy(
        &fake,
        Servant::Node,
        Protocol::Tup,
        Duration::from_millis(1_000),
    ));
    assert_eq!(quick.keep_alive(&info).unwrap(), 0);
}

#[test]
fn down_servant_refuses_connections_and_comes_back_on_its_port() {
    let mut fake = start("down", Options::new().down(Servant::Node));
    let info = ServerInfo {
        application: "TestApp".into(),
        server_name: "HelloServer".into(),
        pid: 9,
        adapter: "AdminAdapter".into(),
    };
    let mut node = ServerFProxy::new(proxy(
        &fake,
        Servant::Node,
        Protocol::Tars,
        Duration::from_secs(2),
    ));
    // Usually a refused connect; but the down servant's port was only reserved and
    // released, so under parallel tests another process may hold it: any failure to
    // get an answer shows the fake's node is not serving.
    match node.keep_alive(&info) {
        Err(_) => {}
        other => panic!("want no answer from a down node, got {other:?}"),
    }
    // The others are up.
    let mut query = QueryFProxy::new(proxy(
        &fake,
        Servant::Registry,
        Protocol::Tars,
        Duration::from_secs(2),
    ));
    assert_eq!(
        query
            .find_object_by_id(Servant::Stat.object())
            .unwrap()
            .len(),
        1
    );

    fake.set_up(Servant::Node).unwrap();
    assert_eq!(node.keep_alive(&info).unwrap(), 0);
    assert_eq!(fake.calls(Servant::Node, "keepAlive").len(), 1);

    // Going down drops the open connection too, like a node that died.
    fake.set_down(Servant::Node).unwrap();
    match node.keep_alive(&info) {
        Err(CallError::Closed { .. } | CallError::Io { .. } | CallError::Connect { .. }) => {}
        other => panic!("want a failed call, got {other:?}"),
    }
    let mut fresh = ServerFProxy::new(proxy(
        &fake,
        Servant::Node,
        Protocol::Tars,
        Duration::from_secs(2),
    ));
    match fresh.keep_alive(&info) {
        Err(CallError::Connect { .. }) => {}
        other => panic!("want a connect error, got {other:?}"),
    }
    assert_eq!(fake.calls(Servant::Node, "keepAlive").len(), 1);
}

#[test]
fn config_lines_point_at_the_fake() {
    let fake = start("lines", Options::new());
    let p = fake.ports();
    let ep = |port: u16| format!("@tcp -h 127.0.0.1 -p {port} -t 3000");
    assert_eq!(
        fake.server_config_lines(Endpoints::ViaLocator),
        [
            format!("node=tars.tarsnode.ServerObj{}", ep(p.node)),
            "config=tars.tarsconfig.ConfigObj".to_owned(),
            "log=tars.tarslog.LogObj".to_owned(),
        ]
    );
    assert_eq!(
        fake.client_config_lines(Endpoints::Explicit),
        [
            format!("locator=tars.tarsregistry.QueryObj{}", ep(p.registry)),
            format!("stat=tars.tarsstat.StatObj{}", ep(p.stat)),
            format!("property=tars.tarsproperty.PropertyObj{}", ep(p.property)),
        ]
    );
    assert_eq!(
        fake.client_config_lines(Endpoints::ViaLocator)[1],
        "stat=tars.tarsstat.StatObj"
    );
    // Six distinct ports, all of them answering.
    let mut all: Vec<u16> = Servant::ALL.iter().map(|s| p.of(*s)).collect();
    all.sort_unstable();
    all.dedup();
    assert_eq!(all.len(), 6);
    for s in Servant::ALL {
        std::net::TcpStream::connect_timeout(&fake.addr(s), Duration::from_secs(2))
            .unwrap_or_else(|e| panic!("{s:?}: {e}"));
    }
}

#[test]
fn sigterm_exits_cleanly_and_large_config_content_survives() {
    // Bigger than one command-line argument may be: the harness passes configs in a file.
    let big = "k=v\n".repeat(50_000);
    let mut fake = start("sigterm", Options::new().config_file("big.conf", &big));
    let mut config = ConfigFProxy::new(proxy(
        &fake,
        Servant::Config,
        Protocol::Tars,
        Duration::from_secs(5),
    ));
    let (ret, text) = config.load_config("A", "B", "big.conf").unwrap();
    assert_eq!((ret, text.len()), (0, big.len()));
    assert_eq!(
        fake.wait_calls(Servant::Config, "loadConfig", 1, Duration::from_secs(1))
            .unwrap()
            .len(),
        1
    );

    let status = fake.terminate(Duration::from_secs(5)).unwrap();
    assert_eq!(
        status.map(|s| s.success()),
        Some(true),
        "{}",
        fake.stderr_tail()
    );
    match config.load_config("A", "B", "big.conf") {
        Err(CallError::Closed { .. } | CallError::Io { .. } | CallError::Connect { .. }) => {}
        other => panic!("want a failed call after SIGTERM, got {other:?}"),
    }
}
