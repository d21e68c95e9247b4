//! Forked children for the multi-process tests: spawn, signal, bounded waits, and
//! SIGKILL of every child still running when the test ends (pass or fail).

#![allow(dead_code)] // each test binary uses a different subset

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Words of MAP_SHARED anonymous memory, shared with children forked after creation.
pub struct Shared {
    base: *mut AtomicU64,
    len: usize,
}

// SAFETY: the memory is only accessed through atomics.
unsafe impl Sync for Shared {}
// SAFETY: as above; the pointer stays valid for the process's life (never unmapped).
unsafe impl Send for Shared {}

impl Shared {
    /// `len` zeroed words.
    pub fn new(len: usize) -> Shared {
        // SAFETY: a fresh anonymous shared mapping; checked for MAP_FAILED.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len * 8,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert_ne!(p, libc::MAP_FAILED);
        Shared {
            base: p.cast(),
            len,
        }
    }

    /// Word `i`.
    pub fn at(&self, i: usize) -> &AtomicU64 {
        assert!(i < self.len);
        // SAFETY: i < len keeps the word inside the mapping, which is page-aligned and
        // never unmapped; AtomicU64 has the size and alignment of u64.
        unsafe { &*self.base.add(i) }
    }
}

/// How a child ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Code(i32),
    Signal(i32),
}

/// The children of one test; any still running are killed when this drops.
#[derive(Default)]
pub struct Children {
    pids: Vec<i32>,
}

impl Children {
    /// Forks a child that runs `f` and exits with its code (101 if it panics).
    pub fn spawn(&mut self, f: impl FnOnce() -> i32) -> i32 {
        // SAFETY: the child only runs `f` (table operations and atomics) and then leaves
        // with _exit, so no parent state is torn down twice. glibc's malloc is fork-safe.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork failed: {}", std::io::Error::last_os_error());
        if pid == 0 {
            let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or(101);
            // SAFETY: ends the child immediately.
            unsafe { libc::_exit(code) };
        }
        self.pids.push(pid);
        pid
    }

    /// Sends `sig` to one of our children.
    pub fn signal(&self, pid: i32, sig: i32) {
        assert!(self.pids.contains(&pid), "not our child");
        // SAFETY: signals a child of ours by pid.
        let rc = unsafe { libc::kill(pid, sig) };
        assert_eq!(rc, 0, "kill({pid}, {sig})");
    }

    /// Waits for `pid` up to `timeout`; on timeout kills it and panics.
    pub fn wait(&mut self, pid: i32, timeout: Duration) -> Exit {
        let deadline = Instant::now() + timeout;
        loop {
            let mut status = 0;
            // SAFETY: waitpid on our own child with a valid status pointer.
            let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
            if r == pid {
                self.pids.retain(|p| *p != pid);
                return if libc::WIFEXITED(status) {
                    Exit::Code(libc::WEXITSTATUS(status))
                } else {
                    Exit::Signal(libc::WTERMSIG(status))
                };
            }
            assert!(r == 0, "waitpid({pid}) failed");
            if Instant::now() > deadline {
                panic!("child {pid} did not exit within {timeout:?}");
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Kills (SIGKILL) and reaps one child.
    pub fn kill(&mut self, pid: i32) {
        self.signal(pid, libc::SIGKILL);
        assert_eq!(
            self.wait(pid, Duration::from_secs(10)),
            Exit::Signal(libc::SIGKILL)
        );
    }

    /// Waits for every child; panics (after killing the rest) past `timeout`.
    pub fn wait_all(&mut self, timeout: Duration) -> Vec<Exit> {
        let pids = self.pids.clone();
        pids.into_iter().map(|p| self.wait(p, timeout)).collect()
    }
}

impl Drop for Children {
    fn drop(&mut self) {
        for pid in std::mem::take(&mut self.pids) {
            // SAFETY: kill and reap our own child by pid.
            unsafe {
                libc::kill(pid, libc::SIGCONT);
                libc::kill(pid, libc::SIGKILL);
                let mut status = 0;
                libc::waitpid(pid, &mut status, 0);
            }
        }
    }
}

/// Polls `cond` every millisecond for up to `timeout`.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    cond()
}

/// A small deterministic PRNG (xorshift64*), so children need no shared RNG state.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Nanoseconds since `t`.
pub fn ns_since(t: Instant) -> u64 {
    t.elapsed().as_nanos() as u64
}

/// Shorthand for a relaxed load.
pub fn get(w: &AtomicU64) -> u64 {
    w.load(Ordering::Acquire)
}

/// Involuntary context switches of this process so far (preemptions by the scheduler).
pub fn preemptions() -> i64 {
    // SAFETY: an all-zero rusage is a valid value for getrusage to overwrite.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage fills the struct we own.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    ru.ru_nivcsw
}
