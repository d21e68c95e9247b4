//! Process identity that survives pid reuse: (pid, start time in clock ticks since boot,
//! field 22 of `/proc/<pid>/stat`), packed into one nonzero 64-bit lock token.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::mem::pid_exists;

/// Linux pids are below 2^22 (`pid_max` is at most 4 194 304).
const PID_BITS: u32 = 22;
const PID_MASK: u64 = (1 << PID_BITS) - 1;
/// Start times keep 41 bits (at 100 ticks/s that is 697 years of uptime).
const START_MASK: u64 = (1 << 41) - 1;

/// What `/proc/<pid>/stat` says about a process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ProcStat {
    /// Field 22: start time in clock ticks after boot.
    pub(crate) start: u64,
    /// Field 3 is Z (zombie) or X (dead): it will never run again.
    pub(crate) dead: bool,
}

/// Reads the state and start time of `pid`; None if it has no /proc entry (it is gone).
pub(crate) fn proc_stat(pid: u32) -> Option<ProcStat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&text)
}

/// Parses a `/proc/<pid>/stat` line. The command name (field 2) may hold spaces and
/// parentheses, so fields are counted after its last ')'.
pub(crate) fn parse_stat(text: &str) -> Option<ProcStat> {
    let rest = &text[text.rfind(')')? + 1..];
    let mut fields = rest.split_ascii_whitespace();
    let state = fields.next()?;
    // After the state (field 3), field 22 is the 19th more.
    let start = fields.nth(18)?.parse().ok()?;
    Some(ProcStat {
        start,
        dead: state == "Z" || state == "X",
    })
}

/// Packs pid and start time into a token (never 0, because pid > 0).
pub(crate) fn make_token(pid: u32, start: u64) -> u64 {
    ((start & START_MASK) << PID_BITS) | (u64::from(pid) & PID_MASK)
}

/// The pid inside a token.
pub(crate) fn token_pid(token: u64) -> u32 {
    (token & PID_MASK) as u32
}

/// The start time inside a token.
pub(crate) fn token_start(token: u64) -> u64 {
    (token >> PID_BITS) & START_MASK
}

/// Cache of this process's token; re-read when the pid changes (after fork).
static MY_TOKEN: AtomicU64 = AtomicU64::new(0);

/// This process's token. Costs one getpid() once cached.
pub(crate) fn my_token() -> u64 {
    let pid = std::process::id();
    let cached = MY_TOKEN.load(Ordering::Relaxed);
    if cached != 0 && token_pid(cached) == pid {
        return cached;
    }
    // If /proc is unreadable the start time is 0: pid reuse then goes undetected, but
    // liveness via kill(pid, 0) still works.
    let start = proc_stat(pid).map_or(0, |s| s.start);
    let token = make_token(pid, start);
    MY_TOKEN.store(token, Ordering::Relaxed);
    token
}

/// Whether the process a token names is still running (not exited, not a zombie, and
/// not a newer process that got the same pid).
pub(crate) fn token_alive(token: u64) -> bool {
    let pid = token_pid(token);
    if !pid_exists(pid) {
        return false;
    }
    match proc_stat(pid) {
        // Either the pid vanished between the two checks (dead), or there is no /proc at
        // all: then kill(pid, 0) is the only evidence we have, and it said alive.
        None => !std::path::Path::new("/proc/self/stat").exists(),
        Some(st) => !st.dead && (st.start & START_MASK) == token_start(token),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_odd_command_names() {
        let line =
            "1234 (a b) c)) S 1 1234 1234 0 -1 4194560 100 0 0 0 5 6 0 0 20 0 1 0 98765 1000 200";
        let st = parse_stat(line).unwrap();
        assert_eq!(st.start, 98765);
        assert!(!st.dead);
        let z = "77 (x) Z 1 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 42 0 0";
        assert_eq!(
            parse_stat(z).unwrap(),
            ProcStat {
                start: 42,
                dead: true
            }
        );
        assert_eq!(parse_stat("garbage"), None);
        assert_eq!(parse_stat("1 (x) S 1 2"), None);
    }

    #[test]
    fn own_token_is_alive_and_a_changed_start_is_not() {
        let me = my_token();
        assert_eq!(token_pid(me), std::process::id());
        assert!(token_alive(me));
        let reused = make_token(std::process::id(), token_start(me) + 1);
        assert!(!token_alive(reused));
    }
}
