//! The pid file and the master's record beside it.
//!
//! The pid file holds one line, the master's pid (so `kill $(cat …)` keeps working). It
//! is written atomically (a fresh `O_EXCL` temp file, then a rename), held under `flock`
//! by the master for its whole life, and unlinked only by its owner. The lock is the
//! truth, not the number in the file: a file whose lock is free is stale, whatever pid
//! it names. Children close the lock's descriptor right after fork (see
//! [`PidFile::close_in_child`]) so only the master keeps it, and the lock vanishes the
//! instant the master does — even under kill -9.
//!
//! The record (`<pid file>.master`) says who the master is beyond its pid: its start
//! time and its shared-memory directory. The commands signal a pid only when the process
//! that has it now is that master (same start time, same owner, the master's title), so
//! a pid file naming some other process earns it no signal.
//!
//! Both files live in a verified directory ([`crate::rundir`]) and are opened relative to
//! its descriptor with `O_NOFOLLOW`: a symlink at either name is refused, never followed.

use std::io::{self, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::error::Error;
use crate::rundir::RunDir;
use crate::sys::fs::{self as sysfs, OpenMode};
use crate::sys::{self, ident::ProcessId};

/// A pid file this process holds locked.
#[derive(Debug)]
pub struct PidFile {
    dir: RunDir,
    name: String,
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

/// The pid written in an open pid file (read at offset 0, not through the path).
fn read_pid(fd: &OwnedFd) -> Option<i32> {
    let file = std::fs::File::from(fd.try_clone().ok()?);
    let mut buf = [0u8; 32];
    let n = file.read_at(&mut buf, 0).ok()?;
    std::str::from_utf8(&buf[..n]).ok()?.trim().parse().ok()
}

fn symlink_refused(path: &Path) -> Error {
    Error::Insecure {
        path: path.to_path_buf(),
        why: "it is a symlink (or not a regular file)".into(),
        fix: "remove it; the master writes the pid file itself".into(),
    }
}

/// Opens `name` in `dir` as a pid file: a regular file, never through a symlink.
fn open_pid(dir: &RunDir, name: &str, how: OpenMode) -> Result<Option<OwnedFd>, Error> {
    let path = dir.join(name);
    let fd = match dir.open(name, how) {
        Ok(fd) => fd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => return Err(symlink_refused(&path)),
        Err(e) => return Err(Error::io(format!("open pid file {}", path.display()), e)),
    };
    let st =
        sysfs::fstat(fd.as_fd()).map_err(|e| Error::io(format!("fstat {}", path.display()), e))?;
    if !st.is_file() {
        return Err(symlink_refused(&path));
    }
    Ok(Some(fd))
}

/// Looks at the pid file `name` in `dir` without taking it: is a master running?
pub fn probe(dir: &RunDir, name: &str) -> Result<PidState, Error> {
    let Some(fd) = open_pid(dir, name, OpenMode::Read)? else {
        return Ok(PidState::Absent);
    };
    let free = sys::try_flock_exclusive(&fd)
        .map_err(|e| Error::io(format!("flock pid file {}", dir.join(name).display()), e))?;
    // Dropping `fd` releases the probe's own lock at once.
    if free {
        Ok(PidState::Stale(read_pid(&fd)))
    } else {
        Ok(PidState::Running(read_pid(&fd)))
    }
}

impl PidFile {
    /// Takes the pid file `name` in `dir` for `pid`. Fails with
    /// [`Error::AlreadyRunning`] while another master holds it; a stale file is reported
    /// through `on_stale` and replaced.
    pub fn acquire(
        dir: &RunDir,
        name: &str,
        pid: i32,
        on_stale: impl Fn(Option<i32>),
    ) -> Result<PidFile, Error> {
        let path = dir.join(name);
        let ctx = |what: &str| format!("{what} pid file {}", path.display());
        // Lock whatever is at the name now, so that no other starter can race us
        // between our check and our rename; look again if the name changed under us.
        for _ in 0..10 {
            let existed = dir.stat(name).is_ok();
            let Some(current) = open_pid(dir, name, OpenMode::ReadWriteCreate(0o644))? else {
                continue;
            };
            if !sys::try_flock_exclusive(&current).map_err(|e| Error::io(ctx("flock"), e))? {
                return Err(Error::AlreadyRunning {
                    pid: read_pid(&current),
                    pid_file: path.clone(),
                });
            }
            let locked = sysfs::fstat(current.as_fd()).map_err(|e| Error::io(ctx("fstat"), e))?;
            match dir.stat(name) {
                Ok(now) if (now.dev, now.ino) == (locked.dev, locked.ino) => {}
                // Someone renamed a new file over the name after we opened it: look again.
                _ => continue,
            }
            if existed {
                match read_pid(&current) {
                    Some(old) => on_stale(Some(old)),
                    None if locked.size > 0 => on_stale(None),
                    None => {}
                }
            }
            let fresh = write_locked(dir, name, pid).map_err(|e| Error::io(ctx("replace"), e))?;
            let Some(fresh) = fresh else { continue };
            let st = sysfs::fstat(fresh.as_fd()).map_err(|e| Error::io(ctx("fstat"), e))?;
            drop(current);
            return Ok(PidFile {
                dir: dir
                    .try_clone()
                    .map_err(|e| Error::io(ctx("dup the directory of"), e))?,
                name: name.to_string(),
                fd: Some(fresh),
                identity: (st.dev, st.ino),
            });
        }
        Err(Error::Config(format!(
            "{}: the pid file keeps being replaced by another process; is a second master starting?",
            path.display()
        )))
    }

    /// The path of the file.
    pub fn path(&self) -> PathBuf {
        self.dir.join(&self.name)
    }

    /// In a forked child: close the inherited descriptors so the lock dies with the
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

/// Writes `pid` into a fresh temp file (`O_EXCL`), locks it and renames it over `name`:
/// readers never see a half-written pid, and the lock moves with the file. None when
/// another process holds the temp file's lock (a racing starter): look again.
fn write_locked(dir: &RunDir, name: &str, pid: i32) -> io::Result<Option<OwnedFd>> {
    let tmp = format!("{name}.tmp.{pid}");
    let fresh = match dir.open(&tmp, OpenMode::CreateNew(0o644)) {
        Ok(fd) => fd,
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            // Left behind by a process that had our pid; only we can write here.
            dir.remove(&tmp)?;
            dir.open(&tmp, OpenMode::CreateNew(0o644))?
        }
        Err(e) => return Err(e),
    };
    if !sys::try_flock_exclusive(&fresh)? {
        let _ = dir.remove(&tmp);
        return Ok(None);
    }
    {
        // Write through a duplicate so `fresh` keeps the lock after the File closes.
        let mut f = std::fs::File::from(fresh.try_clone()?);
        f.write_all(format!("{pid}\n").as_bytes())?;
        f.sync_all()?;
    }
    if let Err(e) = dir.rename(&tmp, name) {
        let _ = dir.remove(&tmp);
        return Err(e);
    }
    Ok(Some(fresh))
}

impl Drop for PidFile {
    /// The owner (the process still holding the descriptor) unlinks the file if the name
    /// still names the file it locked; a forked child has closed its copy and does nothing.
    fn drop(&mut self) {
        if self.fd.is_some() {
            if let Ok(st) = self.dir.stat(&self.name) {
                if (st.dev, st.ino) == self.identity {
                    let _ = self.dir.remove(&self.name);
                }
            }
        }
        self.fd = None;
    }
}

/// Who the master is, as it records itself beside its pid file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MasterRecord {
    /// The master: pid and start time.
    pub master: ProcessId,
    /// Its shared-memory directory.
    pub shm_dir: PathBuf,
}

/// The record's file name for the pid file `pid_name`.
pub fn record_name(pid_name: &str) -> String {
    format!("{pid_name}.master")
}

impl MasterRecord {
    fn encode(&self) -> String {
        format!(
            "pid={}\nstart={}\nshm={}\n",
            self.master.pid,
            self.master.start,
            self.shm_dir.display()
        )
    }

    fn decode(text: &str) -> Option<MasterRecord> {
        let field = |key: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
        };
        Some(MasterRecord {
            master: ProcessId {
                pid: field("pid")?.parse().ok()?,
                start: field("start")?.parse().ok()?,
            },
            shm_dir: PathBuf::from(field("shm")?),
        })
    }

    /// Writes the record beside the pid file `pid_name` (atomically, mode 0644).
    pub fn write(&self, dir: &RunDir, pid_name: &str) -> io::Result<()> {
        dir.write_atomically(&record_name(pid_name), self.encode().as_bytes(), 0o644)
    }

    /// Reads the record beside the pid file `pid_name`; None when it is missing or is
    /// not a record.
    pub fn read(dir: &RunDir, pid_name: &str) -> io::Result<Option<MasterRecord>> {
        let bytes = dir.read(&record_name(pid_name), 64 * 1024)?;
        Ok(bytes.and_then(|b| MasterRecord::decode(&String::from_utf8_lossy(&b))))
    }

    /// Removes the record if it is still this one (the master's clean exit).
    pub fn remove(&self, dir: &RunDir, pid_name: &str) {
        if let Ok(Some(r)) = MasterRecord::read(dir, pid_name) {
            if r == *self {
                let _ = dir.remove(&record_name(pid_name));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rundir::Trust;

    #[test]
    fn acquire_writes_the_pid_locks_it_and_a_second_acquire_fails() {
        let t = tempfile::tempdir().unwrap();
        let dir = RunDir::ensure(t.path(), Trust::Configured).unwrap();
        let p = PidFile::acquire(&dir, "a.pid", 4242, |_| panic!("not stale")).unwrap();
        assert_eq!(
            std::fs::read_to_string(t.path().join("a.pid")).unwrap(),
            "4242\n"
        );
        assert_eq!(probe(&dir, "a.pid").unwrap(), PidState::Running(Some(4242)));
        assert!(matches!(
            PidFile::acquire(&dir, "a.pid", 1, |_| {}),
            Err(Error::AlreadyRunning {
                pid: Some(4242),
                ..
            })
        ));
        p.remove();
        assert_eq!(probe(&dir, "a.pid").unwrap(), PidState::Absent);
    }

    #[test]
    fn a_symlink_at_the_pid_path_is_refused_not_followed() {
        let t = tempfile::tempdir().unwrap();
        let dir = RunDir::ensure(t.path(), Trust::Configured).unwrap();
        let victim = t.path().join("victim");
        std::os::unix::fs::symlink(&victim, t.path().join("a.pid")).unwrap();
        let e = PidFile::acquire(&dir, "a.pid", 7, |_| {}).unwrap_err();
        assert!(matches!(e, Error::Insecure { .. }), "{e}");
        assert!(!victim.exists(), "the dangling symlink was followed");
        assert!(matches!(probe(&dir, "a.pid"), Err(Error::Insecure { .. })));
    }

    #[test]
    fn the_record_round_trips_and_is_removed_only_when_it_is_ours() {
        let t = tempfile::tempdir().unwrap();
        let dir = RunDir::ensure(t.path(), Trust::Configured).unwrap();
        let r = MasterRecord {
            master: ProcessId { pid: 5, start: 77 },
            shm_dir: PathBuf::from("/dev/shm/tarsfork.0.A.S.5.abcd"),
        };
        r.write(&dir, "a.pid").unwrap();
        assert_eq!(MasterRecord::read(&dir, "a.pid").unwrap(), Some(r.clone()));
        let other = MasterRecord {
            master: ProcessId { pid: 6, start: 1 },
            ..r.clone()
        };
        other.remove(&dir, "a.pid");
        assert!(MasterRecord::read(&dir, "a.pid").unwrap().is_some());
        r.remove(&dir, "a.pid");
        assert_eq!(MasterRecord::read(&dir, "a.pid").unwrap(), None);
        assert_eq!(MasterRecord::decode("pid=x\n"), None);
    }
}
