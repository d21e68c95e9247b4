//! Run-time directories and pid files under attack (issue 11, items 2 and 3): a data dir
//! another user created first is refused; a pid file naming some other process earns it
//! no signal; a symlink at the pid path is refused, not followed; the shared-memory
//! directory is private and its name cannot be prepared for.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use support::*;

/// A server without `datapath`, whose per-user default lands in `tmp` (a shared,
/// sticky, world-writable directory like /tmp): TMPDIR points there, XDG_RUNTIME_DIR
/// is unset.
fn server_in_shared_tmp() -> (Server, PathBuf) {
    let mut s = Server::new(Opts {
        datapath: false,
        ..Opts::default()
    });
    open_up(s.dir.path());
    let tmp = s.dir.path().join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o1777)).unwrap();
    s.env = vec![
        ("TMPDIR", Some(tmp.display().to_string())),
        ("XDG_RUNTIME_DIR", None),
    ];
    let default_dir = tmp.join(format!("tarsfork-{}", unsafe_uid()));
    (s, default_dir)
}

fn unsafe_uid() -> u32 {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() }
}

const PLANT_LINKS: &str = r#"
import os, sys
d, victim, made = sys.argv[1], sys.argv[2], sys.argv[3]
os.mkdir(d, 0o777)
os.chmod(d, 0o777)
os.symlink(victim, os.path.join(d, 'TestApp.HelloServer.log'))
os.symlink(made, os.path.join(d, 'TestApp.HelloServer.pid'))
"#;

#[test]
fn a_data_dir_another_user_created_first_is_refused() {
    let (s, dir) = server_in_shared_tmp();
    let victim = s.dir.path().join("victim.txt");
    std::fs::write(&victim, "precious\n").unwrap();
    let made = s.dir.path().join("made-by-root");
    run_as_nobody(
        PLANT_LINKS,
        &[
            &dir.display().to_string(),
            &victim.display().to_string(),
            &made.display().to_string(),
        ],
    );
    let out = s.cmd(&["start"]);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!("refusing to use {}", dir.display()))
            && err.contains("owned by uid 65534"),
        "{err}"
    );
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");
    assert!(
        !made.exists(),
        "root created a file through the attacker's symlink"
    );
}

/// Holds an exclusive flock on the file at argv[1] (created with argv[2] as content)
/// until killed; prints `locked` once it holds it.
const HOLD_LOCK: &str = r#"
import fcntl, os, sys, time
path, content = sys.argv[1], sys.argv[2]
d = os.path.dirname(path)
if not os.path.isdir(d):
    os.mkdir(d, 0o755)
fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
os.write(fd, content.encode())
fcntl.flock(fd, fcntl.LOCK_EX)
print('locked', flush=True)
time.sleep(60)
"#;

/// Runs HOLD_LOCK (as nobody, or as ourselves) and waits until it holds the lock.
fn hold_lock(mut cmd: Command) -> Reaped {
    use std::io::BufRead;
    let mut child = Reaped(cmd.stdout(Stdio::piped()).spawn().expect("lock holder"));
    let out = child.0.stdout.take().unwrap();
    let mut line = String::new();
    std::io::BufReader::new(out).read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "locked");
    child
}

/// A process of ours that a forged pid file names; alive until dropped.
fn victim() -> Reaped {
    Reaped(Command::new("sleep").arg("60").spawn().unwrap())
}

fn assert_refused_and_victim_alive(s: &Server, victim: &mut Reaped) {
    for args in [&["reload"][..], &["stop", "--timeout", "300"]] {
        let out = s.cmd(args);
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_ne!(out.status.code(), Some(0), "{args:?}: {err}");
        assert!(err.contains("refusing"), "{args:?}: {err}");
        std::thread::sleep(Duration::from_millis(100));
        assert!(
            victim.0.try_wait().unwrap().is_none(),
            "{args:?} signalled the process the pid file names"
        );
    }
}

#[test]
fn a_forged_pid_file_in_another_users_data_dir_gets_no_signal() {
    let (s, dir) = server_in_shared_tmp();
    let mut victim = victim();
    let pid_file = dir.join("TestApp.HelloServer.pid");
    let _lock = hold_lock(as_nobody(
        HOLD_LOCK,
        &[
            &pid_file.display().to_string(),
            &format!("{}\n", victim.0.id()),
        ],
    ));
    assert_refused_and_victim_alive(&s, &mut victim);
}

#[test]
fn a_locked_pid_file_naming_another_process_gets_no_signal() {
    // In our own, verified data dir: a pid file that is locked and names a process of
    // ours that is not this server's master (a stale file whose pid was reused).
    let s = Server::new(Opts::default());
    let mut victim = victim();
    let mut cmd = Command::new("python3");
    cmd.arg("-c").arg(HOLD_LOCK).args([
        &s.pid_file().display().to_string(),
        &format!("{}\n", victim.0.id()),
    ]);
    let _lock = hold_lock(cmd);
    assert_refused_and_victim_alive(&s, &mut victim);
}

#[test]
fn a_dangling_symlink_at_the_pid_path_is_refused_not_followed() {
    let s = Server::new(Opts::default());
    let data = s.dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o700)).unwrap();
    let target = s.dir.path().join("elsewhere.pid");
    std::os::unix::fs::symlink(&target, s.pid_file()).unwrap();
    let out = s.cmd(&["start"]);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("symlink") && err.contains("pid"), "{err}");
    assert!(!target.exists(), "the symlink was followed");
}

/// The shared-memory directory a process has its scoreboard mapped from.
fn mapped_shm_dir(pid: i32) -> PathBuf {
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap();
    maps.lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .find(|p| p.ends_with("/scoreboard"))
        .map(|p| Path::new(p).parent().unwrap().to_path_buf())
        .expect("a scoreboard mapping")
}

/// Pre-creates, as another user, the shared-memory directories the next masters of
/// server `name` would use if their names were the uid, the server and the pid.
const PREPARE_SHM: &str = r#"
import os, sys
prefix, first, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
for pid in range(first, first + count):
    try:
        os.mkdir('/dev/shm/%s%d' % (prefix, pid), 0o777)
    except FileExistsError:
        pass
"#;

#[test]
fn the_shared_memory_dir_is_private_and_cannot_be_prepared() {
    let s = Server::new(Opts::default());
    // A server name of its own, so that no other test's master meets the prepared dirs.
    let text = std::fs::read_to_string(&s.config)
        .unwrap()
        .replace("HelloServer", "ShmProbe");
    std::fs::write(&s.config, text).unwrap();
    let prefix = format!("tarsfork.{}.TestApp.ShmProbe.", unsafe_uid());
    let last: i32 = std::fs::read_to_string("/proc/sys/kernel/ns_last_pid")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let count = 3000;
    run_as_nobody(
        PREPARE_SHM,
        &[&prefix, &(last + 1).to_string(), &count.to_string()],
    );
    let cleanup = |prefix: &str| {
        for e in std::fs::read_dir("/dev/shm").unwrap().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with(prefix) && e.metadata().is_ok_and(|m| m.uid() == NOBODY) {
                let _ = std::fs::remove_dir(e.path());
            }
        }
    };
    let out = s.cmd(&["start"]);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        cleanup(&prefix);
        panic!("start: {stdout}{}", String::from_utf8_lossy(&out.stderr));
    }
    let master = master_pid_in(&stdout).unwrap();
    let dir = mapped_shm_dir(master);
    let meta = std::fs::symlink_metadata(&dir).unwrap();
    let status = s.cmd(&["status"]);
    let stop = s.cmd(&["stop"]);
    cleanup(&prefix);
    assert!(meta.is_dir(), "{}", dir.display());
    assert_eq!(meta.uid(), unsafe_uid(), "{} is not ours", dir.display());
    assert_eq!(meta.mode() & 0o7777, 0o700, "{}", dir.display());
    let name = dir.file_name().unwrap().to_string_lossy().into_owned();
    let rest = name.strip_prefix(&prefix).unwrap();
    let (pid, random) = rest.split_once('.').expect("<pid>.<random>");
    assert_eq!(pid, master.to_string());
    assert_eq!(random.len(), 16, "{name}");
    assert!(status.status.success(), "{status:?}");
    assert!(stop.status.success());
    assert!(!dir.exists(), "removed at stop");
}
