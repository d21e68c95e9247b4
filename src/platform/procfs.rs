//! Process and system figures read straight from `/proc` (no `ps`, no `free`): the
//! memory and CPU properties a server reports to tarsproperty.
//!
//! Per-process readers return `None` for a process that is gone or whose entry cannot be
//! parsed: a process can exit between listing and reading, and a hostile or truncated
//! file must never panic. System-wide readers return a typed error naming the file.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Instant;

// `/proc/<pid>/stat` has one reader, next to the process identity it yields.
use crate::sys::ident::read_stat;

/// Largest /proc file we read; every file we parse is far smaller, and the bound keeps
/// a weird mount from making us read without limit.
const MAX_PROC_FILE: u64 = 1 << 20;

/// Why a system-wide /proc reading failed.
#[derive(Debug, thiserror::Error)]
pub enum ProcfsError {
    /// The file could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// the file
        path: PathBuf,
        /// the cause
        source: std::io::Error,
    },
    /// The file was read but lacks a field we need.
    #[error("{path}: no parsable {field} line")]
    Missing {
        /// the file
        path: PathBuf,
        /// the field looked for
        field: &'static str,
    },
}

/// Memory of a set of processes, in KiB.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TreeMemory {
    /// sum of VmRSS (counts shared pages once per process, so it overstates a prefork tree)
    pub rss_kib: u64,
    /// sum of Pss (shared pages divided among their users), if every counted process had it
    pub pss_kib: Option<u64>,
    /// how many of the given pids could be read
    pub processes: usize,
}

/// System memory from `/proc/meminfo`, in KiB.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SystemMemory {
    /// MemTotal
    pub total_kib: u64,
    /// MemAvailable (the kernel's estimate of what can be allocated without swapping)
    pub available_kib: u64,
}

/// One reading of CPU time used, for [`cpu_percent`].
#[derive(Debug, Clone, Copy)]
pub struct CpuSample {
    /// when it was taken
    pub at: Instant,
    /// user + system CPU time in milliseconds
    pub cpu_ms: u64,
}

fn read_bounded(path: &Path) -> std::io::Result<String> {
    use std::io::Read;
    let file = fs::File::open(path)?;
    let mut text = String::new();
    file.take(MAX_PROC_FILE).read_to_string(&mut text)?;
    Ok(text)
}

fn pid_file(pid: u32, name: &str) -> Option<String> {
    if pid == 0 {
        return None;
    }
    read_bounded(&PathBuf::from(format!("/proc/{pid}/{name}"))).ok()
}

/// The value in KiB of a `Name:   123 kB` line of a status-like file.
pub fn parse_kib_field(text: &str, name: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let rest = line.strip_prefix(name)?.strip_prefix(':')?;
        let mut parts = rest.split_whitespace();
        let value: u64 = parts.next()?.parse().ok()?;
        match parts.next() {
            Some("kB") | None => Some(value),
            Some(_) => None,
        }
    })
}

/// Resident set size of one process in KiB (VmRSS of `/proc/<pid>/status`).
pub fn rss_kib(pid: u32) -> Option<u64> {
    parse_kib_field(&pid_file(pid, "status")?, "VmRSS")
}

/// Proportional set size of one process in KiB (`/proc/<pid>/smaps_rollup`, Linux ≥ 4.14).
pub fn pss_kib(pid: u32) -> Option<u64> {
    parse_kib_field(&pid_file(pid, "smaps_rollup")?, "Pss")
}

/// Memory of a process tree given as its pids (the master, manager and workers).
/// Pids that cannot be read (exited meanwhile) are skipped and not counted.
pub fn tree_memory(pids: &[u32]) -> TreeMemory {
    let mut total = TreeMemory {
        pss_kib: Some(0),
        ..TreeMemory::default()
    };
    for &pid in pids {
        let Some(rss) = rss_kib(pid) else { continue };
        total.rss_kib = total.rss_kib.saturating_add(rss);
        total.processes += 1;
        total.pss_kib = match (total.pss_kib, pss_kib(pid)) {
            (Some(sum), Some(p)) => Some(sum.saturating_add(p)),
            _ => None,
        };
    }
    if total.processes == 0 {
        total.pss_kib = None;
    }
    total
}

/// Clock ticks per second for `/proc/<pid>/stat` times: the AT_CLKTCK entry of
/// `/proc/self/auxv` (what `sysconf(_SC_CLK_TCK)` returns), else Linux's fixed 100.
pub fn clock_ticks_per_sec() -> u64 {
    const AT_CLKTCK: u64 = 17;
    let Ok(bytes) = fs::read("/proc/self/auxv") else {
        return 100;
    };
    // auxv is an array of (type, value) pairs of native machine words.
    let word = std::mem::size_of::<usize>();
    let mut pairs = bytes.chunks_exact(2 * word);
    let read = |b: &[u8]| -> u64 {
        let mut buf = [0u8; 8];
        let n = b.len().min(8);
        buf[..n].copy_from_slice(&b[..n]);
        u64::from_ne_bytes(buf)
    };
    pairs
        .find_map(|pair| {
            let (kind, value) = pair.split_at(word);
            (read(kind) == AT_CLKTCK).then(|| read(value))
        })
        .filter(|&t| t > 0)
        .unwrap_or(100)
}

/// User + system CPU time of one process in milliseconds.
pub fn cpu_time_ms(pid: u32) -> Option<u64> {
    let stat = read_stat(pid)?;
    Some(ticks_to_ms(
        stat.utime.saturating_add(stat.stime),
        clock_ticks_per_sec(),
    ))
}

fn ticks_to_ms(ticks: u64, per_sec: u64) -> u64 {
    (u128::from(ticks) * 1000 / u128::from(per_sec.max(1))).min(u128::from(u64::MAX)) as u64
}

/// CPU time of a set of processes now (pids that cannot be read count 0).
pub fn sample_cpu(pids: &[u32]) -> CpuSample {
    let per_sec = clock_ticks_per_sec();
    let ticks = pids
        .iter()
        .filter_map(|&pid| read_stat(pid))
        .fold(0u64, |sum, s| {
            sum.saturating_add(s.utime).saturating_add(s.stime)
        });
    CpuSample {
        at: Instant::now(),
        cpu_ms: ticks_to_ms(ticks, per_sec),
    }
}

/// CPU use between two samples in percent of one core (200 = two cores busy). None if
/// no time passed or `later` is earlier. A set whose processes exited between the
/// samples can use less CPU time in `later`; that reads as 0.
pub fn cpu_percent(earlier: &CpuSample, later: &CpuSample) -> Option<f64> {
    let wall = later.at.checked_duration_since(earlier.at)?.as_secs_f64();
    if wall <= 0.0 {
        return None;
    }
    let used = later.cpu_ms.saturating_sub(earlier.cpu_ms) as f64 / 1000.0;
    Some(used / wall * 100.0)
}

/// Parses the text of `/proc/meminfo`.
pub fn parse_meminfo(text: &str) -> Result<SystemMemory, &'static str> {
    Ok(SystemMemory {
        total_kib: parse_kib_field(text, "MemTotal").ok_or("MemTotal")?,
        available_kib: parse_kib_field(text, "MemAvailable").ok_or("MemAvailable")?,
    })
}

/// MemTotal and MemAvailable of the machine.
pub fn system_memory() -> Result<SystemMemory, ProcfsError> {
    let path = PathBuf::from("/proc/meminfo");
    let text = read_bounded(&path).map_err(|source| ProcfsError::Read {
        path: path.clone(),
        source,
    })?;
    parse_meminfo(&text).map_err(|field| ProcfsError::Missing { path, field })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_process_has_rss_cpu_and_a_start_time() {
        let me = std::process::id();
        let stat = read_stat(me).expect("own stat");
        assert!(stat.start_time > 0);
        assert!(matches!(stat.state, 'R' | 'S'));
        let rss = rss_kib(me).expect("own VmRSS");
        assert!(rss > 100, "rss {rss} KiB");
        let tree = tree_memory(&[me, me]);
        assert_eq!(tree.processes, 2);
        assert!(tree.rss_kib >= rss, "{tree:?} vs {rss}");
        if let Some(pss) = tree.pss_kib {
            assert!(pss > 0);
        }
    }

    #[test]
    fn cpu_time_grows_while_we_spin() {
        let me = std::process::id();
        let before = sample_cpu(&[me]);
        let t0 = Instant::now();
        let mut x = 0u64;
        while t0.elapsed().as_millis() < 120 {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
        }
        let after = sample_cpu(&[me]);
        assert!(after.cpu_ms > before.cpu_ms, "{before:?} {after:?}");
        let pct = cpu_percent(&before, &after).expect("time passed");
        assert!(pct > 10.0 && pct < 400.0, "cpu {pct}%");
        assert!(cpu_percent(&after, &before).is_none());
        assert!(cpu_time_ms(me).is_some());
    }

    #[test]
    fn system_memory_is_plausible() {
        let m = system_memory().expect("meminfo");
        assert!(m.total_kib > 0 && m.available_kib <= m.total_kib, "{m:?}");
    }

    #[test]
    fn missing_and_hostile_entries_are_none() {
        assert_eq!(rss_kib(u32::MAX), None);
        assert_eq!(tree_memory(&[u32::MAX, 0]).processes, 0);
        assert_eq!(
            parse_kib_field("VmRSS:\t99999999999999999999999 kB", "VmRSS"),
            None
        );
        assert_eq!(
            parse_kib_field("VmRSSX: 5 kB\nVmRSS: 7 kB", "VmRSS"),
            Some(7)
        );
        assert_eq!(parse_kib_field("VmRSS: 7 MB", "VmRSS"), None);
        assert_eq!(parse_meminfo("MemTotal: 10 kB\n"), Err("MemAvailable"));
        let m = parse_meminfo("MemTotal: 10 kB\nMemAvailable: 4 kB\n").expect("parses");
        assert_eq!((m.total_kib, m.available_kib), (10, 4));
    }

    #[test]
    fn ticks_convert_without_overflow() {
        assert_eq!(ticks_to_ms(250, 100), 2500);
        assert_eq!(ticks_to_ms(u64::MAX, 1), u64::MAX);
        assert_eq!(ticks_to_ms(5, 0), 5000);
        assert!(clock_ticks_per_sec() >= 1);
    }
}
