//! The client proxy over several endpoints, against in-process fake servers on
//! loopback: round robin, weights, hash, consistent hash, a refused endpoint, an
//! endpoint that times out (taken out, then back), pipelined calls on one connection,
//! and `tars_ping` from the proxy.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[allow(dead_code)]
#[rustfmt::skip]
#[path = "generated/test_app.rs"]
mod test_app;

mod proxy_support;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use proxy_support::{refusing_endpoint, FakeServer, Mode, SERVANT};
use tarsfork_tars::proxy::{
    CallError, Endpoint, EndpointSet, FailoverPolicy, Proxy, ProxyConfig, Resolved, ServantProxy,
};
use test_app::HelloProxy;

fn set_of(active: Vec<Endpoint>, inactive: Vec<Endpoint>) -> Arc<EndpointSet> {
    Arc::new(EndpointSet::new(SERVANT, Resolved { active, inactive }))
}

fn config(timeout: Duration) -> ProxyConfig {
    ProxyConfig {
        timeout,
        ..ProxyConfig::default()
    }
}

fn hello(set: &Arc<EndpointSet>) -> HelloProxy {
    HelloProxy::from_proxy(Proxy::over(set.clone(), config(Duration::from_secs(5))))
}

/// Calls `testHello` and gives the port of the server that answered.
fn answered_by(p: &mut HelloProxy, s: &str) -> u16 {
    let (_, out) = p.test_hello(s).unwrap();
    let (port, echoed) = out.split_once(':').unwrap();
    assert_eq!(echoed, s);
    port.parse().unwrap()
}

fn servers(n: usize) -> Vec<FakeServer> {
    (0..n).map(|_| FakeServer::start(Mode::Answer)).collect()
}

#[test]
fn round_robin_spreads_calls_evenly_and_never_calls_an_inactive_endpoint() {
    let s = servers(4);
    let set = set_of(
        s[..3].iter().map(FakeServer::endpoint).collect(),
        vec![s[3].endpoint()],
    );
    let mut p = hello(&set);
    for i in 0..3000 {
        answered_by(&mut p, &i.to_string());
    }
    for server in &s[..3] {
        assert_eq!(server.hellos(), 1000, "{}", server.addr());
        assert_eq!(server.accepted(), 1, "one kept connection per endpoint");
    }
    assert_eq!(s[3].hellos(), 0, "the registry lists it inactive");
}

#[test]
fn static_weights_spread_calls_by_weight() {
    let s = servers(2);
    let set = set_of(
        vec![
            s[0].endpoint().with_weight(30),
            s[1].endpoint().with_weight(10),
        ],
        Vec::new(),
    );
    assert!(set.is_weighted());
    let mut p = hello(&set);
    for i in 0..400 {
        answered_by(&mut p, &i.to_string());
    }
    assert_eq!((s[0].hellos(), s[1].hellos()), (300, 100));
}

#[test]
fn hash_is_sticky_and_picks_as_tarscpp_does() {
    let s = servers(3);
    let set = set_of(s.iter().map(FakeServer::endpoint).collect(), Vec::new());
    // TarsCpp orders endpoints by "1:<host>:<port>" as strings and takes key % n.
    let mut by_key: Vec<SocketAddr> = s.iter().map(FakeServer::addr).collect();
    by_key.sort_by_key(|a| format!("1:{}:{}", a.ip(), a.port()));
    let mut seen = HashMap::new();
    for key in 0..300u64 {
        let mut p = hello(&set).with_hash(key * 7919);
        let first = answered_by(&mut p, "a");
        for _ in 0..3 {
            assert_eq!(answered_by(&mut p, "b"), first, "key {key} moved");
        }
        assert_eq!(first, by_key[((key * 7919) % 3) as usize].port());
        *seen.entry(first).or_insert(0) += 1;
    }
    assert_eq!(seen.len(), 3, "keys spread over every endpoint: {seen:?}");
}

#[test]
fn consistent_hash_moves_only_the_removed_endpoints_keys() {
    let s = servers(3);
    let all: Vec<Endpoint> = s.iter().map(FakeServer::endpoint).collect();
    let set = set_of(all.clone(), Vec::new());
    // Keys spread over the ring's 32-bit space (a TarsCpp caller passes a hash).
    let keys: Vec<u64> = (0..900u64)
        .map(|i| i.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 7)
        .collect();
    let owner = |set: &Arc<EndpointSet>, key: u64| {
        let mut p = hello(set).with_consistent_hash(key);
        answered_by(&mut p, "k")
    };
    let before: Vec<u16> = keys.iter().map(|k| owner(&set, *k)).collect();
    let removed = s[1].addr().port();
    let share = before.iter().filter(|p| **p == removed).count();
    assert!(
        (150..=450).contains(&share),
        "each of 3 endpoints owns about a third of 900 keys; the removed one owns {share}"
    );
    set.update(Resolved {
        active: vec![all[0].clone(), all[2].clone()],
        inactive: Vec::new(),
    });
    let after: Vec<u16> = keys.iter().map(|k| owner(&set, *k)).collect();
    for ((key, b), a) in keys.iter().zip(&before).zip(&after) {
        if *b == removed {
            assert_ne!(*a, removed, "key {key}");
        } else {
            assert_eq!(a, b, "key {key} moved though its endpoint stayed");
        }
    }
}

#[test]
fn a_refused_endpoint_is_skipped_without_failing_a_call() {
    let s = servers(2);
    let (dead, _reserved) = refusing_endpoint();
    let set = set_of(
        vec![s[0].endpoint(), dead.clone(), s[1].endpoint()],
        Vec::new(),
    );
    let mut p = hello(&set);
    for i in 0..300 {
        answered_by(&mut p, &i.to_string());
    }
    // The call that found it refusing went to the next one: at most one call apart.
    assert_eq!(s[0].hellos() + s[1].hellos(), 300);
    assert!(
        s[0].hellos().abs_diff(s[1].hellos()) <= 1,
        "{} / {}",
        s[0].hellos(),
        s[1].hellos()
    );
    let status = set.status();
    let dead_status = status.iter().find(|e| e.endpoint == dead).unwrap();
    assert!(!dead_status.in_rotation);
}

#[test]
fn every_endpoint_refusing_fails_the_call_with_a_connect_error() {
    let (a, _ra) = refusing_endpoint();
    let (b, _rb) = refusing_endpoint();
    let set = set_of(vec![a, b], Vec::new());
    let mut p = hello(&set);
    for _ in 0..3 {
        match p.test_hello("x") {
            Err(CallError::Connect { .. }) => {}
            other => panic!("want a connect error, got {other:?}"),
        }
    }
}

#[test]
fn a_timing_out_endpoint_fails_its_calls_is_taken_out_and_comes_back() {
    let hung = FakeServer::start(Mode::Hang);
    let good = FakeServer::start(Mode::Answer);
    let policy = FailoverPolicy {
        retry_after: Duration::from_millis(600),
        probe_timeout: Duration::from_millis(300),
        ..FailoverPolicy::default()
    };
    let set = Arc::new(
        EndpointSet::new(
            SERVANT,
            Resolved {
                active: vec![hung.endpoint(), good.endpoint()],
                inactive: Vec::new(),
            },
        )
        .with_failover(policy.clone()),
    );
    let mut p =
        HelloProxy::from_proxy(Proxy::over(set.clone(), config(Duration::from_millis(200))));
    let mut timeouts = 0;
    for i in 0..40 {
        let before = good.hellos();
        match p.test_hello(&i.to_string()) {
            Ok(_) => assert_eq!(good.hellos(), before + 1),
            Err(CallError::Timeout { addr, .. }) => {
                assert_eq!(addr, hung.addr());
                // A call that may have run is not sent again elsewhere.
                assert_eq!(good.hellos(), before, "a timed-out call was retried");
                timeouts += 1;
            }
            Err(e) => panic!("call {i}: {e}"),
        }
    }
    assert_eq!(
        timeouts, policy.max_failures_in_row,
        "taken out after the threshold"
    );
    assert!(
        !set.status()
            .iter()
            .find(|e| e.endpoint == hung.endpoint())
            .unwrap()
            .in_rotation
    );

    // Still hung when its retry time comes: the probe fails, no call is lost.
    std::thread::sleep(policy.retry_after);
    for i in 0..10 {
        p.test_hello(&format!("still {i}")).unwrap();
    }
    assert_eq!(hung.pings(), 0, "the hung server answers nothing");

    hung.set_mode(Mode::Answer);
    let deadline = Instant::now() + Duration::from_secs(5);
    while hung.hellos() == 0 {
        assert!(
            Instant::now() < deadline,
            "the healed endpoint never came back"
        );
        p.test_hello("again").unwrap();
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        hung.pings() >= 1,
        "it was probed with tars_ping before calls went there"
    );
    let (h, g) = (hung.hellos(), good.hellos());
    for i in 0..20 {
        p.test_hello(&i.to_string()).unwrap();
    }
    assert_eq!(
        (hung.hellos() - h, good.hellos() - g),
        (10, 10),
        "back in rotation"
    );
}

#[test]
fn two_pipelined_calls_on_one_connection_get_their_own_replies() {
    let s = FakeServer::start(Mode::AnswerPairsReversed);
    let set = set_of(vec![s.endpoint()], Vec::new());
    for round in 0..20 {
        let calls: Vec<_> = (0..2)
            .map(|t| {
                let mut p = hello(&set);
                std::thread::spawn(move || {
                    let s = format!("round {round} thread {t}");
                    let (_, out) = p.test_hello(&s).unwrap();
                    (s, out)
                })
            })
            .collect();
        for c in calls {
            let (sent, got) = c.join().unwrap();
            assert_eq!(got.split_once(':').unwrap().1, sent);
        }
    }
    assert_eq!(
        s.accepted(),
        1,
        "both calls of each pair shared the kept connection"
    );
    assert_eq!(s.hellos(), 40);
}

#[test]
fn proxies_probe_with_tars_ping() {
    let s = FakeServer::start(Mode::Answer);
    let set = set_of(vec![s.endpoint()], Vec::new());
    let mut p = hello(&set);
    p.tars_ping().unwrap();
    p.proxy_mut()
        .set_protocol(tarsfork_tars::proxy::Protocol::Tup);
    p.tars_ping().unwrap();
    assert_eq!((s.pings(), s.hellos()), (2, 0));
    assert_eq!(p.proxy_mut().last_endpoint(), Some(s.addr()));
}
