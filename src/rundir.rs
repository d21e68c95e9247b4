//! Run-time directories, verified before anything is written in them.
//!
//! The data dir (`datapath`: the pid file, the master's record, a daemon's log when no
//! `logpath` is set), the pid file's own directory when `pid_file` points elsewhere, and
//! the shared-memory directory are opened with `O_NOFOLLOW | O_DIRECTORY` and checked on
//! the descriptor (`fstat`), the way systemd treats `RuntimeDirectory=`:
//!
//! - it is a directory and not a symlink;
//! - its owner is the user we run as (a directory another user created first in a
//!   shared place such as /tmp is refused, never adopted);
//! - nobody else can write in it: no group or other write bit. A directory tarsfork
//!   makes for itself ([`Trust::Private`]) is made `0700`, and an existing one with
//!   looser but safe bits is narrowed to `0700`.
//!
//! Every file inside is then opened relative to the directory's descriptor, with
//! `O_NOFOLLOW` (and `O_EXCL` where it is created), so a symlink planted at a name is
//! refused rather than followed. A check that fails names the path, what is wrong and
//! the fix.

use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use crate::error::Error;
use crate::settings::Settings;
use crate::sys::fs::{self as sysfs, FileStat, OpenMode};

/// How much a directory must be ours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trust {
    /// A directory tarsfork makes for itself in a shared place (the default data dir,
    /// the shared-memory dir): owned by us, mode exactly `0700`.
    Private,
    /// A directory the operator named (`datapath=`, the directory of `pid_file=`):
    /// owned by us, writable by nobody else.
    Configured,
    /// The log directory: owned by us or by `children` (the user the children run as,
    /// who rotates the log there), writable by nobody else. Made `0755` if missing.
    Logs {
        /// The children's uid when `user=` is set.
        children: Option<u32>,
    },
}

/// A verified directory, held open: files in it are reached through its descriptor.
#[derive(Debug)]
pub struct RunDir {
    path: PathBuf,
    fd: OwnedFd,
}

fn insecure(path: &Path, why: impl Into<String>, fix: impl Into<String>) -> Error {
    Error::Insecure {
        path: path.to_path_buf(),
        why: why.into(),
        fix: fix.into(),
    }
}

/// Checks what `fstat` says about the directory at `path` against `trust`; for a
/// private directory whose mode is only too open for reading, narrows it to `0700`.
fn verify(path: &Path, fd: BorrowedFd<'_>, st: &FileStat, trust: Trust) -> Result<(), Error> {
    let me = sysfs::geteuid();
    if !st.is_dir() {
        return Err(insecure(path, "it is not a directory", "remove it"));
    }
    let children = match trust {
        Trust::Logs { children } => children,
        _ => None,
    };
    if st.uid != me && Some(st.uid) != children {
        return Err(insecure(
            path,
            format!(
                "it is owned by uid {}, not by uid {me} that runs tarsfork (another user may have created it first)",
                st.uid
            ),
            match trust {
                Trust::Private => "remove it, or set datapath= to a directory you own".to_string(),
                Trust::Configured | Trust::Logs { .. } => {
                    format!("chown {me} {}, or use a directory you own", path.display())
                }
            },
        ));
    }
    if st.mode & 0o022 != 0 {
        return Err(insecure(
            path,
            format!("it is writable by group or others (mode {:04o})", st.mode),
            format!("chmod go-w {}", path.display()),
        ));
    }
    if trust == Trust::Private && st.mode & 0o7777 != 0o700 {
        sysfs::fchmod(fd, 0o700)
            .map_err(|e| Error::io(format!("chmod 700 {}", path.display()), e))?;
    }
    Ok(())
}

fn open_verified(path: &Path, trust: Trust) -> Result<RunDir, Error> {
    let fd = sysfs::open_dir(path).map_err(|e| match e.raw_os_error() {
        Some(libc::ELOOP) | Some(libc::ENOTDIR) => insecure(
            path,
            "it is a symlink or not a directory",
            "remove it; tarsfork makes the directory itself",
        ),
        _ => Error::io(format!("open directory {}", path.display()), e),
    })?;
    let st =
        sysfs::fstat(fd.as_fd()).map_err(|e| Error::io(format!("fstat {}", path.display()), e))?;
    verify(path, fd.as_fd(), &st, trust)?;
    Ok(RunDir {
        path: path.to_path_buf(),
        fd,
    })
}

impl RunDir {
    /// Opens the directory at `path`, making it (and missing parents, `0700`) first if
    /// it does not exist, and verifies it.
    pub fn ensure(path: &Path, trust: Trust) -> Result<RunDir, Error> {
        use std::os::unix::fs::DirBuilderExt;
        match std::fs::symlink_metadata(path) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let mode = if matches!(trust, Trust::Logs { .. }) {
                    0o755
                } else {
                    0o700
                };
                std::fs::DirBuilder::new()
                    .recursive(true)
                    .mode(mode)
                    .create(path)
                    .map_err(|e| Error::io(format!("create directory {}", path.display()), e))?;
            }
            Err(e) => return Err(Error::io(format!("stat {}", path.display()), e)),
        }
        open_verified(path, trust)
    }

    /// Opens the existing directory at `path` and verifies it (the commands, which
    /// never create anything).
    pub fn existing(path: &Path, trust: Trust) -> Result<RunDir, Error> {
        open_verified(path, trust)
    }

    /// Makes the new directory `name` (mode `0700`) in `parent`, a place other users
    /// share (/dev/shm): fails if anything is at that name already, so a directory
    /// another user prepared there is never used.
    pub fn create_fresh(parent: &Path, name: &str) -> Result<RunDir, Error> {
        let p = sysfs::open_dir(parent)
            .map_err(|e| Error::io(format!("open directory {}", parent.display()), e))?;
        let path = parent.join(name);
        sysfs::mkdir_at(p.as_fd(), name, 0o700)
            .map_err(|e| Error::io(format!("create directory {}", path.display()), e))?;
        let fd = sysfs::open_dir_at(p.as_fd(), name)
            .map_err(|e| Error::io(format!("open directory {}", path.display()), e))?;
        let st = sysfs::fstat(fd.as_fd())
            .map_err(|e| Error::io(format!("fstat {}", path.display()), e))?;
        verify(&path, fd.as_fd(), &st, Trust::Private)?;
        Ok(RunDir { path, fd })
    }

    /// The directory's path (for messages and for code that only takes paths).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The path of `name` inside.
    pub fn join(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// The directory's descriptor.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// A second handle on the same directory.
    pub fn try_clone(&self) -> io::Result<RunDir> {
        Ok(RunDir {
            path: self.path.clone(),
            fd: self.fd.try_clone()?,
        })
    }

    /// Opens `name` inside (`O_NOFOLLOW`: a symlink there fails with `ELOOP`).
    pub fn open(&self, name: &str, how: OpenMode) -> io::Result<OwnedFd> {
        sysfs::open_at(self.fd(), name, how)
    }

    /// What is at `name` (a symlink is reported as one, not followed).
    pub fn stat(&self, name: &str) -> io::Result<FileStat> {
        sysfs::stat_at(self.fd(), name)
    }

    /// Removes the file `name` (a symlink is removed, not followed).
    pub fn remove(&self, name: &str) -> io::Result<()> {
        sysfs::unlink_at(self.fd(), name)
    }

    /// Renames `from` over `to` inside.
    pub fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        sysfs::rename_at(self.fd(), from, to)
    }

    /// Reads the regular file `name` (at most `limit` bytes); None when it is missing.
    pub fn read(&self, name: &str, limit: u64) -> io::Result<Option<Vec<u8>>> {
        let fd = match self.open(name, OpenMode::Read) {
            Ok(fd) => fd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        if !sysfs::fstat(fd.as_fd())?.is_file() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "not a regular file",
            ));
        }
        let mut out = Vec::new();
        std::fs::File::from(fd).take(limit).read_to_end(&mut out)?;
        Ok(Some(out))
    }

    /// Replaces `name` with `bytes` atomically: a fresh temp file (`O_EXCL`), synced,
    /// then renamed over the name. Readers see the old content or the new, never a part.
    pub fn write_atomically(&self, name: &str, bytes: &[u8], mode: u32) -> io::Result<()> {
        let tmp = format!(".{name}.tmp.{}", crate::sys::getpid());
        let fd = match self.open(&tmp, OpenMode::CreateNew(mode)) {
            Ok(fd) => fd,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                // Left by a process of ours that had our pid before; only we can write here.
                self.remove(&tmp)?;
                self.open(&tmp, OpenMode::CreateNew(mode))?
            }
            Err(e) => return Err(e),
        };
        let mut f = std::fs::File::from(fd);
        let written = f.write_all(bytes).and_then(|_| f.sync_all());
        if let Err(e) = written.and_then(|_| self.rename(&tmp, name)) {
            let _ = self.remove(&tmp);
            return Err(e);
        }
        Ok(())
    }
}

/// The server's run-time directories, verified: the data dir and the pid file's
/// directory (the same directory unless `pid_file=` points elsewhere).
#[derive(Debug)]
pub struct ServerDirs {
    /// `datapath`.
    pub data: RunDir,
    /// The directory of the pid file and of the master's record.
    pub pid: RunDir,
    /// The pid file's name in it.
    pub pid_name: String,
}

impl ServerDirs {
    /// Makes (the master) the server's directories, verified.
    pub fn create(settings: &Settings) -> Result<ServerDirs, Error> {
        ServerDirs::open_with(settings, RunDir::ensure)
    }

    /// Opens (the commands) the server's existing directories, verified; None when the
    /// data dir or the pid file's directory does not exist (no server ever ran there).
    pub fn existing(settings: &Settings) -> Result<Option<ServerDirs>, Error> {
        match ServerDirs::open_with(settings, RunDir::existing) {
            Ok(d) => Ok(Some(d)),
            Err(Error::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn open_with(
        settings: &Settings,
        open: fn(&Path, Trust) -> Result<RunDir, Error>,
    ) -> Result<ServerDirs, Error> {
        let trust = if settings.datapath_is_default() {
            Trust::Private
        } else {
            Trust::Configured
        };
        let data = open(&settings.datapath, trust)?;
        let file = &settings.pid_file;
        let name = file
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| {
                Error::Config(format!(
                    "pid_file={}: expected a file name, e.g. pid_file=/var/run/app.pid",
                    file.display()
                ))
            })?
            .to_string();
        let parent = file.parent().unwrap_or(Path::new("/"));
        let pid = if parent == settings.datapath.as_path() {
            data.try_clone()
                .map_err(|e| Error::io(format!("dup {}", parent.display()), e))?
        } else {
            open(parent, Trust::Configured).map_err(|e| match e {
                Error::Io { what, source } => Error::Io {
                    what: format!("{what} (the directory of the pid file)"),
                    source,
                },
                other => other,
            })?
        };
        Ok(ServerDirs {
            data,
            pid,
            pid_name: name,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn a_missing_dir_is_made_0700_and_a_loose_one_refused() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("a/b");
        let d = RunDir::ensure(&p, Trust::Private).unwrap();
        assert_eq!(mode(&p), 0o700);
        d.write_atomically("x", b"1\n", 0o644).unwrap();
        assert_eq!(d.read("x", 100).unwrap().unwrap(), b"1\n");
        assert_eq!(d.read("nope", 100).unwrap(), None);
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        RunDir::ensure(&p, Trust::Private).unwrap();
        assert_eq!(mode(&p), 0o700, "a private dir is narrowed to 0700");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o777)).unwrap();
        let e = RunDir::ensure(&p, Trust::Configured)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("writable by group or others") && e.contains("chmod go-w"),
            "{e}"
        );
    }

    #[test]
    fn a_symlinked_dir_is_refused_and_files_are_not_followed() {
        let t = tempfile::tempdir().unwrap();
        let real = t.path().join("real");
        std::fs::create_dir(&real).unwrap();
        let link = t.path().join("link");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        let e = RunDir::ensure(&link, Trust::Private)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("symlink") && e.contains(&link.display().to_string()),
            "{e}"
        );
        let d = RunDir::ensure(&real, Trust::Configured).unwrap();
        std::os::unix::fs::symlink(t.path().join("victim"), real.join("f")).unwrap();
        let e = d.open("f", OpenMode::AppendCreate(0o600)).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ELOOP));
        assert!(!t.path().join("victim").exists());
        assert!(
            RunDir::create_fresh(t.path(), "real").is_err(),
            "an existing dir is refused"
        );
        let fresh = RunDir::create_fresh(t.path(), "fresh").unwrap();
        assert_eq!(mode(fresh.path()), 0o700);
    }
}
