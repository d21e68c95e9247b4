//! Log lines: `2026-11-22 03:00:00.123 INFO  [worker 1 pid 4242] message`.
//!
//! Every process writes to its stderr. A daemonized server's stderr is the log file
//! (`--log` or `<logpath>/<App>/<Server>/<App>.<Server>.log`), reopened on WINCH so
//! logrotate can move it away; in the foreground it is the terminal.

use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Mutex;

use crate::sys;

/// Log levels, most verbose first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Details for developers.
    Debug = 0,
    /// Lifecycle events.
    Info = 1,
    /// Something went wrong and was handled.
    Warn = 2,
    /// Something failed.
    Error = 3,
}

impl Level {
    /// Parses `DEBUG`, `INFO`, `WARN`, `ERROR` (any case; `TARS` and `NONE` as the
    /// platform spells the extremes).
    pub fn parse(s: &str) -> Option<Level> {
        match s.trim().to_ascii_uppercase().as_str() {
            "DEBUG" | "TARS" => Some(Level::Debug),
            "INFO" => Some(Level::Info),
            "WARN" | "WARNING" => Some(Level::Warn),
            "ERROR" | "NONE" => Some(Level::Error),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Level::Debug => "DEBUG",
            Level::Info => "INFO ",
            Level::Warn => "WARN ",
            Level::Error => "ERROR",
        }
    }
}

static LEVEL: AtomicU8 = AtomicU8::new(Level::Info as u8);
static ROLE: Mutex<String> = Mutex::new(String::new());
static FILE: Mutex<Option<PathBuf>> = Mutex::new(None);

/// Sets the minimum level written.
pub fn set_level(level: Level) {
    LEVEL.store(level as u8, Ordering::Relaxed);
}

/// Names this process in every line (`master`, `manager`, `worker 3`, `task 4`).
pub fn set_role(role: &str) {
    if let Ok(mut r) = ROLE.lock() {
        *r = role.to_string();
    }
}

/// Remembers the log file stderr points at, so WINCH can reopen it.
pub fn set_file(path: Option<PathBuf>) {
    if let Ok(mut f) = FILE.lock() {
        *f = path;
    }
}

/// Reopens the log file onto stderr (after logrotate moved it).
pub fn reopen() {
    let path = FILE.lock().ok().and_then(|f| f.clone());
    if let Some(p) = path {
        if let Err(e) = sys::redirect_fd(2, Some(&p)) {
            error(&format!("reopen log file {}: {e}", p.display()));
        } else {
            info("log file reopened");
        }
    }
}

fn write(level: Level, msg: &str) {
    if (level as u8) < LEVEL.load(Ordering::Relaxed) {
        return;
    }
    let role = ROLE.lock().map(|r| r.clone()).unwrap_or_default();
    let line = format!(
        "{} {} [{} pid {}] {}\n",
        timestamp(sys::wall_ms()),
        level.name(),
        if role.is_empty() { "tarsfork" } else { &role },
        sys::getpid(),
        msg
    );
    // One write per line so lines from several processes never interleave.
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}

/// Logs at DEBUG.
pub fn debug(msg: &str) {
    write(Level::Debug, msg)
}
/// Logs at INFO.
pub fn info(msg: &str) {
    write(Level::Info, msg)
}
/// Logs at WARN.
pub fn warn(msg: &str) {
    write(Level::Warn, msg)
}
/// Logs at ERROR.
pub fn error(msg: &str) {
    write(Level::Error, msg)
}

/// Nothing is buffered (stderr is unbuffered); kept so exits read as intended.
pub fn flush() {
    let _ = std::io::stderr().flush();
}

/// `YYYY-MM-DD HH:MM:SS.mmm` in UTC, from epoch milliseconds.
pub fn timestamp(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let millis = ms.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}.{millis:03}",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
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
        assert_eq!(Level::parse("debug"), Some(Level::Debug));
        assert_eq!(Level::parse("ERROR"), Some(Level::Error));
        assert_eq!(Level::parse("loud"), None);
    }
}
