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
fn a_manager_killed_once_its_pools_are_up_is_reforked_at_once() {
    let s = Server::new(Opts::default());
    s.start();
    for round in 0..3 {
        let manager = s.pids_of("manager")[0];
        let old_workers = s.pids_of("worker");
        kill(manager, libc::SIGKILL);
        // The next one is killed as soon as its own workers are up: well inside 1 s.
        wait_for(Duration::from_secs(5), || {
            let procs = s.procs();
            let new_manager = procs.iter().any(|p| p.1 == "manager" && p.0 != manager);
            let up = procs
                .iter()
                .filter(|p| p.1 == "worker" && p.3 == "idle" && !old_workers.contains(&p.0))
                .count();
            (new_manager && up >= 2).then_some(())
        })
        .unwrap_or_else(|| {
            panic!(
                "round {round}: no new manager with its workers:\n{}",
                s.log()
            )
        });
    }
    let log = s.log();
    assert_eq!(log.matches("re-forking it now").count(), 3, "{log}");
    assert!(!log.contains("crash-loop backoff"), "{log}");
    assert_eq!(s.get("/").0, 200);
    assert!(s.cmd(&["stop"]).status.success());
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
fn a_worker_dying_before_it_is_ready_is_backed_off_and_shown_in_status() {
    let s = Server::new(Opts {
        workers: 1,
        ..Opts::default()
    });
    let crash_file = s.dir.path().join("crash-boot");
    let crash_env = crash_file.to_str().unwrap();
    s.start_env(&[("TARSFORK_DEMO_CRASH_BOOT_FILE", crash_env)]);
    // From now on every new worker aborts in on_worker_start, before it is ready.
    std::fs::write(&crash_file, b"").unwrap();
    kill(worker_pid(&s, 0).expect("worker 0"), libc::SIGKILL);
    let mut seen_backoff = false;
    let looped = wait_for(Duration::from_secs(15), || {
        seen_backoff |= s
            .procs()
            .iter()
            .any(|p| p.1 == "worker" && p.3 == "backoff");
        let log = s.log();
        (seen_backoff && log.contains("crash-loop backoff, failure 3")).then_some(log)
    });
    let log = looped.unwrap_or_else(|| panic!("no crash loop seen:\n{}", s.log()));
    assert!(log.contains("before it was ready"), "{log}");
    assert!(log.contains("respawning in 400 ms"), "delays double: {log}");
    // It comes back by itself once it can start again.
    std::fs::remove_file(&crash_file).unwrap();
    s.wait_role_up("worker", 1, Duration::from_secs(15));
    assert_eq!(s.get("/").0, 200);
    assert!(s.cmd(&["stop"]).status.success());
}

#[test]
fn a_ready_worker_killed_soon_after_its_start_is_respawned_at_once() {
    let s = Server::new(Opts {
        workers: 1,
        ..Opts::default()
    });
    s.start();
    let mut last = 0;
    // Kill worker 0 as soon as each new one is ready, well inside its first second.
    for round in 0..8 {
        let t = Instant::now();
        let pid = wait_for(Duration::from_secs(5), || {
            s.procs()
                .into_iter()
                .find(|p| p.1 == "worker" && p.0 > 0 && p.0 != last && p.3 == "idle")
                .map(|p| p.0)
        })
        .unwrap_or_else(|| panic!("round {round}: no new ready worker:\n{}", s.log()));
        assert!(
            t.elapsed() < Duration::from_secs(2),
            "round {round}: the respawn was held back {:?}",
            t.elapsed()
        );
        kill(pid, libc::SIGKILL);
        last = pid;
    }
    let log = s.log();
    assert!(!log.contains("crash-loop backoff"), "{log}");
    s.wait_role_up("worker", 1, Duration::from_secs(5));
    assert_eq!(s.get("/").0, 200);
    assert!(s.cmd(&["stop"]).status.success());
}

#[test]
fn workers_that_crash_on_every_request_are_respawned_no_faster_than_the_budget() {
    let s = Server::new(Opts::default());
    s.start();
    let port = s.port;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    // Every worker aborts on its first request: ready, then dead at once, in a loop.
    let hammers: Vec<_> = (0..4)
        .map(|_| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let _ = try_http_get(port, "/crash");
                }
            })
        })
        .collect();
    let t = Instant::now();
    std::thread::sleep(Duration::from_secs(3));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for h in hammers {
        h.join().unwrap();
    }
    let secs = t.elapsed().as_secs_f64();
    let log = s.log();
    let deaths = log.matches("died with signal 6 (ABRT)").count();
    // The pools' budget (3 processes): 20 at once, then 20 a second.
    let most = 20 + (20.0 * secs).ceil() as usize + 2;
    assert!(
        (30..=most).contains(&deaths),
        "{deaths} respawns in {secs:.1} s (at most {most}):\n{log}"
    );
    assert!(log.contains("respawn budget spent"), "{log}");
    assert!(
        !log.contains("crash-loop backoff"),
        "they were ready: {log}"
    );
    s.wait_role_up("worker", 2, Duration::from_secs(5));
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
