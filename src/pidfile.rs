//! The pid file: written atomically (temp file + rename), held under `flock` by the
//! master for its whole life, unlinked only by its owner.
//!
//! The lock is the truth, not the number in the file: a file whose lock is free is
//! stale, whatever pid it names. Children close the lock's descriptor right after fork
//! (see [`PidFile::close_in_child`]) so only the master keeps it, and the lock vanishes
//! the instant the master does — even under kill -9.

use std::io::Write;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use crate::error::Error;
use crate::sys;

/// A pid file this process holds locked.
#[derive(Debug)]
pub struct PidFile {
    path: PathBuf,
    fd: Option<OwnedFd>,
    identity: (u64, u64),
}

/// What a look at a pid file found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PidState {
    /// No file.
    Absent,
    /// A file whose lock nobody holds: its owner is gone.
    Stale(Option<i32>),
    /// Locked by a live master with this pid (None if the content is unreadable).
    Running(Option<i32>),
}

fn read_pid(path: &Path) -> Option<i32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Looks at the pid file without taking it: is a master running?
pub fn probe(path: &Path) -> Result<PidState, Error> {
    let fd = match std::fs::OpenOptions::new().read(true).open(path) {
        Ok(f) => OwnedFd::from(f),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(PidState::Absent),
        Err(e) => return Err(Error::io(format!("open pid file {}", path.display()), e)),
    };
    let free = sys::try_flock_exclusive(&fd)
        .map_err(|e| Error::io(format!("flock pid file {}", path.display()), e))?;
    // Dropping `fd` releases the probe's own lock at once.
    if free {
        Ok(PidState::Stale(read_pid(path)))
    } else {
        Ok(PidState::Running(read_pid(path)))
    }
}

impl PidFile {
    /// Takes the pid file for `pid`. Fails with [`Error::AlreadyRunning`] while another
    /// master holds it; a stale file is reported through `on_stale` and replaced.
    pub fn acquire(
        path: &Path,
        pid: i32,
        on_stale: impl Fn(Option<i32>),
    ) -> Result<PidFile, Error> {
        let ctx = |what: &str| format!("{what} pid file {}", path.display());
        if let Some(dir) = path.parent() {
            if !dir.as_os_str().is_empty() {
                std::fs::create_dir_all(dir)
                    .map_err(|e| Error::io(ctx("create directory for"), e))?;
            }
        }
        // Lock whatever is at the path now, so that no other starter can race us
        // between our check and our rename; retry if the path changed under us.
        for _ in 0..10 {
            let existed = path.exists();
            let current =
                sys::open_rw_create(path, 0o644).map_err(|e| Error::io(ctx("open"), e))?;
            if !sys::try_flock_exclusive(&current).map_err(|e| Error::io(ctx("flock"), e))? {
                return Err(Error::AlreadyRunning {
                    pid: read_pid(path),
                    pid_file: path.to_path_buf(),
                });
            }
            let locked_id = sys::fd_identity(&current).map_err(|e| Error::io(ctx("fstat"), e))?;
            match sys::path_identity(path) {
                Ok(id) if id == locked_id => {}
                // Someone renamed a new file over the path after we opened it: look again.
                _ => continue,
            }
            if existed {
                if let Some(old) = read_pid(path) {
                    on_stale(Some(old));
                } else if std::fs::metadata(path)
                    .map(|m| m.len() > 0)
                    .unwrap_or(false)
                {
                    on_stale(None);
                }
            }
            // Write the new content to a temp file, lock it too, then rename it over the
            // path: readers never see a half-written pid, and the lock moves with it.
            let tmp = path.with_extension(format!("pid.tmp.{pid}"));
            let _ = std::fs::remove_file(&tmp);
            let fresh =
                sys::open_rw_create(&tmp, 0o644).map_err(|e| Error::io(ctx("create temp"), e))?;
            if !sys::try_flock_exclusive(&fresh).map_err(|e| Error::io(ctx("flock temp"), e))? {
                let _ = std::fs::remove_file(&tmp);
                continue;
            }
            {
                // Write through a duplicate so `fresh` keeps the lock after the File closes.
                let mut f =
                    std::fs::File::from(fresh.try_clone().map_err(|e| Error::io(ctx("dup"), e))?);
                f.write_all(format!("{pid}\n").as_bytes())
                    .and_then(|_| f.sync_all())
                    .map_err(|e| Error::io(ctx("write"), e))?;
            }
            std::fs::rename(&tmp, path).map_err(|e| Error::io(ctx("rename temp onto"), e))?;
            let identity = sys::fd_identity(&fresh).map_err(|e| Error::io(ctx("fstat"), e))?;
            drop(current);
            return Ok(PidFile {
                path: path.to_path_buf(),
                fd: Some(fresh),
                identity,
            });
        }
        Err(Error::Config(format!(
            "{}: the pid file keeps being replaced by another process; is a second master starting?",
            path.display()
        )))
    }

    /// The path of the file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// In a forked child: close the inherited descriptor so the lock dies with the
    /// master alone, and forget the file (a child never unlinks it).
    pub fn close_in_child(&mut self) {
        // flock locks belong to the open file description and are released only when
        // every descriptor of it is closed: closing the child's copy leaves the master's
        // lock in place, and keeps the child from pinning it after the master is gone.
        self.fd = None;
        self.identity = (0, 0);
    }

    /// The owner's clean exit: unlink the file if it is still ours, then release the lock.
    pub fn remove(self) {
        drop(self);
    }
}

impl Drop for PidFile {
    /// The owner (the process still holding the descriptor) unlinks the file if the path
    /// still names the file it locked; a forked child has closed its copy and does nothing.
    fn drop(&mut self) {
        if self.fd.is_some() {
            if let Ok(id) = sys::path_identity(&self.path) {
                if id == self.identity {
                    let _ = std::fs::remove_file(&self.path);
                }
            }
        }
        self.fd = None;
    }
}
