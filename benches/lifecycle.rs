//! Lifecycle costs of the real binary: start → first answer, idle graceful stop,
//! kill -9 of the only worker → replacement answering, and a worker's memory.
//!
//! Prints `BENCH start_ms=…`, `BENCH stop_ms=…`, `BENCH respawn_ms median=…`,
//! `BENCH worker_rss_kib=…` (medians over repeated runs).

#![allow(clippy::expect_used, clippy::unwrap_used)]

mod support;

use std::time::{Duration, Instant};
use support::*;

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");

    // start → first answer, and idle graceful stop, 7 times each.
    let mut starts = Vec::new();
    let mut stops = Vec::new();
    for i in 0..7 {
        let port = free_port();
        let sub = dir.path().join(format!("s{i}"));
        std::fs::create_dir_all(&sub).expect("dir");
        let config = write_config(&sub, port, 2, 1, false);
        let t = Instant::now();
        let mut fg = Fg::start(&config);
        match wait_answer(port, Duration::from_secs(10)) {
            Some(_) => starts.push(t.elapsed().as_secs_f64() * 1000.0),
            None => {
                println!("BENCH start_ms skipped=did_not_start");
                return;
            }
        }
        // Let every process finish starting before timing the stop.
        std::thread::sleep(Duration::from_millis(200));
        stops.push(fg.stop_and_wait().as_secs_f64() * 1000.0);
    }
    println!("BENCH start_ms={:.1}", median(&mut starts));
    println!("BENCH stop_ms={:.1}", median(&mut stops));

    // kill -9 of the only worker → the replacement answers. Respawns that come sooner
    // than a second after the last one count as a crash loop (backoff), so space them.
    let port = free_port();
    let sub = dir.path().join("respawn");
    std::fs::create_dir_all(&sub).expect("dir");
    let config = write_config(&sub, port, 1, 0, false);
    let fg = Fg::start(&config);
    if wait_answer(port, Duration::from_secs(10)).is_none() {
        println!("BENCH respawn_ms skipped=did_not_start");
        return;
    }
    let mut respawns = Vec::new();
    for _ in 0..9 {
        std::thread::sleep(Duration::from_millis(1200));
        let Some(&w) = fg.pids("worker").first() else {
            continue;
        };
        let t = Instant::now();
        kill(w, libc::SIGKILL);
        // The first GET waits in the listen backlog until the new worker accepts it.
        if wait_answer(port, Duration::from_secs(5)).is_some() {
            respawns.push(t.elapsed().as_secs_f64() * 1000.0);
        }
    }
    let mut sorted = respawns.clone();
    println!(
        "BENCH respawn_ms median={:.2} runs={}",
        median(&mut sorted),
        respawns.len()
    );

    // Memory of a worker after serving some requests.
    for _ in 0..200 {
        let _ = get_status(port, Duration::from_secs(1));
    }
    let rss: Vec<u64> = fg
        .pids("worker")
        .iter()
        .filter_map(|p| proc_kib(*p, "status", "VmRSS:"))
        .collect();
    let pss: Vec<u64> = fg
        .pids("worker")
        .iter()
        .filter_map(|p| proc_kib(*p, "smaps_rollup", "Pss:"))
        .collect();
    println!(
        "BENCH worker_rss_kib={} worker_pss_kib={}",
        rss.iter().max().copied().unwrap_or(0),
        pss.iter().max().copied().unwrap_or(0)
    );
    drop(fg);
}

/// A `Key:  N kB` figure from a /proc file of `pid` (`status`, `smaps_rollup`).
fn proc_kib(pid: i32, file: &str, key: &str) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/{file}")).ok()?;
    s.lines()
        .find(|l| l.starts_with(key))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}
