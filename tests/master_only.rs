//! What only the master holds never reaches a child: the admin endpoint's listener and
//! its accepted connections stay out of every process the master forks, also of a
//! manager re-forked after the connection was accepted.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeSet;
use std::net::TcpStream;
use std::time::Duration;

use support::*;

/// Socket inodes of the TCP sockets whose local port is `port`: (listening, connected).
fn sockets_on(port: u16) -> (BTreeSet<u64>, BTreeSet<u64>) {
    let mut listening = BTreeSet::new();
    let mut connected = BTreeSet::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            let local_port = f[1]
                .rsplit_once(':')
                .map(|(_, p)| u16::from_str_radix(p, 16).unwrap());
            let inode: u64 = f[9].parse().unwrap();
            if local_port != Some(port) || inode == 0 {
                continue;
            }
            match f[3] {
                "0A" => listening.insert(inode),
                "01" => connected.insert(inode),
                _ => false,
            };
        }
    }
    (listening, connected)
}

/// Socket inodes among the open descriptors of `pid`.
fn socket_fds(pid: i32) -> BTreeSet<u64> {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return BTreeSet::new();
    };
    dir.flatten()
        .filter_map(|fd| std::fs::read_link(fd.path()).ok())
        .filter_map(|t| {
            let t = t.to_string_lossy().into_owned();
            t.strip_prefix("socket:[")?.strip_suffix(']')?.parse().ok()
        })
        .collect()
}

#[test]
fn no_child_holds_the_admin_endpoint_nor_its_connections() {
    let admin_port = free_port();
    let s = Server::new(Opts {
        extra: vec![format!("local=tcp -h 127.0.0.1 -p {admin_port} -t 10000")],
        ..Opts::default()
    });
    let master = s.start();
    // A connection the master accepts now, after the first manager was forked.
    let _client = TcpStream::connect(("127.0.0.1", admin_port)).unwrap();
    let admin = wait_for(Duration::from_secs(5), || {
        let (listening, connected) = sockets_on(admin_port);
        let mine = socket_fds(master);
        let accepted: BTreeSet<u64> = connected.intersection(&mine).copied().collect();
        (!listening.is_empty() && listening.is_subset(&mine) && !accepted.is_empty()).then(|| {
            listening
                .union(&accepted)
                .copied()
                .collect::<BTreeSet<u64>>()
        })
    })
    .expect("the master holds the admin listener and has accepted the connection");

    // Re-fork the manager: it and its workers are forked after the accept.
    let old_manager = s.pids_of("manager")[0];
    kill(old_manager, libc::SIGKILL);
    let new_manager = wait_for(Duration::from_secs(10), || {
        s.pids_of("manager").into_iter().find(|p| *p != old_manager)
    })
    .expect("the manager is re-forked");
    let children = wait_for(Duration::from_secs(10), || {
        let procs: Vec<_> = s.procs().into_iter().filter(|p| p.0 > 0).collect();
        let count = |role: &str| procs.iter().filter(|p| p.1 == role).count();
        let settled = procs
            .iter()
            .filter(|p| p.1 == "worker" || p.1 == "task")
            .all(|p| p.3 == "idle" || p.3 == "busy");
        (settled && count("worker") == 2 && count("task") == 1 && count("manager") == 1).then(
            || {
                procs
                    .iter()
                    .map(|p| p.0)
                    .filter(|p| *p != master)
                    .collect::<Vec<_>>()
            },
        )
    })
    .expect("the new tree is up");
    assert!(children.contains(&new_manager), "{children:?}");
    assert_eq!(children.len(), 4, "{children:?}");
    for pid in children {
        let leaked: Vec<u64> = socket_fds(pid).intersection(&admin).copied().collect();
        assert!(
            leaked.is_empty(),
            "pid {pid} ({}) holds the master's admin sockets {leaked:?}",
            cmdline(pid)
        );
    }
    assert!(s.cmd(&["stop"]).status.success());
}
