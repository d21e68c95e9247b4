//! The user-space work of one Tars echo request in a worker, without sockets: split
//! nothing, decode the request, dispatch `testHello` to a generated `HelloServer`,
//! append the reply frame. Measured two ways in the same run:
//!
//! - `ns_per_request`: the worker's path (`RequestPacket::decode_reusing`, then
//!   `Reply::append_frame`), which takes the straight-line decoder and encoder;
//! - `general_ns_per_request`: the general codec (`RequestPacket::decode`, then
//!   `Reply::encode_frame`), which never takes them.
//!
//! Dispatch is the same in both. Prints
//! `BENCH tars_serve ns_per_request=… general_ns_per_request=… ratio=…`, medians of
//! `RUNS` runs. Run: `cargo bench --bench tars_serve`.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::Instant;

use tarsfork_tars::codec::{Bytes, TarsWriter};
use tarsfork_tars::packet::RequestPacket;
use tarsfork_tars::proxy::{Current, Dispatch, ServantError};

#[allow(clippy::all, dead_code)]
#[rustfmt::skip]
#[path = "../bin/generated/test_app.rs"]
mod test_app;

use test_app::{HelloReq, HelloServant, HelloServer};

const REQUESTS: u32 = 1_000_000;
const RUNS: usize = 7;

/// The demo's echo, as `bin/tarsfork.rs` serves it.
struct Echo;

impl HelloServant for Echo {
    fn test_hello(&mut self, _: &Current<'_>, s_in: &str) -> Result<(i32, String), ServantError> {
        Ok((0, s_in.to_string()))
    }

    fn test_struct(
        &mut self,
        _: &Current<'_>,
        _: &HelloReq,
    ) -> Result<(i32, Vec<String>, BTreeMap<String, String>), ServantError> {
        Err(ServantError::new(-1, "not benched"))
    }
}

/// The body (frame without its length) of the request `benches/tars_echo.rs` sends.
fn request_body() -> Vec<u8> {
    let mut w = TarsWriter::new();
    w.write(1, "bench-12-3");
    RequestPacket {
        version: 1,
        request_id: 7,
        servant_name: "TestApp.HelloServer.HelloObj".into(),
        func_name: "testHello".into(),
        buffer: Bytes(w.into_bytes()),
        timeout: 3000,
        ..RequestPacket::default()
    }
    .encode_body()
}

/// Median nanoseconds per request of `one` over `RUNS` runs.
fn median_ns(mut one: impl FnMut()) -> f64 {
    let mut runs: Vec<f64> = (0..RUNS)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..REQUESTS {
                one();
            }
            t.elapsed().as_nanos() as f64 / f64::from(REQUESTS)
        })
        .collect();
    runs.sort_by(f64::total_cmp);
    runs[RUNS / 2]
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let body = request_body();
    let mut server = HelloServer(Echo);
    let mut request = RequestPacket::default();
    let mut out = Vec::with_capacity(1 << 16);
    let worker = median_ns(|| {
        request.decode_reusing(&body).unwrap();
        let reply = server.dispatch(&request);
        reply.append_frame(&mut out).unwrap();
        if out.len() > 60_000 {
            out.clear();
        }
    });
    let general = median_ns(|| {
        let request = RequestPacket::decode(&body).unwrap();
        let reply = server.dispatch(&request);
        black_box(reply.encode_frame().unwrap());
    });
    println!(
        "BENCH tars_serve ns_per_request={worker:.1} general_ns_per_request={general:.1} ratio={:.2}",
        general / worker
    );
}
