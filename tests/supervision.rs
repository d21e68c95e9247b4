//! Supervision with real signals: kill -9 of every role, crash-loop backoff, boot
//! failure, hung handlers, stopped managers, TTIN/TTOU.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::{Duration, Instant};
use support::*;

fn worker_pid(s: &Server, id: u64) -> Option<i32> {
    s.procs()
        .into_iter()
        .find(|p| p.1 == "worker" && p.2 == id && p.0 > 0 && p.3 != "draining")
        .map(|p| p.0)
}

#[test]
fn killed_worker_is_replaced_and_serving_goes_on() {
    let s = Server::new(Opts::default());
    s.start();
    let old = worker_pid(&s, 0).expect("worker 0");
    kill(old, libc::SIGKILL);
    let new = wait_for(Duration::from_secs(5), || {
        worker_pid(&s, 0).filter(|p| *p != old)
    })
    .expect("worker 0 respawned");
    s.wait_role_up("worker", 2, Duration::from_secs(5));
    assert!(alive(new));
    for _ in 0..10 {
        assert_eq!(s.get("/").0, 200);
    }
    assert!(s.log().contains("with signal 9 (KILL)"), "{}", s.log());
    s.stop();
}

#[test]
fn killed_task_worker_is_replaced_and_tasks_still_run() {
    let s = Server::new(Opts::default());
    s.start();
    assert_eq!(
        s.get("/task?data=one"),
        (200, "one (task worker 2)".to_string())
    );
    let old = s.pids_of("task")[0];
    kill(old, libc::SIGKILL);
    let new = wait_for(Duration::from_secs(5), || {
        s.pids_of("task").into_iter().find(|p| *p != old)
    })
    .expect("task worker respawned");
    s.wait_role_up("task", 1, Duration::from_secs(5));
    assert!(alive(new));
    assert_eq!(
        s.get("/task?data=two"),
        (200, "two (task worker 2)".to_string())
    );
    s.stop();
}

#[test]
fn killed_manager_is_reforked_and_new_workers_take_over() {
    let s = Server::new(Opts::default());
    let master = s.start();
    let manager = s.pids_of("manager")[0];
    let old_workers = s.pids_of("worker");
    kill(manager, libc::SIGKILL);
    let new_manager = wait_for(Duration::from_secs(5), || {
        s.pids_of("manager").into_iter().find(|p| *p != manager)
    })
    .expect("manager re-forked");
    assert!(alive(master));
    // The old workers drain and exit.
    wait_gone(&old_workers, Duration::from_secs(10));
    s.wait_role_up("worker", 2, Duration::from_secs(5));
    for _ in 0..10 {
        assert_eq!(s.get("/").0, 200);
    }
    assert_eq!(s.get("/task?data=x").0, 200);
    assert!(alive(new_manager));
    s.stop();
}

#[test]
fn killed_master_takes_the_tree_down_within_a_second_and_start_works_again() {
    let s = Server::new(Opts::default());
    let master = s.start();
    let tree = s.tree();
    kill(master, libc::SIGKILL);
    let took = wait_gone(&tree, Duration::from_secs(3));
    assert!(
        took <= Duration::from_secs(1),
        "the tree outlived the master by {took:?}"
    );
    // The pid file is stale now (its lock died with the master): start must work at once.
    let again = s.start();
    assert_ne!(again, master);
    assert_eq!(s.get("/").0, 200);
    s.stop();
}

#[test]
fn crash_loop_is_backed_off_and_shown_in_status() {
    let s = Server::new(Opts {
        workers: 1,
        ..Opts::default()
    });
    s.start();
    let mut seen_backoff = false;
    let mut last = 0;
    // Kill worker 0 each time it comes back, well inside its first second.
    for _ in 0..6 {
        let pid = wait_for(Duration::from_secs(15), || {
            let procs = s.procs();
            if procs.iter().any(|p| p.1 == "worker" && p.3 == "backoff") {
                seen_backoff = true;
            }
            procs
                .into_iter()
                .find(|p| p.1 == "worker" && p.0 > 0 && p.0 != last)
                .map(|p| p.0)
        })
        .expect("worker respawned");
        kill(pid, libc::SIGKILL);
        last = pid;
    }
    let log = s.log();
    assert!(log.contains("crash-loop backoff, failure 3"), "{log}");
    assert!(log.contains("respawning in 400 ms"), "delays double: {log}");
    assert!(seen_backoff, "status shows the backoff state");
    // It comes back by itself once left alone.
    s.wait_role_up("worker", 1, Duration::from_secs(15));
    assert_eq!(s.get("/").0, 200);
    s.stop();
}

#[test]
fn worker_boot_error_stops_the_server_with_a_clear_message() {
    let s = Server::new(Opts::default());
    let out = s.cmd_env(&["start"], &[("TARSFORK_DEMO_FAIL_BOOT", "no database")]);
    assert_ne!(out.status.code(), Some(0));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("failed to boot"), "{err}");
    let log = s.log();
    assert!(
        log.contains("TARSFORK_DEMO_FAIL_BOOT is set (no database)"),
        "{log}"
    );
    assert!(!log.contains("respawning in"), "no respawn loop: {log}");
    assert!(!s.pid_file().exists());
}

#[test]
fn hung_request_is_killed_by_request_timeout() {
    let s = Server::new(Opts {
        extra: vec!["request_timeout=1".into()],
        ..Opts::default()
    });
    s.start();
    let port = s.port;
    let t = Instant::now();
    let hung = std::thread::spawn(move || {
        let mut c = Conn::open(port);
        c.send(b"GET /slow?ms=60000 HTTP/1.1\r\nHost: t\r\n\r\n");
        c.until_end()
    });
    assert_eq!(
        hung.join().unwrap(),
        (vec![], Outcome::Closed),
        "the hung request gets no answer, its connection closes"
    );
    assert!(
        t.elapsed() < Duration::from_secs(6),
        "killed after ~1 s + grace, took {:?}",
        t.elapsed()
    );
    assert!(s.log().contains("request_timeout"), "{}", s.log());
    s.wait_role_up("worker", 2, Duration::from_secs(5));
    assert_eq!(s.get("/").0, 200);
    s.stop();
}

#[test]
fn stopped_manager_does_not_kill_healthy_workers_after_resume() {
    let s = Server::new(Opts {
        extra: vec!["worker_timeout=1".into()],
        ..Opts::default()
    });
    s.start();
    let manager = s.pids_of("manager")[0];
    let workers = s.pids_of("worker");
    let tasks = s.pids_of("task");
    // The whole tree below the master is stopped (as with a suspended machine) for
    // longer than worker_timeout; the workers resume first, the manager right after.
    kill(manager, libc::SIGSTOP);
    for p in workers.iter().chain(tasks.iter()) {
        kill(*p, libc::SIGSTOP);
    }
    std::thread::sleep(Duration::from_millis(2500));
    for p in workers.iter().chain(tasks.iter()) {
        kill(*p, libc::SIGCONT);
    }
    kill(manager, libc::SIGCONT);
    std::thread::sleep(Duration::from_millis(2000));
    assert_eq!(
        s.pids_of("worker"),
        workers,
        "no worker was killed:\n{}",
        s.log()
    );
    assert_eq!(s.pids_of("task"), tasks);
    assert!(s.log().contains("manager loop stalled"), "{}", s.log());
    assert_eq!(s.get("/").0, 200);
    s.stop();
}

#[test]
fn ttin_adds_and_ttou_removes_workers_never_below_one() {
    let s = Server::new(Opts::default());
    let master = s.start();
    kill(master, libc::SIGTTIN);
    s.wait_role_up("worker", 3, Duration::from_secs(5));
    for _ in 0..3 {
        kill(master, libc::SIGTTOU);
        std::thread::sleep(Duration::from_millis(300));
    }
    s.wait_role_up("worker", 1, Duration::from_secs(10));
    kill(master, libc::SIGTTOU);
    std::thread::sleep(Duration::from_millis(500));
    s.wait_role_up("worker", 1, Duration::from_secs(5));
    assert_eq!(s.get("/").0, 200);
    s.stop();
}

#[test]
fn stopped_worker_is_killed_by_worker_timeout() {
    let s = Server::new(Opts {
        extra: vec!["worker_timeout=1".into()],
        ..Opts::default()
    });
    s.start();
    let victim = worker_pid(&s, 0).unwrap();
    kill(victim, libc::SIGSTOP);
    let gone = wait_for(Duration::from_secs(6), || (!alive(victim)).then_some(()));
    assert!(gone.is_some(), "a worker with a stale heartbeat is killed");
    assert!(s.log().contains("no heartbeat for"), "{}", s.log());
    s.wait_role_up("worker", 2, Duration::from_secs(5));
    assert_eq!(s.get("/").0, 200);
    s.stop();
}

#[test]
fn int_is_a_fast_stop_that_does_not_wait_for_requests() {
    let s = Server::new(Opts {
        extra: vec!["max_wait_time=20".into()],
        ..Opts::default()
    });
    let master = s.start();
    let tree = s.tree();
    let port = s.port;
    let slow = std::thread::spawn(move || {
        let mut c = Conn::open(port);
        c.send(b"GET /slow?ms=15000 HTTP/1.1\r\nHost: t\r\n\r\n");
        c.until_end()
    });
    std::thread::sleep(Duration::from_millis(200));
    kill(master, libc::SIGINT);
    // Everything exits after INT.
    let took = wait_gone(&tree, Duration::from_secs(5));
    assert!(took < Duration::from_secs(3), "fast stop took {took:?}");
    assert!(!s.pid_file().exists());
    assert_eq!(
        slow.join().unwrap(),
        (vec![], Outcome::Closed),
        "the request in flight is dropped, its connection closed"
    );
}
