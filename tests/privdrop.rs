//! `user=` / `group=`: the master keeps root to bind and open files; every child runs as
//! the configured user, with no supplementary groups, and still serves, runs tasks,
//! logs, reloads and stops. A start that would need root without having it is refused.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::time::Duration;

use support::*;

const NOBODY_IDS: &str = "65534 65534 65534 65534";

fn assert_children_are_nobody(s: &Server, master: i32) {
    let children: Vec<_> = s
        .procs()
        .into_iter()
        .filter(|p| p.0 > 0 && p.0 != master)
        .collect();
    assert_eq!(children.len(), 4, "{children:?}");
    for (pid, role, id, _) in children {
        let (uid, gid, groups) = ids_of(pid);
        assert_eq!(
            (uid.as_str(), gid.as_str(), groups.as_str()),
            (NOBODY_IDS, NOBODY_IDS, ""),
            "{role} {id} (pid {pid})"
        );
    }
}

#[test]
fn children_run_as_the_configured_user_with_no_groups() {
    if !is_root() {
        eprintln!("not root: only the refusal path is checked here (CI runs as root)");
        let s = Server::new(Opts {
            extra: vec!["user=nobody".into()],
            ..Opts::default()
        });
        let out = s.cmd(&["start"]);
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(err.contains("needs root"), "{err}");
        return;
    }
    let s = Server::new(Opts {
        workers: 2,
        tasks: 1,
        extra: vec!["user=nobody".into(), "group=65534".into()],
        ..Opts::default()
    });
    // The log directory sits in the test's temp dir: let nobody reach it.
    open_up(s.dir.path());
    let master = s.start();
    assert_eq!(ids_of(master).0, "0 0 0 0", "the master keeps root");
    assert_children_are_nobody(&s, master);
    assert_eq!(s.get("/"), (200, "hello".to_string()));
    assert_eq!(
        s.get("/task?data=x"),
        (200, "x (task worker 2)".to_string())
    );
    // What the children write is theirs: the log file, and lines from the manager.
    let log = s.log_file();
    assert_eq!(std::fs::metadata(&log).unwrap().uid(), NOBODY);
    let manager = s.pids_of("manager")[0];
    assert!(
        s.log().contains(&format!("pid {manager}]")),
        "no line from the manager:\n{}",
        s.log()
    );
    let old_workers = s.pids_of("worker");
    assert!(s.cmd(&["reload"]).status.success());
    wait_for(Duration::from_secs(10), || {
        let now = s.pids_of("worker");
        (now.len() == 2 && now.iter().all(|p| !old_workers.contains(p))).then_some(())
    })
    .expect("reload replaces the workers");
    s.wait_role_up("worker", 2, Duration::from_secs(10));
    assert_children_are_nobody(&s, master);
    let out = s.cmd(&["stop"]);
    assert!(out.status.success(), "{out:?}");
    assert!(!s.pid_file().exists());
    assert!(!s.log().contains(" ERROR "), "{}", s.log());
}

#[test]
fn switching_users_without_root_is_refused_clearly() {
    let s = Server::new(Opts {
        extra: vec!["user=root".into()],
        ..Opts::default()
    });
    let as_user = |args: &[&str]| {
        if is_root() {
            s.command()
                .args(args)
                .uid(NOBODY)
                .gid(NOBODY)
                .output()
                .unwrap()
        } else {
            s.cmd(args)
        }
    };
    if is_root() {
        // Run the command as nobody, in a directory nobody owns.
        open_up(s.dir.path());
        std::os::unix::fs::chown(s.dir.path(), Some(NOBODY), Some(NOBODY)).unwrap();
    }
    let out = as_user(&["start"]);
    if out.status.success() {
        // Started after all: take it down before failing (as the user who started it).
        as_user(&["stop", "--timeout", "500"]);
    }
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("user=root") && err.contains("needs root"),
        "{err}"
    );
    assert!(!s.pid_file().exists());
}
