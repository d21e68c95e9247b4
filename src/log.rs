//! Log lines: `2026-11-22 03:00:00.123 INFO  [worker 1 pid 4242] message`.
//!
//! Every process writes to its stderr, one `write` per line (the file is opened with
//! `O_APPEND`, so lines from many processes never interleave). A daemonized server's
//! stderr (and stdout) is the log file (`<logpath>/<App>/<Server>/<App>.<Server>.log`);
//! in the foreground it is the terminal and nothing below about files applies.
//!
//! # One level for the whole server
//!
//! [`configure`], called by the master before it forks, puts the level in a one-row
//! shared-memory table (a MAP_SHARED mapping of an already unlinked file, so nothing is
//! left behind). Every process forked afterwards inherits the mapping: [`set_level`] (or
//! its alias [`set_shared_level`]) in any process changes what every process writes,
//! and the check at the top of each log call is two atomic loads (the `OnceLock`'s state
//! and the shared cell), no lock and no system call.
//!
//! # Size rotation shared by every process (the rule)
//!
//! Before writing a line, a process *checks its log file* when at least
//! [`CHECK_INTERVAL_MS`] passed since its last check, or when it wrote a quarter of
//! `logsize` since then. The clock read is the one the timestamp needs anyway, so a line
//! that does not trigger a check costs no extra system call. A check compares the file
//! stderr points at with the file at the log path:
//!
//! - different file (another process rotated it, or logrotate moved it away, or it was
//!   deleted): reopen the path onto stderr (and stdout when it pointed at the same
//!   file), creating it if needed;
//! - same file and at least `logsize` bytes: take an `flock` on `<log>.lock` without
//!   waiting (whoever holds it is rotating already, and the next check follows it),
//!   re-check the size *of the path* under the lock, then shift `.log.(n-1)` → `.log.n`
//!   … `.log` → `.log.1` (dropping `.log.<lognum>`), create the new `.log`, release
//!   the lock and reopen.
//!
//! So a rotated file always holds at least `logsize` bytes, at most `lognum` rotated
//! files exist, and a process that did not check yet keeps appending to the renamed
//! file (`.log.1`, still on disk) for at most [`CHECK_INTERVAL_MS`] or a quarter of
//! `logsize` of its own output; since a process checks *before* writing, one that was
//! silent for a while never writes into an old file. A line is only lost if more than
//! `lognum` rotations happen within one check interval. A file may grow past `logsize`
//! by what the processes write between their checks (each at most a quarter of
//! `logsize` or one interval's worth) before one of them rotates it.

use std::fs::File;
use std::io::{self, Write};
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Mutex, OnceLock};

use tarsfork_shm::{Column, IntCell, Schema, Table, Value};

use crate::calendar::UtcTime;
use crate::settings::{LogLevel, Settings};
use crate::sys;

/// How often (at most) a process compares its stderr with the log path.
pub const CHECK_INTERVAL_MS: i64 = 1000;

/// How a line of `level` starts after its timestamp (five columns).
fn label(level: LogLevel) -> &'static str {
    match level {
        LogLevel::None => "NONE ",
        LogLevel::Error => "ERROR",
        LogLevel::Warn => "WARN ",
        LogLevel::Info => "INFO ",
        LogLevel::Debug | LogLevel::Tars => "DEBUG",
    }
}

/// The level stored as `level as u8` (in [`LEVEL`] or the shared cell); an unknown
/// value (never stored) reads as INFO.
fn level_from_u8(v: u8) -> LogLevel {
    LogLevel::ALL
        .into_iter()
        .find(|l| *l as u8 == v)
        .unwrap_or(LogLevel::Info)
}

/// What can go wrong while setting logging up.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// The shared-level table could not be made.
    #[error("create the shared log level table {path}: {source}")]
    SharedLevel {
        /// The table file.
        path: PathBuf,
        /// Why.
        source: tarsfork_shm::ShmError,
    },
    /// A file operation of a rotation failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done (`rename`, `remove`, ...).
        op: &'static str,
        /// The file it was done to.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> LogError + 'a {
    move |source| LogError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// The level before [`configure`] made it shared (and the fallback if that failed).
static LEVEL: AtomicU8 = AtomicU8::new(LogLevel::Info as u8);
static SHARED: OnceLock<SharedLevel> = OnceLock::new();
static ROLE: Mutex<String> = Mutex::new(String::new());
static SINK: Mutex<Sink> = Mutex::new(Sink::new());
/// The user and group the children run as (`user=`): log files this module creates
/// while running as root are handed to them, so the children can keep rotating.
static OWNER: Mutex<Option<(u32, u32)>> = Mutex::new(None);

/// Hands `fd` (a log file or lock this process just created or reopened) to the
/// children's user, when running as root with `user=` set.
fn hand_over(fd: std::os::fd::BorrowedFd<'_>) {
    let owner = OWNER.lock().ok().and_then(|o| *o);
    if let Some((uid, gid)) = owner {
        if sys::fs::geteuid() == 0 {
            let _ = sys::fs::fchown(fd, uid, gid);
        }
    }
}

/// Sets the user and group that own the log files (those made from now on are handed
/// to them).
pub fn set_owner(owner: Option<(u32, u32)>) {
    if let Ok(mut o) = OWNER.lock() {
        *o = owner;
    }
}

/// In a child that has just dropped privileges: when the log file's directory is out of
/// its reach (a daemon log in the master's private data dir), it keeps writing to the
/// descriptor it inherited and leaves checks and rotation to the master.
pub fn after_privilege_drop() {
    if let Ok(mut s) = SINK.lock() {
        let reachable = s.path.as_ref().is_some_and(|p| {
            !matches!(std::fs::metadata(p), Err(e) if e.kind() == io::ErrorKind::PermissionDenied)
        });
        if !reachable {
            s.path = None;
        }
    }
}

/// The server-wide level: one int cell in a MAP_SHARED table.
struct SharedLevel {
    cell: IntCell,
}

const LEVEL_KEY: &[u8] = b"level";

impl SharedLevel {
    /// Creates the one-row table at `path` holding `level`; the file stays on disk.
    fn create_at(path: &Path, level: LogLevel) -> Result<SharedLevel, LogError> {
        let err = |source| LogError::SharedLevel {
            path: path.to_path_buf(),
            source,
        };
        let schema = Schema::new(vec![Column::int("level")]).map_err(err)?;
        let table = Table::create(path, &schema, 1).map_err(err)?;
        let made = table
            .set(LEVEL_KEY, &[("level", Value::from(level as u8 as i64))])
            .and_then(|_| table.int_cell(LEVEL_KEY, "level"));
        match made {
            Ok(cell) => Ok(SharedLevel { cell }),
            Err(e) => {
                let _ = std::fs::remove_file(path);
                Err(err(e))
            }
        }
    }

    /// Creates the table in `dir` under a unique name and unlinks it at once: the
    /// mapping lives on in this process and every child forked later, and no file is
    /// left behind whatever way the server ends.
    fn create_anonymous(dir: &Path, level: LogLevel) -> Result<SharedLevel, LogError> {
        let path = dir.join(format!(
            "tarsfork-loglevel.{}.{}.{}",
            sys::getuid(),
            sys::getpid(),
            sys::monotonic_ms()
        ));
        let shared = SharedLevel::create_at(&path, level)?;
        std::fs::remove_file(&path).map_err(io_err("unlink", &path))?;
        Ok(shared)
    }

    fn get(&self) -> u8 {
        u8::try_from(self.cell.load()).unwrap_or(LogLevel::Info as u8)
    }

    fn set(&self, level: LogLevel) {
        self.cell.store(level as u8 as i64);
    }
}

/// Where this process's lines go, and when it next looks at the log file.
struct Sink {
    /// The log file stderr should point at; `None` in the foreground.
    path: Option<PathBuf>,
    /// Rotate once the file holds this many bytes; 0: never.
    max_size: u64,
    /// Rotated files kept (`.log.1` … `.log.<keep>`).
    keep: usize,
    /// Wall-clock ms of the next check.
    next_check_ms: i64,
    /// Bytes this process wrote since its last check.
    written: u64,
}

impl Sink {
    const fn new() -> Sink {
        Sink {
            path: None,
            max_size: 0,
            keep: 0,
            next_check_ms: 0,
            written: 0,
        }
    }

    /// Called before a line of `len` bytes is written at `now_ms`; returns what to
    /// report about a check it made (logged by the caller, outside the lock).
    fn before_write(&mut self, now_ms: i64, len: usize) -> Option<(LogLevel, String)> {
        let path = self.path.clone()?;
        if !self.check_due(now_ms, len) {
            return None;
        }
        match check(&path, self.max_size, self.keep) {
            Ok(Checked::Rotated) => Some((
                LogLevel::Info,
                format!(
                    "log file reached {} bytes; rotated it to {}.1",
                    self.max_size,
                    path.display()
                ),
            )),
            Ok(_) => None,
            Err(e) => Some((LogLevel::Error, format!("log file check: {e}"))),
        }
    }
}

impl Sink {
    /// Counts a line of `len` bytes written at `now_ms`; true when it must check first
    /// (the interval passed, or this process wrote a quarter of `logsize` since).
    fn check_due(&mut self, now_ms: i64, len: usize) -> bool {
        self.written += len as u64;
        let byte_budget = if self.max_size > 0 {
            (self.max_size / 4).max(1)
        } else {
            u64::MAX
        };
        if now_ms < self.next_check_ms && self.written < byte_budget {
            return false;
        }
        self.next_check_ms = now_ms + CHECK_INTERVAL_MS;
        self.written = 0;
        true
    }
}

/// What a check did.
#[derive(Debug, PartialEq, Eq)]
enum Checked {
    /// stderr already is the log file and it is small enough.
    Current,
    /// stderr pointed elsewhere and was reopened onto the path.
    Reopened,
    /// This process rotated the file and reopened.
    Rotated,
}

/// (device, inode, size) of what fd 2 points at.
fn stderr_file() -> io::Result<(u64, u64, u64)> {
    let m = File::from(io::stderr().as_fd().try_clone_to_owned()?).metadata()?;
    Ok((m.dev(), m.ino(), m.len()))
}

/// Compares stderr with `path`, rotating (if due) and reopening as the module doc says.
fn check(path: &Path, max_size: u64, keep: usize) -> Result<Checked, LogError> {
    let (dev, ino, size) = stderr_file().map_err(io_err("fstat stderr for", path))?;
    let same = match std::fs::metadata(path) {
        Ok(m) => m.dev() == dev && m.ino() == ino,
        Err(e) if e.kind() == io::ErrorKind::NotFound => false,
        Err(e) => return Err(io_err("stat", path)(e)),
    };
    if !same {
        reopen_std(path)?;
        return Ok(Checked::Reopened);
    }
    if max_size == 0 || size < max_size {
        return Ok(Checked::Current);
    }
    let rotated = rotate(path, max_size, keep)?;
    reopen_std(path)?;
    Ok(if rotated {
        Checked::Rotated
    } else {
        Checked::Reopened
    })
}

/// Rotates `path` if it holds at least `max_size` bytes and no other process is
/// rotating it right now. Returns whether this call rotated.
fn rotate(path: &Path, max_size: u64, keep: usize) -> Result<bool, LogError> {
    let lock_path = suffixed(path, "lock");
    let lock = sys::open_rw_create(&lock_path, 0o600).map_err(io_err("open", &lock_path))?;
    hand_over(lock.as_fd());
    if !sys::try_flock_exclusive(&lock).map_err(io_err("flock", &lock_path))? {
        return Ok(false);
    }
    // Under the lock: someone may have rotated between our check and now.
    let size = match std::fs::metadata(path) {
        Ok(m) => m.len(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(io_err("stat", path)(e)),
    };
    if size < max_size {
        return Ok(false);
    }
    shift(path, keep)?;
    let fresh = sys::fs::open_append_nofollow(path, 0o640).map_err(io_err("create", path))?;
    hand_over(fresh.as_fd());
    Ok(true)
    // `lock` closes here, which releases the flock.
}

/// `path.N` → `path.N+1` for N = keep-1 … 1, then `path` → `path.1`; the oldest goes.
fn shift(path: &Path, keep: usize) -> Result<(), LogError> {
    let gone_ok = |r: io::Result<()>| match r {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    };
    if keep == 0 {
        return gone_ok(std::fs::remove_file(path)).map_err(io_err("remove", path));
    }
    let oldest = suffixed(path, &keep.to_string());
    gone_ok(std::fs::remove_file(&oldest)).map_err(io_err("remove", &oldest))?;
    for n in (1..keep).rev() {
        let from = suffixed(path, &n.to_string());
        let to = suffixed(path, &(n + 1).to_string());
        gone_ok(std::fs::rename(&from, &to)).map_err(io_err("rename", &from))?;
    }
    let first = suffixed(path, "1");
    std::fs::rename(path, &first).map_err(io_err("rename", path))
}

/// `path` with `.suffix` appended to its file name.
fn suffixed(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_os_string();
    s.push(".");
    s.push(suffix);
    PathBuf::from(s)
}

/// Points stderr at `path` (creating it), and stdout too when it pointed at the same
/// file as stderr (a daemon sends both to the log).
fn reopen_std(path: &Path) -> Result<(), LogError> {
    let same_file = |fd: std::os::fd::BorrowedFd<'_>| -> Option<(u64, u64)> {
        let m = File::from(fd.try_clone_to_owned().ok()?).metadata().ok()?;
        Some((m.dev(), m.ino()))
    };
    let out = same_file(io::stdout().as_fd());
    let follow_stdout = out.is_some() && out == same_file(io::stderr().as_fd());
    sys::redirect_fd(2, Some(path)).map_err(io_err("reopen", path))?;
    hand_over(io::stderr().as_fd());
    if follow_stdout {
        let _ = io::stdout().flush();
        sys::redirect_fd(1, Some(path)).map_err(io_err("reopen stdout onto", path))?;
    }
    Ok(())
}

/// Sets logging up for a server from its settings; the master calls it once, before it
/// forks anything: rotation by `logsize`/`lognum` for the file given to [`set_file`],
/// and the `logLevel` level, made shared by every process forked afterwards. A failure
/// to share the level is logged and leaves each process with its own level.
pub fn configure(settings: &Settings) {
    if let Ok(mut s) = SINK.lock() {
        s.max_size = settings.logsize;
        s.keep = settings.lognum;
        s.next_check_ms = 0;
    }
    let level = settings.loglevel;
    LEVEL.store(level as u8, Ordering::Relaxed);
    if let Some(shared) = SHARED.get() {
        shared.set(level);
        return;
    }
    let shm = Path::new("/dev/shm");
    let dir = if shm.is_dir() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    };
    match SharedLevel::create_anonymous(&dir, level) {
        Ok(s) => {
            let _ = SHARED.set(s);
        }
        Err(e) => warn(&format!(
            "{e}; `tars.setloglevel` will only change the process that receives it"
        )),
    }
}

/// Sets the minimum level written. After [`configure`] the level is one for the whole
/// server, so this changes it in every process (the same as [`set_shared_level`]).
pub fn set_level(level: LogLevel) {
    LEVEL.store(level as u8, Ordering::Relaxed);
    if let Some(shared) = SHARED.get() {
        shared.set(level);
    }
}

/// Sets the level of every process of the server (`tars.setloglevel`); callable from
/// any process. Returns false when [`configure`] did not make the level shared, in which
/// case only this process changed.
pub fn set_shared_level(level: LogLevel) -> bool {
    set_level(level);
    SHARED.get().is_some()
}

/// The minimum level written right now.
pub fn level() -> LogLevel {
    level_from_u8(threshold())
}

fn threshold() -> u8 {
    match SHARED.get() {
        Some(s) => s.get(),
        None => LEVEL.load(Ordering::Relaxed),
    }
}

/// Names this process in every line (`master`, `manager`, `worker 3`, `task 4`).
pub fn set_role(role: &str) {
    if let Ok(mut r) = ROLE.lock() {
        *r = role.to_string();
    }
}

/// Remembers the log file stderr points at, so WINCH and rotation can reopen it.
pub fn set_file(path: Option<PathBuf>) {
    if let Ok(mut s) = SINK.lock() {
        s.path = path;
        s.next_check_ms = 0;
    }
}

/// Reopens the log file onto stderr (after logrotate moved it; the periodic check
/// would follow within [`CHECK_INTERVAL_MS`] anyway, WINCH makes it immediate).
pub fn reopen() {
    let path = SINK.lock().ok().and_then(|s| s.path.clone());
    if let Some(p) = path {
        match reopen_std(&p) {
            Ok(()) => info("log file reopened"),
            Err(e) => error(&e.to_string()),
        }
    }
}

/// Whether a line at `line` is written while the server's level is `server` (as u8).
fn enabled(line: LogLevel, server: u8) -> bool {
    line as u8 <= server
}

fn write(level: LogLevel, msg: &str) {
    if !enabled(level, threshold()) {
        return;
    }
    let now = sys::wall_ms();
    let role = ROLE.lock().map(|r| r.clone()).unwrap_or_default();
    let line = format!(
        "{} {} [{} pid {}] {}\n",
        timestamp(now),
        label(level),
        if role.is_empty() { "tarsfork" } else { &role },
        sys::getpid(),
        msg
    );
    // Check before writing, so a process silent for a while never writes to an old file.
    let note = SINK
        .lock()
        .ok()
        .and_then(|mut s| s.before_write(now, line.len()));
    // One write per line so lines from several processes never interleave.
    let _ = io::stderr().lock().write_all(line.as_bytes());
    if let Some((lvl, text)) = note {
        // The check just ran, so this line does not trigger another.
        write(lvl, &text);
    }
}

/// Logs at DEBUG.
pub fn debug(msg: &str) {
    write(LogLevel::Debug, msg)
}
/// Logs at INFO.
pub fn info(msg: &str) {
    write(LogLevel::Info, msg)
}
/// Logs at WARN.
pub fn warn(msg: &str) {
    write(LogLevel::Warn, msg)
}
/// Logs at ERROR.
pub fn error(msg: &str) {
    write(LogLevel::Error, msg)
}

/// Nothing is buffered (stderr is unbuffered); kept so exits read as intended.
pub fn flush() {
    let _ = io::stderr().flush();
}

/// `YYYY-MM-DD HH:MM:SS.mmm` in UTC, from epoch milliseconds.
pub fn timestamp(ms: i64) -> String {
    let t = UtcTime::from_unix(ms.div_euclid(1000));
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}.{:03}",
        t.year,
        t.month,
        t.day,
        t.hour,
        t.minute,
        t.second,
        ms.rem_euclid(1000)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_utc_calendar_dates() {
        assert_eq!(timestamp(0), "1970-01-01 00:00:00.000");
        assert_eq!(timestamp(951_782_400_123), "2000-02-29 00:00:00.123");
        assert_eq!(timestamp(1_795_316_400_000), "2026-11-22 03:00:00.000");
    }

    #[test]
    fn levels_parse_as_the_platform_writes_them() {
        assert_eq!(LogLevel::parse("debug"), Some(LogLevel::Debug));
        assert_eq!(LogLevel::parse(" TARS "), Some(LogLevel::Tars));
        assert_eq!(LogLevel::parse("Info"), Some(LogLevel::Info));
        assert_eq!(LogLevel::parse("warning"), Some(LogLevel::Warn));
        assert_eq!(LogLevel::parse("ERROR"), Some(LogLevel::Error));
        assert_eq!(LogLevel::parse("none"), Some(LogLevel::None));
        assert_eq!(LogLevel::parse("off"), Some(LogLevel::None));
        assert_eq!(LogLevel::parse("loud"), None);
        assert_eq!(LogLevel::parse(""), None);
    }

    #[test]
    fn each_level_writes_the_lines_at_or_below_it() {
        for l in LogLevel::ALL {
            // The stored form reads back as the same level.
            assert_eq!(level_from_u8(l as u8), l);
            assert_eq!(LogLevel::parse(l.as_str()), Some(l), "{l}");
        }
        let written = |server: LogLevel| -> Vec<LogLevel> {
            [
                LogLevel::Error,
                LogLevel::Warn,
                LogLevel::Info,
                LogLevel::Debug,
            ]
            .into_iter()
            .filter(|line| enabled(*line, server as u8))
            .collect()
        };
        assert_eq!(written(LogLevel::None), []);
        assert_eq!(written(LogLevel::Warn), [LogLevel::Error, LogLevel::Warn]);
        assert_eq!(
            written(LogLevel::Tars).len(),
            4,
            "TARS writes DEBUG lines too"
        );
        assert_eq!(level_from_u8(200), LogLevel::Info);
        assert_eq!(label(LogLevel::Tars), "DEBUG");
    }

    fn fill(path: &Path, tag: &str, bytes: usize) {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .expect("open");
        let line = format!("{tag}\n");
        let mut n = 0;
        while n < bytes {
            f.write_all(line.as_bytes()).expect("write");
            n += line.len();
        }
    }

    fn first_line(path: &Path) -> String {
        std::fs::read_to_string(path)
            .expect("read")
            .lines()
            .next()
            .unwrap_or("")
            .to_string()
    }

    #[test]
    fn rotation_shifts_files_keeps_lognum_and_drops_the_oldest() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("A.S.log");
        for gen in 0..6 {
            fill(&log, &format!("gen{gen}"), 120);
            assert!(rotate(&log, 100, 3).expect("rotate"), "generation {gen}");
            // The new file exists and is empty.
            assert_eq!(std::fs::metadata(&log).expect("new log").len(), 0);
        }
        // Newest rotated first; generations 0..=2 are gone.
        assert_eq!(first_line(&suffixed(&log, "1")), "gen5");
        assert_eq!(first_line(&suffixed(&log, "2")), "gen4");
        assert_eq!(first_line(&suffixed(&log, "3")), "gen3");
        assert!(!suffixed(&log, "4").exists());
        let mut names: Vec<String> = std::fs::read_dir(dir.path())
            .expect("ls")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(
            names,
            [
                "A.S.log",
                "A.S.log.1",
                "A.S.log.2",
                "A.S.log.3",
                "A.S.log.lock"
            ]
        );
    }

    #[test]
    fn rotation_waits_for_the_size_rechecked_under_the_lock() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("A.S.log");
        fill(&log, "small", 50);
        assert!(!rotate(&log, 100, 3).expect("rotate"));
        assert!(!suffixed(&log, "1").exists());
        // Missing file (someone else is mid-rotation): nothing to do.
        let missing = dir.path().join("gone.log");
        assert!(!rotate(&missing, 100, 3).expect("rotate"));
        assert!(!missing.exists());
    }

    #[test]
    fn rotation_skips_while_another_process_holds_the_lock() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("A.S.log");
        fill(&log, "big", 200);
        // A second open file description conflicts like another process would.
        let other = sys::open_rw_create(&suffixed(&log, "lock"), 0o600).expect("lock file");
        assert!(sys::try_flock_exclusive(&other).expect("flock"));
        assert!(!rotate(&log, 100, 3).expect("rotate"));
        assert!(!suffixed(&log, "1").exists());
        drop(other);
        assert!(rotate(&log, 100, 3).expect("rotate"));
        assert_eq!(first_line(&suffixed(&log, "1")), "big");
    }

    #[test]
    fn lognum_zero_starts_over_without_keeping_anything() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("A.S.log");
        fill(&log, "old", 200);
        assert!(rotate(&log, 100, 0).expect("rotate"));
        assert_eq!(std::fs::metadata(&log).expect("log").len(), 0);
        assert!(!suffixed(&log, "1").exists());
    }

    #[test]
    fn sink_checks_by_time_or_by_bytes_not_per_line() {
        let mut s = Sink::new();
        // Foreground: no file, never checks.
        assert!(s.before_write(0, 10).is_none());
        assert_eq!(s.next_check_ms, 0);
        s.max_size = 400;
        // The first line after start checks.
        assert!(s.check_due(5_000, 10));
        assert_eq!(s.next_check_ms, 5_000 + CHECK_INTERVAL_MS);
        // Then 99 bytes within the interval: no check; the 100th byte (a quarter of
        // logsize) is due.
        for i in 0..9 {
            assert!(!s.check_due(5_001 + i, 11), "line {i}");
        }
        assert!(s.check_due(5_010, 1));
        // Quiet, then one short line after the interval: due by time.
        assert!(!s.check_due(5_500, 1));
        assert!(s.check_due(5_010 + CHECK_INTERVAL_MS, 1));
        // Without rotation only time matters.
        s.max_size = 0;
        assert!(!s.check_due(5_011 + CHECK_INTERVAL_MS, 1 << 30));
    }

    #[test]
    fn a_second_mapping_sees_the_shared_level() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("level");
        let shared = SharedLevel::create_at(&path, LogLevel::Info).expect("create");
        assert_eq!(shared.get(), LogLevel::Info as u8);
        // Another process maps the same file; here, a second mapping in this one.
        let other = Table::open(&path).expect("open");
        let cell = other.int_cell(LEVEL_KEY, "level").expect("cell");
        assert_eq!(cell.load(), LogLevel::Info as i64);
        shared.set(LogLevel::Error);
        assert_eq!(cell.load(), LogLevel::Error as i64);
        cell.store(LogLevel::Debug as i64);
        assert_eq!(level_from_u8(shared.get()), LogLevel::Debug);
    }

    #[test]
    fn the_anonymous_shared_level_leaves_no_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let shared = SharedLevel::create_anonymous(dir.path(), LogLevel::Warn).expect("create");
        assert_eq!(std::fs::read_dir(dir.path()).expect("ls").count(), 0);
        assert_eq!(level_from_u8(shared.get()), LogLevel::Warn);
        shared.set(LogLevel::None);
        assert_eq!(level_from_u8(shared.get()), LogLevel::None);
    }
}
