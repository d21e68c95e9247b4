//! The dispatcher generated from Hello.tars, driven directly with request packets:
//! v1 and v3 answers, -3 for an unknown function, -1 for undecodable arguments, and
//! whole frames through `Reply::encode_frame`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[allow(dead_code)]
#[rustfmt::skip]
#[path = "generated/test_app.rs"]
mod test_app;

use std::collections::BTreeMap;

use tarsfork_tars::codec::{Bytes, TarsReader, TarsWriter};
use tarsfork_tars::packet::{
    RequestPacket, ResponsePacket, TupData, PACKET_ONEWAY, TARSSERVERDECODEERR,
    TARSSERVERNOFUNCERR, TARSSERVERSUCCESS,
};
use tarsfork_tars::proxy::{Current, Dispatch, Reply, ServantError};
use test_app::{hello_dispatch, HelloReq, HelloServant, HelloServer};

struct Greeter;

impl HelloServant for Greeter {
    fn test_hello(&mut self, _: &Current<'_>, s_in: &str) -> Result<(i32, String), ServantError> {
        if s_in == "fail" {
            return Err(ServantError::new(-99, "asked to fail"));
        }
        Ok((s_in.len() as i32, format!("hello {s_in}")))
    }

    fn test_struct(
        &mut self,
        current: &Current<'_>,
        req: &HelloReq,
    ) -> Result<(i32, Vec<String>, BTreeMap<String, String>), ServantError> {
        let greetings = (0..req.times)
            .map(|i| format!("{} {i}", req.name))
            .collect();
        let mut info = BTreeMap::new();
        info.insert("func".to_string(), current.func_name().to_string());
        Ok((req.lucky.iter().sum(), greetings, info))
    }
}

fn request(version: i16, func: &str, buffer: Vec<u8>) -> RequestPacket {
    RequestPacket {
        version,
        request_id: 41,
        message_type: 2,
        servant_name: "TestApp.HelloServer.HelloObj".into(),
        func_name: func.into(),
        buffer: Bytes(buffer),
        ..RequestPacket::default()
    }
}

fn v1_reply(reply: Reply) -> ResponsePacket {
    match reply {
        Reply::Tars(r) => r,
        other => panic!("expected a v1 reply, got {other:?}"),
    }
}

#[test]
fn v1_calls_answer_at_tags() {
    let mut w = TarsWriter::new();
    w.write(1, "bob");
    let r = v1_reply(hello_dispatch(
        &mut Greeter,
        &request(1, "testHello", w.into_bytes()),
    ));
    assert_eq!(
        (r.version, r.request_id, r.message_type, r.ret),
        (1, 41, 2, TARSSERVERSUCCESS)
    );
    let mut rd = TarsReader::new(&r.buffer);
    assert_eq!(rd.read_required::<i32>(0).unwrap(), 3);
    assert_eq!(rd.read_required::<String>(2).unwrap(), "hello bob");

    let mut w = TarsWriter::new();
    w.write(
        1,
        &HelloReq {
            name: "n".into(),
            times: 2,
            lucky: vec![1, 2],
        },
    );
    // The whole frame, as a server would send it.
    let frame = hello_dispatch(&mut Greeter, &request(1, "testStruct", w.into_bytes()))
        .encode_frame()
        .unwrap()
        .unwrap();
    assert_eq!(
        u32::from_be_bytes(frame[..4].try_into().unwrap()) as usize,
        frame.len()
    );
    let r = ResponsePacket::decode(&frame[4..]).unwrap();
    let mut rd = TarsReader::new(&r.buffer);
    assert_eq!(rd.read_required::<i32>(0).unwrap(), 3);
    assert_eq!(rd.read_required::<Vec<String>>(2).unwrap(), ["n 0", "n 1"]);
    let info: BTreeMap<String, String> = rd.read_required(3).unwrap();
    assert_eq!(info["func"], "testStruct");
}

#[test]
fn v3_calls_answer_by_name() {
    let mut d = TupData::new();
    d.put(
        "req",
        &HelloReq {
            name: "t".into(),
            ..HelloReq::default()
        },
    );
    let reply = hello_dispatch(&mut Greeter, &request(3, "testStruct", d.encode()));
    let Reply::Tup(r) = reply else {
        panic!("{reply:?}")
    };
    assert_eq!(
        (r.version, r.request_id, r.func_name.as_str()),
        (3, 41, "testStruct")
    );
    assert_eq!(r.tup_result().unwrap(), (0, ""));
    let out = r.tup_data().unwrap();
    assert_eq!(out.get_required::<i32>("").unwrap(), 0);
    assert_eq!(out.get_required::<i32>("tars_ret").unwrap(), 0);
    assert_eq!(
        out.get_required::<Vec<String>>("greetings").unwrap(),
        ["t 0"]
    );
    assert!(out.contains("info"));
}

#[test]
fn unknown_functions_get_minus_3() {
    for version in [1, 3] {
        let reply = hello_dispatch(
            &mut Greeter,
            &request(version, "testNothing", TupData::new().encode()),
        );
        assert_eq!(reply.ret(), Some(TARSSERVERNOFUNCERR), "v{version}");
    }
    let r = v1_reply(hello_dispatch(&mut Greeter, &request(1, "", vec![])));
    assert_eq!(r.ret, TARSSERVERNOFUNCERR);
    assert!(r.desc().contains("no function"), "{}", r.desc());
}

#[test]
fn undecodable_arguments_get_minus_1() {
    let garbage: &[&[u8]] = &[
        &[],                       // the argument is missing
        &[0x1C],                   // ZERO where a string is due
        &[0x16, 0x05, b'a'],       // string shorter than its length
        &[0x17, 0xFF, 0xFF, 0xFF], // STRING4 length cut short
        &[0x1E],                   // unknown type 14
        &[0x12, 0, 0, 0, 1],       // an int, not a string
    ];
    for g in garbage {
        let reply = hello_dispatch(&mut Greeter, &request(1, "testHello", g.to_vec()));
        assert_eq!(reply.ret(), Some(TARSSERVERDECODEERR), "{g:02x?}");
    }
    // v3: a buffer that is no TUP map, a map without the argument, a wrong type inside.
    let mut wrong = TupData::new();
    wrong.put("sIn", &7i32);
    for buffer in [vec![0x08, 0x0C], TupData::new().encode(), wrong.encode()] {
        let reply = hello_dispatch(&mut Greeter, &request(3, "testHello", buffer.clone()));
        assert_eq!(reply.ret(), Some(TARSSERVERDECODEERR), "{buffer:02x?}");
    }
    // A struct argument missing its required field.
    let mut w = TarsWriter::new();
    w.write_struct_begin(1);
    w.write(1, &5i32);
    w.write_struct_end();
    let reply = hello_dispatch(&mut Greeter, &request(1, "testStruct", w.into_bytes()));
    assert_eq!(reply.ret(), Some(TARSSERVERDECODEERR));
    // An unsupported version.
    let reply = hello_dispatch(&mut Greeter, &request(7, "testHello", vec![]));
    assert_eq!(reply.ret(), Some(TARSSERVERDECODEERR));
}

#[test]
fn servant_errors_and_oneway() {
    let mut w = TarsWriter::new();
    w.write(1, "fail");
    let buf = w.into_bytes();
    let r = v1_reply(hello_dispatch(
        &mut Greeter,
        &request(1, "testHello", buf.clone()),
    ));
    assert_eq!((r.ret, r.desc()), (-99, "asked to fail"));
    let mut d = TupData::new();
    d.put("sIn", "fail");
    let reply = hello_dispatch(&mut Greeter, &request(3, "testHello", d.encode()));
    let Reply::Tup(r) = reply else { panic!() };
    assert_eq!(r.tup_result().unwrap(), (-99, "asked to fail"));

    let mut req = request(1, "testHello", buf);
    req.packet_type = PACKET_ONEWAY;
    assert_eq!(HelloServer(Greeter).dispatch(&req), Reply::None);
    req.func_name = "unknown".into();
    assert_eq!(
        HelloServer(Greeter).dispatch(&req),
        Reply::None,
        "oneway: no reply even for errors"
    );
    assert_eq!(Reply::None.encode_frame().unwrap(), None);
}
