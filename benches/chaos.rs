//! `scripts/chaos`: fault scenarios against the release binary under keep-alive load,
//! one fresh server (2 event workers, 1 task worker) per scenario, one `CHAOS` line of
//! counts per scenario (README, "Chaos"). Not a speed bench: it asserts nothing and its
//! counts, unlike a throughput figure, mean the same on a busy machine.
//!
//! `cargo bench --bench chaos -- [scenario…]`: the named scenarios, or all of them.

#![allow(clippy::expect_used, clippy::unwrap_used)]

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::Duration;
use support::chaos::{self, Fault, Scenario};
use support::{Opts, Server};

/// Every scenario, in the order they run.
fn scenarios() -> Vec<Scenario> {
    let base = Scenario {
        name: "",
        fault: Fault::KillEventWorker,
        every: Duration::from_millis(100),
        duration: Duration::from_secs(10),
        conns: 64,
        path: "/",
        expect: "hello",
        deadline: Duration::from_secs(2),
    };
    vec![
        // Issue 11's target.
        Scenario {
            name: "event-kill",
            duration: Duration::from_secs(30),
            ..base.clone()
        },
        Scenario {
            name: "task-kill",
            fault: Fault::KillTaskWorker,
            every: Duration::from_millis(500),
            path: "/task?data=x",
            expect: "x (task worker",
            ..base.clone()
        },
        Scenario {
            name: "manager-kill",
            fault: Fault::KillManager,
            every: Duration::from_secs(1),
            ..base.clone()
        },
        Scenario {
            name: "reload",
            fault: Fault::Reload,
            every: Duration::from_secs(1),
            ..base.clone()
        },
        // A stopped worker is killed by the liveness check after worker_timeout (1 s
        // here) and 1 s of TERM grace: its requests wait that long, so they get 5 s.
        Scenario {
            name: "worker-stop",
            fault: Fault::StopEventWorker,
            every: Duration::from_secs(3),
            duration: Duration::from_secs(12),
            deadline: Duration::from_secs(5),
            ..base
        },
    ]
}

fn main() {
    let wanted: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let all = scenarios();
    if let Some(bad) = wanted.iter().find(|w| !all.iter().any(|s| s.name == *w)) {
        let names: Vec<&str> = all.iter().map(|s| s.name).collect();
        eprintln!("chaos: no scenario {bad:?}; there are {}", names.join(", "));
        std::process::exit(2);
    }
    for s in all
        .iter()
        .filter(|s| wanted.is_empty() || wanted.iter().any(|w| w == s.name))
    {
        let server = Server::new(Opts {
            extra: vec!["worker_timeout=1".into()],
            ..Opts::default()
        });
        let master = server.start();
        let out = chaos::run(s, server.port, master);
        println!("{}", out.line());
        if !server.cmd(&["stop"]).status.success() {
            eprintln!("chaos: {}: stop failed; log:\n{}", s.name, server.log());
        }
    }
}
