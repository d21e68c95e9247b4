//! Cost of recording one call into the shared statistics table.
//!
//! `ns_1p`: one process, one existing row. `ns_2p_same`: two forked processes recording
//! the same head at once (the worst case: both add to the same cells). Each figure is
//! CPU time per record (so other load on the machine does not inflate it); the `wall_`
//! figures divide elapsed time instead. `ns_take_100` is one flush of 100 heads.
//!
//! ```text
//! cargo bench --bench stats_record
//! ```

#![allow(clippy::expect_used, clippy::unwrap_used)] // a bench aborts on setup failure

use std::path::Path;
use std::time::{Duration, Instant};

use tarsfork::platform::aggregate::Capacity;
use tarsfork::platform::procfs;
use tarsfork::platform::stats::{Outcome, Side, StatHead, StatTable};

const RUN: Duration = Duration::from_millis(1500);

fn head(func: &str) -> StatHead<'_> {
    StatHead {
        side: Side::Server,
        master_name: "TestApp.BenchClient",
        slave_name: "TestApp.HelloServer",
        interface_name: func,
        master_ip: "192.168.10.21",
        slave_port: 18601,
        ..StatHead::default()
    }
}

/// Records for about `RUN`; returns (records, cpu ms, wall ns).
fn record_for(table: &StatTable, h: &StatHead<'_>) -> (u64, u64, u128) {
    let me = std::process::id();
    let cpu0 = procfs::cpu_time_ms(me).unwrap_or(0);
    let t0 = Instant::now();
    let mut n = 0u64;
    while t0.elapsed() < RUN {
        for i in 0..1000u64 {
            // Vary the time so every bucket and both extremes paths are exercised.
            if table
                .record(h, Outcome::Success, (i * 7 % 4000) as i64)
                .is_err()
            {
                eprintln!("record failed");
                return (n, 1, 1);
            }
        }
        n += 1000;
    }
    let wall = t0.elapsed().as_nanos();
    let cpu = procfs::cpu_time_ms(me).unwrap_or(0).saturating_sub(cpu0);
    (n, cpu.max(1), wall)
}

fn ns(total_ns: u128, n: u64) -> f64 {
    total_ns as f64 / n.max(1) as f64
}

fn two_processes(table: &StatTable, dir: &Path) -> (f64, f64, u64) {
    let mut pids = Vec::new();
    for i in 0..2 {
        // SAFETY: the child records into the inherited mapping, writes one file and
        // leaves with _exit; the bench is single-threaded.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork failed");
        if pid == 0 {
            let (n, cpu, wall) = record_for(table, &head("same"));
            let line = format!("{n} {cpu} {wall}\n");
            let ok = std::fs::write(dir.join(format!("child{i}")), line).is_ok();
            // SAFETY: ends the child without running the parent's destructors.
            unsafe { libc::_exit(if ok { 0 } else { 1 }) };
        }
        pids.push(pid);
    }
    for pid in pids {
        let mut status = 0;
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            // SAFETY: polls our own child.
            let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
            if r != 0 {
                break;
            }
            if Instant::now() > deadline {
                // SAFETY: kills and reaps our own overrunning child.
                unsafe {
                    libc::kill(pid, libc::SIGKILL);
                    libc::waitpid(pid, &mut status, 0);
                }
                panic!("bench child {pid} overran");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    let (mut cpu_ns, mut wall_ns, mut total) = (0f64, 0f64, 0u64);
    for i in 0..2 {
        let text = std::fs::read_to_string(dir.join(format!("child{i}"))).expect("child result");
        let v: Vec<u128> = text
            .split_whitespace()
            .map(|s| s.parse().expect("number"))
            .collect();
        let n = v[0] as u64;
        total += n;
        cpu_ns += ns(v[1] * 1_000_000, n);
        wall_ns += ns(v[2], n);
    }
    (cpu_ns / 2.0, wall_ns / 2.0, total)
}

fn main() {
    let dir = tempfile::tempdir().expect("temp dir");
    let cap = Capacity {
        keys: 256,
        processes: 8,
    };
    let table = StatTable::create(&dir.path().join("stat"), cap).expect("table");

    // One process, an existing row (the first record resolves and caches it).
    let h = head("one");
    table.record(&h, Outcome::Success, 1).expect("first record");
    let (n1, cpu1, wall1) = record_for(&table, &h);
    let r = table.take_report().expect("take");
    let counted: i64 = r.server.iter().map(|(_, b)| i64::from(b.count)).sum();
    assert_eq!(counted as u64, n1 + 1, "every record is counted");

    let (ns2, wall2, n2) = two_processes(&table, dir.path());
    let r = table.take_report().expect("take");
    let counted: i64 = r.server.iter().map(|(_, b)| i64::from(b.count)).sum();
    assert_eq!(
        counted as u64, n2,
        "every record of both processes is counted"
    );

    // One flush of 100 heads.
    let names: Vec<String> = (0..100).map(|i| format!("f{i}")).collect();
    for name in &names {
        table
            .record(&head(name), Outcome::Success, 3)
            .expect("record");
    }
    let t0 = Instant::now();
    let r = table.take_report().expect("take");
    let take_ns = t0.elapsed().as_nanos();
    assert_eq!(r.server.len(), 100);

    println!(
        "BENCH stats_record ns_1p={:.1} ns_2p_same={:.1} wall_ns_1p={:.1} wall_ns_2p_same={:.1} ns_take_100={}",
        ns(u128::from(cpu1) * 1_000_000, n1),
        ns2,
        ns(wall1, n1),
        wall2,
        take_ns
    );
    table.unlink().ok();
}
