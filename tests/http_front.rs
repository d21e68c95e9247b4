//! The HTTP/1.1 front over real sockets: keep-alive, pipelining, bodies, limits,
//! malformed input, idle timeout, maxconns, and the task round trip.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::io::Write;
use std::time::Duration;
use support::*;

const GET: &[u8] = b"GET / HTTP/1.1\r\nHost: t\r\n\r\n";

fn server(opts: Opts) -> Server {
    let s = Server::new(opts);
    s.start();
    s
}

/// The statuses of `replies`.
fn statuses(replies: &[Reply]) -> Vec<u16> {
    replies.iter().map(|r| r.status).collect()
}

#[test]
fn keepalive_pipelining_and_bodies() {
    let s = server(Opts::default());
    let mut c = Conn::open(s.port);
    // Three pipelined requests in one write, one with a Content-Length body and one chunked.
    c.send(
        b"GET / HTTP/1.1\r\nHost: t\r\n\r\n\
          POST /monitor/monitor HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nabcde\
          POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
    );
    let rs = c.expect_replies(3);
    assert_eq!(
        rs.iter()
            .map(|r| (r.status, r.body.as_str(), r.closes))
            .collect::<Vec<_>>(),
        vec![
            (200, "hello", false),
            (200, r#"{"code":0}"#, false),
            (200, "hello", false)
        ]
    );
    // The same connection keeps working.
    c.send(GET);
    assert_eq!(statuses(&c.expect_replies(1)), [200]);
    // HTTP/1.0 without keep-alive is answered and closed.
    let mut c10 = Conn::open(s.port);
    c10.send(b"GET / HTTP/1.0\r\n\r\n");
    let rs = c10.expect_replies(1);
    assert_eq!(rs[0].status, 200);
    assert!(rs[0].closes, "1.0 default is close");
    assert_eq!(c10.until_end(), (vec![], Outcome::Closed), "then it closes");
    // HTTP/1.0 with keep-alive stays open.
    let mut k10 = Conn::open(s.port);
    k10.send(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    assert_eq!(statuses(&k10.expect_replies(2)), [200, 200]);
    s.stop();
}

#[test]
fn malformed_request_closes_only_its_connection() {
    let s = server(Opts::default());
    let workers = s.pids_of("worker");
    let mut good = Conn::open(s.port);
    good.send(GET);
    assert_eq!(statuses(&good.expect_replies(1)), [200]);
    for garbage in [
        &b"\x16\x03\x01\x02\x00garbage-tls\r\n\r\n"[..],
        b"GET / HTTP/1.1\r\nContent-Length: x\r\n\r\n",
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
        b"G\0T / HTTP/1.1\r\n\r\n",
    ] {
        let mut bad = Conn::open(s.port);
        bad.send(garbage);
        let (rs, end) = bad.replies(2).expect_err("one answer only");
        assert_eq!(statuses(&rs), [400], "one error answer for {garbage:?}");
        assert!(rs[0].closes, "it says it closes");
        assert_eq!(end, Outcome::Closed, "then the connection closes");
        assert!(bad.unparsed().is_empty());
    }
    good.send(GET);
    assert_eq!(
        statuses(&good.expect_replies(1)),
        [200],
        "other connections are untouched"
    );
    assert_eq!(s.pids_of("worker"), workers, "no worker died");
    s.stop();
}

#[test]
fn header_and_body_limits_answer_431_and_413() {
    let s = server(Opts::default());
    let mut c = Conn::open(s.port);
    let big = "x".repeat(16 * 1024);
    write!(
        c.stream,
        "GET / HTTP/1.1\r\nHost: t\r\nX-Big: {big}\r\n\r\n"
    )
    .unwrap();
    let rs = c.expect_replies(1);
    assert_eq!((rs[0].status, rs[0].closes), (431, true));
    assert_eq!(c.until_end(), (vec![], Outcome::Closed), "431 closes");
    let mut c = Conn::open(s.port);
    c.send(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 999999999\r\n\r\n");
    let rs = c.expect_replies(1);
    assert_eq!((rs[0].status, rs[0].closes), (413, true));
    assert_eq!(c.until_end(), (vec![], Outcome::Closed), "413 closes");
    s.stop();
}

#[test]
fn idle_connections_close_after_the_endpoint_timeout() {
    let s = server(Opts {
        idle_ms: 400,
        ..Opts::default()
    });
    let mut c = Conn::open(s.port);
    c.send(GET);
    assert_eq!(statuses(&c.expect_replies(1)), [200]);
    let took = c.time_to_close();
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_secs(3),
        "{took:?}"
    );
    s.stop();
}

#[test]
fn maxconns_caps_open_connections_per_adapter() {
    let s = Server::new(Opts {
        adapter_extra: vec!["maxconns=3".into()],
        ..Opts::default()
    });
    // The generated config already has maxconns=200000 before; the later line wins.
    s.start();
    let mut held: Vec<Conn> = (0..3).map(|_| Conn::open(s.port)).collect();
    for c in held.iter_mut() {
        c.send(GET);
        assert_eq!(statuses(&c.expect_replies(1)), [200]);
    }
    let mut extra = Conn::open(s.port);
    extra.try_send(GET);
    assert_refused(&mut extra, "the fourth connection");
    drop(held);
    let ok = wait_for(Duration::from_secs(3), || {
        (try_http_get(s.port, "/").map(|r| r.0) == Some(200)).then_some(())
    });
    assert!(ok.is_some(), "capacity comes back when connections close");
    s.stop();
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
    s.stop();
}

#[test]
fn embedded_default_runs_without_a_config() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut fg = Foreground::start(
        &[format!("--listen=127.0.0.1:{port}")],
        &[("TMPDIR", dir.path())],
    );
    assert_eq!(http_get(port, "/"), (200, "hello".to_string()));
    let status = fg.terminate(Duration::from_secs(5));
    assert!(status.is_some_and(|s| s.success()), "{status:?}");
}

#[test]
fn async_task_result_arrives_in_on_finish_of_the_sending_worker() {
    let s = server(Opts::default());
    let mut c = Conn::open(s.port);
    c.send(b"GET /task_async?data=later HTTP/1.1\r\nHost: t\r\n\r\n");
    let rs = c.expect_replies(1);
    assert_eq!(rs[0].status, 200);
    let id: u64 = rs[0].body.parse().expect("task id");
    // Same keep-alive connection, so the same worker: poll until on_finish ran.
    let got = wait_for(Duration::from_secs(5), || {
        c.send(format!("GET /finished?id={id} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes());
        let rs = c.expect_replies(1);
        (rs[0].status == 200).then(|| rs[0].body.clone())
    });
    assert_eq!(got.as_deref(), Some("later (task worker 2)"));
    s.stop();
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
    s.stop();
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
    let mut held: Vec<Conn> = (0..4).map(|_| Conn::open(s.port)).collect();
    for c in held.iter_mut() {
        c.send(GET);
        assert_eq!(statuses(&c.expect_replies(1)), [200]);
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
    let mut again: Vec<Conn> = (0..4).map(|_| Conn::open(s.port)).collect();
    for c in again.iter_mut() {
        c.send(GET);
        assert_eq!(statuses(&c.expect_replies(1)), [200], "full capacity again");
    }
    s.stop();
}

#[test]
fn allow_list_refuses_other_clients() {
    let s = server(Opts {
        adapter_extra: vec!["allow=10.9.9.9".into()],
        ..Opts::default()
    });
    let mut c = Conn::open(s.port);
    c.try_send(GET);
    assert_refused(&mut c, "127.0.0.1, not on the allow list,");
    s.stop();

    let s = server(Opts {
        adapter_extra: vec!["allow=10.9.9.9;127.0.0.1".into()],
        ..Opts::default()
    });
    assert_eq!(s.get("/").0, 200, "now it is");
    s.stop();
}

/// A refused connection gets no answer and ends: a FIN, or a reset when the server
/// closed it with our request unread. A timeout (the server holds it open) fails.
fn assert_refused(c: &mut Conn, who: &str) {
    let (data, end) = c.until_end();
    assert!(data.is_empty(), "{who} got an answer: {data:?}");
    assert!(
        matches!(end, Outcome::Closed | Outcome::Reset),
        "{who} is refused: the server must end it, got {end:?}"
    );
}
