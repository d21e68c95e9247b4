//! Issue 11's target for worker deaths: with a random event worker killed -9 every
//! 100 ms for 30 s under 64 keep-alive connections, failed requests are at most the
//! requests in flight in the killed workers, and no request times out (2 s deadline).
//! Under the old policy (any death within 1 s of start backed off, doubling to 10 s),
//! both workers ended up in backoff together and every connection timed out.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;
use support::chaos::{self, Fault, Scenario};
use support::*;

#[test]
fn random_event_worker_kill_every_100ms_fails_only_what_it_cut_off() {
    let s = Server::new(Opts::default());
    let master = s.start();
    let scenario = Scenario {
        name: "event-kill",
        fault: Fault::KillEventWorker,
        every: Duration::from_millis(100),
        duration: Duration::from_secs(30),
        conns: 64,
        path: "/",
        expect: "hello",
        deadline: Duration::from_secs(2),
    };
    let out = chaos::run(&scenario, s.port, master);
    eprintln!("{}", out.line());
    let t = out.tally;
    assert!(t.balanced(), "every request has one outcome: {t:?}");
    assert_eq!(t.unanswered, 0, "no request timed out: {}", out.line());
    assert!(
        t.failed <= out.faults.in_flight_bound,
        "failed only what the kills cut off: {}",
        out.line()
    );
    assert!(
        out.faults.applied >= 250,
        "a kill every 100 ms for 30 s, each finding a worker to kill: {}",
        out.line()
    );
    assert_eq!(t.other, 0, "every answer was the right one: {}", out.line());
    assert_eq!(
        t.connect_errors,
        0,
        "the listener never went away: {}",
        out.line()
    );
    assert!(t.ok > 1000, "the load ran: {}", out.line());
    let log = s.log();
    assert!(
        log.contains("with signal 9 (KILL)"),
        "kills were seen: {log}"
    );
    s.wait_role_up("worker", 2, Duration::from_secs(5));
    assert!(s.cmd(&["stop"]).status.success());
}
