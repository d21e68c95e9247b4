//! What recording call statistics costs: the same HTTP hello server (2 workers) with
//! statistics on (`<client> stat` set) and off, measured with wrk, alternating, medians.
//!
//! Each rep runs the two back to back (order alternating), and `ratio` is the median
//! over reps of on/off: pairs taken close together share the machine's load of the
//! moment, which on a shared 2-core VM moves single runs by ±10 %. `per_core_ratio`
//! compares requests per second of server CPU (all the server's processes, from
//! /proc): the cost of recording itself, independent of how wrk and the servers share
//! the cores.
//!
//! Prints `BENCH stats_overhead ratio=… on_rps=… off_rps=… per_core_ratio=…` (goal
//! ratio ≥ 0.97). `BENCH_SECS` (default 3) and `BENCH_REPS` (default 9) change the run.

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
    let secs = env_or("BENCH_SECS", 3);
    let reps = env_or("BENCH_REPS", 9) as usize;
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
    let tree = |fg: &Fg| -> Vec<i32> {
        let mut pids = vec![fg.pid()];
        for role in ["manager", "worker"] {
            pids.extend(fg.pids(role));
        }
        pids
    };
    let (on_pids, off_pids) = (tree(&on), tree(&off));
    // One run: (requests per second, requests per second of server CPU).
    let run = |port: u16, pids: &[i32]| -> (f64, f64) {
        let cpu0 = cpu_of(pids);
        let rps = wrk(&wrk_bin, 64, secs, port);
        let cpu = cpu_of(pids) - cpu0;
        (
            rps,
            if cpu > 0.0 {
                rps * secs as f64 / cpu
            } else {
                0.0
            },
        )
    };
    run(on_port, &on_pids);
    run(off_port, &off_pids);
    let (mut onr, mut offr, mut pairs, mut core_pairs) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for rep in 0..reps {
        let (a, b) = if rep % 2 == 0 {
            let a = run(on_port, &on_pids);
            (a, run(off_port, &off_pids))
        } else {
            let b = run(off_port, &off_pids);
            (run(on_port, &on_pids), b)
        };
        onr.push(a.0);
        offr.push(b.0);
        pairs.push(if b.0 > 0.0 { a.0 / b.0 } else { 0.0 });
        core_pairs.push(if b.1 > 0.0 { a.1 / b.1 } else { 0.0 });
    }
    eprintln!("stats on {onr:?} off {offr:?} on/off per rep {pairs:.3?} per core {core_pairs:.3?}");
    let (a, b) = (median(&mut onr), median(&mut offr));
    let ratio = median(&mut pairs);
    let per_core = median(&mut core_pairs);
    println!(
        "BENCH stats_overhead ratio={ratio:.3} on_rps={a:.0} off_rps={b:.0} \
         per_core_ratio={per_core:.3} reps={reps} secs={secs}"
    );
    on.stop_and_wait();
    off.stop_and_wait();
}
