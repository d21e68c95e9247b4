//! Files opened relative to a directory descriptor, never through a symlink.
//!
//! Run-time files (the pid file, the master's record, the daemon log) live in
//! directories that are verified once, by descriptor ([`open_dir`] + [`fstat`]); every
//! file inside is then reached with the `*at` calls on that descriptor and
//! `O_NOFOLLOW`, so a rename of the directory or a symlink planted in it after the check
//! cannot send a write elsewhere. Names passed here are one path component: a `/`, `.`
//! or `..` is refused, so no call can climb out of the directory it was given.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// What `fstat` says about a file, as the checks need it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileStat {
    /// Owner uid.
    pub uid: u32,
    /// Owner gid.
    pub gid: u32,
    /// Permission bits (`st_mode & 0o7777`).
    pub mode: u32,
    /// File type bits (`st_mode & S_IFMT`).
    pub kind: u32,
    /// Device and inode: the file's identity.
    pub dev: u64,
    /// Inode number.
    pub ino: u64,
    /// Size in bytes.
    pub size: u64,
}

impl FileStat {
    /// A directory.
    pub fn is_dir(&self) -> bool {
        self.kind == libc::S_IFDIR
    }
    /// A regular file.
    pub fn is_file(&self) -> bool {
        self.kind == libc::S_IFREG
    }
    /// A symbolic link (only [`stat_at`] can see one: every open refuses it).
    pub fn is_symlink(&self) -> bool {
        self.kind == libc::S_IFLNK
    }
}

fn from_stat(st: &libc::stat) -> FileStat {
    FileStat {
        uid: st.st_uid,
        gid: st.st_gid,
        mode: st.st_mode & 0o7777,
        kind: st.st_mode & libc::S_IFMT,
        dev: st.st_dev,
        ino: st.st_ino,
        size: st.st_size as u64,
    }
}

/// `name` as a C string, if it is one path component.
fn component(name: &str) -> io::Result<CString> {
    if name.is_empty() || name == "." || name == ".." || name.contains('/') {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{name:?} is not a file name"),
        ));
    }
    CString::new(name).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in a name"))
}

fn c_path(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in a path"))
}

/// Opens the directory at `path` without following a symlink in its last component.
pub fn open_dir(path: &Path) -> io::Result<OwnedFd> {
    let c = c_path(path)?;
    let flags = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC;
    let fd = syscall!(open(c.as_ptr(), flags))?;
    // SAFETY: open succeeded, so `fd` is a fresh descriptor nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Opens the subdirectory `name` of `dir`, not following a symlink.
pub fn open_dir_at(dir: BorrowedFd<'_>, name: &str) -> io::Result<OwnedFd> {
    let c = component(name)?;
    let flags = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC;
    let fd = syscall!(openat(dir.as_raw_fd(), c.as_ptr(), flags))?;
    // SAFETY: openat succeeded, so `fd` is a fresh descriptor nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `fstat` of an open file.
pub fn fstat(fd: BorrowedFd<'_>) -> io::Result<FileStat> {
    // SAFETY: stat is plain data that fstat fills for a valid descriptor.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    syscall!(fstat(fd.as_raw_fd(), &mut st))?;
    Ok(from_stat(&st))
}

/// `fstatat(dir, name, AT_SYMLINK_NOFOLLOW)`: what is at `name`, a symlink included.
pub fn stat_at(dir: BorrowedFd<'_>, name: &str) -> io::Result<FileStat> {
    let c = component(name)?;
    // SAFETY: stat is plain data that fstatat fills.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    syscall!(fstatat(
        dir.as_raw_fd(),
        c.as_ptr(),
        &mut st,
        libc::AT_SYMLINK_NOFOLLOW
    ))?;
    Ok(from_stat(&st))
}

/// How [`open_at`] opens a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenMode {
    /// Read only; the file must exist.
    Read,
    /// Read and write, created (with the mode) if missing.
    ReadWriteCreate(u32),
    /// Read and write, created with the mode; fails if anything is at the name.
    CreateNew(u32),
    /// Append only, created (with the mode) if missing.
    AppendCreate(u32),
}

/// Opens `name` in `dir` with `O_NOFOLLOW | O_CLOEXEC` (and `O_NONBLOCK`, so a FIFO
/// planted at the name cannot hang the open; regular files ignore it). A symlink at the
/// name fails with `ELOOP`.
pub fn open_at(dir: BorrowedFd<'_>, name: &str, how: OpenMode) -> io::Result<OwnedFd> {
    let c = component(name)?;
    let base = libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK;
    let (flags, mode) = match how {
        OpenMode::Read => (libc::O_RDONLY, 0),
        OpenMode::ReadWriteCreate(m) => (libc::O_RDWR | libc::O_CREAT, m),
        OpenMode::CreateNew(m) => (libc::O_RDWR | libc::O_CREAT | libc::O_EXCL, m),
        OpenMode::AppendCreate(m) => (libc::O_WRONLY | libc::O_APPEND | libc::O_CREAT, m),
    };
    let fd = syscall!(openat(
        dir.as_raw_fd(),
        c.as_ptr(),
        flags | base,
        mode as libc::c_uint
    ))?;
    // SAFETY: openat succeeded, so `fd` is a fresh descriptor nobody else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // Reads and writes of these files are meant to block (they are regular files).
    super::set_nonblocking(fd.as_raw_fd(), false)?;
    Ok(fd)
}

/// Opens `path` for appending (created with `mode` if missing) without following a
/// symlink in its last component: the daemon's log file.
pub fn open_append_nofollow(path: &Path, mode: u32) -> io::Result<OwnedFd> {
    let c = c_path(path)?;
    let flags = libc::O_WRONLY
        | libc::O_APPEND
        | libc::O_CREAT
        | libc::O_NOFOLLOW
        | libc::O_CLOEXEC
        | libc::O_NONBLOCK;
    let fd = syscall!(open(c.as_ptr(), flags, mode as libc::c_uint))?;
    // SAFETY: open succeeded, so `fd` is a fresh descriptor nobody else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    super::set_nonblocking(fd.as_raw_fd(), false)?;
    Ok(fd)
}

/// `mkdirat(dir, name, mode)`.
pub fn mkdir_at(dir: BorrowedFd<'_>, name: &str, mode: u32) -> io::Result<()> {
    let c = component(name)?;
    syscall!(mkdirat(dir.as_raw_fd(), c.as_ptr(), mode as libc::mode_t)).map(|_| ())
}

/// `renameat(dir, from, dir, to)`: replaces `to` atomically.
pub fn rename_at(dir: BorrowedFd<'_>, from: &str, to: &str) -> io::Result<()> {
    let (f, t) = (component(from)?, component(to)?);
    syscall!(renameat(
        dir.as_raw_fd(),
        f.as_ptr(),
        dir.as_raw_fd(),
        t.as_ptr()
    ))
    .map(|_| ())
}

/// `unlinkat(dir, name)` of a file (a symlink is removed, never followed).
pub fn unlink_at(dir: BorrowedFd<'_>, name: &str) -> io::Result<()> {
    let c = component(name)?;
    syscall!(unlinkat(dir.as_raw_fd(), c.as_ptr(), 0)).map(|_| ())
}

/// `fchown` of an open file.
pub fn fchown(fd: BorrowedFd<'_>, uid: u32, gid: u32) -> io::Result<()> {
    syscall!(fchown(fd.as_raw_fd(), uid, gid)).map(|_| ())
}

/// `fchmod` of an open file.
pub fn fchmod(fd: BorrowedFd<'_>, mode: u32) -> io::Result<()> {
    syscall!(fchmod(fd.as_raw_fd(), mode as libc::mode_t)).map(|_| ())
}

/// The effective uid: the owner a directory we trust must have.
pub fn geteuid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn names_are_single_components() {
        for bad in ["", ".", "..", "a/b", "/etc", "x\0y"] {
            assert!(component(bad).is_err(), "{bad:?}");
        }
        assert!(component("A.S.pid").is_ok());
    }

    #[test]
    fn opens_refuse_symlinks_and_create_new_refuses_anything() {
        let dir = tempfile::tempdir().unwrap();
        let d = open_dir(dir.path()).unwrap();
        std::os::unix::fs::symlink(dir.path().join("target"), dir.path().join("link")).unwrap();
        let e = open_at(d.as_fd(), "link", OpenMode::ReadWriteCreate(0o600)).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ELOOP));
        assert!(
            !dir.path().join("target").exists(),
            "the symlink was followed"
        );
        let e = open_at(d.as_fd(), "link", OpenMode::CreateNew(0o600)).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EEXIST));
        assert!(stat_at(d.as_fd(), "link").unwrap().is_symlink());
        let e = open_dir(&dir.path().join("link")).unwrap_err();
        assert!(matches!(
            e.raw_os_error(),
            Some(libc::ELOOP) | Some(libc::ENOTDIR)
        ));
        let f = open_at(d.as_fd(), "f", OpenMode::CreateNew(0o600)).unwrap();
        let st = fstat(f.as_fd()).unwrap();
        assert!(st.is_file() && st.mode == 0o600, "{st:?}");
        rename_at(d.as_fd(), "f", "g").unwrap();
        unlink_at(d.as_fd(), "g").unwrap();
        unlink_at(d.as_fd(), "link").unwrap();
        let e = open_append_nofollow(&dir.path().join("link2"), 0o600);
        assert!(e.is_ok());
    }
}
