//! What only the master holds never reaches a child: the admin endpoint's listener and
//! its accepted connections stay out of every process the master forks, also of a
//! manager re-forked after the connection was accepted. More generally (issue 11, item
//! 8), each child holds exactly the descriptors of its kind, and nothing a launcher
//! leaked to the master.

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

/// What one open descriptor of a process is.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Fd {
    /// A TCP socket: its inode and whether it listens on `port`.
    Tcp { inode: u64, listener_on_port: bool },
    /// A unix socket.
    Unix(u64),
    /// A pipe, and whether this end is write-only.
    Pipe { inode: u64, write: bool },
    /// An epoll instance (mio's poll).
    Epoll,
    /// Anything else: a file, a directory, another kind of anonymous inode.
    Other(String),
}

/// The descriptors of `pid` above the standard streams, classified.
fn fds_of(pid: i32, port: u16) -> Vec<(i32, Fd)> {
    let (listening, _) = sockets_on(port);
    let tcp_inodes: BTreeSet<u64> = ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .flat_map(|t| {
            std::fs::read_to_string(t)
                .unwrap_or_default()
                .lines()
                .skip(1)
                .map(String::from)
                .collect::<Vec<_>>()
        })
        .filter_map(|l| l.split_whitespace().nth(9)?.parse().ok())
        .collect();
    let mut out = Vec::new();
    for e in std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .flatten()
    {
        let fd: i32 = e.file_name().to_string_lossy().parse().unwrap();
        if fd <= 2 {
            continue;
        }
        let Ok(target) = std::fs::read_link(e.path()) else {
            continue;
        };
        let t = target.to_string_lossy().into_owned();
        let inode = |prefix: &str| -> Option<u64> {
            t.strip_prefix(prefix)?.strip_suffix(']')?.parse().ok()
        };
        let kind = if let Some(i) = inode("socket:[") {
            if tcp_inodes.contains(&i) {
                Fd::Tcp {
                    inode: i,
                    listener_on_port: listening.contains(&i),
                }
            } else {
                Fd::Unix(i)
            }
        } else if let Some(i) = inode("pipe:[") {
            let info =
                std::fs::read_to_string(format!("/proc/{pid}/fdinfo/{fd}")).unwrap_or_default();
            let flags = info
                .lines()
                .find_map(|l| l.strip_prefix("flags:"))
                .and_then(|f| u32::from_str_radix(f.trim(), 8).ok())
                .unwrap_or(0);
            Fd::Pipe {
                inode: i,
                write: flags & 3 == 1,
            }
        } else if t == "anon_inode:[eventpoll]" {
            Fd::Epoll
        } else {
            Fd::Other(t)
        };
        out.push((fd, kind));
    }
    out
}

#[test]
fn every_child_holds_only_the_descriptors_of_its_kind() {
    use std::os::unix::process::CommandExt;
    let s = Server::new(Opts {
        workers: 2,
        tasks: 1,
        ..Opts::default()
    });
    // The launcher leaks a descriptor (fd 9, not close-on-exec) to the server, as a
    // careless shell or supervisor may.
    let leak = s.dir.path().join("leaked-by-the-launcher");
    let file = std::fs::File::create(&leak).unwrap();
    let raw = std::os::fd::AsRawFd::as_raw_fd(&file);
    let mut cmd = s.command();
    cmd.arg("start").stdout(std::process::Stdio::piped());
    // SAFETY: dup2 is async-signal-safe; it runs in the forked child before exec.
    unsafe {
        cmd.pre_exec(move || {
            if libc::dup2(raw, 9) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let master = master_pid_in(&String::from_utf8_lossy(&out.stdout)).unwrap();
    s.remember_tree();
    s.wait_role_up("worker", 2, Duration::from_secs(10));
    s.wait_role_up("task", 1, Duration::from_secs(10));
    let master_fds = fds_of(master, s.port);
    let in_master = |f: &Fd| {
        master_fds.iter().any(|(_, m)| match (m, f) {
            (Fd::Tcp { inode: a, .. }, Fd::Tcp { inode: b, .. }) => a == b,
            (Fd::Unix(a), Fd::Unix(b)) => a == b,
            (Fd::Pipe { inode: a, .. }, Fd::Pipe { inode: b, .. }) => a == b,
            _ => false,
        })
    };
    let inodes = |fds: &[(i32, Fd)], pick: &dyn Fn(&Fd) -> Option<u64>| -> BTreeSet<u64> {
        fds.iter().filter_map(|(_, f)| pick(f)).collect()
    };
    let mut shared_unix_by_role: Vec<(String, BTreeSet<u64>)> = Vec::new();
    let procs: Vec<_> = s
        .procs()
        .into_iter()
        .filter(|p| p.0 > 0 && p.0 != master)
        .collect();
    assert_eq!(procs.len(), 4, "{procs:?}");
    let workers = procs.iter().filter(|p| p.1 == "worker").count();
    for (pid, role, id, _) in &procs {
        let fds = fds_of(*pid, s.port);
        let what = format!("{role} {id} (pid {pid}): {fds:?}");
        for (fd, f) in &fds {
            match f {
                Fd::Other(t) => panic!("fd {fd} -> {t} must not be open in {what}"),
                Fd::Epoll => assert_eq!(role, "worker", "{what}"),
                Fd::Tcp {
                    listener_on_port, ..
                } => {
                    assert!(*listener_on_port && role != "task", "fd {fd}: {what}")
                }
                _ => {}
            }
        }
        // Pipes: the master's life pipe (read end) and the process's own wake pipe.
        let pipes = inodes(&fds, &|f| match f {
            Fd::Pipe { inode, .. } => Some(*inode),
            _ => None,
        });
        let life: Vec<_> = fds
            .iter()
            .filter(|(_, f)| matches!(f, Fd::Pipe { .. }) && in_master(f))
            .collect();
        assert_eq!(pipes.len(), 2, "{what}");
        assert_eq!(
            life.len(),
            1,
            "one end of one pipe shared with the master: {what}"
        );
        assert!(matches!(life[0].1, Fd::Pipe { write: false, .. }), "{what}");
        // Unix sockets: the task queue ends it needs (shared with the master) and its
        // own channels (reply channel of a worker; the manager's ends of them).
        let shared_unix = inodes(&fds, &|f| match f {
            Fd::Unix(i) if in_master(f) => Some(*i),
            _ => None,
        });
        let own_unix = inodes(&fds, &|f| match f {
            Fd::Unix(i) if !in_master(f) => Some(*i),
            _ => None,
        });
        let (want_shared, want_own) = match role.as_str() {
            "manager" => (2, workers),
            "worker" => (1, 2),
            "task" => (1, 0),
            other => panic!("unexpected role {other}"),
        };
        assert_eq!(shared_unix.len(), want_shared, "task queue ends: {what}");
        assert_eq!(own_unix.len(), want_own, "own channels: {what}");
        shared_unix_by_role.push((role.clone(), shared_unix));
    }
    let end = |role: &str| {
        shared_unix_by_role
            .iter()
            .find(|(r, _)| r == role)
            .map(|(_, s)| s.clone())
            .unwrap()
    };
    assert_ne!(
        end("worker"),
        end("task"),
        "workers send on one end, task workers take from the other"
    );
    assert!(s.cmd(&["stop"]).status.success());
}
