//! Bench of the TARS codec on the stat report a server sends every minute: a
//! `map<StatMicMsgHead, StatMicMsgBody>` of 1000 entries (the argument of
//! `StatF.reportMicMsg`), encoded and decoded by this crate and, in the same run, by
//! @tars/stream 2.0.3 in node (`tests/interop/codec_bench.js`; the bench runs
//! `npm ci` there when the packages are missing).
//!
//! Run: `cargo bench -p tarsfork --bench tars_codec`. Prints
//! `BENCH tars_codec_statmsg encode_us=… decode_us=… tarsjs_encode_us=… tarsjs_decode_us=… ratio=…`
//! with medians per whole map; `ratio` is Tars.js time over ours for encode + decode
//! together (`encode_ratio` / `decode_ratio` split it).

use std::collections::BTreeMap;
use std::error::Error;
use std::hint::black_box;
use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tarsfork_tars::codec::{TarsReader, TarsWriter};

#[path = "../tars/tests/support/structs.rs"]
mod structs;
mod support;

use structs::{StatMicMsgBody, StatMicMsgHead};

type StatMap = BTreeMap<StatMicMsgHead, StatMicMsgBody>;

const ENTRIES: usize = 1000;
const ITERS: usize = 50;
const RUNS: usize = 7;
const JS_ITERS: usize = 5;
const JS_RUNS: usize = 5;

/// 1000 distinct call records, shaped like what a busy server reports.
fn stat_map() -> StatMap {
    (0..ENTRIES)
        .map(|i| {
            let head = StatMicMsgHead {
                master_name: format!("TestApp.Caller{}", i % 13),
                slave_name: "TestApp.HelloServer".to_owned(),
                interface_name: format!("method{}", i % 97),
                master_ip: format!("10.0.{}.{}", i % 7, i % 251),
                slave_ip: "10.1.2.3".to_owned(),
                slave_port: 10000 + (i % 5) as i32,
                return_value: if i % 17 == 0 { -7 } else { 0 },
                slave_set_name: String::new(),
                slave_set_area: String::new(),
                slave_set_id: String::new(),
                tars_version: "3.0.22".to_owned(),
            };
            let count = (i * 37 % 5000) as i32;
            let body = StatMicMsgBody {
                count,
                timeout_count: count / 100,
                exec_count: count / 50,
                interval_count: [
                    (100, count / 2),
                    (200, count / 4),
                    (500, count / 8),
                    (1000, 3),
                ]
                .into_iter()
                .collect(),
                total_rsp_time: i64::from(count) * 1234,
                max_rsp_time: 900 + (i % 100) as i32,
                min_rsp_time: 1 + (i % 3) as i32,
            };
            (head, body)
        })
        .collect()
}

/// Median microseconds per call of `work` over `RUNS` runs of `ITERS` calls.
fn measure(mut work: impl FnMut() -> usize) -> f64 {
    let mut samples: Vec<f64> = (0..RUNS)
        .map(|_| {
            let started = Instant::now();
            for _ in 0..ITERS {
                black_box(work());
            }
            started.elapsed().as_secs_f64() * 1e6 / ITERS as f64
        })
        .collect();
    samples.sort_by(f64::total_cmp);
    samples[RUNS / 2]
}

fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn from_hex(hex: &str) -> Result<Vec<u8>, Box<dyn Error>> {
    (0..hex.len())
        .step_by(2)
        .map(|i| {
            let pair = hex.get(i..i + 2).ok_or("odd hex length")?;
            Ok(u8::from_str_radix(pair, 16)?)
        })
        .collect()
}

/// Runs codec_bench.js on `encoded`; returns its JSON answer. Kills node (by its pid)
/// after two minutes.
fn run_tarsjs(encoded: &[u8]) -> Result<serde_json::Value, Box<dyn Error>> {
    let dir = support::interop_peers()?;
    let input = serde_json::json!({"hex": to_hex(encoded), "iters": JS_ITERS, "runs": JS_RUNS});
    let mut child = Command::new("node")
        .arg("codec_bench.js")
        .current_dir(&dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("cannot start node: {e}"))?;
    let mut stdin = child.stdin.take().ok_or("node stdin")?;
    stdin.write_all(serde_json::to_string(&input)?.as_bytes())?;
    drop(stdin);
    let mut stdout = child.stdout.take().ok_or("node stdout")?;
    let reader = std::thread::spawn(move || {
        let mut out = String::new();
        stdout.read_to_string(&mut out).map(|_| out)
    });
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() > deadline {
            child.kill()?;
            child.wait()?;
            return Err("codec_bench.js took over 120 s; killed".into());
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let out = reader.join().map_err(|_| "stdout reader panicked")??;
    if !status.success() {
        return Err(format!("codec_bench.js failed: {status}").into());
    }
    Ok(serde_json::from_str(&out)?)
}

fn main() -> Result<(), Box<dyn Error>> {
    let map = stat_map();
    if map.len() != ENTRIES {
        return Err("stat map keys collided".into());
    }

    let mut w = TarsWriter::with_capacity(256 * 1024);
    w.write(0, &map);
    let encoded = w.into_bytes();
    let back: StatMap = TarsReader::new(&encoded).read_required(0)?;
    if back != map {
        return Err("round trip changed the map".into());
    }

    let mut w = TarsWriter::with_capacity(encoded.len());
    let encode_us = measure(|| {
        w.clear();
        w.write(0, black_box(&map));
        w.len()
    });
    let decode_us = measure(|| {
        TarsReader::new(black_box(&encoded))
            .read_required::<StatMap>(0)
            .map_or(0, |m| m.len())
    });

    let js = run_tarsjs(&encoded)?;
    let js_encode_us = js["encode_us"].as_f64().ok_or("no encode_us from node")?;
    let js_decode_us = js["decode_us"].as_f64().ok_or("no decode_us from node")?;
    // @tars/stream must have understood the same map: its bytes decode to it here.
    let js_bytes = from_hex(js["hex"].as_str().ok_or("no hex from node")?)?;
    let js_map: StatMap = TarsReader::new(&js_bytes).read_required(0)?;
    if js_map != map {
        return Err("@tars/stream's encoding decodes to a different map".into());
    }

    let ratio = (js_encode_us + js_decode_us) / (encode_us + decode_us);
    println!(
        "BENCH tars_codec_statmsg encode_us={encode_us:.1} decode_us={decode_us:.1} \
         tarsjs_encode_us={js_encode_us:.1} tarsjs_decode_us={js_decode_us:.1} ratio={ratio:.1} \
         encode_ratio={:.1} decode_ratio={:.1} entries={ENTRIES} bytes={}",
        js_encode_us / encode_us,
        js_decode_us / decode_us,
        encoded.len()
    );
    Ok(())
}
