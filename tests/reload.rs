//! Reloads and recycling under continuous keep-alive load: every request is answered.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use support::*;

#[test]
fn rolling_reload_under_keepalive_load_fails_nothing() {
    let s = Server::new(Opts::default());
    let master = s.start();
    let before = s.pids_of("worker");
    let task_before = s.pids_of("task");
    let stop = Arc::new(AtomicBool::new(false));
    let load = keepalive_load(s.port, 16, stop.clone());
    std::thread::sleep(Duration::from_millis(300));
    for _ in 0..3 {
        kill(master, libc::SIGUSR1);
        std::thread::sleep(Duration::from_millis(700));
    }
    let after = s.wait_role_up("worker", 2, Duration::from_secs(10));
    stop.store(true, Ordering::Relaxed);
    let r = load.join().unwrap();
    eprintln!("reload load: {r:?}");
    assert!(
        before.iter().all(|p| !after.contains(p)),
        "every worker replaced: {before:?} -> {after:?}"
    );
    assert!(
        s.pids_of("task").iter().all(|p| !task_before.contains(p)),
        "task workers reloaded too"
    );
    assert_eq!(r.failed, 0, "no request failed during reloads: {r:?}");
    assert!(r.ok > 100, "load ran: {r:?}");
    assert!(
        r.reconnects > 16,
        "draining workers closed keep-alive connections: {r:?}"
    );
    s.stop();
}

#[test]
fn reload_tasks_only_keeps_event_workers() {
    let s = Server::new(Opts::default());
    s.start();
    let workers = s.pids_of("worker");
    let tasks = s.pids_of("task");
    let out = s.cmd(&["reload", "--tasks"]);
    assert!(out.status.success());
    let new_tasks = wait_for(Duration::from_secs(5), || {
        let t = s.pids_of("task");
        (t.len() == 1 && t != tasks).then_some(t)
    });
    assert!(new_tasks.is_some());
    assert_eq!(s.pids_of("worker"), workers);
    assert_eq!(s.get("/task?data=z").0, 200);
    s.stop();
}

#[test]
fn max_request_recycling_under_keepalive_load_fails_nothing() {
    let s = Server::new(Opts {
        extra: vec!["max_request=300".into(), "max_request_grace=50".into()],
        ..Opts::default()
    });
    s.start();
    let stop = Arc::new(AtomicBool::new(false));
    let load = keepalive_load(s.port, 8, stop.clone());
    std::thread::sleep(Duration::from_secs(3));
    stop.store(true, Ordering::Relaxed);
    let r = load.join().unwrap();
    eprintln!("max_request load: {r:?}");
    assert_eq!(r.failed, 0, "{r:?}");
    assert!(
        r.ok > 1000,
        "enough requests to recycle several times: {r:?}"
    );
    let log = s.log();
    assert!(
        log.matches("max_request reached").count() >= 2,
        "workers recycled: {log}"
    );
    s.wait_role_up("worker", 2, Duration::from_secs(5));
    s.stop();
}
