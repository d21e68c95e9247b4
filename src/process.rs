//! What the master sets up before forking and every child inherits: listeners, shared
//! memory, the task queue, the master's life pipe. And the one way to fork a child.

use std::net::TcpListener;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;

use crate::error::Error;
use crate::http::Limits;
use crate::pidfile::PidFile;
use crate::scoreboard::{ProcHandle, Role, Scoreboard};
use crate::settings::Settings;
use crate::sys::{self, Fork};

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
    /// Worker id.
    pub id: u32,
    /// Reload generation.
    pub generation: u64,
}

/// Everything the process tree shares, built by the master.
pub(crate) struct Shared {
    pub settings: Settings,
    pub listeners: Vec<Listener>,
    pub scoreboard: Scoreboard,
    pub shm_dir: PathBuf,
    /// Random per server start: names the task sockets and authenticates datagrams.
    pub token: u64,
    pub task_queue: Option<UnixDatagram>,
    pub master_pid: i32,
    pub http_limits: Limits,
    /// Read end of the master's life pipe: EOF means the master is gone.
    master_alive_read: OwnedFd,
    /// Write end: only the master keeps it.
    master_alive_write: Option<OwnedFd>,
    /// The locked pid file: only the master keeps its descriptor.
    pub pidfile: Option<PidFile>,
    /// The daemon launcher's readiness pipe, until the report is sent (master only).
    pub launcher: Option<OwnedFd>,
    /// Descriptors only the master may keep (the admin listener): closed in children.
    pub master_only_fds: Vec<RawFd>,
    /// Call statistics (present when `<client> stat` is configured).
    pub stats: Option<crate::platform::stats::StatTable>,
    /// Application and built-in properties.
    pub props: Option<crate::platform::props::PropTable>,
}

impl Shared {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        settings: Settings,
        listeners: Vec<Listener>,
        scoreboard: Scoreboard,
        shm_dir: PathBuf,
        token: u64,
        task_queue: Option<UnixDatagram>,
        pidfile: Option<PidFile>,
    ) -> Result<Shared, Error> {
        let (r, w) = sys::pipe().map_err(|e| Error::io("create the master's life pipe", e))?;
        Ok(Shared {
            settings,
            listeners,
            scoreboard,
            shm_dir,
            token,
            task_queue,
            master_pid: sys::getpid(),
            http_limits: Limits::default(),
            master_alive_read: r,
            master_alive_write: Some(w),
            pidfile,
            launcher: None,
            master_only_fds: Vec::new(),
            stats: None,
            props: None,
        })
    }

    /// The fd that becomes readable (EOF) when the master dies.
    pub(crate) fn master_alive_fd(&self) -> RawFd {
        self.master_alive_read.as_raw_fd()
    }

    /// Adds the calling child's scoreboard row.
    pub(crate) fn register_self(&self, boot: &ChildBoot) -> std::io::Result<ProcHandle> {
        self.scoreboard
            .register(boot.role, boot.id, boot.generation)
            .map_err(|e| std::io::Error::other(e.to_string()))
    }

    /// In a fresh child: drop what only the master may hold, reset signal dispositions
    /// (signals stay blocked until the role installs its handlers).
    fn enter_child(&mut self) {
        self.master_alive_write = None;
        if let Some(p) = self.pidfile.as_mut() {
            p.close_in_child();
        }
        self.pidfile = None;
        self.launcher = None;
        for fd in self.master_only_fds.drain(..) {
            sys::close_fd(fd);
        }
        sys::reset_signal_dispositions();
    }
}

/// Forks a child that runs `body` and never returns into the caller's code.
pub(crate) fn spawn(
    shared: &mut Shared,
    what: &str,
    body: impl FnOnce(&mut Shared),
) -> Result<i32, Error> {
    match sys::fork() {
        Ok(Fork::Parent(pid)) => Ok(pid),
        Ok(Fork::Child) => {
            shared.enter_child();
            body(shared);
            // The role functions never return; if one ever did, never run the parent's code.
            sys::exit_now(1)
        }
        Err(e) => Err(Error::io(format!("fork() failed while spawning {what}"), e)),
    }
}

/// The title `ps` shows for a role: `<App>.<Server>: <role> process`.
pub(crate) fn title(settings: &Settings, role: Role) -> String {
    let what = match role {
        Role::Master => "master process",
        Role::Manager => "manager process",
        Role::Worker => "event worker process",
        Role::Task => "task worker process",
    };
    format!("{}: {what}", settings.full_name())
}
