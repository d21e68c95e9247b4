//! Log files of a daemonized server: size rotation shared by every process (whole lines,
//! at most `lognum` rotated files, each at least `logsize`), processes that follow a
//! rotation, and no line lost.
//!
//! Needs `log::configure(&settings)` in the master before it forks (src/master.rs,
//! `start_and_supervise`, right after `log::set_role("master")`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

/// Named `log` so that `cargo test --test logging --lib log::` runs these too.
mod log {
    use super::support::*;
    use std::collections::{BTreeSet, HashMap};
    use std::os::unix::fs::MetadataExt;
    use std::path::{Path, PathBuf};
    use std::time::{Duration, Instant};

    const LOGSIZE: u64 = 2048;
    const LOGNUM: usize = 3;

    /// One parsed line: `YYYY-MM-DD HH:MM:SS.mmm LEVEL [role pid N] msg`.
    #[derive(Debug)]
    struct Line {
        level: String,
        role: String,
        pid: i32,
        msg: String,
    }

    fn parse_line(l: &str) -> Option<Line> {
        let b = l.as_bytes();
        if b.len() < 24 {
            return None;
        }
        // The timestamp's shape, digit by digit.
        let shape = "dddd-dd-dd dd:dd:dd.ddd ";
        for (c, s) in b.iter().zip(shape.bytes()) {
            let ok = if s == b'd' {
                c.is_ascii_digit()
            } else {
                *c == s
            };
            if !ok {
                return None;
            }
        }
        let rest = &l[24..];
        let level = rest.get(..5)?.trim_end().to_string();
        if !["DEBUG", "INFO", "WARN", "ERROR"].contains(&level.as_str()) {
            return None;
        }
        let rest = rest.get(5..)?.strip_prefix(" [")?;
        let close = rest.find("] ")?;
        let (role, pid) = rest[..close].rsplit_once(" pid ")?;
        if role.is_empty() {
            return None;
        }
        Some(Line {
            level,
            role: role.to_string(),
            pid: pid.parse().ok()?,
            msg: rest[close + 2..].to_string(),
        })
    }

    /// `….log` with `.n` appended (0: the current file).
    fn generation(s: &Server, n: usize) -> PathBuf {
        let base = s.log_file();
        if n == 0 {
            return base;
        }
        let mut p = base.into_os_string();
        p.push(format!(".{n}"));
        PathBuf::from(p)
    }

    fn inode(p: &Path) -> Option<u64> {
        std::fs::metadata(p).ok().map(|m| m.ino())
    }

    /// Every log file present, current first: (generation, inode, parsed lines). Panics on
    /// a line that does not parse (a torn or interleaved line).
    fn read_all(s: &Server) -> Vec<(usize, u64, Vec<Line>)> {
        let mut out = Vec::new();
        for n in 0..=LOGNUM + 1 {
            let p = generation(s, n);
            let Ok(text) = std::fs::read_to_string(&p) else {
                continue;
            };
            let Some(ino) = inode(&p) else { continue };
            let lines = text
                .lines()
                .map(|l| {
                    parse_line(l)
                        .unwrap_or_else(|| panic!("malformed line in {}: {l:?}", p.display()))
                })
                .collect();
            out.push((n, ino, lines));
        }
        out
    }

    fn log_dir_listing(s: &Server) -> Vec<String> {
        let dir = s.log_file().parent().unwrap().to_path_buf();
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    /// Pids named by the manager's `retiring event worker N (pid P)` lines.
    fn retired_worker_pids(lines: &[Line]) -> Vec<i32> {
        lines
            .iter()
            .filter_map(|l| {
                let rest = l.msg.strip_prefix("retiring event worker ")?;
                let i = rest.find("(pid ")?;
                rest[i + 5..].trim_end_matches(')').parse().ok()
            })
            .collect()
    }

    fn drained_pids(files: &[(usize, u64, Vec<Line>)]) -> BTreeSet<i32> {
        files
            .iter()
            .flat_map(|f| f.2.iter())
            .filter(|l| l.msg.starts_with("draining ("))
            .map(|l| l.pid)
            .collect()
    }

    #[test]
    fn rotation_under_a_multi_process_load_keeps_whole_lines_and_follows_everywhere() {
        let s = Server::new(Opts {
            workers: 3,
            tasks: 1,
            extra: vec![format!("logsize={LOGSIZE}"), format!("lognum={LOGNUM}")],
            ..Opts::default()
        });
        let master = s.start();
        s.wait_role_up("worker", 3, Duration::from_secs(20));
        let limit = Instant::now() + Duration::from_secs(60);

        // Phase 1: rolling reloads make the manager and every event worker log (DEBUG):
        // several processes append at once. Go on until the oldest rotated file has been
        // dropped at least once (a `.LOGNUM` file, then three more reloads).
        let mut extra = 0;
        let mut reloads = 0;
        while extra < 3 {
            assert!(
                Instant::now() < limit,
                "no {LOGNUM} rotations after {reloads} reloads"
            );
            kill(master, libc::SIGUSR1);
            reloads += 1;
            std::thread::sleep(Duration::from_millis(400));
            if generation(&s, LOGNUM).exists() {
                extra += 1;
            }
        }
        s.wait_role_up("worker", 3, Duration::from_secs(20));
        // No line lost: each retirement the manager logged in the two newest files is
        // matched by the retired worker's own `draining` line somewhere on disk.
        let settled = wait_for(Duration::from_secs(10), || {
            let files = read_all(&s);
            let retired: Vec<i32> = files
                .iter()
                .filter(|f| f.0 <= 1)
                .flat_map(|f| retired_worker_pids(&f.2))
                .collect();
            let drained = drained_pids(&files);
            let missing: Vec<i32> = retired
                .iter()
                .copied()
                .filter(|p| !drained.contains(p))
                .collect();
            (missing.is_empty() && !retired.is_empty()).then_some(files)
        });
        let files = settled.unwrap_or_else(|| {
            panic!(
                "some retired worker's `draining` line never reached a log file; files:\n{:#?}",
                read_all(&s)
            )
        });
        // Several processes wrote into files that began with a rotation.
        let multi = files
            .iter()
            .filter(|f| f.0 >= 1 && f.2.iter().map(|l| l.pid).collect::<BTreeSet<_>>().len() >= 2)
            .count();
        assert!(
            multi >= 2,
            "rotated files with lines of several pids: {multi}"
        );

        // Phase 2: a worker forked before a rotation and silent since must write into the
        // new file, not the renamed one. Task-worker reloads make only the manager (and
        // task workers) log until the current file rotates under the event workers.
        let workers: BTreeSet<i32> = s.pids_of("worker").into_iter().collect();
        let first = inode(&s.log_file()).unwrap();
        let mut task_reloads = 0;
        while inode(&s.log_file()) == Some(first) {
            assert!(
                Instant::now() < limit,
                "no rotation after {task_reloads} task reloads"
            );
            kill(master, libc::SIGUSR2);
            task_reloads += 1;
            std::thread::sleep(Duration::from_millis(200));
        }
        // The documented bound: a process follows within one check interval.
        std::thread::sleep(Duration::from_millis(1200));
        let old_inodes: BTreeSet<u64> = (1..=LOGNUM)
            .filter_map(|n| inode(&generation(&s, n)))
            .collect();
        kill(master, libc::SIGTTOU);
        let (ino, pid) = wait_for(Duration::from_secs(10), || {
            read_all(&s).into_iter().find_map(|(_, ino, lines)| {
                lines
                    .iter()
                    .find(|l| l.msg.starts_with("draining (") && workers.contains(&l.pid))
                    .map(|l| (ino, l.pid))
            })
        })
        .expect("the worker retired by TTOU logged `draining`");
        assert!(
            !old_inodes.contains(&ino),
            "worker {pid} wrote into a file rotated before it logged"
        );

        // Whole picture: lognum rotated files at most, each at least logsize, whole lines,
        // the manager in every file (it continued through every rotation), no errors.
        let names = log_dir_listing(&s);
        let base = "TestApp.HelloServer.log";
        for n in &names {
            let ok = n == base
                || n == &format!("{base}.lock")
                || (1..=LOGNUM).any(|i| n == &format!("{base}.{i}"));
            assert!(ok, "unexpected file {n} in the log dir: {names:?}");
        }
        let files = read_all(&s);
        assert_eq!(
            files.len(),
            LOGNUM + 1,
            "current + {LOGNUM} rotated: {names:?}"
        );
        let mut manager_pids = BTreeSet::new();
        for (n, _, lines) in &files {
            if *n >= 1 {
                let len = std::fs::metadata(generation(&s, *n)).unwrap().len();
                assert!(len >= LOGSIZE, "{base}.{n} holds {len} < {LOGSIZE} bytes");
            }
            let errors: Vec<&Line> = lines.iter().filter(|l| l.level == "ERROR").collect();
            assert!(
                errors.is_empty(),
                "error lines in generation {n}: {errors:?}"
            );
            let by_role: HashMap<&str, i32> =
                lines.iter().map(|l| (l.role.as_str(), l.pid)).collect();
            let m = by_role.get("manager").copied();
            assert!(m.is_some(), "the manager wrote into generation {n}");
            manager_pids.extend(m);
        }
        assert_eq!(
            manager_pids.len(),
            1,
            "one manager throughout: {manager_pids:?}"
        );
        s.stop();
    }

    #[test]
    fn without_rotation_due_nothing_is_rotated_and_lines_are_whole() {
        // Default logsize (50M): reloads must not rotate, and a WINCH reopen keeps one file.
        let s = Server::new(Opts::default());
        let master = s.start();
        for _ in 0..3 {
            kill(master, libc::SIGUSR1);
            std::thread::sleep(Duration::from_millis(300));
        }
        kill(master, libc::SIGWINCH);
        let files = wait_for(Duration::from_secs(10), || {
            let f = read_all(&s);
            f[0].2
                .iter()
                .any(|l| l.msg == "log file reopened")
                .then_some(f)
        })
        .expect("WINCH reopened the log");
        assert_eq!(files.len(), 1, "no rotated file: {:?}", log_dir_listing(&s));
        let pids: BTreeSet<i32> = files[0].2.iter().map(|l| l.pid).collect();
        assert!(
            pids.len() >= 3,
            "master, manager and workers logged: {pids:?}"
        );
        s.stop();
    }

    /// Lines whose message starts with `prefix`, from any log file.
    fn count_lines(s: &Server, prefix: &str) -> usize {
        read_all(s)
            .iter()
            .flat_map(|f| f.2.iter())
            .filter(|l| l.msg.starts_with(prefix))
            .count()
    }

    #[test]
    fn setloglevel_reaches_event_workers_forked_before_it() {
        let s = Server::new(Opts {
            workers: 3,
            extra: vec!["logLevel=INFO".into()],
            ..Opts::default().with_admin()
        });
        let master = s.start();
        s.wait_role_up("worker", 3, Duration::from_secs(20));
        // A TTOU'd worker logs `draining` at INFO; at ERROR neither it nor the manager's
        // `retiring` line may appear, though both processes existed before the change.
        let answer = s.admin().notify("tars.setloglevel ERROR").unwrap();
        assert!(answer.contains("ERROR"), "{answer}");
        kill(master, libc::SIGTTOU);
        s.wait_role_up("worker", 2, Duration::from_secs(20));
        std::thread::sleep(Duration::from_millis(200));
        assert_eq!(count_lines(&s, "draining ("), 0, "{}", s.log());
        assert_eq!(count_lines(&s, "retiring event worker"), 0, "{}", s.log());
        // Back to INFO: the next retirement is logged by both processes.
        s.admin().notify("tars.setloglevel INFO").unwrap();
        kill(master, libc::SIGTTOU);
        let logged = wait_for(Duration::from_secs(10), || {
            (count_lines(&s, "draining (") == 1 && count_lines(&s, "retiring event worker") == 1)
                .then_some(())
        });
        assert!(
            logged.is_some(),
            "INFO lines back after setloglevel INFO:\n{}",
            s.log()
        );
        // NONE silences everything, ERROR included.
        s.admin().notify("tars.setloglevel NONE").unwrap();
        let before = s.log().len();
        kill(master, libc::SIGTTIN);
        s.wait_role_up("worker", 2, Duration::from_secs(20));
        kill(master, libc::SIGUSR1);
        std::thread::sleep(Duration::from_millis(800));
        assert_eq!(
            s.log().len(),
            before,
            "nothing logged at NONE:\n{}",
            s.log()
        );
        s.stop();
    }

    #[test]
    fn a_log_moved_away_is_followed_within_the_check_interval_without_winch() {
        let s = Server::new(Opts::default());
        let master = s.start();
        s.wait_role_up("worker", 2, Duration::from_secs(20));
        let workers: BTreeSet<i32> = s.pids_of("worker").into_iter().collect();
        // What logrotate does without a postrotate signal: move the file away.
        let moved = generation(&s, 9);
        std::fs::rename(s.log_file(), &moved).unwrap();
        let moved_len = std::fs::metadata(&moved).unwrap().len();
        // The documented bound: every process looks again within one check interval.
        std::thread::sleep(Duration::from_millis(1200));
        kill(master, libc::SIGUSR1);
        let drained = wait_for(Duration::from_secs(10), || {
            let text = std::fs::read_to_string(s.log_file()).ok()?;
            let pids: BTreeSet<i32> = text
                .lines()
                .map(|l| parse_line(l).unwrap_or_else(|| panic!("malformed line {l:?}")))
                .filter(|l| l.msg.starts_with("draining ("))
                .map(|l| l.pid)
                .collect();
            (pids == workers && text.contains("rolling reload")).then_some(())
        });
        assert!(
            drained.is_some(),
            "manager and both old workers wrote into the new file:\n{}",
            s.log()
        );
        assert_eq!(
            std::fs::metadata(&moved).unwrap().len(),
            moved_len,
            "nothing was written into the moved file"
        );
        s.stop();
    }
}
