//! keepAlive and reportVersion from task worker 0 to a recording tarsnode (ServerF),
//! served here by the tars2rs-generated dispatcher.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use support::platform_support::{FakePlatform, Options, Servant};
use support::*;

/// The Tars.js fake platform (its tarsnode records every call).
fn fake_node() -> Platform {
    Platform::start(&Options::new())
}

const ADAPTERS: [&str; 2] = ["TestApp.HelloServer.HttpObjAdapter", "AdminAdapter"];

fn server_with_node(node: &str, workers: usize) -> Server {
    Server::new(Opts {
        workers,
        extra: vec![format!("node={node}"), "keepalive-interval=300".into()],
        ..Opts::default()
    })
}

/// (epoch ms, pid) of every keepAlive for `adapter`.
fn keepalives(fake: &FakePlatform, adapter: &str) -> Vec<(i64, i64)> {
    fake.calls(Servant::Node, "keepAlive")
        .iter()
        .filter(|c| c["args"]["serverInfo"]["adapter"] == adapter)
        .map(|c| {
            (
                c["t"].as_i64().unwrap(),
                c["args"]["serverInfo"]["pid"].as_i64().unwrap(),
            )
        })
        .collect()
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

#[test]
fn keepalive_for_every_adapter_with_the_master_pid_and_one_report_version() {
    let fake = fake_node();
    let s = server_with_node(&fake.node_obj(), 2);
    let master = i64::from(s.start());
    let all = wait_for(Duration::from_millis(1500), || {
        ADAPTERS
            .iter()
            .all(|a| !keepalives(&fake, a).is_empty())
            .then_some(())
    });
    assert!(
        all.is_some(),
        "keepAlive for every adapter + AdminAdapter within two intervals: {:?}",
        fake.calls(Servant::Node, "keepAlive")
    );
    std::thread::sleep(Duration::from_millis(1000));
    for a in ADAPTERS {
        let k = keepalives(&fake, a);
        assert!(
            k.iter().all(|(_, pid)| *pid == master),
            "pid is the master's"
        );
        assert!(k.len() >= 3, "{a}: every 300 ms: {}", k.len());
    }
    let versions = fake.calls(Servant::Node, "reportVersion");
    assert_eq!(versions.len(), 1, "reportVersion once: {versions:?}");
    assert!(versions[0]["args"]["version"]
        .as_str()
        .unwrap()
        .starts_with("tarsfork-"));
    assert_eq!(versions[0]["args"]["app"], "TestApp");
    s.stop();
}

#[test]
fn keepalive_goes_on_without_duplicates_after_task_worker_0_is_killed() {
    let fake = fake_node();
    let s = server_with_node(&fake.node_obj(), 2);
    s.start();
    wait_for(Duration::from_secs(2), || {
        (!keepalives(&fake, ADAPTERS[0]).is_empty()).then_some(())
    })
    .unwrap();
    let task0 = s.pids_of("task")[0];
    kill(task0, libc::SIGKILL);
    let replaced = wait_for(Duration::from_secs(5), || {
        s.pids_of("task").into_iter().find(|p| *p != task0)
    });
    assert!(replaced.is_some());
    let after = now_ms();
    std::thread::sleep(Duration::from_millis(1500));
    let k = keepalives(&fake, ADAPTERS[0]);
    assert!(
        k.iter().filter(|(t, _)| *t > after).count() >= 3,
        "keepAlive continues after the replacement"
    );
    for w in k.windows(2) {
        let gap = w[1].0 - w[0].0;
        assert!(
            gap >= 200,
            "no duplicate burst: two keepAlives {gap} ms apart"
        );
    }
    assert_eq!(
        fake.calls(Servant::Node, "reportVersion").len(),
        1,
        "still one reportVersion"
    );
    s.stop();
}

#[test]
fn keepalive_stops_while_every_worker_is_down() {
    let fake = fake_node();
    let s = server_with_node(&fake.node_obj(), 1);
    let crash_file = s.dir.path().join("crash-boot");
    s.start_env(&[(
        "TARSFORK_DEMO_CRASH_BOOT_FILE",
        crash_file.to_str().unwrap(),
    )]);
    wait_for(Duration::from_secs(2), || {
        (!keepalives(&fake, ADAPTERS[0]).is_empty()).then_some(())
    })
    .unwrap();
    // From now on every new worker dies before it is ready (crash-loop backoff): kill
    // the only worker, and none is up until the file is gone.
    std::fs::write(&crash_file, b"").unwrap();
    kill(s.pids_of("worker")[0], libc::SIGKILL);
    std::thread::sleep(Duration::from_millis(400));
    let before = keepalives(&fake, ADAPTERS[0]).len();
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        keepalives(&fake, ADAPTERS[0]).len(),
        before,
        "no keepAlive while no worker is up"
    );
    assert!(s.log().contains("keepAlive withheld"), "{}", s.log());
    // It resumes when the worker is back.
    std::fs::remove_file(&crash_file).unwrap();
    s.wait_role_up("worker", 1, Duration::from_secs(15));
    let resumed = wait_for(Duration::from_secs(2), || {
        (keepalives(&fake, ADAPTERS[0]).len() > before).then_some(())
    });
    assert!(resumed.is_some());
    s.stop();
}

#[test]
fn a_node_that_is_down_costs_nothing_but_task_worker_0_time() {
    let dead_port = free_port();
    let s = server_with_node(
        &format!("tars.tarsnode.ServerObj@tcp -h 127.0.0.1 -p {dead_port} -t 3000"),
        2,
    );
    s.start();
    std::thread::sleep(Duration::from_millis(800));
    for _ in 0..5 {
        assert_eq!(s.get("/").0, 200);
    }
    assert_eq!(
        s.get("/task?data=x").0,
        200,
        "task worker 0 still serves tasks"
    );
    let refused = format!("cannot connect to 127.0.0.1:{dead_port}");
    assert!(s.log().contains(&refused), "{}", s.log());
    s.stop();
}

#[test]
fn keepalive_resumes_when_the_node_comes_back() {
    let mut fake = fake_node();
    let s = server_with_node(&fake.node_obj(), 2);
    s.start();
    wait_for(Duration::from_secs(2), || {
        (!keepalives(&fake, ADAPTERS[0]).is_empty()).then_some(())
    })
    .unwrap();
    fake.set_down(Servant::Node).unwrap();
    std::thread::sleep(Duration::from_millis(800));
    let during = keepalives(&fake, ADAPTERS[0]).len();
    fake.set_up(Servant::Node).unwrap();
    let back = wait_for(Duration::from_secs(3), || {
        (keepalives(&fake, ADAPTERS[0]).len() > during).then_some(())
    });
    assert!(back.is_some(), "reports resume when the node is back");
    assert_eq!(s.get("/").0, 200);
    s.stop();
}

#[test]
fn a_slow_node_costs_bounded_timeouts_in_task_worker_0_only() {
    let mut fake = fake_node();
    fake.set_delay(Some(Servant::Node), 5000).unwrap();
    let s = server_with_node(&fake.node_obj(), 2);
    s.start();
    std::thread::sleep(Duration::from_millis(1500));
    let t = std::time::Instant::now();
    for _ in 0..5 {
        assert_eq!(s.get("/").0, 200);
    }
    assert!(
        t.elapsed() < Duration::from_secs(1),
        "event workers are not slowed"
    );
    let t = std::time::Instant::now();
    assert_eq!(
        s.get("/task?data=x").0,
        200,
        "task worker 0 still takes tasks"
    );
    assert!(
        t.elapsed() < Duration::from_secs(3),
        "within one bounded timeout: {:?}",
        t.elapsed()
    );
    assert!(s.log().contains("no reply within"), "{}", s.log());
    s.stop();
}
