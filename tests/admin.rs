//! The admin endpoint (AdminF on `local`), called with the tars2rs-generated proxy.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use support::*;
use tarsfork_tars::framework::tars::AdminFProxy;
use tarsfork_tars::proxy::Proxy;

fn admin_server() -> (Server, u16) {
    let port = free_port();
    let s = Server::new(Opts {
        extra: vec![format!("local=tcp -h 127.0.0.1 -p {port} -t 10000")],
        ..Opts::default()
    });
    (s, port)
}

fn admin(port: u16) -> AdminFProxy {
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let mut p = Proxy::new(addr, "AdminObj");
    p.set_timeout(Duration::from_secs(3));
    AdminFProxy::new(p)
}

#[test]
fn admin_commands_answer() {
    let (s, port) = admin_server();
    let master = s.start();
    let mut a = admin(port);
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
    assert!(s.cmd(&["stop"]).status.success());
}

#[test]
fn admin_answers_while_every_worker_is_busy() {
    // One event worker, so one slow request makes every worker busy (with two, the
    // kernel may hand both slow connections to the same worker).
    let port = free_port();
    let s = Server::new(Opts {
        workers: 1,
        extra: vec![format!("local=tcp -h 127.0.0.1 -p {port} -t 10000")],
        ..Opts::default()
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
    assert_eq!(admin(port).get_pid().unwrap(), i64::from(master));
    assert!(
        t.elapsed() < Duration::from_secs(1),
        "answered in {:?}",
        t.elapsed()
    );
    for b in busy {
        assert_eq!(b.join().unwrap().map(|r| r.0), Some(200));
    }
    assert!(s.cmd(&["stop"]).status.success());
}

#[test]
fn admin_shutdown_is_a_graceful_stop() {
    let (s, port) = admin_server();
    let master = s.start();
    let slow = {
        let p = s.port;
        std::thread::spawn(move || try_http_get(p, "/slow?ms=500"))
    };
    std::thread::sleep(Duration::from_millis(100));
    admin(port).shutdown().unwrap();
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
    let port = free_port();
    let s = Server::new(Opts {
        extra: vec![
            format!("local=tcp -h 127.0.0.1 -p {port} -t 10000"),
            "logLevel=INFO".into(),
        ],
        ..Opts::default()
    });
    let master = s.start();
    // The manager logs each spawn at DEBUG: invisible at INFO.
    kill(master, libc::SIGTTIN);
    s.wait_role_up("worker", 3, Duration::from_secs(5));
    assert!(!s.log().contains("spawned event worker 3"), "{}", s.log());
    let answer = admin(port).notify("tars.setloglevel DEBUG").unwrap();
    assert!(answer.contains("DEBUG"), "{answer}");
    kill(master, libc::SIGTTIN);
    s.wait_role_up("worker", 4, Duration::from_secs(5));
    let logged = wait_for(Duration::from_secs(2), || {
        s.log().contains("spawned event worker 4").then_some(())
    });
    assert!(logged.is_some(), "the manager now logs DEBUG:\n{}", s.log());
    assert!(s.cmd(&["stop"]).status.success());
}
