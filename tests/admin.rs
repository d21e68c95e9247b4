//! The admin endpoint (AdminF on `local`), called with the tars2rs-generated proxy.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::{Duration, Instant};

use support::*;

fn admin_server() -> Server {
    Server::new(Opts::default().with_admin())
}

#[test]
fn admin_commands_answer() {
    let s = admin_server();
    let master = s.start();
    let mut a = s.admin();
    assert_eq!(a.get_pid().unwrap(), i64::from(master));
    let status = a.notify("tars.viewstatus").unwrap();
    assert!(
        status.contains("manager")
            && status.contains("worker")
            && status.contains(&master.to_string()),
        "{status}"
    );
    for _ in 0..3 {
        assert_eq!(s.get("/").0, 200);
    }
    let conns = a.notify("tars.connection").unwrap();
    assert!(
        conns.contains("TestApp.HelloServer.HttpObjAdapter"),
        "{conns}"
    );
    assert!(a
        .notify("tars.viewversion")
        .unwrap()
        .starts_with("tarsfork "));
    let help = a.notify("tars.help").unwrap();
    assert!(help.contains("tars.setloglevel") && help.contains("tars.viewstatus"));
    assert_eq!(
        a.notify("tars.nosuchthing").unwrap(),
        help,
        "unknown commands get the help"
    );
    assert!(a
        .notify("tars.setloglevel LOUD")
        .unwrap()
        .contains("unknown log level"));
    s.stop();
}

#[test]
fn admin_answers_while_every_worker_is_busy() {
    // One event worker, so one slow request makes every worker busy (with two, the
    // kernel may hand both slow connections to the same worker).
    let s = Server::new(Opts {
        workers: 1,
        ..Opts::default().with_admin()
    });
    let master = s.start();
    let busy: Vec<_> = (0..1)
        .map(|_| {
            let p = s.port;
            std::thread::spawn(move || try_http_get(p, "/slow?ms=3000"))
        })
        .collect();
    let all_busy = wait_for(Duration::from_secs(3), || {
        let p = s.procs();
        let workers: Vec<_> = p.iter().filter(|r| r.1 == "worker").collect();
        (!workers.is_empty() && workers.iter().all(|r| r.3 == "busy")).then_some(())
    });
    assert!(all_busy.is_some(), "every worker busy");
    let t = Instant::now();
    assert_eq!(s.admin().get_pid().unwrap(), i64::from(master));
    assert!(
        t.elapsed() < Duration::from_secs(1),
        "answered in {:?}",
        t.elapsed()
    );
    for b in busy {
        assert_eq!(b.join().unwrap().map(|r| r.0), Some(200));
    }
    s.stop();
}

#[test]
fn admin_shutdown_is_a_graceful_stop() {
    let s = admin_server();
    let master = s.start();
    let slow = {
        let p = s.port;
        std::thread::spawn(move || try_http_get(p, "/slow?ms=500"))
    };
    std::thread::sleep(Duration::from_millis(100));
    s.admin().shutdown().unwrap();
    assert_eq!(
        slow.join().unwrap().map(|r| r.0),
        Some(200),
        "the request in flight finished"
    );
    let gone = wait_for(Duration::from_secs(5), || (!alive(master)).then_some(()));
    assert!(gone.is_some());
    assert!(!s.pid_file().exists());
}

#[test]
fn setloglevel_takes_effect_in_every_process() {
    let s = Server::new(Opts {
        extra: vec!["logLevel=INFO".into()],
        ..Opts::default().with_admin()
    });
    let master = s.start();
    // The manager logs each spawn at DEBUG: invisible at INFO.
    kill(master, libc::SIGTTIN);
    s.wait_role_up("worker", 3, Duration::from_secs(5));
    assert!(!s.log().contains("spawned event worker 3"), "{}", s.log());
    let answer = s.admin().notify("tars.setloglevel DEBUG").unwrap();
    assert!(answer.contains("DEBUG"), "{answer}");
    kill(master, libc::SIGTTIN);
    s.wait_role_up("worker", 4, Duration::from_secs(5));
    let logged = wait_for(Duration::from_secs(2), || {
        s.log().contains("spawned event worker 4").then_some(())
    });
    assert!(logged.is_some(), "the manager now logs DEBUG:\n{}", s.log());
    s.stop();
}
