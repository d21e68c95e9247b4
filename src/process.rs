//! What every child inherits from the master (listeners, shared memory, the task queue,
//! the read end of the master's life pipe, the settings), the one way to fork a child,
//! what a fresh child keeps of it, the one way a child ends, and the one way to KILL a
//! process tree.
//!
//! A fresh child keeps only the descriptors its kind holds ([`Holds`]) plus its own
//! (an event worker's reply channel) and the standard streams: every other descriptor
//! it inherited — the manager's channels to other workers, anything a library or the
//! launching shell left open — is closed before the child runs any code of its role
//! ([`Shared::keep_only`]).
//!
//! What only the master may hold (the pid file's lock, the launcher's readiness pipe,
//! the admin endpoint, the life pipe's write end) is not here: it lives in the master's
//! own struct, which no child is ever handed.

use std::net::TcpListener;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::PathBuf;

use crate::error::Error;
use crate::http::Limits;
use crate::log;
use crate::runas::RunAs;
use crate::scoreboard::{ProcHandle, ProcState, Role, Scoreboard};
use crate::settings::Settings;
use crate::signals::Wakeup;
use crate::sys::ident::ProcessId;
use crate::sys::{self, Fork};
use crate::taskq::{ReplyChannel, TaskQueue};

/// A bound listener of one adapter.
pub(crate) struct Listener {
    /// Index into `settings.adapters`.
    pub adapter: usize,
    /// The socket (close-on-exec, blocking until a worker makes its own copy non-blocking).
    pub listener: TcpListener,
    /// What the adapter speaks: HTTP/1.1 or Tars RPC.
    pub protocol: crate::settings::Protocol,
}

/// The identity a child is forked with.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ChildBoot {
    /// Role of the child.
    pub role: Role,
    /// Its id in its pool (0 for the manager).
    pub id: u32,
    /// Reload generation of its pool.
    pub generation: u64,
}

/// Which of the inherited descriptors a kind of process keeps.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Holds {
    /// The adapters' listeners.
    pub listeners: bool,
    /// The task queue's sending end.
    pub task_submit: bool,
    /// The task queue's receiving end.
    pub task_take: bool,
}

/// A child that has become a member of its kind: its signal handlers installed (with
/// signals unblocked) and its scoreboard row added.
pub(crate) struct Started {
    /// The wake-up pipe its loop polls.
    pub wake: Wakeup,
    /// Its scoreboard row.
    pub handle: ProcHandle,
    /// An event worker's reply channel for its tasks (made by the manager for it alone).
    pub task_reply: Option<ReplyChannel>,
}

/// Everything a child inherits, built by the master before its first fork.
pub(crate) struct Shared {
    pub settings: Settings,
    pub listeners: Vec<Listener>,
    pub scoreboard: Scoreboard,
    pub shm_dir: PathBuf,
    /// The task queue (both ends in the master and the manager; one in a worker).
    pub task_queue: Option<TaskQueue>,
    /// Who the children run as (`user=` / `group=`); None: as the master.
    pub run_as: Option<RunAs>,
    pub master_pid: i32,
    pub http_limits: Limits,
    /// Read end of the master's life pipe: EOF means the master is gone.
    master_alive_read: OwnedFd,
    /// Call statistics (present when `<client> stat` is configured).
    pub stats: Option<crate::platform::stats::StatTable>,
    /// Application and built-in properties.
    pub props: Option<crate::platform::props::PropTable>,
}

impl Shared {
    /// What the master built for its children; `master_alive_read` is the read end of
    /// the life pipe whose write end only the master keeps.
    pub(crate) fn new(
        settings: Settings,
        listeners: Vec<Listener>,
        scoreboard: Scoreboard,
        shm_dir: PathBuf,
        task_queue: Option<TaskQueue>,
        master_alive_read: OwnedFd,
        run_as: Option<RunAs>,
    ) -> Shared {
        Shared {
            settings,
            listeners,
            scoreboard,
            shm_dir,
            task_queue,
            run_as,
            master_pid: sys::getpid(),
            http_limits: Limits::default(),
            master_alive_read,
            stats: None,
            props: None,
        }
    }

    /// The fd that becomes readable (EOF) when the master dies.
    pub(crate) fn master_alive_fd(&self) -> RawFd {
        self.master_alive_read.as_raw_fd()
    }

    /// A reaped process leaves the scoreboard, and its connections leave the adapters'
    /// totals (a worker killed with open connections must not leak them into the count).
    /// Returns the state it last reported, which says whether it had been ready.
    pub(crate) fn forget(&self, pid: i32) -> Option<ProcState> {
        let last = self.scoreboard.remove(pid);
        let names: Vec<String> = self
            .settings
            .adapters
            .iter()
            .map(|a| a.name.clone())
            .collect();
        self.scoreboard.release_connections(pid, &names);
        last
    }

    /// In a fresh child whose kind holds `holds`: closes the inherited descriptors it
    /// must not hold (dropping their owners), then every other descriptor of the
    /// process except these, `own` (the child's own channels) and the standard streams.
    pub(crate) fn keep_only(&mut self, holds: Holds, own: &[RawFd]) -> std::io::Result<()> {
        if !holds.listeners {
            self.listeners.clear();
        }
        if let Some(q) = self.task_queue.as_mut() {
            q.keep(holds.task_submit, holds.task_take);
        }
        let mut keep = vec![0, 1, 2, self.master_alive_read.as_raw_fd()];
        keep.extend(self.listeners.iter().map(|l| l.listener.as_raw_fd()));
        keep.extend(self.task_queue.iter().flat_map(|q| q.fds()));
        keep.extend_from_slice(own);
        sys::close_fds_except(&keep)
    }

    /// Adds the calling child's scoreboard row.
    pub(crate) fn register_self(&self, boot: &ChildBoot) -> std::io::Result<ProcHandle> {
        self.scoreboard
            .register(boot.role, boot.id, boot.generation)
            .map_err(|e| std::io::Error::other(e.to_string()))
    }
}

/// Forks a child that runs `body` and never returns into the caller's code. In the
/// child, signal dispositions are back to their defaults (signals stay blocked until
/// the role installs its handlers) before `body` runs.
pub(crate) fn spawn(
    shared: &mut Shared,
    what: &str,
    body: impl FnOnce(&mut Shared),
) -> Result<i32, Error> {
    match sys::fork() {
        Ok(Fork::Parent(pid)) => Ok(pid),
        Ok(Fork::Child) => {
            sys::reset_signal_dispositions();
            body(shared);
            // The role functions never return; if one ever did, never run the parent's code.
            sys::exit_now(1)
        }
        Err(e) => Err(Error::io(format!("fork() failed while spawning {what}"), e)),
    }
}

/// Ends a child with the outcome of its role's loop: the role's exit code, or 1 with
/// `<label> failed: <error>` logged. The log is flushed first; nothing unwinds.
pub(crate) fn exit_with(label: &str, outcome: std::io::Result<i32>) -> ! {
    let code = match outcome {
        Ok(code) => code,
        Err(e) => {
            log::error(&format!("{label} failed: {e}"));
            1
        }
    };
    log::flush();
    sys::exit_now(code)
}

/// KILLs every process of `tree` that is still the process recorded (a pid handed to
/// another process since is left alone), except the caller.
pub(crate) fn kill_tree(tree: &[ProcessId]) {
    let me = sys::getpid();
    for p in tree.iter().filter(|p| p.pid != me) {
        let _ = p.signal(libc::SIGKILL);
    }
}
