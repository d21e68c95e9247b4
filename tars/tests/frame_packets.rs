//! Framing (the splitter as a non-blocking reader drives it) and packet building:
//! oneway, TUP requests and replies, result codes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::VecDeque;
use std::io::{self, Read};

use tarsfork_tars::codec::{Bytes, TarsReader, TarsWriter};
use tarsfork_tars::frame::{encode_frame, FrameError, FrameSplitter, DEFAULT_MAX_FRAME};
use tarsfork_tars::packet::*;

fn frames(bodies: &[&[u8]]) -> Vec<u8> {
    bodies
        .iter()
        .flat_map(|b| encode_frame(b).unwrap())
        .collect()
}

/// Takes every complete frame out of the splitter.
fn drain(s: &mut FrameSplitter) -> Result<Vec<Vec<u8>>, FrameError> {
    let mut out = Vec::new();
    while let Some(f) = s.next_frame()? {
        out.push(f.to_vec());
    }
    Ok(out)
}

#[test]
fn length_counts_itself() {
    assert_eq!(encode_frame(b"").unwrap(), [0, 0, 0, 4]);
    assert_eq!(encode_frame(b"ab").unwrap(), [0, 0, 0, 6, b'a', b'b']);
}

#[test]
fn several_frames_in_one_read_and_frames_split_across_reads() {
    let bodies: [&[u8]; 4] = [b"one", b"", b"three!", &[7u8; 300]];
    let stream = frames(&bodies);
    // All at once.
    let mut s = FrameSplitter::default();
    s.feed(&stream);
    assert_eq!(drain(&mut s).unwrap(), bodies.map(<[u8]>::to_vec));
    assert!(!s.has_partial());
    // One byte at a time: each frame appears exactly when its last byte arrives.
    let mut s = FrameSplitter::default();
    let mut got = Vec::new();
    for b in &stream {
        s.feed(std::slice::from_ref(b));
        got.extend(drain(&mut s).unwrap());
    }
    assert_eq!(got, bodies.map(<[u8]>::to_vec));
    // Uneven chunks.
    for chunk in [2, 5, 7, 64] {
        let mut s = FrameSplitter::default();
        let mut got = Vec::new();
        for c in stream.chunks(chunk) {
            s.feed(c);
            got.extend(drain(&mut s).unwrap());
        }
        assert_eq!(got, bodies.map(<[u8]>::to_vec), "chunk {chunk}");
    }
}

#[test]
fn bad_lengths_are_errors_as_soon_as_the_prefix_arrives() {
    for len in [0u32, 1, 3] {
        let mut s = FrameSplitter::default();
        s.feed(&len.to_be_bytes());
        assert_eq!(s.next_frame(), Err(FrameError::TooShort { len }));
        // The stream stays failed even if more bytes come.
        s.feed(&encode_frame(b"x").unwrap());
        assert!(s.next_frame().is_err());
    }
    let mut s = FrameSplitter::new(100);
    s.feed(&101u32.to_be_bytes());
    assert_eq!(
        s.next_frame(),
        Err(FrameError::TooLong { len: 101, max: 100 })
    );
    let mut s = FrameSplitter::new(100);
    s.feed(&u32::MAX.to_be_bytes());
    assert!(matches!(s.next_frame(), Err(FrameError::TooLong { .. })));
    // Exactly the maximum is fine.
    let mut s = FrameSplitter::new(100);
    s.feed(&encode_frame(&[1u8; 96]).unwrap());
    assert_eq!(s.next_frame().unwrap().map(<[u8]>::len), Some(96));
    // A good frame before a bad length is still delivered.
    let mut s = FrameSplitter::default();
    let mut bytes = encode_frame(b"ok").unwrap();
    bytes.extend_from_slice(&[0, 0, 0, 2]);
    s.feed(&bytes);
    assert_eq!(s.next_frame().unwrap(), Some(&b"ok"[..]));
    assert!(s.next_frame().is_err());
    assert!(FrameError::TooShort { len: 2 }
        .to_string()
        .contains("below 4"));
}

/// A non-blocking source: hands out scripted chunks, `WouldBlock` between them.
struct Script(VecDeque<Option<Vec<u8>>>);

impl Read for Script {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.0.pop_front() {
            None => Ok(0),
            Some(None) => Err(io::ErrorKind::WouldBlock.into()),
            Some(Some(mut chunk)) => {
                let n = chunk.len().min(buf.len());
                buf[..n].copy_from_slice(&chunk[..n]);
                if n < chunk.len() {
                    self.0.push_front(Some(chunk.split_off(n)));
                }
                Ok(n)
            }
        }
    }
}

#[test]
fn read_from_drives_a_non_blocking_source() {
    let big = vec![9u8; 40_000];
    let bodies: [&[u8]; 3] = [b"a", &big, b"c"];
    let stream = frames(&bodies);
    let mut script = VecDeque::new();
    for c in stream.chunks(3000) {
        script.push_back(Some(c.to_vec()));
        script.push_back(None);
    }
    let mut src = Script(script);
    let mut s = FrameSplitter::new(DEFAULT_MAX_FRAME);
    let mut got = Vec::new();
    loop {
        match s.read_from(&mut src) {
            Ok(0) => break,
            Ok(_) => got.extend(drain(&mut s).unwrap()),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) => panic!("{e}"),
        }
        // Never holds much more than one frame plus a read chunk.
        assert!(s.buffered() <= 40_004 + 16 * 1024);
    }
    assert_eq!(got, bodies.map(<[u8]>::to_vec));
    assert!(!s.has_partial());
}

fn sample_request() -> RequestPacket {
    let mut w = TarsWriter::new();
    w.write_str(1, "hello");
    RequestPacket {
        version: VERSION_TARS,
        packet_type: PACKET_ONEWAY,
        message_type: 0,
        request_id: 77,
        servant_name: "TestApp.HelloServer.HelloObj".into(),
        func_name: "testHello".into(),
        buffer: Bytes(w.into_bytes()),
        timeout: 3000,
        context: [("k".to_owned(), "v".to_owned())].into(),
        status: Default::default(),
    }
}

#[test]
fn oneway_request_round_trips_through_a_frame() {
    let req = sample_request();
    let frame = req.encode_frame().unwrap();
    let mut s = FrameSplitter::default();
    s.feed(&frame);
    let body = s.next_frame().unwrap().unwrap();
    assert_eq!(body, req.encode_body().as_slice());
    let back = RequestPacket::decode(body).unwrap();
    assert!(back.is_oneway());
    assert_eq!(back, req);
}

#[test]
fn v1_reply_and_error_codes() {
    let req = sample_request();
    let mut w = TarsWriter::new();
    w.write_i32(0, 0);
    w.write_str(2, "hello");
    let rsp = ResponsePacket::reply_to(&req, TARSSERVERSUCCESS, w.into_bytes());
    let back = ResponsePacket::decode(&rsp.encode_body()).unwrap();
    assert_eq!(back, rsp);
    assert_eq!(
        (back.request_id, back.result_desc.as_deref(), back.desc()),
        (77, None, "")
    );
    let codes = [
        (0, "TARSSERVERSUCCESS"),
        (-1, "TARSSERVERDECODEERR"),
        (-2, "TARSSERVERENCODEERR"),
        (-3, "TARSSERVERNOFUNCERR"),
        (-4, "TARSSERVERNOSERVANTERR"),
        (-5, "TARSSERVERRESETGRID"),
        (-6, "TARSSERVERQUEUETIMEOUT"),
        (-7, "TARSASYNCCALLTIMEOUT"),
        (-8, "TARSINVOKETIMEOUT"),
        (-9, "TARSPROXYCONNECTERR"),
        (-10, "TARSSERVEROVERLOAD"),
        (-11, "TARSADAPTERNULL"),
        (-12, "TARSINVOKEBYINVALIDESET"),
        (-13, "TARSCLIENTDECODEERR"),
        (-99, "TARSSERVERUNKNOWNERR"),
    ];
    for (code, name) in codes {
        assert_eq!(ret_name(code), name);
    }
    assert_eq!(TARSSERVERNOFUNCERR, -3);
    assert_eq!(TARSSERVERUNKNOWNERR, -99);
}

#[test]
fn tup_request_and_reply_carry_named_parameters_and_status() {
    let mut args = TupData::new();
    args.put("sIn", "hello");
    args.put("n", &5i64);
    let req = RequestPacket::tup_request(9, "App.S.Obj", "f", &args, 1000);
    let req = RequestPacket::decode(&req.encode_body()).unwrap();
    assert_eq!(req.version, VERSION_TUP);
    let data = req.tup_data().unwrap();
    assert_eq!(data.get_required::<String>("sIn").unwrap(), "hello");
    assert_eq!(data.get::<i64>("n").unwrap(), Some(5));
    assert_eq!(data.get::<i64>("absent").unwrap(), None);
    assert!(matches!(
        data.get_required::<i64>("absent"),
        Err(PacketError::MissingParam { .. })
    ));
    assert!(matches!(
        data.get::<i32>("sIn"),
        Err(PacketError::Param { .. })
    ));

    let mut out = TupData::new();
    out.put("", &-1i32);
    out.put("sOut", "x");
    let reply = req.tup_reply(TARSSERVERNOFUNCERR, "no such function", &out);
    let reply = RequestPacket::decode(&reply.encode_body()).unwrap();
    assert_eq!((reply.request_id, reply.version), (9, VERSION_TUP));
    assert_eq!(reply.status[STATUS_RESULT_CODE], "-3");
    assert_eq!(reply.tup_result().unwrap(), (-3, "no such function"));
    let back = reply.tup_data().unwrap();
    assert_eq!(back.get_required::<i32>("").unwrap(), -1);
    // The map's bytes: each value is its item encoded alone at tag 0.
    let raw = &back.items()["sOut"];
    assert_eq!(
        TarsReader::new(raw).read_required::<String>(0).unwrap(),
        "x"
    );

    let mut bad = reply.clone();
    bad.status.insert(STATUS_RESULT_CODE.into(), "x1".into());
    assert!(matches!(
        bad.tup_result(),
        Err(PacketError::BadResultCode(_))
    ));
    // Garbage is a decode error naming what was decoded.
    let err = RequestPacket::decode(&[0x10]).unwrap_err();
    assert!(err.to_string().contains("RequestPacket"), "{err}");
}

#[test]
fn borrowed_request_decode_copies_nothing_and_matches_the_owned_one() {
    let req = sample_request();
    let body = req.encode_body();
    let view = RequestPacketRef::decode(&body).unwrap();
    assert!(view.is_oneway());
    assert_eq!(
        (view.servant_name, view.func_name),
        ("TestApp.HelloServer.HelloObj", "testHello")
    );
    // The buffer and names point into the body itself.
    let range = body.as_ptr_range();
    assert!(range.contains(&view.buffer.as_ptr()));
    assert!(range.contains(&view.servant_name.as_ptr()));
    assert_eq!(view.buffer, req.buffer.as_slice());
    assert_eq!(view.clone().into_owned(), req);
    assert_eq!(RequestPacket::decode(&body).unwrap(), req);
    // Same errors as the owned decoder.
    let cut = &body[..body.len() - 3];
    assert_eq!(
        RequestPacketRef::decode(cut).unwrap_err(),
        RequestPacket::decode(cut).unwrap_err()
    );
}

#[test]
fn shrink_keeps_buffered_bytes_and_releases_the_rest() {
    let mut s = FrameSplitter::default();
    let big = encode_frame(&[5u8; 100_000]).unwrap();
    let small = encode_frame(b"tail").unwrap();
    s.feed(&big);
    s.feed(&small[..5]);
    assert_eq!(s.next_frame().unwrap().map(<[u8]>::len), Some(100_000));
    s.shrink();
    assert_eq!(s.buffered(), 5);
    s.feed(&small[5..]);
    assert_eq!(s.next_frame().unwrap(), Some(&b"tail"[..]));
}

#[test]
fn append_frame_writes_the_same_bytes_as_encode_frame_after_what_is_there() {
    use tarsfork_tars::packet::{RequestPacket, ResponsePacket};
    let req = RequestPacket {
        version: 1,
        request_id: 7,
        servant_name: "A.B.C".into(),
        func_name: "f".into(),
        ..RequestPacket::default()
    };
    let rsp = ResponsePacket::reply_to(&req, -3, vec![1, 2, 3]);
    let mut out = b"prefix".to_vec();
    req.append_frame(&mut out).unwrap();
    rsp.append_frame(&mut out).unwrap();
    let mut want = b"prefix".to_vec();
    want.extend(req.encode_frame().unwrap());
    want.extend(rsp.encode_frame().unwrap());
    assert_eq!(out, want);
}

#[test]
fn copy_into_reuses_a_packet_and_leaves_nothing_of_the_previous_one() {
    use tarsfork_tars::packet::{RequestPacket, RequestPacketRef};
    let mut long = RequestPacket {
        version: 3,
        request_id: 1,
        servant_name: "A.LongServantName.Obj".into(),
        func_name: "aVeryLongFunctionName".into(),
        ..RequestPacket::default()
    };
    long.context.insert("k".into(), "v".into());
    let short = RequestPacket {
        version: 1,
        request_id: 2,
        servant_name: "B.S.O".into(),
        func_name: "f".into(),
        ..RequestPacket::default()
    };
    let mut reused = RequestPacket::default();
    for p in [&long, &short, &long] {
        let body = p.encode_body();
        RequestPacketRef::decode(&body)
            .unwrap()
            .copy_into(&mut reused);
        assert_eq!(&reused, p);
    }
}
