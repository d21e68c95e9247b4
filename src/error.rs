//! The crate's error type: every variant says what was being done and why it failed.

use std::path::PathBuf;

/// Exit code of a worker whose `on_worker_start` failed: the manager stops the server
/// instead of respawning it forever (gunicorn's WORKER_BOOT_ERROR contract).
pub const EXIT_BOOT_ERROR: i32 = 3;

/// Errors of the server and its command.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An OS call failed while doing `what`.
    #[error("{what}: {source}")]
    Io {
        /// What we were doing, e.g. `bind 127.0.0.1:8080 for TestApp.HelloServer.HttpObjAdapter`.
        what: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A bad or inconsistent setting (the message names file, line and fix where known).
    #[error("{0}")]
    Config(String),
    /// The pid file is locked by a live master.
    #[error("already running (pid {}), pid file {} is locked", .pid.map(|p| p.to_string()).unwrap_or_else(|| "?".into()), .pid_file.display())]
    AlreadyRunning {
        /// The pid written in the file, if readable.
        pid: Option<i32>,
        /// The file.
        pid_file: PathBuf,
    },
    /// A worker could not boot; the server stopped instead of respawning it.
    #[error("worker failed to boot: {0}")]
    Boot(String),
    /// The server did not become ready or stop in time.
    #[error("{0}")]
    Timeout(String),
    /// A run-time directory or file is not safely ours; nothing was written or signalled.
    #[error("refusing to use {}: {why}; {fix}", .path.display())]
    Insecure {
        /// The directory or file.
        path: PathBuf,
        /// What is wrong with it.
        why: String,
        /// What to do about it.
        fix: String,
    },
    /// A pid names a process that is not this server's master: no signal was sent.
    #[error("{0}")]
    NotOurMaster(String),
    /// The shared-memory table layer failed.
    #[error("shared memory: {0}")]
    Shm(String),
}

impl Error {
    /// An I/O error with the action that failed.
    pub fn io(what: impl Into<String>, source: std::io::Error) -> Error {
        Error::Io {
            what: what.into(),
            source,
        }
    }
}

/// Adds context to an `io::Result`.
pub trait IoContext<T> {
    /// Wraps the error with what was being done.
    fn ctx(self, what: impl FnOnce() -> String) -> Result<T, Error>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn ctx(self, what: impl FnOnce() -> String) -> Result<T, Error> {
        self.map_err(|e| Error::io(what(), e))
    }
}
