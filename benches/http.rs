//! HTTP throughput: tarsfork (2 workers) against nginx (worker_processes 2) serving
//! `hello` on loopback, measured with wrk, the servers alternating, 5 reps per case.
//!
//! Prints `BENCH http_c64 tarsfork_rps=… nginx_rps=… ratio=…` (and `_c256`).
//! `BENCH_SECS` (default 10) and `BENCH_REPS` (default 5) shorten a trial run.

#![allow(clippy::expect_used, clippy::unwrap_used)]

mod support;

use std::process::{Command, Stdio};
use std::time::Duration;
use support::*;

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let secs = env_or("BENCH_SECS", 10);
    let reps = env_or("BENCH_REPS", 5) as usize;
    let (Some(wrk_bin), Some(nginx_bin)) = (tool("wrk", "wrk"), tool("nginx", "nginx")) else {
        println!("BENCH http skipped=missing_tools (apt-get install wrk nginx)");
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");

    // tarsfork: 2 workers, no task workers, foreground.
    let tf_port = free_port();
    let config = write_config(dir.path(), tf_port, 2, 0, false);
    let mut tf = Fg::start(&config);
    if wait_answer(tf_port, Duration::from_secs(10)).is_none() {
        println!("BENCH http skipped=tarsfork_did_not_start");
        return;
    }

    // nginx: 2 workers, `return 200 "hello"`, no access log.
    let ng_port = free_port();
    let prefix = dir.path().join("nginx");
    std::fs::create_dir_all(prefix.join("logs")).expect("nginx dir");
    let conf = prefix.join("nginx.conf");
    std::fs::write(
        &conf,
        format!(
            "worker_processes 2;\npid {p}/nginx.pid;\nerror_log {p}/logs/error.log;\n\
             events {{ worker_connections 4096; }}\n\
             http {{\n  access_log off;\n  client_body_temp_path {p}/body;\n  proxy_temp_path {p}/proxy;\n\
               fastcgi_temp_path {p}/fcgi;\n  uwsgi_temp_path {p}/uwsgi;\n  scgi_temp_path {p}/scgi;\n\
               server {{\n    listen 127.0.0.1:{ng_port};\n    location / {{ return 200 \"hello\"; }}\n  }}\n}}\n",
            p = prefix.display()
        ),
    )
    .expect("nginx conf");
    let mut nginx = Command::new(&nginx_bin)
        .args([
            "-p",
            &prefix.display().to_string(),
            "-c",
            &conf.display().to_string(),
            "-g",
            "daemon off;",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn nginx");
    if wait_answer(ng_port, Duration::from_secs(10)).is_none() {
        println!("BENCH http skipped=nginx_did_not_start");
        let _ = nginx.kill();
        let _ = nginx.wait();
        return;
    }

    // Warm both up.
    wrk(&wrk_bin, 64, 1, tf_port);
    wrk(&wrk_bin, 64, 1, ng_port);
    for conns in [64u32, 256] {
        let mut tfr = Vec::new();
        let mut ngr = Vec::new();
        for rep in 0..reps {
            // Alternate which server goes first so drift hits both alike.
            if rep % 2 == 0 {
                tfr.push(wrk(&wrk_bin, conns, secs, tf_port));
                ngr.push(wrk(&wrk_bin, conns, secs, ng_port));
            } else {
                ngr.push(wrk(&wrk_bin, conns, secs, ng_port));
                tfr.push(wrk(&wrk_bin, conns, secs, tf_port));
            }
        }
        eprintln!("c{conns}: tarsfork {tfr:?} nginx {ngr:?}");
        let t = median(&mut tfr);
        let n = median(&mut ngr);
        let ratio = if n > 0.0 { t / n } else { 0.0 };
        println!("BENCH http_c{conns} tarsfork_rps={t:.0} nginx_rps={n:.0} ratio={ratio:.2}");
    }
    kill(nginx.id() as i32, libc::SIGQUIT);
    let _ = nginx.wait();
    tf.stop_and_wait();
}
