//! The server against a fake Tars platform written with the real Tars.js libraries
//! (tests/interop/fake_platform.js on @tars/rpc and @tars/stream): keepAlive,
//! reportVersion, registry resolution, call statistics, properties, config pull.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

#[allow(clippy::all, dead_code)]
#[rustfmt::skip]
#[path = "../bin/generated/test_app.rs"]
mod test_app;

use std::time::Duration;

use serde_json::Value;
use support::platform_support::{FakePlatform, Options, Servant};
use support::*;
use tarsfork_tars::proxy::Proxy;

struct Setup {
    fake: Platform,
    server: Server,
    tars_port: u16,
}

fn setup(stat_via_locator: bool) -> Setup {
    let fake = Platform::start(&Options::new().config_file("app.conf", "k=v\n"));
    let mut client = vec![
        format!("locator={}", fake.locator()),
        "report-interval=500".into(),
        "refresh-endpoint-interval=300".into(),
    ];
    if stat_via_locator {
        client.push("stat=tars.tarsstat.StatObj".into());
        client.push("property=tars.tarsproperty.PropertyObj".into());
    } else {
        client.push(format!("stat={}", fake.stat_obj()));
        client.push(format!("property={}", fake.property_obj()));
    }
    let server = Server::new(Opts {
        extra: vec![
            format!("node={}", fake.node_obj()),
            format!("config={}", fake.obj(Servant::Config)),
            "keepalive-interval=300".into(),
        ],
        client,
        ..Opts::default().with_tars().with_admin()
    });
    let tars_port = server.tars_port();
    Setup {
        fake,
        server,
        tars_port,
    }
}

/// Every (head, body) of every reportMicMsg so far with this bFromClient.
fn stat_entries(fake: &FakePlatform, from_client: bool) -> Vec<(Value, Value)> {
    fake.calls(Servant::Stat, "reportMicMsg")
        .iter()
        .filter(|r| r["args"]["bFromClient"] == from_client)
        .flat_map(|r| r["args"]["msg"].as_array().cloned().unwrap_or_default())
        .map(|e| (e["key"].clone(), e["value"].clone()))
        .collect()
}

fn count_for(entries: &[(Value, Value)], interface: &str, master: &str) -> i64 {
    entries
        .iter()
        .filter(|(k, _)| k["interfaceName"] == interface && k["masterName"] == master)
        .map(|(_, v)| v["count"].as_i64().unwrap())
        .sum()
}

#[test]
fn heartbeats_stats_and_properties_reach_the_tars_js_platform() {
    run(true);
}

#[test]
fn stat_and_property_with_explicit_endpoints_skip_the_registry() {
    run(false);
}

fn run(via_locator: bool) {
    let s = setup(via_locator);
    let master = s.server.start();
    // keepAlive for every adapter and AdminAdapter, with the master pid.
    let adapters = [
        "TestApp.HelloServer.HttpObjAdapter",
        "TestApp.HelloServer.HelloObjAdapter",
        "AdminAdapter",
    ];
    let all = s.fake.wait_for(
        |recs| {
            adapters.iter().all(|a| {
                recs.iter()
                    .any(|r| r["func"] == "keepAlive" && r["args"]["serverInfo"]["adapter"] == *a)
            })
        },
        Duration::from_secs(3),
    );
    assert!(
        all.is_ok(),
        "keepAlive for every adapter: {:?}",
        s.fake.calls(Servant::Node, "keepAlive")
    );
    for r in s.fake.calls(Servant::Node, "keepAlive") {
        assert_eq!(r["args"]["serverInfo"]["pid"], master, "{r}");
        assert_eq!(r["args"]["serverInfo"]["application"], "TestApp");
    }
    assert_eq!(s.fake.calls(Servant::Node, "reportVersion").len(), 1);

    // 7 HTTP requests, 5 Tars calls, and 2 outgoing proxy calls (each also served once).
    for _ in 0..7 {
        assert_eq!(s.server.get("/").0, 200);
    }
    // One slow request lands in the 100 ms bucket (TarsCpp: the first bound above it).
    assert_eq!(s.server.get("/slow?ms=60").0, 200);
    // Invented paths are counted under one name, not one entry each.
    assert_eq!(s.server.get("/no/such/path").0, 404);
    let mut p = Proxy::new(local(s.tars_port), HELLO_SERVANT);
    p.set_timeout(Duration::from_secs(3));
    let mut hello = test_app::HelloProxy::new(p);
    for i in 0..5 {
        assert_eq!(
            hello.test_hello(&format!("x{i}")).unwrap().1,
            format!("x{i}")
        );
    }
    for _ in 0..2 {
        let (st, body) = s.server.get(&format!("/proxy?port={}&s=out", s.tars_port));
        assert_eq!((st, body.as_str()), (200, "out"));
    }
    let done = s.fake.wait_for(
        |_| {
            let served = stat_entries(&s.fake, false);
            count_for(&served, "/", "not_tars_client") == 7
                && count_for(&served, "<unknown>", "not_tars_client") == 1
                && count_for(&served, "testHello", "tars_client") == 7
                && count_for(
                    &stat_entries(&s.fake, true),
                    "testHello",
                    "TestApp.HelloServer",
                ) == 2
        },
        Duration::from_secs(5),
    );
    let served = stat_entries(&s.fake, false);
    let client = stat_entries(&s.fake, true);
    assert!(
        done.is_ok(),
        "server side {served:?}\nclient side {client:?}"
    );
    for (k, v) in served.iter().chain(client.iter()) {
        let count = v["count"].as_i64().unwrap();
        let buckets: i64 = v["intervalCount"]
            .as_object()
            .unwrap()
            .values()
            .map(|n| n.as_i64().unwrap())
            .sum();
        assert!(buckets <= count, "buckets within count: {k} {v}");
        let (min, max) = (
            v["minRspTime"].as_i64().unwrap(),
            v["maxRspTime"].as_i64().unwrap(),
        );
        assert!(min >= 0 && min <= max, "{k} {v}");
        assert!(v["totalRspTime"].as_i64().unwrap() >= max);
    }
    assert!(served
        .iter()
        .all(|(k, _)| k["interfaceName"] != "/no/such/path"));
    let out = client
        .iter()
        .find(|(k, _)| k["interfaceName"] == "testHello")
        .unwrap();
    assert_eq!(out.0["slavePort"], s.tars_port);
    assert_eq!(out.0["slaveName"], "TestApp.HelloServer");

    // An application property, reported from several connections (several workers).
    for v in [5, 50, 500] {
        assert_eq!(s.server.get(&format!("/prop?v={v}")).0, 200);
    }
    // The three values may land in one report or be split over several: add them up.
    let demo_entries = || -> Vec<Value> {
        s.fake
            .calls(Servant::Property, "reportPropMsg")
            .iter()
            .flat_map(|r| r["args"]["statmsg"].as_array().cloned().unwrap_or_default())
            .filter(|e| e["key"]["propertyName"] == "demo.value")
            .collect()
    };
    let policy = |e: &Value, name: &str| -> String {
        e["value"]["vInfo"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["policy"] == name)
            .map(|i| i["value"].as_str().unwrap().to_string())
            .unwrap_or_else(|| panic!("{name} in {e}"))
    };
    let int = |e: &Value, name: &str| policy(e, name).parse::<i64>().unwrap();
    let all = wait_for(Duration::from_secs(3), || {
        let es = demo_entries();
        (es.iter().map(|e| int(e, "Count")).sum::<i64>() == 3).then_some(es)
    })
    .expect("all three values reported");
    assert!(all
        .iter()
        .all(|e| e["key"]["moduleName"] == "TestApp.HelloServer"));
    let counted: Vec<&Value> = all.iter().filter(|e| int(e, "Count") > 0).collect();
    assert_eq!(counted.iter().map(|e| int(e, "Sum")).sum::<i64>(), 555);
    assert_eq!(counted.iter().map(|e| int(e, "Max")).max(), Some(500));
    assert_eq!(counted.iter().map(|e| int(e, "Min")).min(), Some(5));
    // Avg and Distr of every report that came, however the values were split: each
    // report's Avg is its own Sum / Count ("0" for a quiet one; for these values every
    // split averages to at most one decimal, which TarsCpp's six-decimal form with
    // trailing zeros removed writes as Rust's shortest form does), each report's Distr
    // counts its own values, and the Distr counts of all reports add up to one value
    // under each bound.
    let mut distr_total = std::collections::BTreeMap::new();
    for e in &all {
        let (sum, count) = (int(e, "Sum"), int(e, "Count"));
        let want_avg = if count == 0 {
            "0".to_string()
        } else {
            (sum as f64 / count as f64).to_string()
        };
        assert_eq!(policy(e, "Avg"), want_avg, "{e}");
        let distr = policy(e, "Distr");
        let mut bounds = Vec::new();
        let mut in_buckets = 0;
        for part in distr.split(',') {
            let (bound, n) = part.split_once('|').unwrap_or_else(|| panic!("{distr}"));
            let n: i64 = n.parse().unwrap();
            bounds.push(bound.to_string());
            in_buckets += n;
            *distr_total
                .entry(bound.parse::<i64>().unwrap())
                .or_insert(0) += n;
        }
        assert_eq!(bounds, ["10", "100", "1000"], "{e}");
        assert_eq!(in_buckets, count, "every value is under a bound: {e}");
    }
    assert_eq!(
        distr_total.into_iter().collect::<Vec<_>>(),
        [(10, 1), (100, 1), (1000, 1)],
        "{all:?}"
    );

    // Properties, and the registry that resolved stat and property.
    let props = s.fake.wait_for(
        |recs| recs.iter().any(|r| r["func"] == "reportPropMsg"),
        Duration::from_secs(3),
    );
    assert!(props.is_ok());
    let names: Vec<String> = s
        .fake
        .calls(Servant::Property, "reportPropMsg")
        .iter()
        .flat_map(|r| r["args"]["statmsg"].as_array().cloned().unwrap_or_default())
        .map(|e| e["key"]["propertyName"].as_str().unwrap_or("").to_string())
        .collect();
    for want in [
        "tarsfork.memory.rss_kib",
        "tarsfork.workers",
        "tarsfork.requests",
    ] {
        assert!(names.iter().any(|n| n == want), "{want} in {names:?}");
    }
    let asked: Vec<String> = s
        .fake
        .calls(Servant::Registry, "findObjectById4Any")
        .iter()
        .map(|r| r["args"]["id"].as_str().unwrap_or("").to_string())
        .collect();
    let lookups = |id: &str| {
        s.fake
            .calls(Servant::Registry, "findObjectById4Any")
            .iter()
            .filter(|r| r["args"]["id"] == id)
            .count()
    };
    if via_locator {
        assert!(lookups("tars.tarsstat.StatObj") >= 1, "{asked:?}");
        // Properties go out every 500 ms; endpoints are refreshed after 300 ms, raised to
        // the locator's minimum of 1 s.
        let again = wait_for(Duration::from_secs(3), || {
            (lookups("tars.tarsproperty.PropertyObj") >= 2).then_some(())
        });
        assert!(
            again.is_some(),
            "resolved again after refresh-endpoint-interval: {asked:?}"
        );
    } else {
        let n = lookups("tars.tarsstat.StatObj") + lookups("tars.tarsproperty.PropertyObj");
        assert_eq!(n, 0, "objects with @tcp are used as written: {asked:?}");
    }

    // tars.loadconfig through the registry-less config object.
    let answer = s.server.admin().notify("tars.loadconfig app.conf").unwrap();
    assert!(answer.contains("loaded"), "{answer}");
    let path = s.server.config.parent().unwrap().join("app.conf");
    assert_eq!(std::fs::read_to_string(path).unwrap(), "k=v\n");
    s.server.stop();
}
