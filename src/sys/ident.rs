//! Process identity. A pid names a process only until the process is reaped and the
//! number is handed out again; the pid together with the process's start time (field
//! 22 of `/proc/<pid>/stat`, clock ticks since boot) names one process for good.
//!
//! This is the one reader of `/proc/<pid>/stat` in the crate: the scoreboard records a
//! [`ProcessId`] per process, and every check of whether a recorded process still runs
//! (the stale shared memory of a dead master, the statistics' dead writers, the KILL of
//! a tree by `stop` or by the master) goes through it, so a reused pid is never taken
//! for the process that had it before.

use std::io;

/// The fields of `/proc/<pid>/stat` the crate uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcStat {
    /// state letter (R, S, D, Z, T, ...)
    pub state: char,
    /// parent pid
    pub ppid: u32,
    /// user-mode CPU time in clock ticks
    pub utime: u64,
    /// kernel-mode CPU time in clock ticks
    pub stime: u64,
    /// start time in clock ticks since boot (with the pid it names one process)
    pub start_time: u64,
}

/// Largest stat file read: a real one is a few hundred bytes; the bound keeps an odd
/// mount from making us read without limit.
const MAX_STAT_FILE: u64 = 64 * 1024;

/// Parses the text of a `/proc/<pid>/stat` file; None for anything malformed.
pub fn parse_stat(text: &str) -> Option<ProcStat> {
    // The command name (field 2) may hold spaces and parentheses: fields resume after
    // its last ')'.
    let rest = text.get(text.rfind(')')? + 1..)?;
    let fields: Vec<&str> = rest.split_whitespace().take(20).collect();
    // After the name: state is field 3, ppid 4, utime 14, stime 15, starttime 22.
    let field = |n: usize| fields.get(n - 3).copied();
    let mut state_chars = field(3)?.chars();
    let state = state_chars.next()?;
    if state_chars.next().is_some() {
        return None;
    }
    Some(ProcStat {
        state,
        ppid: field(4)?.parse().ok()?,
        utime: field(14)?.parse().ok()?,
        stime: field(15)?.parse().ok()?,
        start_time: field(22)?.parse().ok()?,
    })
}

/// Reads `/proc/<pid>/stat`; None if the process is gone or the file is unparsable.
pub fn read_stat(pid: u32) -> Option<ProcStat> {
    use std::io::Read;
    if pid == 0 {
        return None;
    }
    let file = std::fs::File::open(format!("/proc/{pid}/stat")).ok()?;
    let mut text = String::new();
    file.take(MAX_STAT_FILE).read_to_string(&mut text).ok()?;
    parse_stat(&text)
}

/// The effective uid a process runs as (the `Uid:` line of `/proc/<pid>/status`);
/// None if the process is gone.
pub fn uid_of(pid: i32) -> Option<u32> {
    use std::io::Read;
    let pid = u32::try_from(pid).ok().filter(|p| *p > 0)?;
    let file = std::fs::File::open(format!("/proc/{pid}/status")).ok()?;
    let mut text = String::new();
    file.take(MAX_STAT_FILE).read_to_string(&mut text).ok()?;
    let line = text.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(2)?.parse().ok()
}

/// What `ps` shows as a process's command line (its title, for our processes):
/// `/proc/<pid>/cmdline` with its NULs as spaces and trailing NULs dropped.
pub fn cmdline_of(pid: i32) -> Option<String> {
    use std::io::Read;
    let pid = u32::try_from(pid).ok().filter(|p| *p > 0)?;
    let file = std::fs::File::open(format!("/proc/{pid}/cmdline")).ok()?;
    let mut raw = Vec::new();
    file.take(MAX_STAT_FILE).read_to_end(&mut raw).ok()?;
    let text = String::from_utf8_lossy(&raw);
    Some(text.trim_end_matches('\0').replace('\0', " "))
}

/// One process: its pid and its start time (0 when /proc could not be read).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcessId {
    /// The pid.
    pub pid: i32,
    /// Start time in clock ticks since boot; 0 means unknown.
    pub start: u64,
}

impl ProcessId {
    /// The process that has `pid` now; None if there is none (or /proc has no entry).
    pub fn of(pid: i32) -> Option<ProcessId> {
        let stat = read_stat(u32::try_from(pid).ok()?)?;
        Some(ProcessId {
            pid,
            start: stat.start_time,
        })
    }

    /// The calling process (start time 0 if /proc cannot be read).
    pub fn current() -> ProcessId {
        let pid = super::getpid();
        ProcessId::of(pid).unwrap_or(ProcessId { pid, start: 0 })
    }

    /// Whether this process still runs: false once it has exited (a zombie counts as
    /// exited) or its pid went to another process. An unknown start time (0) matches
    /// any process with the pid; when /proc cannot be read but the pid exists, the
    /// process is taken as alive.
    pub fn is_alive(&self) -> bool {
        if !super::process_exists(self.pid) {
            return false;
        }
        match u32::try_from(self.pid).ok().and_then(read_stat) {
            Some(stat) => stat.state != 'Z' && (self.start == 0 || stat.start_time == self.start),
            None => true,
        }
    }

    /// Whether the process that has the pid now is this one (a zombie still counts: its
    /// pid is not free yet). Strict: an unknown start time never matches, so a signal
    /// sent on the strength of it cannot hit a stranger.
    pub fn is_current(&self) -> bool {
        self.start != 0 && ProcessId::of(self.pid).is_some_and(|now| now.start == self.start)
    }

    /// Sends `sig` if the pid still names this process. `Ok(false)`: it did not (gone,
    /// or the pid now belongs to another process), so nothing was sent.
    pub fn signal(&self, sig: i32) -> io::Result<bool> {
        if !self.is_current() {
            return Ok(false);
        }
        super::send_signal(self.pid, sig).map(|()| true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_process_is_alive_and_current_and_a_changed_start_is_not() {
        let me = ProcessId::current();
        assert_eq!(me.pid, std::process::id() as i32);
        assert!(me.start > 0);
        assert!(me.is_alive() && me.is_current());
        let reused = ProcessId {
            start: me.start + 1,
            ..me
        };
        assert!(!reused.is_alive() && !reused.is_current());
        assert_eq!(reused.signal(0).ok(), Some(false));
        assert_eq!(me.signal(0).ok(), Some(true));
        let unknown = ProcessId { start: 0, ..me };
        assert!(
            unknown.is_alive(),
            "an unknown start matches any process with the pid"
        );
        assert!(!unknown.is_current(), "but never earns a signal");
    }

    #[test]
    fn a_reaped_child_is_neither_alive_nor_current() {
        let mut child = match std::process::Command::new("true").spawn() {
            Ok(c) => c,
            Err(e) => panic!("spawn true: {e}"),
        };
        let pid = child.id() as i32;
        let id = ProcessId::of(pid);
        let _ = child.wait();
        if let Some(id) = id {
            assert!(!id.is_alive(), "{id:?}");
            assert!(!id.is_current(), "{id:?}");
        }
        assert!(!ProcessId {
            pid: i32::MAX,
            start: 0
        }
        .is_alive());
        assert_eq!(ProcessId::of(0), None);
        assert_eq!(ProcessId::of(-1), None);
    }

    #[test]
    fn stat_lines_parse_and_hostile_ones_do_not() {
        for text in [
            "",
            ")",
            "1 (x) R",
            "1 (a b) R 1 2 3 4 5 6 7 8 9 10 x 12 13 14 15 16 17 18 19 20",
            "1 (x) RR 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20",
            "\u{0}\u{ffff})))",
        ] {
            assert_eq!(parse_stat(text), None, "{text:?}");
        }
        let ok = "7 (we) ird) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20";
        let s = parse_stat(ok).expect("parses");
        assert_eq!(
            (s.state, s.ppid, s.utime, s.stime, s.start_time),
            ('S', 1, 11, 12, 19)
        );
        assert_eq!(read_stat(0), None);
    }

    #[test]
    fn own_uid_and_command_line_are_read_from_proc() {
        let me = std::process::id() as i32;
        assert_eq!(uid_of(me), Some(super::super::fs::geteuid()));
        let cmd = cmdline_of(me).expect("cmdline");
        assert!(!cmd.is_empty() && !cmd.ends_with('\0'), "{cmd:?}");
        assert_eq!(uid_of(0), None);
        assert_eq!(cmdline_of(-1), None);
    }
}
