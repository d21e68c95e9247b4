//! The unsafe layer: the shared mapping seen as 64- and 32-bit atomic words, and the
//! libc calls the crate needs (kill(pid, 0) for liveness, pthread_atfork for the hazard
//! registry, openat for tables opened relative to a directory descriptor). Everything
//! above this module is safe code.
//!
//! Every byte of the table is read and written through atomics, never through plain
//! references, because other processes change it concurrently: a plain read racing
//! with a write would be a data race (undefined behaviour) even if the value were
//! checked afterwards.

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicU32, AtomicU64};

use memmap2::{MmapOptions, MmapRaw};

/// One MAP_SHARED mapping of a whole table file.
pub(crate) struct Region {
    map: MmapRaw,
    len: usize,
    writable: bool,
}

impl Region {
    /// Maps `len` bytes of `file` shared; read-write unless `writable` is false.
    pub(crate) fn map(file: &File, len: usize, writable: bool) -> io::Result<Region> {
        let mut opts = MmapOptions::new();
        opts.len(len);
        let map = if writable {
            opts.map_raw(file)?
        } else {
            opts.map_raw_read_only(file)?
        };
        if map.len() != len || (map.as_ptr() as usize) % 64 != 0 {
            return Err(io::Error::other(
                "mapping has an unexpected length or alignment",
            ));
        }
        Ok(Region { map, len, writable })
    }

    /// Bytes mapped.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Whether stores are allowed (the mapping is PROT_WRITE).
    pub(crate) fn writable(&self) -> bool {
        self.writable
    }

    /// The 64-bit word at byte offset `off`.
    ///
    /// Offsets come from the geometry validated when the table was opened, so an
    /// out-of-range offset is a bug in this crate, never a property of the file: the
    /// assert turns such a bug into a panic instead of a wild access.
    #[inline(always)]
    pub(crate) fn u64_at(&self, off: usize) -> &AtomicU64 {
        assert!(
            off % 8 == 0 && off.checked_add(8).is_some_and(|end| end <= self.len),
            "shm word offset {off} outside a {} byte mapping",
            self.len
        );
        // SAFETY: the range [off, off+8) lies inside the live mapping (checked above) and
        // is 8-aligned (the base is page-aligned, off % 8 == 0). The mapping lives as long
        // as `self`, which bounds the returned reference. Shared memory is only ever accessed
        // through atomics (here and in every other process using this crate), so no
        // non-atomic access races with it. On a read-only mapping callers only load
        // (`Table` refuses every write path before reaching a store).
        unsafe { &*(self.map.as_ptr().add(off) as *const AtomicU64) }
    }

    /// `N` consecutive 64-bit words starting at byte offset `off` (one bounds check for
    /// a whole slot header instead of one per field).
    #[inline]
    pub(crate) fn u64_array<const N: usize>(&self, off: usize) -> &[AtomicU64; N] {
        assert!(
            off % 8 == 0 && off.checked_add(8 * N).is_some_and(|end| end <= self.len),
            "shm block offset {off} outside a {} byte mapping",
            self.len
        );
        // SAFETY: as in `u64_at`, for the N*8-byte range [off, off + 8N), which is inside
        // the mapping and 8-aligned; [AtomicU64; N] has the layout of N adjacent words.
        unsafe { &*(self.map.as_ptr().add(off) as *const [AtomicU64; N]) }
    }

    /// The 32-bit word at byte offset `off`.
    #[inline]
    pub(crate) fn u32_at(&self, off: usize) -> &AtomicU32 {
        assert!(
            off % 4 == 0 && off.checked_add(4).is_some_and(|end| end <= self.len),
            "shm word offset {off} outside a {} byte mapping",
            self.len
        );
        // SAFETY: as in `u64_at`, with a 4-byte range and 4-byte alignment.
        unsafe { &*(self.map.as_ptr().add(off) as *const AtomicU32) }
    }
}

/// Whether a process with this pid exists (alive or zombie) according to kill(pid, 0).
pub(crate) fn pid_exists(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    if pid <= 0 {
        return false;
    }
    // SAFETY: kill with signal 0 sends nothing; it only checks that the pid exists and
    // that we may signal it. It touches no memory of ours.
    let rc = unsafe { libc::kill(pid, 0) };
    // EPERM means it exists but belongs to someone else: still alive.
    rc == 0 || io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
}

/// Registers `handler` to run in the child after every `fork()`; false if it could not.
/// The handler must be async-signal-safe (it runs in the single-threaded child).
pub(crate) fn on_fork_in_child(handler: extern "C" fn()) -> bool {
    // SAFETY: pthread_atfork only records the function pointer; `handler` is a plain
    // `extern "C" fn` valid for the life of the program (callers pass a function that
    // does one atomic add on a static).
    unsafe { libc::pthread_atfork(None, None, Some(handler)) == 0 }
}

/// Opens the file `name` (one path component) in the directory `dir` with
/// `O_NOFOLLOW | O_CLOEXEC` added to `flags`: a symlink at the name fails with `ELOOP`,
/// and a `/` in the name is refused, so the open stays inside the directory.
pub(crate) fn open_at(dir: BorrowedFd<'_>, name: &str, flags: i32, mode: u32) -> io::Result<File> {
    if name.is_empty() || name == "." || name == ".." || name.contains('/') {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{name:?} is not a table name"),
        ));
    }
    let c = CString::new(name).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let flags = flags | libc::O_NOFOLLOW | libc::O_CLOEXEC;
    // SAFETY: `c` is a NUL-terminated string alive for the call and `dir` a live
    // descriptor; openat touches no other memory of ours.
    let fd = unsafe { libc::openat(dir.as_raw_fd(), c.as_ptr(), flags, mode as libc::c_uint) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: openat succeeded, so `fd` is a fresh descriptor that nothing else owns.
    Ok(File::from(unsafe { OwnedFd::from_raw_fd(fd) }))
}

/// Removes the file `name` from the directory `dir` (a half-made table).
pub(crate) fn unlink_at(dir: BorrowedFd<'_>, name: &str) -> io::Result<()> {
    let c = CString::new(name).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: `c` is a NUL-terminated string alive for the call and `dir` a live
    // descriptor; unlinkat only removes a directory entry.
    let rc = unsafe { libc::unlinkat(dir.as_raw_fd(), c.as_ptr(), 0) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
