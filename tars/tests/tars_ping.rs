//! Every servant answers TarsCpp's built-in `tars_ping`, whatever its interface: the
//! request a TarsCpp 3.0.22 proxy sends (captured in `fixtures/tarscpp-vectors.json`)
//! goes through a generated dispatcher whose IDL has no `tars_ping`, and the reply must
//! be the bytes TarsCpp's own server sent back.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[allow(dead_code)]
#[rustfmt::skip]
#[path = "generated/test_app.rs"]
mod test_app;

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::Value;
use tarsfork_tars::frame::HEADER_LEN;
use tarsfork_tars::packet::{RequestPacket, TARSSERVERSUCCESS, VERSION_TUP};
use tarsfork_tars::proxy::{Current, Dispatch, Reply, ServantError, TARS_PING};
use test_app::{HelloReq, HelloServant, HelloServer};

/// A Hello servant that counts how often it was reached: a ping must not reach it.
#[derive(Default)]
struct Counting {
    calls: usize,
}

impl HelloServant for Counting {
    fn test_hello(&mut self, _: &Current<'_>, s_in: &str) -> Result<(i32, String), ServantError> {
        self.calls += 1;
        Ok((0, s_in.to_owned()))
    }

    fn test_struct(
        &mut self,
        _: &Current<'_>,
        _: &HelloReq,
    ) -> Result<(i32, Vec<String>, BTreeMap<String, String>), ServantError> {
        self.calls += 1;
        Ok((0, Vec::new(), BTreeMap::new()))
    }
}

fn from_hex(hex: &str) -> Vec<u8> {
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect()
}

/// The captured frames whose `function` (requests) or note (the reply after it) is
/// about tars_ping: (request frame, reply frame).
fn captured_ping() -> (Vec<u8>, Vec<u8>) {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tarscpp-vectors.json");
    let file: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let vectors = file["vectors"].as_array().unwrap();
    let at = vectors
        .iter()
        .position(|v| v["function"] == TARS_PING && v["group"] == "tars-request")
        .expect("the fixture holds TarsCpp's tars_ping request");
    let reply = &vectors[at + 1];
    assert_eq!(reply["group"], "tars-response");
    assert!(reply["note"].as_str().unwrap().contains("tars_ping"));
    (
        from_hex(vectors[at]["hex"].as_str().unwrap()),
        from_hex(reply["hex"].as_str().unwrap()),
    )
}

#[test]
fn tarscpp_ping_gets_tarscpps_reply_from_a_servant_without_tars_ping() {
    let (request_frame, reply_frame) = captured_ping();
    let request = RequestPacket::decode(&request_frame[HEADER_LEN..]).unwrap();
    assert_eq!(request.func_name, TARS_PING);
    let mut server = HelloServer(Counting::default());
    let reply = server.dispatch(&request);
    assert_eq!(reply.ret(), Some(TARSSERVERSUCCESS));
    // Every byte is comparable: the reply carries the request's id, version and type,
    // and nothing of the time or the machine.
    assert_eq!(reply.encode_frame().unwrap().unwrap(), reply_frame);
    assert_eq!(server.0.calls, 0, "a ping does not reach the servant");
}

#[test]
fn tup_ping_is_answered_with_success_and_an_empty_map() {
    let (request_frame, _) = captured_ping();
    let mut request = RequestPacket::decode(&request_frame[HEADER_LEN..]).unwrap();
    request.version = VERSION_TUP;
    let reply = HelloServer(Counting::default()).dispatch(&request);
    let Reply::Tup(packet) = &reply else {
        panic!("a TUP ping gets a TUP reply, got {reply:?}");
    };
    assert_eq!(packet.tup_result().unwrap(), (TARSSERVERSUCCESS, ""));
    assert_eq!(packet.request_id, request.request_id);
    assert!(packet.tup_data().unwrap().items().is_empty());
}
