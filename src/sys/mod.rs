//! Every call into the operating system lives here (nginx keeps them under `os/unix`).
//!
//! The rest of the crate never writes `unsafe`: it calls these small wrappers, which turn
//! `-1` into `io::Error` and document why each unsafe block is sound.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;
use std::time::Duration;

/// Runs a libc call and turns a `-1` result into the thread's `errno` as `io::Error`.
/// The macro hides an `unsafe` block: each use carries the `// SAFETY:` note that says
/// why its arguments meet the C contract of the call.
macro_rules! syscall {
    ($fn:ident ( $($arg:expr),* $(,)? )) => {{
        // SAFETY: see the note at the macro's use.
        #[allow(unused_unsafe)]
        let res = unsafe { libc::$fn($($arg),*) };
        if res == -1 {
            Err(std::io::Error::last_os_error())
        } else {
            Ok(res)
        }
    }};
}

pub mod creds;
pub mod dgram;
pub mod fs;
pub mod ident;
pub mod proctitle;

/// The result of [`fork`], seen from either side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fork {
    /// We are the parent; the child's pid.
    Parent(i32),
    /// We are the new child.
    Child,
}

/// Forks the process with every signal blocked across the call, so that no handler runs
/// in the child before it has reset its dispositions. The child returns with signals
/// still blocked: it calls [`reset_signal_dispositions`], installs its role's handlers
/// and then [`unblock_all_signals`]. The parent's mask is restored before returning.
pub fn fork() -> io::Result<Fork> {
    let old = block_all_signals()?;
    // SAFETY: the process has no threads besides the caller (tarsfork never starts a
    // thread before forking), so the child inherits consistent allocator and libc state.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        let err = io::Error::last_os_error();
        set_sigmask(&old)?;
        return Err(err);
    }
    if pid == 0 {
        return Ok(Fork::Child);
    }
    set_sigmask(&old)?;
    Ok(Fork::Parent(pid))
}

/// Blocks every signal in the calling thread and returns the previous mask.
pub fn block_all_signals() -> io::Result<libc::sigset_t> {
    // SAFETY: sigset_t is plain data; sigfillset and pthread_sigmask only write into the
    // sets we pass, which live on this stack frame.
    unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        let rc = libc::pthread_sigmask(libc::SIG_BLOCK, &all, &mut old);
        if rc != 0 {
            return Err(io::Error::from_raw_os_error(rc));
        }
        Ok(old)
    }
}

/// Sets the calling thread's signal mask.
pub fn set_sigmask(mask: &libc::sigset_t) -> io::Result<()> {
    // SAFETY: `mask` is a valid, initialised sigset_t; a null old-set pointer is allowed.
    let rc = unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, mask, std::ptr::null_mut()) };
    if rc != 0 {
        return Err(io::Error::from_raw_os_error(rc));
    }
    Ok(())
}

/// In a fresh child, with signals still blocked: every signal back to its default
/// disposition. The role then installs its own handlers and unblocks.
pub fn reset_signal_dispositions() {
    for sig in 1..32 {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        // SAFETY: SIG_DFL is always a valid disposition; signals that cannot be changed
        // return EINVAL, which we ignore on purpose.
        unsafe {
            libc::signal(sig, libc::SIG_DFL);
        }
    }
}

/// Empties the calling thread's signal mask.
pub fn unblock_all_signals() -> io::Result<()> {
    // SAFETY: an empty sigset_t built by sigemptyset is valid for SIG_SETMASK.
    unsafe {
        let mut none: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut none);
        set_sigmask(&none)
    }
}

/// Installs `handler` for `sig` with SA_RESTART. The handler must be async-signal-safe:
/// tarsfork's handlers only store into atomics and write one byte to a pipe.
pub fn install_handler(sig: i32, handler: extern "C" fn(i32)) -> io::Result<()> {
    // SAFETY: sigaction is plain data; we fill every field we use and pass a pointer to
    // an `extern "C" fn(i32)`, the signature the kernel calls for a non-SA_SIGINFO handler.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = handler as usize;
        sa.sa_flags = libc::SA_RESTART;
        libc::sigemptyset(&mut sa.sa_mask);
        if libc::sigaction(sig, &sa, std::ptr::null_mut()) != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Ignores `sig` (used for SIGPIPE: a peer that went away is an `EPIPE`, not a death).
pub fn ignore_signal(sig: i32) -> io::Result<()> {
    // SAFETY: SIG_IGN is a valid disposition for every catchable signal.
    let prev = unsafe { libc::signal(sig, libc::SIG_IGN) };
    if prev == libc::SIG_ERR {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Asks the kernel to send `sig` to this process when its parent thread exits, and
/// closes the race where the parent died before the request was made.
pub fn die_with_parent(sig: i32, expected_parent: i32) -> io::Result<()> {
    // SAFETY: PR_SET_PDEATHSIG takes a signal number by value; no pointer is passed.
    syscall!(prctl(libc::PR_SET_PDEATHSIG, sig as libc::c_ulong, 0, 0, 0))?;
    // The parent may have died between fork() and prctl(): then we were re-parented and
    // no death signal will ever come, so act now.
    if getppid() != expected_parent {
        send_signal(getpid(), sig)?;
    }
    Ok(())
}

/// Makes this process the reaper of its orphaned descendants (workers whose manager died
/// re-parent to the master, which then reaps them instead of init).
pub fn become_subreaper() -> io::Result<()> {
    // SAFETY: PR_SET_CHILD_SUBREAPER takes a flag by value; no pointer is passed.
    syscall!(prctl(
        libc::PR_SET_CHILD_SUBREAPER,
        1 as libc::c_ulong,
        0,
        0,
        0
    ))
    .map(|_| ())
}

/// The calling process's pid.
pub fn getpid() -> i32 {
    // SAFETY: getpid has no preconditions and cannot fail.
    unsafe { libc::getpid() }
}

/// The parent's pid.
pub fn getppid() -> i32 {
    // SAFETY: getppid has no preconditions and cannot fail.
    unsafe { libc::getppid() }
}

/// The real user id.
pub fn getuid() -> u32 {
    // SAFETY: getuid has no preconditions and cannot fail.
    unsafe { libc::getuid() }
}

/// Sends `sig` to `pid` (0 checks existence only).
pub fn send_signal(pid: i32, sig: i32) -> io::Result<()> {
    // SAFETY: kill(2) takes two integers; no memory is involved.
    syscall!(kill(pid, sig)).map(|_| ())
}

/// Whether a process with this pid exists (a zombie counts; EPERM means it exists).
pub fn process_exists(pid: i32) -> bool {
    if pid <= 0 {
        return false;
    }
    match send_signal(pid, 0) {
        Ok(()) => true,
        Err(e) => e.raw_os_error() == Some(libc::EPERM),
    }
}

/// How a reaped child ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    /// exit(code)
    Code(i32),
    /// killed by this signal
    Signal(i32),
}

impl std::fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExitStatus::Code(c) => write!(f, "exit code {c}"),
            ExitStatus::Signal(s) => write!(f, "signal {s} ({})", signal_name(*s)),
        }
    }
}

/// Reaps one exited child without blocking: `Ok(None)` when none has exited.
pub fn reap_any() -> io::Result<Option<(i32, ExitStatus)>> {
    let mut status: libc::c_int = 0;
    // SAFETY: `status` is a valid out-pointer for the duration of the call.
    let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
    if pid < 0 {
        let err = io::Error::last_os_error();
        if err.raw_os_error() == Some(libc::ECHILD) {
            return Ok(None);
        }
        return Err(err);
    }
    if pid == 0 {
        return Ok(None);
    }
    let how = if libc::WIFSIGNALED(status) {
        ExitStatus::Signal(libc::WTERMSIG(status))
    } else {
        ExitStatus::Code(libc::WEXITSTATUS(status))
    };
    Ok(Some((pid, how)))
}

/// A short name for the signals tarsfork talks about in logs.
pub fn signal_name(sig: i32) -> &'static str {
    match sig {
        libc::SIGHUP => "HUP",
        libc::SIGINT => "INT",
        libc::SIGQUIT => "QUIT",
        libc::SIGKILL => "KILL",
        libc::SIGSEGV => "SEGV",
        libc::SIGABRT => "ABRT",
        libc::SIGPIPE => "PIPE",
        libc::SIGTERM => "TERM",
        libc::SIGUSR1 => "USR1",
        libc::SIGUSR2 => "USR2",
        libc::SIGCHLD => "CHLD",
        libc::SIGTTIN => "TTIN",
        libc::SIGTTOU => "TTOU",
        libc::SIGWINCH => "WINCH",
        libc::SIGSTOP => "STOP",
        libc::SIGCONT => "CONT",
        _ => "?",
    }
}

/// Ends the process at once, without running destructors or atexit handlers: what a
/// forked child must do so it never unwinds into its parent's code.
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit has no preconditions; it never returns.
    unsafe { libc::_exit(code) }
}

/// A non-blocking, close-on-exec pipe: (read end, write end).
pub fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: pipe2 writes two ints into `fds`, a live array of exactly two.
    syscall!(pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC))?;
    // SAFETY: pipe2 succeeded, so both descriptors are open and owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Writes one byte to a non-blocking fd, ignoring a full pipe. Async-signal-safe.
pub fn write_byte(fd: RawFd) {
    let b = 1u8;
    // SAFETY: writes one byte from a live stack variable; a failed write (EAGAIN when the
    // pipe is already full of wake-ups) needs no handling.
    unsafe {
        libc::write(fd, (&b as *const u8).cast(), 1);
    }
}

/// Reads and discards everything in a non-blocking fd. Returns false when it reached EOF.
pub fn drain_fd(fd: RawFd) -> bool {
    let mut buf = [0u8; 256];
    loop {
        // SAFETY: reads into a stack buffer of the length passed.
        let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        if n == 0 {
            return false;
        }
        if n < 0 {
            return true;
        }
    }
}

/// Blocking read of up to `buf.len()` bytes; 0 at EOF.
pub fn read_fd(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        // SAFETY: reads into a caller-owned buffer of the length passed.
        let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        if n >= 0 {
            return Ok(n as usize);
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

/// Writes all of `buf` to a blocking fd.
pub fn write_all_fd(fd: RawFd, mut buf: &[u8]) -> io::Result<()> {
    while !buf.is_empty() {
        // SAFETY: writes from a caller-owned buffer of the length passed.
        let n = unsafe { libc::write(fd, buf.as_ptr().cast(), buf.len()) };
        if n < 0 {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(err);
        }
        buf = &buf[n as usize..];
    }
    Ok(())
}

/// Switches an fd between blocking and non-blocking mode.
pub fn set_nonblocking(fd: RawFd, on: bool) -> io::Result<()> {
    // SAFETY: F_GETFL takes no argument and only reads the descriptor's flags.
    let flags = syscall!(fcntl(fd, libc::F_GETFL))?;
    let flags = if on {
        flags | libc::O_NONBLOCK
    } else {
        flags & !libc::O_NONBLOCK
    };
    // SAFETY: F_SETFL takes the flags by value; a bad fd is an EBADF error, not UB.
    syscall!(fcntl(fd, libc::F_SETFL, flags)).map(|_| ())
}

/// Waits until one of `fds` is readable or the timeout passes; returns which are ready.
/// EINTR counts as "nothing ready" so the caller's loop looks at its signal flags.
pub fn poll_readable(fds: &[RawFd], timeout: Option<Duration>) -> io::Result<Vec<bool>> {
    let mut pfds: Vec<libc::pollfd> = fds
        .iter()
        .map(|&fd| libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    let ms = match timeout {
        None => -1,
        Some(d) => d.as_millis().min(i32::MAX as u128) as i32,
    };
    // SAFETY: `pfds` is a live, correctly sized array of pollfd for the whole call.
    let rc = unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, ms) };
    if rc < 0 {
        let err = io::Error::last_os_error();
        if err.kind() == io::ErrorKind::Interrupted {
            return Ok(vec![false; fds.len()]);
        }
        return Err(err);
    }
    Ok(pfds
        .iter()
        .map(|p| p.revents & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) != 0)
        .collect())
}

/// Milliseconds on CLOCK_MONOTONIC: one clock for every process on the machine, so a
/// stamp written by a worker compares with the manager's `now`.
pub fn monotonic_ms() -> i64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid out-pointer; CLOCK_MONOTONIC always exists on Linux.
    unsafe {
        libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts);
    }
    ts.tv_sec * 1000 + ts.tv_nsec / 1_000_000
}

/// Milliseconds since the Unix epoch (for logs and `status` uptimes shown to people).
pub fn wall_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Opens (creating if needed) a file read-write, close-on-exec, never through a symlink
/// in its last component (the log rotation's lock file).
pub fn open_rw_create(path: &Path, mode: u32) -> io::Result<OwnedFd> {
    use std::os::unix::fs::OpenOptionsExt;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(mode)
        .custom_flags(libc::O_CLOEXEC | libc::O_NOFOLLOW)
        .open(path)?;
    Ok(OwnedFd::from(f))
}

/// Tries to take an exclusive `flock` without waiting. `Ok(false)`: someone holds it.
pub fn try_flock_exclusive(fd: &OwnedFd) -> io::Result<bool> {
    // SAFETY: flock on a descriptor `fd` keeps open for the duration of the call.
    match syscall!(flock(fd.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB)) {
        Ok(_) => Ok(true),
        Err(e) if e.raw_os_error() == Some(libc::EWOULDBLOCK) => Ok(false),
        Err(e) => Err(e),
    }
}

/// (device, inode) of an open file.
pub fn fd_identity(fd: &OwnedFd) -> io::Result<(u64, u64)> {
    // SAFETY: stat is plain data; fstat fills it for a valid open descriptor.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: fstat writes one `stat` into `st`, which lives on this frame; `fd` is
    // open for the duration of the call.
    syscall!(fstat(fd.as_raw_fd(), &mut st))?;
    Ok((st.st_dev, st.st_ino))
}

/// (device, inode) of a path, following symlinks.
pub fn path_identity(path: &Path) -> io::Result<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path)?;
    Ok((m.dev(), m.ino()))
}

/// Starts a new session (the daemon detaches from the launching terminal).
pub fn setsid() -> io::Result<()> {
    // SAFETY: setsid takes no argument.
    syscall!(setsid()).map(|_| ())
}

/// Points `target` (0, 1 or 2) at the file `path` (opened for append, created 0640 if
/// missing, never through a symlink in its last component) or at /dev/null when `path`
/// is None.
pub fn redirect_fd(target: RawFd, path: Option<&Path>) -> io::Result<()> {
    let file = match path {
        Some(p) => fs::open_append_nofollow(p, 0o640)?,
        None => OwnedFd::from(
            std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open("/dev/null")?,
        ),
    };
    // SAFETY: dup2 on `file`'s open descriptor; replacing `target` (0, 1 or 2) is the
    // point, and the std handles that use those numbers keep working on the new file.
    syscall!(dup2(file.as_raw_fd(), target)).map(|_| ())
}

/// Points `target` (0, 1 or 2) at the open file `fd`.
pub fn dup_onto(fd: std::os::fd::BorrowedFd<'_>, target: RawFd) -> io::Result<()> {
    // SAFETY: dup2 on a descriptor `fd` keeps open for the call; replacing `target` is
    // the point, as in `redirect_fd`.
    syscall!(dup2(fd.as_raw_fd(), target)).map(|_| ())
}

/// Sets the thread name the kernel shows in `comm` (ps -o comm, top): at most 15 bytes.
pub fn set_thread_name(name: &str) {
    let short: String = name.chars().take(15).collect();
    if let Ok(c) = CString::new(short) {
        // SAFETY: PR_SET_NAME reads a NUL-terminated string of at most 16 bytes, which
        // `c` is for the duration of the call.
        unsafe {
            libc::prctl(libc::PR_SET_NAME, c.as_ptr() as libc::c_ulong, 0, 0, 0);
        }
    }
}

/// Shuts down the write side: the first step of the worker's lingering close (as nginx
/// does), which then reads until the client's FIN so that a request racing the close
/// gets a FIN, not a reset.
pub fn shutdown_write(fd: RawFd) -> io::Result<()> {
    // SAFETY: shutdown takes two integers; a bad fd is an error, not UB.
    syscall!(shutdown(fd, libc::SHUT_WR)).map(|_| ())
}

/// Sleeps (used only by the demo's `/slow` handler and by bounded waits).
pub fn sleep(d: Duration) {
    std::thread::sleep(d);
}

/// Closes a descriptor this process inherited but must not keep (a forked child's copy
/// of a master-only socket). Errors (already closed) are ignored.
pub fn close_fd(fd: RawFd) {
    // SAFETY: closing an fd number has no memory-safety effect; callers pass fds whose
    // owning objects are never used again in this process (they belong to the master).
    unsafe {
        libc::close(fd);
    }
}

/// Closes every descriptor of this process except `keep` (a fresh child drops what it
/// inherited but must not hold). `close_range(2)` closes each gap in one call; where the
/// kernel lacks it, the descriptors listed in /proc/self/fd are closed one by one.
///
/// Objects of the caller that own a descriptor closed here must never be dropped or
/// used afterwards (a forked child leaves its parent's objects alone and exits with
/// [`exit_now`]).
pub fn close_fds_except(keep: &[RawFd]) -> io::Result<()> {
    let mut keep: Vec<RawFd> = keep.iter().copied().filter(|fd| *fd >= 0).collect();
    keep.sort_unstable();
    keep.dedup();
    let mut from: libc::c_uint = 0;
    for &k in keep.iter().chain(std::iter::once(&RawFd::MAX)) {
        let k = k as libc::c_uint;
        if k > from && close_range(from, k - 1).is_err() {
            return close_listed_except(&keep);
        }
        from = k.saturating_add(1);
    }
    Ok(())
}

fn close_range(first: libc::c_uint, last: libc::c_uint) -> io::Result<()> {
    // SAFETY: close_range only closes descriptors; the callers' contract (above) is that
    // nothing in this process uses the closed ones again.
    let rc = unsafe { libc::syscall(libc::SYS_close_range, first, last, 0 as libc::c_uint) };
    if rc == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn close_listed_except(keep: &[RawFd]) -> io::Result<()> {
    let open: Vec<RawFd> = std::fs::read_dir("/proc/self/fd")?
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect();
    for fd in open.into_iter().filter(|fd| !keep.contains(fd)) {
        close_fd(fd);
    }
    Ok(())
}

/// Registers `handler` to run in every child right after `fork()` (pthread_atfork's
/// child hook). The handler must be async-signal-safe. False if registration failed.
pub fn on_fork_in_child(handler: extern "C" fn()) -> bool {
    // SAFETY: pthread_atfork only records the function pointer; an `extern "C" fn` item
    // lives for the whole program, and callers pass handlers that only touch atomics.
    unsafe { libc::pthread_atfork(None, None, Some(handler)) == 0 }
}
