//! The task channel under attack (issue 11, items 1 and 10): another local user finds no
//! socket of the server to send a task to; a worker that never reads its results cannot
//! stall the task workers; a task whose task worker dies is reported to its sender at
//! once (or queued once more, if idempotent).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use support::*;

/// inode → name of every unix socket with a name (abstract `@…` or a path).
fn named_unix_sockets() -> Vec<(u64, String)> {
    let text = std::fs::read_to_string("/proc/net/unix").unwrap();
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            Some((f.get(6)?.parse().ok()?, f.get(7)?.to_string()))
        })
        .collect()
}

/// The attack of issue 11: scan /proc/net/unix for the server's sockets that have a name
/// (the task queue's carried the token), forge a task with that token and wait for a
/// task worker's reply. argv[1] lists the inodes of the sockets the server's processes
/// hold (other servers on the machine are not this test's business). Prints
/// `found=<named sockets of the server> replies=<answers>`.
const FORGE_TASK: &str = r#"
import os, socket, struct, sys
ours = set(sys.argv[1].split(','))
found = []
for line in open('/proc/net/unix').read().splitlines()[1:]:
    f = line.split()
    if len(f) >= 8 and f[6] in ours:
        found.append(f[7])
replies = 0
for name in found:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind('\0attacker-%d-%d' % (os.getpid(), replies))
    s.settimeout(1.0)
    token = 0
    if name.startswith('@tarsfork-') and name.endswith('-tasks'):
        token = int(name[len('@tarsfork-'):-len('-tasks')], 16)
    forged = struct.pack('>IQQBI', 0x5446544b, token, 1, 1, 0) + b'forged'
    target = '\0' + name[1:] if name.startswith('@') else name
    try:
        s.sendto(forged, target)
        s.recv(70000)
        replies += 1
    except OSError:
        pass
print('found=%d replies=%d' % (len(found), replies))
"#;

#[test]
fn another_user_finds_no_task_socket_to_send_a_task_to() {
    let s = Server::new(Opts {
        tasks: 2,
        ..Opts::default()
    });
    let master = s.start();
    s.wait_role_up("task", 2, Duration::from_secs(10));
    let tree: Vec<i32> = s
        .procs()
        .into_iter()
        .map(|p| p.0)
        .filter(|p| *p > 0)
        .chain([master])
        .collect();
    let inodes: BTreeSet<u64> = tree.iter().flat_map(|p| socket_fds(*p)).collect();
    let list: Vec<String> = inodes.iter().map(u64::to_string).collect();
    let out = run_as_nobody(FORGE_TASK, &[&list.join(",")]);
    assert_eq!(
        out.trim(),
        "found=0 replies=0",
        "the forged task was answered"
    );
    let named = named_unix_sockets();
    for inode in &inodes {
        let name = named.iter().find(|(i, _)| i == inode);
        assert!(
            name.is_none(),
            "the server holds a unix socket with a name others can reach: {name:?}"
        );
    }
    assert_eq!(s.get("/task?data=x").0, 200);
    assert!(s.cmd(&["stop"]).status.success());
}

/// Requests pipelined on one keep-alive connection: the worker that reads them serves
/// them in one go.
fn pipeline(port: u16, paths: &[String]) -> TcpStream {
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut all = String::new();
    for p in paths {
        all.push_str(&format!("GET {p} HTTP/1.1\r\nHost: t\r\n\r\n"));
    }
    c.write_all(all.as_bytes()).unwrap();
    c
}

fn task_row(s: &Server) -> serde_json::Value {
    s.status()["processes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["role"] == "task")
        .cloned()
        .expect("a task worker row")
}

#[test]
fn a_worker_that_never_reads_its_results_cannot_stall_the_task_workers() {
    let s = Server::new(Opts {
        workers: 2,
        tasks: 1,
        ..Opts::default()
    });
    s.start();
    s.wait_role_up("worker", 2, Duration::from_secs(10));
    // One worker sends 20 tasks whose results are ~60 KB each, then sleeps 8 s in a
    // request without reading them: its reply channel fills after a few.
    let mut paths: Vec<String> = (0..20)
        .map(|_| "/task_async?data=big:60000".into())
        .collect();
    paths.push("/slow?ms=8000".into());
    let _sleeper = pipeline(s.port, &paths);
    wait_for(Duration::from_secs(5), || {
        s.procs()
            .into_iter()
            .any(|p| p.1 == "worker" && p.3 == "busy")
            .then_some(())
    })
    .expect("one worker sleeps in /slow, its 20 tasks queued before");
    // The other worker's task, queued behind those 20, is answered at once.
    let started = Instant::now();
    let (status, body) = s.get("/task?data=after");
    assert_eq!(
        (status, body.as_str()),
        (200, "after (task worker 2)"),
        "took {:?}",
        started.elapsed()
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "the task waited {:?} behind undeliverable results",
        started.elapsed()
    );
    // The results nobody could take were dropped and counted, not waited on.
    let dropped = task_row(&s)["replies_dropped"].as_i64().unwrap_or(0);
    assert!((1..=20).contains(&dropped), "{dropped}");
    let text = String::from_utf8_lossy(&s.cmd(&["status"]).stdout).into_owned();
    assert!(text.contains("task replies dropped:"), "{text}");
    assert!(s.cmd(&["stop", "--timeout", "1000"]).status.success());
}

/// A started server with one task worker, up.
fn with_one_task_worker() -> Server {
    let s = Server::new(Opts {
        tasks: 1,
        ..Opts::default()
    });
    s.start();
    s.wait_role_up("task", 1, Duration::from_secs(10));
    s
}

/// Waits until the only task worker is busy with a task and returns its pid.
fn busy_task_worker(s: &Server) -> i32 {
    wait_for(Duration::from_secs(5), || {
        s.procs()
            .into_iter()
            .find(|p| p.1 == "task" && p.3 == "busy")
            .map(|p| p.0)
    })
    .expect("the task worker picks the task up")
}

#[test]
fn a_task_sender_is_told_at_once_when_its_task_worker_dies() {
    let s = with_one_task_worker();
    let port = s.port;
    let asked = std::thread::spawn(move || {
        let r = http_get(port, "/task?data=sleep:4000");
        (r, Instant::now())
    });
    let task = busy_task_worker(&s);
    let killed = Instant::now();
    kill(task, libc::SIGKILL);
    let ((status, body), answered) = asked.join().unwrap();
    let after = answered.duration_since(killed);
    assert_eq!(status, 503, "{body}");
    assert!(
        body.contains("task worker 2 died with signal 9"),
        "{body:?} ({after:?} after the kill)"
    );
    assert!(
        after < Duration::from_millis(1500),
        "told {after:?} after the kill"
    );
    // The task worker is replaced and tasks run again.
    s.wait_role_up("task", 1, Duration::from_secs(10));
    assert_eq!(s.get("/task?data=y").0, 200);
    assert!(s.cmd(&["stop"]).status.success());
}

/// One request on an open keep-alive connection; (status, body).
fn ask(c: &mut TcpStream, path: &str) -> (u16, String) {
    c.write_all(format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes())
        .unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some((r, _)) = parse_response(&buf) {
            return (r.status, r.body);
        }
        let n = c.read(&mut chunk).unwrap();
        assert!(n > 0, "connection closed");
        buf.extend_from_slice(&chunk[..n]);
    }
}

#[test]
fn an_async_task_whose_task_worker_dies_reaches_on_task_error() {
    let s = with_one_task_worker();
    let mut c = TcpStream::connect(("127.0.0.1", s.port)).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let (st, id) = ask(&mut c, "/task_async?data=sleep:4000");
    assert_eq!(st, 200);
    let task = busy_task_worker(&s);
    let killed = Instant::now();
    kill(task, libc::SIGKILL);
    let outcome = wait_for(Duration::from_secs(3), || {
        let (st, body) = ask(&mut c, &format!("/finished?id={id}"));
        (st == 200).then_some(body)
    })
    .expect("the failure reaches the sending worker");
    assert!(
        outcome.starts_with("error: task worker 2 died with signal 9"),
        "{outcome:?}"
    );
    assert!(
        killed.elapsed() < Duration::from_millis(1500),
        "{:?}",
        killed.elapsed()
    );
    assert!(s.cmd(&["stop"]).status.success());
}

#[test]
fn an_idempotent_task_is_queued_once_more_when_its_task_worker_dies() {
    let s = with_one_task_worker();
    let port = s.port;
    let asked = std::thread::spawn(move || http_get(port, "/task?data=sleep:1000&retry=1"));
    let first = busy_task_worker(&s);
    kill(first, libc::SIGKILL);
    let (status, body) = asked.join().unwrap();
    assert_eq!(
        (status, body.as_str()),
        (200, "slept 1000 ms (task worker 2)"),
        "log:\n{}",
        s.log()
    );
    let now = s.pids_of("task");
    assert!(!now.contains(&first), "{now:?}");
    assert!(s.log().contains("queueing it once more"), "{}", s.log());
    assert!(s.cmd(&["stop"]).status.success());
}
