//! The signal table. Each signal names its meaning once; handlers only record that it
//! arrived (an atomic flag and one byte down a wake-up pipe) and every process loop
//! dispatches from [`take`].

use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};

use crate::sys;

/// What a signal asks of the process that receives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Stop accepting, finish in-flight work, exit (TERM, QUIT).
    Stop,
    /// Exit now (INT).
    FastStop,
    /// Rolling reload of workers and task workers (USR1, HUP).
    Reload,
    /// Reload task workers only (USR2).
    ReloadTasks,
    /// One worker more (TTIN).
    AddWorker,
    /// One worker fewer, never below one (TTOU).
    RemoveWorker,
    /// Reopen log files (WINCH).
    ReopenLogs,
    /// A child exited: reap it (CHLD).
    ChildExited,
}

/// The table: signal, meaning, and the words `README.md` uses for it.
pub const TABLE: &[(i32, Action, &str)] = &[
    (
        libc::SIGTERM,
        Action::Stop,
        "graceful stop: stop accepting, finish in-flight requests, wait up to max_wait_time, then KILL",
    ),
    (libc::SIGQUIT, Action::Stop, "same as TERM"),
    (libc::SIGINT, Action::FastStop, "fast stop: children are told to exit at once"),
    (
        libc::SIGUSR1,
        Action::Reload,
        "rolling reload of workers and task workers",
    ),
    (libc::SIGHUP, Action::Reload, "same as USR1"),
    (libc::SIGUSR2, Action::ReloadTasks, "reload task workers only"),
    (libc::SIGTTIN, Action::AddWorker, "one worker more"),
    (libc::SIGTTOU, Action::RemoveWorker, "one worker fewer (never below 1)"),
    (libc::SIGWINCH, Action::ReopenLogs, "reopen log files"),
    (libc::SIGCHLD, Action::ChildExited, "(internal) reap children"),
];

static PENDING: [AtomicBool; 65] = [const { AtomicBool::new(false) }; 65];
static WAKE_FD: AtomicI32 = AtomicI32::new(-1);
/// Set by any recorded signal: lets a busy loop skip the table scan.
static ANY: AtomicBool = AtomicBool::new(false);

extern "C" fn record(sig: i32) {
    ANY.store(true, Ordering::SeqCst);
    if let Some(flag) = PENDING.get(sig as usize) {
        flag.store(true, Ordering::SeqCst);
    }
    let fd = WAKE_FD.load(Ordering::SeqCst);
    if fd >= 0 {
        sys::write_byte(fd);
    }
}

/// The wake-up pipe of the current process: its read end goes into the process's poll
/// set so a signal interrupts the wait.
pub struct Wakeup {
    read: OwnedFd,
    _write: OwnedFd,
}

impl Wakeup {
    /// The fd to poll for readability.
    pub fn fd(&self) -> RawFd {
        self.read.as_raw_fd()
    }

    /// Empties the pipe (the flags say what arrived).
    pub fn drain(&self) {
        sys::drain_fd(self.read.as_raw_fd());
    }
}

/// Installs the recording handler for `signals` (the subset of [`TABLE`] this role
/// acts on) and returns the wake-up pipe. Call in each process after fork, while
/// signals are still blocked and after [`sys::reset_signal_dispositions`]; unblock with
/// [`sys::unblock_all_signals`] afterwards. SIGPIPE is ignored in every role.
pub fn install(signals: &[i32]) -> std::io::Result<Wakeup> {
    let (read, write) = sys::pipe()?;
    WAKE_FD.store(write.as_raw_fd(), Ordering::SeqCst);
    for flag in PENDING.iter() {
        flag.store(false, Ordering::SeqCst);
    }
    sys::ignore_signal(libc::SIGPIPE)?;
    for &sig in signals {
        sys::install_handler(sig, record)?;
    }
    Ok(Wakeup {
        read,
        _write: write,
    })
}

/// Like [`take`], but costs one atomic load when no signal arrived (hot loops).
pub fn take_if_any() -> Vec<Action> {
    if !ANY.load(Ordering::Relaxed) {
        return Vec::new();
    }
    take()
}

/// The actions whose signals arrived since the last call, in table order, each once.
pub fn take() -> Vec<Action> {
    ANY.store(false, Ordering::SeqCst);
    let mut out = Vec::new();
    for &(sig, action, _) in TABLE {
        if PENDING[sig as usize].swap(false, Ordering::SeqCst) && !out.contains(&action) {
            out.push(action);
        }
    }
    out
}

/// The signal that maps to `action` first in the table (what the command sends).
pub fn signal_for(action: Action) -> i32 {
    TABLE
        .iter()
        .find(|(_, a, _)| *a == action)
        .map(|(s, _, _)| *s)
        .unwrap_or(libc::SIGTERM)
}
