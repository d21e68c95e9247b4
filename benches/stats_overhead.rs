//! What recording call statistics costs: the same HTTP hello server (2 workers) with
//! statistics on (`<client> stat` set) and off, measured with wrk, alternating, medians.
//!
//! Prints `BENCH stats_overhead ratio=… on_rps=… off_rps=…` (goal ratio ≥ 0.97).
//! `BENCH_SECS` (default 5) and `BENCH_REPS` (default 5) shorten a trial run.

#![allow(clippy::expect_used, clippy::unwrap_used)]

mod support;

use std::path::Path;
use std::time::Duration;
use support::*;

fn config(dir: &Path, port: u16, stats: bool) -> std::path::PathBuf {
    let d = dir.display();
    // The stat object points at a closed port with a long report interval: every call is
    // recorded in shared memory, none of the (failing) reports happens during the run.
    let client = if stats {
        "<client>\nstat=tars.tarsstat.StatObj@tcp -h 127.0.0.1 -p 1 -t 1000\nreport-interval=600000\n</client>\n"
    } else {
        ""
    };
    let text = format!(
        "<tars>\n<application>\n<server>\napp=Bench\nserver=Stats\ndatapath={d}/data/\nlogpath={d}/log/\n\
         logLevel=ERROR\nworker_num=2\ntask_worker_num=1\n\
         <Bench.Stats.HttpObjAdapter>\nendpoint=tcp -h 127.0.0.1 -p {port} -t 60000\nprotocol=not_tars\n\
         servant=Bench.Stats.HttpObj\nmaxconns=100000\n</Bench.Stats.HttpObjAdapter>\n</server>\n{client}</application>\n</tars>\n"
    );
    let path = dir.join("stats.conf");
    std::fs::write(&path, text).expect("write config");
    path
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let secs = env_or("BENCH_SECS", 5);
    let reps = env_or("BENCH_REPS", 5) as usize;
    let Some(wrk_bin) = tool("wrk", "wrk") else {
        println!("BENCH stats_overhead skipped=missing_wrk (apt-get install wrk)");
        return;
    };
    let on_dir = tempfile::tempdir().expect("dir");
    let off_dir = tempfile::tempdir().expect("dir");
    let (on_port, off_port) = (free_port(), free_port());
    let mut on = Fg::start(&config(on_dir.path(), on_port, true));
    let mut off = Fg::start(&config(off_dir.path(), off_port, false));
    if wait_answer(on_port, Duration::from_secs(10)).is_none()
        || wait_answer(off_port, Duration::from_secs(10)).is_none()
    {
        println!("BENCH stats_overhead skipped=server_did_not_start");
        return;
    }
    wrk(&wrk_bin, 64, 1, on_port);
    wrk(&wrk_bin, 64, 1, off_port);
    let (mut onr, mut offr) = (Vec::new(), Vec::new());
    for rep in 0..reps {
        if rep % 2 == 0 {
            onr.push(wrk(&wrk_bin, 64, secs, on_port));
            offr.push(wrk(&wrk_bin, 64, secs, off_port));
        } else {
            offr.push(wrk(&wrk_bin, 64, secs, off_port));
            onr.push(wrk(&wrk_bin, 64, secs, on_port));
        }
    }
    eprintln!("stats on {onr:?} off {offr:?}");
    let (a, b) = (median(&mut onr), median(&mut offr));
    let ratio = if b > 0.0 { a / b } else { 0.0 };
    println!("BENCH stats_overhead ratio={ratio:.3} on_rps={a:.0} off_rps={b:.0}");
    on.stop_and_wait();
    off.stop_and_wait();
}
