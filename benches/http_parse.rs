//! Micro-bench of the HTTP/1.1 protocol layer on the hot path: a wrk-style
//! `GET / HTTP/1.1` on a keep-alive connection answered with `hello`.
//!
//! Run: `cargo bench -p tarsfork --bench http_parse`. Prints one `BENCH` line per case
//! (median of 7 runs):
//! - `http_parse`: bytes into a `ConnBuffer` with `feed`, as the event worker's HTTP
//!   protocol (`src/worker/http.rs`) puts each read in, request out, buffers recycled;
//! - `http_roundtrip`: the same plus `Response::text(200, "hello")` serialized with a
//!   cached `Date`, i.e. all the protocol work a worker does per request;
//! - `http_pipelined16`: 16 pipelined requests per read, per-request cost.

use std::hint::black_box;
use std::time::{Instant, SystemTime};

use tarsfork::http::{ConnBuffer, HttpDate, Limits, Response};

/// What wrk sends for `wrk http://127.0.0.1:8080/`.
const WRK_GET: &[u8] = b"GET / HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n";

const ITERS: usize = 400_000;
const RUNS: usize = 7;

/// Runs `iters` iterations of `work` `RUNS` times; returns the median ns per request.
fn measure(requests_per_iter: usize, mut work: impl FnMut() -> usize) -> f64 {
    let mut samples = Vec::with_capacity(RUNS);
    for _ in 0..RUNS {
        let started = Instant::now();
        let mut served = 0;
        for _ in 0..ITERS / requests_per_iter {
            served += work();
        }
        let ns = started.elapsed().as_nanos() as f64;
        samples.push(ns / served.max(1) as f64);
    }
    samples.sort_by(f64::total_cmp);
    samples.get(RUNS / 2).copied().unwrap_or(f64::NAN)
}

fn main() {
    let mut conn = ConnBuffer::new(Limits::default());
    let parse = measure(1, || {
        conn.feed(black_box(WRK_GET));
        let mut n = 0;
        while let Ok(Some(req)) = conn.next_request() {
            black_box(req.path());
            conn.recycle(req);
            n += 1;
        }
        n
    });
    println!("BENCH http_parse ns_per_req={parse:.1}");

    let mut conn = ConnBuffer::new(Limits::default());
    let mut out = Vec::with_capacity(64 * 1024);
    let date = HttpDate::new(SystemTime::now());
    let roundtrip = measure(1, || {
        conn.feed(black_box(WRK_GET));
        let mut n = 0;
        while let Ok(Some(req)) = conn.next_request() {
            let mut meta = req.response_meta();
            meta.date = Some(date.as_str());
            let response = if req.path() == "/" {
                Response::text(200, "hello")
            } else {
                Response::new(404)
            };
            black_box(response.write_to(&mut out, meta));
            conn.recycle(req);
            n += 1;
        }
        black_box(&out);
        out.clear();
        n
    });
    println!(
        "BENCH http_roundtrip ns_per_req={roundtrip:.1} req_per_s_per_core={:.0}",
        1e9 / roundtrip
    );

    let batch: Vec<u8> = WRK_GET.repeat(16);
    let mut conn = ConnBuffer::new(Limits::default());
    let pipelined = measure(16, || {
        conn.feed(black_box(&batch));
        let mut n = 0;
        while let Ok(Some(req)) = conn.next_request() {
            let meta = req.response_meta();
            black_box(Response::text(200, "hello").write_to(&mut out, meta));
            conn.recycle(req);
            n += 1;
        }
        out.clear();
        n
    });
    println!("BENCH http_pipelined16 ns_per_req={pipelined:.1}");
}
