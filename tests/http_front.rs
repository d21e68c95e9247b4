//! The HTTP/1.1 front over real sockets: keep-alive, pipelining, bodies, limits,
//! malformed input, idle timeout, maxconns, and the task round trip.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};
use support::*;

fn connect(port: u16) -> TcpStream {
    let c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    c
}

/// Reads until `n` complete responses arrived (or EOF); returns them and whether EOF came.
fn read_responses(c: &mut TcpStream, n: usize) -> (Vec<(u16, String, bool)>, bool) {
    let mut buf = Vec::new();
    let mut out = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        while let Some((st, body, used, closes)) = parse_response_full(&buf) {
            out.push((st, body, closes));
            buf.drain(..used);
        }
        if out.len() >= n {
            return (out, false);
        }
        match c.read(&mut chunk) {
            Ok(0) | Err(_) => return (out, true),
            Ok(k) => buf.extend_from_slice(&chunk[..k]),
        }
    }
}

fn server(opts: Opts) -> Server {
    let s = Server::new(opts);
    s.start();
    s
}

#[test]
fn keepalive_pipelining_and_bodies() {
    let s = server(Opts::default());
    let mut c = connect(s.port);
    // Three pipelined requests in one write, one with a Content-Length body and one chunked.
    c.write_all(
        b"GET / HTTP/1.1\r\nHost: t\r\n\r\n\
          POST /monitor/monitor HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nabcde\
          POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
    )
    .unwrap();
    let (rs, eof) = read_responses(&mut c, 3);
    assert!(!eof);
    assert_eq!(
        rs.iter().map(|r| (r.0, r.1.as_str())).collect::<Vec<_>>(),
        vec![(200, "hello"), (200, r#"{"code":0}"#), (200, "hello")]
    );
    // The same connection keeps working.
    c.write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    assert_eq!(read_responses(&mut c, 1).0[0].0, 200);
    // HTTP/1.0 without keep-alive is answered and closed.
    let mut c10 = connect(s.port);
    c10.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
    let (rs, _) = read_responses(&mut c10, 1);
    assert_eq!(rs[0].0, 200);
    assert!(rs[0].2, "1.0 default is close");
    let (more, eof) = read_responses(&mut c10, 1);
    assert!(more.is_empty() && eof);
    // HTTP/1.0 with keep-alive stays open.
    let mut k10 = connect(s.port);
    k10.write_all(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").unwrap();
    assert_eq!(read_responses(&mut k10, 2).0.len(), 2);
    assert!(s.cmd(&["stop"]).status.success());
}

#[test]
fn malformed_request_closes_only_its_connection() {
    let s = server(Opts::default());
    let workers = s.pids_of("worker");
    let mut good = connect(s.port);
    good.write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    assert_eq!(read_responses(&mut good, 1).0[0].0, 200);
    for garbage in [
        &b"\x16\x03\x01\x02\x00garbage-tls\r\n\r\n"[..],
        b"GET / HTTP/1.1\r\nContent-Length: x\r\n\r\n",
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
        b"G\0T / HTTP/1.1\r\n\r\n",
    ] {
        let mut bad = connect(s.port);
        bad.write_all(garbage).unwrap();
        let (rs, eof) = read_responses(&mut bad, 2);
        assert_eq!(rs.len(), 1, "one error answer for {garbage:?}");
        assert_eq!(rs[0].0, 400);
        assert!(eof, "then the connection closes");
    }
    good.write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    assert_eq!(
        read_responses(&mut good, 1).0[0].0,
        200,
        "other connections are untouched"
    );
    assert_eq!(s.pids_of("worker"), workers, "no worker died");
    assert!(s.cmd(&["stop"]).status.success());
}

#[test]
fn header_and_body_limits_answer_431_and_413() {
    let s = server(Opts::default());
    let mut c = connect(s.port);
    let big = "x".repeat(16 * 1024);
    write!(c, "GET / HTTP/1.1\r\nHost: t\r\nX-Big: {big}\r\n\r\n").unwrap();
    let (rs, eof) = read_responses(&mut c, 1);
    assert_eq!(rs[0].0, 431);
    assert!(rs[0].2 || eof);
    let mut c = connect(s.port);
    c.write_all(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 999999999\r\n\r\n")
        .unwrap();
    assert_eq!(read_responses(&mut c, 1).0[0].0, 413);
    assert!(s.cmd(&["stop"]).status.success());
}

#[test]
fn idle_connections_close_after_the_endpoint_timeout() {
    let s = server(Opts {
        idle_ms: 400,
        ..Opts::default()
    });
    let mut c = connect(s.port);
    c.write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    assert_eq!(read_responses(&mut c, 1).0.len(), 1);
    let t = Instant::now();
    let mut b = [0u8; 16];
    let n = c.read(&mut b).unwrap_or(0);
    assert_eq!(n, 0, "closed by the server");
    let took = t.elapsed();
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_secs(3),
        "{took:?}"
    );
    assert!(s.cmd(&["stop"]).status.success());
}

#[test]
fn maxconns_caps_open_connections_per_adapter() {
    let s = Server::new(Opts {
        adapter_extra: vec!["maxconns=3".into()],
        ..Opts::default()
    });
    // The generated config already has maxconns=200000 before; the later line wins.
    s.start();
    let mut held: Vec<TcpStream> = (0..3).map(|_| connect(s.port)).collect();
    for c in held.iter_mut() {
        c.write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
        assert_eq!(read_responses(c, 1).0[0].0, 200);
    }
    let mut extra = connect(s.port);
    let _ = extra.write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n");
    let (rs, eof) = read_responses(&mut extra, 1);
    assert!(rs.is_empty() && eof, "the fourth connection is refused");
    drop(held);
    let ok = wait_for(Duration::from_secs(3), || {
        (try_http_get(s.port, "/").map(|r| r.0) == Some(200)).then_some(())
    });
    assert!(ok.is_some(), "capacity comes back when connections close");
    assert!(s.cmd(&["stop"]).status.success());
}

#[test]
fn task_wait_round_trip_and_pending_count() {
    let s = server(Opts {
        tasks: 2,
        ..Opts::default()
    });
    for i in 0..20 {
        let (st, body) = s.get(&format!("/task?data=item{i}"));
        assert_eq!(st, 200);
        assert!(
            body == format!("item{i} (task worker 2)")
                || body == format!("item{i} (task worker 3)"),
            "{body}"
        );
    }
    let st = s.status();
    let pending: i64 = st["processes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["tasks_pending"].as_i64().unwrap())
        .sum();
    assert_eq!(pending, 0, "every task answered: {st}");
    let served: i64 = st["processes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["role"] == "task")
        .map(|p| p["requests"].as_i64().unwrap())
        .sum();
    assert_eq!(served, 20);
    assert!(s.cmd(&["stop"]).status.success());
}

#[test]
fn embedded_default_runs_without_a_config() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut child = std::process::Command::new(BIN)
        .arg(format!("--listen=127.0.0.1:{port}"))
        .env("TMPDIR", dir.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let ok = wait_for(Duration::from_secs(10), || {
        TcpStream::connect(("127.0.0.1", port))
            .ok()
            .map(|_| http_get(port, "/"))
    });
    let pid = child.id() as i32;
    kill(pid, libc::SIGTERM);
    let status = wait_for(Duration::from_secs(5), || child.try_wait().ok().flatten());
    if status.is_none() {
        let _ = child.kill();
    }
    let _ = child.wait();
    assert_eq!(ok, Some((200, "hello".to_string())));
    assert!(status.is_some_and(|s| s.success()));
}

#[test]
fn async_task_result_arrives_in_on_finish_of_the_sending_worker() {
    let s = server(Opts::default());
    let mut c = connect(s.port);
    c.write_all(b"GET /task_async?data=later HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    let (rs, _) = read_responses(&mut c, 1);
    assert_eq!(rs[0].0, 200);
    let id: u64 = rs[0].1.parse().expect("task id");
    // Same keep-alive connection, so the same worker: poll until on_finish ran.
    let got = wait_for(Duration::from_secs(5), || {
        write!(c, "GET /finished?id={id} HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
        let (rs, _) = read_responses(&mut c, 1);
        (rs[0].0 == 200).then(|| rs[0].1.clone())
    });
    assert_eq!(got.as_deref(), Some("later (task worker 2)"));
    assert!(s.cmd(&["stop"]).status.success());
}

#[test]
fn timers_tick_in_workers_and_task_workers() {
    let s = server(Opts::default());
    std::thread::sleep(Duration::from_millis(600));
    let (st, body) = s.get("/ticks");
    assert_eq!(st, 200);
    let nums: Vec<u64> = body
        .split(|c: char| !c.is_ascii_digit())
        .filter(|p| !p.is_empty())
        .map(|p| p.parse().unwrap())
        .collect();
    assert_eq!(nums.len(), 2, "{body}");
    assert!(
        nums[0] >= 5 && nums[1] >= 5,
        "both 50 ms timers fired for ~600 ms: {body}"
    );
    assert!(s.cmd(&["stop"]).status.success());
}

#[test]
fn connections_of_a_killed_worker_leave_the_maxconns_count() {
    let s = Server::new(Opts {
        workers: 1,
        adapter_extra: vec!["maxconns=4".into()],
        ..Opts::default()
    });
    s.start();
    let victim = s.pids_of("worker")[0];
    let mut held: Vec<TcpStream> = (0..4).map(|_| connect(s.port)).collect();
    for c in held.iter_mut() {
        c.write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
        assert_eq!(read_responses(c, 1).0[0].0, 200);
    }
    kill(victim, libc::SIGKILL);
    drop(held);
    s.wait_role_up("worker", 1, Duration::from_secs(5));
    let conns = wait_for(Duration::from_secs(3), || {
        let n = s.status()["connections"]["TestApp.HelloServer.HttpObjAdapter"].as_i64();
        (n == Some(0)).then_some(())
    });
    assert!(
        conns.is_some(),
        "the dead worker's 4 connections were released: {}",
        s.status()
    );
    let mut again: Vec<TcpStream> = (0..4).map(|_| connect(s.port)).collect();
    for c in again.iter_mut() {
        c.write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
        assert_eq!(read_responses(c, 1).0[0].0, 200, "full capacity again");
    }
    assert!(s.cmd(&["stop"]).status.success());
}

#[test]
fn allow_list_refuses_other_clients() {
    let s = server(Opts {
        adapter_extra: vec!["allow=10.9.9.9".into()],
        ..Opts::default()
    });
    let mut c = connect(s.port);
    let _ = c.write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n");
    let (rs, eof) = read_responses(&mut c, 1);
    assert!(rs.is_empty() && eof, "127.0.0.1 is not on the allow list");
    assert!(s.cmd(&["stop"]).status.success());

    let s = server(Opts {
        adapter_extra: vec!["allow=10.9.9.9;127.0.0.1".into()],
        ..Opts::default()
    });
    assert_eq!(s.get("/").0, 200, "now it is");
    assert!(s.cmd(&["stop"]).status.success());
}
