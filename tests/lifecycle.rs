//! The command as tarsnode and people use it: start, stop, restart, the pid file,
//! readiness and its failures, titles, status, tables, log reopening.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;
use support::*;

#[test]
fn start_serves_then_stop_removes_everything() {
    let s = Server::new(Opts::default());
    let pid = s.start();
    assert_eq!(
        std::fs::read_to_string(s.pid_file()).unwrap().trim(),
        pid.to_string()
    );
    assert_eq!(s.get("/"), (200, "hello".to_string()));
    assert_eq!(
        s.get("/monitor/monitor"),
        (200, r#"{"code":0}"#.to_string())
    );
    let tree = s.tree();
    assert_eq!(
        tree.len(),
        5,
        "master, manager, 2 workers, 1 task worker: {tree:?}"
    );
    let out = s.cmd(&["stop"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("stopped"));
    assert!(!s.pid_file().exists(), "the owner removes its pid file");
    wait_gone(&tree, Duration::from_secs(2));
    let log = s.log();
    assert!(
        !log.contains(" ERROR "),
        "no error lines in a clean run:\n{log}"
    );
}

#[test]
fn restart_brings_up_a_new_master() {
    let s = Server::new(Opts::default());
    let first = s.start();
    let out = s.cmd(&["restart"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let second = master_pid_in(&String::from_utf8_lossy(&out.stdout)).expect("new master pid");
    assert_ne!(first, second);
    assert!(!alive(first));
    assert_eq!(s.get("/").0, 200);
    s.stop();
}

#[test]
fn double_start_is_refused_with_exit_1() {
    let s = Server::new(Opts::default());
    let pid = s.start();
    let out = s.cmd(&["start"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("already running") && err.contains(&pid.to_string()),
        "{err}"
    );
    // The bare form (as tarsnode calls it) is start too.
    let out = s.cmd(&[]);
    assert_eq!(out.status.code(), Some(1));
    s.stop();
}

#[test]
fn stale_pid_file_is_reported_and_replaced() {
    let s = Server::new(Opts::default());
    std::fs::create_dir_all(s.pid_file().parent().unwrap()).unwrap();
    // Our own pid: a live process, but it holds no lock, so the file is stale.
    std::fs::write(s.pid_file(), format!("{}\n", std::process::id())).unwrap();
    let st = s.cmd(&["status"]);
    assert_eq!(st.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&st.stdout).contains("stale"));
    let pid = s.start();
    assert!(s.log().contains("stale pid file"), "{}", s.log());
    assert_eq!(
        std::fs::read_to_string(s.pid_file()).unwrap().trim(),
        pid.to_string()
    );
    s.stop();
}

#[test]
fn stop_when_not_running_says_so_and_exits_0() {
    let s = Server::new(Opts::default());
    let out = s.cmd(&["stop"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("not running"));
}

#[test]
fn daemon_start_fails_clearly_when_the_port_is_taken() {
    let s = Server::new(Opts::default());
    let _holder = std::net::TcpListener::bind(("127.0.0.1", s.port)).unwrap();
    let out = s.cmd(&["start"]);
    assert_ne!(out.status.code(), Some(0));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bind 127.0.0.1:") && err.contains("in use"),
        "{err}"
    );
    assert!(!s.pid_file().exists(), "a failed start leaves no pid file");
}

#[test]
fn bad_config_line_names_file_line_and_fix() {
    let s = Server::new(Opts {
        extra: vec!["worker_num=lots".into()],
        ..Opts::default()
    });
    let out = s.cmd(&["start"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    let text = std::fs::read_to_string(&s.config).unwrap();
    let line = text
        .lines()
        .position(|l| l.contains("worker_num=lots"))
        .unwrap()
        + 1;
    assert!(
        err.contains(&format!("{}:{line}", s.config.display())),
        "{err}"
    );
    assert!(err.contains("worker_num"), "{err}");
}

#[test]
fn unwritable_data_dir_fails_start() {
    let s = Server::new(Opts {
        extra: vec!["pid_file=/proc/tarsfork-cannot-write/x.pid".into()],
        ..Opts::default()
    });
    let out = s.cmd(&["start"]);
    assert_ne!(out.status.code(), Some(0));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("pid file"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn process_titles_are_exact() {
    let s = Server::new(Opts::default());
    let master = s.start();
    assert_eq!(cmdline(master), "TestApp.HelloServer: master process");
    let procs = s.procs();
    for (pid, role, _, _) in procs.iter().filter(|p| p.0 > 0) {
        let want = match role.as_str() {
            "master" => "master process",
            "manager" => "manager process",
            "worker" => "event worker process",
            _ => "task worker process",
        };
        assert_eq!(cmdline(*pid), format!("TestApp.HelloServer: {want}"));
    }
    s.stop();
}

#[test]
fn status_and_table_commands_read_shared_memory() {
    let s = Server::new(Opts::default());
    s.start();
    for _ in 0..5 {
        assert_eq!(s.get("/").0, 200);
    }
    let st = s.status();
    let total: i64 = st["processes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["role"] == "worker")
        .map(|p| p["requests"].as_i64().unwrap())
        .sum();
    assert_eq!(total, 5, "{st}");
    for p in st["processes"].as_array().unwrap() {
        for key in [
            "pid",
            "role",
            "id",
            "state",
            "requests",
            "uptime_ms",
            "heartbeat_age_ms",
            "request_age_ms",
            "tasks_pending",
        ] {
            assert!(p.get(key).is_some(), "{key} missing in {p}");
        }
    }
    let text = s.cmd(&["status"]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("worker") && text.contains("idle"), "{text}");
    let list = s.cmd(&["table", "list"]);
    let list = String::from_utf8_lossy(&list.stdout);
    assert!(
        list.contains("scoreboard") && list.contains("adapters"),
        "{list}"
    );
    let dump = s.cmd(&["table", "dump", "scoreboard", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&dump.stdout).expect("json dump");
    assert_eq!(v["rows"].as_array().unwrap().len(), 5, "{v}");
    let missing = s.cmd(&["table", "dump", "nope"]);
    assert_eq!(missing.status.code(), Some(1));
    s.stop();
}

#[test]
fn winch_reopens_the_log_file() {
    let s = Server::new(Opts::default());
    let pid = s.start();
    let moved = s.dir.path().join("rotated.log");
    std::fs::rename(s.log_file(), &moved).unwrap();
    kill(pid, libc::SIGWINCH);
    let reopened = wait_for(Duration::from_secs(5), || {
        s.log().contains("log file reopened").then_some(())
    });
    assert!(reopened.is_some(), "no new log file after WINCH");
    s.stop();
    assert!(
        s.log().contains("graceful stop requested"),
        "later lines go to the new file"
    );
}

#[test]
fn foreground_mode_runs_until_term() {
    let mut s = Server::new(Opts {
        daemonize: false,
        ..Opts::default()
    });
    s.start_foreground();
    assert_eq!(s.get("/").0, 200);
    let mut fg = s.foreground.take().unwrap();
    let status = fg
        .terminate(Duration::from_secs(5))
        .expect("exits after TERM");
    assert!(status.success());
    assert!(!s.pid_file().exists());
}

#[test]
fn graceful_stop_finishes_the_request_in_flight() {
    let s = Server::new(Opts::default());
    s.start();
    let port = s.port;
    let slow = std::thread::spawn(move || http_get(port, "/slow?ms=800"));
    std::thread::sleep(Duration::from_millis(200));
    let out = s.cmd(&["stop"]);
    assert!(out.status.success());
    assert_eq!(slow.join().unwrap(), (200, "slow".to_string()));
}

#[test]
fn stop_escalates_to_kill_after_its_timeout() {
    let s = Server::new(Opts {
        extra: vec!["max_wait_time=30".into()],
        ..Opts::default()
    });
    s.start();
    let tree = s.tree();
    let port = s.port;
    let _slow = std::thread::spawn(move || {
        let _ = std::panic::catch_unwind(|| http_get(port, "/slow?ms=20000"));
    });
    std::thread::sleep(Duration::from_millis(200));
    let t = std::time::Instant::now();
    let out = s.cmd(&["stop", "--timeout", "500"]);
    assert!(out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("killed"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(t.elapsed() < Duration::from_secs(5));
    wait_gone(&tree, Duration::from_secs(2));
}

#[test]
fn only_the_master_holds_the_pid_file_open() {
    let s = Server::new(Opts::default());
    let master = s.start();
    let pid_file = std::fs::canonicalize(s.pid_file()).unwrap();
    let holders: Vec<i32> = s
        .procs()
        .iter()
        .map(|p| p.0)
        .filter(|p| *p > 0)
        .filter(|p| {
            std::fs::read_dir(format!("/proc/{p}/fd"))
                .unwrap()
                .flatten()
                .any(|fd| std::fs::read_link(fd.path()).ok().as_deref() == Some(pid_file.as_path()))
        })
        .collect();
    assert_eq!(
        holders,
        vec![master],
        "children must close the lock's descriptor"
    );
    s.stop();
}

#[test]
fn the_masters_sockets_are_close_on_exec() {
    let s = Server::new(Opts::default());
    let master = s.start();
    let mut sockets = 0;
    for fd in std::fs::read_dir(format!("/proc/{master}/fd"))
        .unwrap()
        .flatten()
    {
        let target = std::fs::read_link(fd.path()).unwrap_or_default();
        if !target.to_string_lossy().starts_with("socket:") {
            continue;
        }
        sockets += 1;
        let name = fd.file_name().to_string_lossy().into_owned();
        let info = std::fs::read_to_string(format!("/proc/{master}/fdinfo/{name}")).unwrap();
        let flags = info
            .lines()
            .find_map(|l| l.strip_prefix("flags:"))
            .map(|v| u32::from_str_radix(v.trim(), 8).unwrap())
            .unwrap();
        assert_ne!(
            flags & libc::O_CLOEXEC as u32,
            0,
            "fd {name} ({target:?}) lacks O_CLOEXEC"
        );
    }
    assert!(
        sockets >= 2,
        "the listener and the task queue at least: {sockets}"
    );
    s.stop();
}
