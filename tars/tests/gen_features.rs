//! The code generated from tests/idl/Features.tars and Base.tars (checked in under
//! tests/generated/, kept current by gen_framework_up_to_date): struct defaults and
//! wire behaviour, enums, consts, key ordering, the dispatcher, and the client proxy
//! against a loopback server that serves the same dispatcher.
#![allow(clippy::unwrap_used, clippy::expect_used)]

// Not every generated item is exercised here.
#[allow(dead_code)]
#[rustfmt::skip]
#[path = "generated/base.rs"]
mod base;
#[allow(dead_code)]
#[rustfmt::skip]
#[path = "generated/feat.rs"]
mod feat;

use std::collections::BTreeMap;
use std::io::Write;
use std::net::{SocketAddr, TcpListener};
use std::time::{Duration, Instant};

use base::{Point, Shape};
use feat::*;
use tarsfork_tars::codec::{Bytes, DecodeErrorKind, TarsReader, TarsStruct, TarsWriter};
use tarsfork_tars::frame::FrameSplitter;
use tarsfork_tars::packet::{RequestPacket, TupData, TARSSERVERDECODEERR, TARSSERVERNOFUNCERR};
use tarsfork_tars::proxy::{
    CallError, Current, Dispatch, Protocol, Proxy, ProxyConfig, Reply, ServantError,
};

#[test]
fn defaults_follow_the_idl() {
    let e = Everything::default();
    assert!(e.b);
    assert_eq!(
        (e.i8v, e.i16v, e.i32v, e.i64v),
        (-5, 300, -70000, 5_000_000_000)
    );
    assert_eq!((e.u8v, e.u16v, e.u32v), (200, 60000, 4_000_000_000));
    assert_eq!(e.s, "dflt");
    assert_eq!(e.level, Level::HIGH);
    assert_eq!(e.shape, Shape::SQUARE);
    assert_eq!(e.origin, Point { x: 0, y: 0 });
    assert_eq!(e.r#type, "");
    assert_eq!(Floaty::default().f, 1.5);
    assert_eq!(Level::default(), Level::LOW);
    assert_eq!(Shape::default(), Shape::CIRCLE);
}

#[test]
fn enums_and_consts() {
    assert_eq!(Level::HIGH.0, 6);
    assert_eq!(Level::lower_case_member.0, 7);
    assert_eq!(Shape::SQUARE.0, 2);
    assert_eq!(Shape::TRIANGLE.0, 10);
    assert_eq!(Level::MID.name(), Some("MID"));
    assert_eq!(Level(99).name(), None);
    assert_eq!(Level::from_name("HIGH"), Some(Level::HIGH));
    assert_eq!(MAX_ITEMS, 64);
    assert_eq!(GREETING, "hi \"there\"\n");
    assert_eq!(RATIO, 2.5);
    assert_eq!(SMALL, 0.001);
    const { assert!(ON) };
    assert_eq!(BIG, -9_000_000_000);
    assert_eq!(DEFAULT_LEVEL, Level::MID);
    assert_eq!(UMAX, u32::MAX);
}

fn sample() -> Everything {
    let mut nested = BTreeMap::new();
    nested.insert(
        "pts".to_string(),
        vec![Point { x: 1, y: -2 }, Point { x: 300, y: 70000 }],
    );
    let mut deep = BTreeMap::new();
    deep.insert(-1, BTreeMap::from([("k".to_string(), "v".to_string())]));
    Everything {
        b: false,
        i8v: i8::MIN,
        i16v: i16::MAX,
        i32v: 0,
        i64v: i64::MIN,
        u8v: u8::MAX,
        u16v: u16::MAX,
        u32v: u32::MAX,
        s: "x".repeat(300),
        raw: Bytes(vec![0, 1, 255]),
        ints: vec![1, -1, 1 << 20],
        nested,
        level: Level(42),
        shape: Shape::TRIANGLE,
        origin: Point { x: 5, y: 6 },
        r#type: "kw".into(),
        deep,
        bytes2: vec![vec![1, 2], vec![]],
    }
}

fn encode<T: TarsStruct>(v: &T) -> Vec<u8> {
    let mut w = TarsWriter::new();
    v.encode_fields(&mut w);
    w.into_bytes()
}

#[test]
fn structs_round_trip_and_keep_unknown_enum_values() {
    let v = sample();
    let bytes = encode(&v);
    let back = Everything::decode_fields(&mut TarsReader::new(&bytes)).unwrap();
    assert_eq!(back, v);
    assert_eq!(
        back.level,
        Level(42),
        "an enum value unknown to the IDL survives"
    );
    // Tag 255 uses the two-byte head; tag 20 too.
    assert!(bytes.windows(2).any(|w| w == [0xF9, 255]));
}

#[test]
fn unknown_tags_are_skipped_missing_optionals_take_defaults() {
    // A newer peer's struct: tag 0 (b), an unknown tag 7 of another type, tag 30 unknown.
    let mut w = TarsWriter::new();
    w.write(0, &true);
    w.write(
        7,
        &"not a u32 here but skipped? no: tag 7 is known".to_string(),
    );
    let bytes = w.into_bytes();
    // Tag 7 is u32 in this IDL: a string there is a type error, reported with its tag.
    let e = Everything::decode_fields(&mut TarsReader::new(&bytes)).unwrap_err();
    assert!(
        matches!(e.kind, DecodeErrorKind::TypeMismatch { tag: 7, .. }),
        "{e}"
    );

    let mut w = TarsWriter::new();
    w.write(0, &true);
    w.write(15, &vec![1i64, 2]);
    w.write(21, &"future".to_string());
    w.write(254, &Point { x: 1, y: 1 });
    let bytes = w.into_bytes();
    let e = Everything::decode_fields(&mut TarsReader::new(&bytes)).unwrap();
    assert!(e.b);
    assert_eq!(e.s, "dflt", "absent optional field takes its IDL default");
    assert_eq!(e.level, Level::HIGH);
    assert_eq!(e.u32v, 4_000_000_000);
}

#[test]
fn a_missing_required_field_is_an_error() {
    let mut w = TarsWriter::new();
    w.write(1, &5i8);
    let bytes = w.into_bytes();
    let e = Everything::decode_fields(&mut TarsReader::new(&bytes)).unwrap_err();
    assert!(
        matches!(e.kind, DecodeErrorKind::RequiredMissing { tag: 0 }),
        "{e}"
    );
    let e = Point::decode_fields(&mut TarsReader::new(&[])).unwrap_err();
    assert!(
        matches!(e.kind, DecodeErrorKind::RequiredMissing { tag: 0 }),
        "{e}"
    );
}

#[test]
fn key_fields_order_a_struct_before_the_others() {
    let a = Keyed {
        name: "z".into(),
        rank: 1,
        note: "b".into(),
    };
    let b = Keyed {
        name: "a".into(),
        rank: 2,
        note: "a".into(),
    };
    let c = Keyed {
        name: "z".into(),
        rank: 1,
        note: "c".into(),
    };
    assert!(a < b, "rank is the first key field");
    assert!(a < c, "equal keys fall back to the other fields");
    assert_ne!(a, c);
    let m: BTreeMap<Keyed, i32> = [(b.clone(), 2), (a.clone(), 1), (c.clone(), 3)].into();
    assert_eq!(m.keys().cloned().collect::<Vec<_>>(), [a, c, b]);
}

#[derive(Default)]
struct Impl {
    pings: usize,
    seen_context: Option<String>,
}

impl FeaturesServant for Impl {
    fn ping(&mut self, current: &Current<'_>) -> Result<(), ServantError> {
        self.pings += 1;
        self.seen_context = current.context().get("trace").cloned();
        Ok(())
    }

    fn echo_level(
        &mut self,
        _: &Current<'_>,
        level: Level,
    ) -> Result<(Level, Shape), ServantError> {
        if level == Level(-1) {
            return Err(ServantError::new(-99, "negative level"));
        }
        Ok((level, Shape(level.0 * 2)))
    }

    fn swap(
        &mut self,
        _: &Current<'_>,
        data: &Bytes,
        counts: &BTreeMap<Keyed, i32>,
    ) -> Result<(Bytes, Everything), ServantError> {
        let mut rev = data.0.clone();
        rev.reverse();
        let all = Everything {
            i32v: counts.values().sum(),
            ..Everything::default()
        };
        Ok((Bytes(rev), all))
    }

    fn sum(
        &mut self,
        _: &Current<'_>,
        values: &[i32],
        extra: u16,
        negate: bool,
    ) -> Result<(i32, i64), ServantError> {
        let t: i64 = values.iter().map(|v| i64::from(*v)).sum::<i64>() + i64::from(extra);
        let t = if negate { -t } else { t };
        Ok((values.len() as i32, t))
    }
}

fn request(version: i16, func: &str, buffer: Vec<u8>) -> RequestPacket {
    RequestPacket {
        version,
        request_id: 7,
        servant_name: "Feat.Server.FeaturesObj".into(),
        func_name: func.into(),
        buffer: Bytes(buffer),
        ..RequestPacket::default()
    }
}

#[test]
fn dispatcher_serves_v1_and_v3_with_the_right_codes() {
    let mut s = Impl::default();
    // v1: values at 1, extra at 2, negate at 3; results: ret at 0, total at 4.
    let mut w = TarsWriter::new();
    w.write(1, &vec![1, 2, 3]);
    w.write(2, &10u16);
    w.write(3, &true);
    let reply = features_dispatch(&mut s, &request(1, "sum", w.into_bytes()));
    let Reply::Tars(r) = reply else {
        panic!("{reply:?}")
    };
    assert_eq!((r.ret, r.request_id), (0, 7));
    let mut rd = TarsReader::new(&r.buffer);
    assert_eq!(rd.read_required::<i32>(0).unwrap(), 3);
    assert_eq!(rd.read_required::<i64>(4).unwrap(), -16);

    // v3: the same by name.
    let mut d = TupData::new();
    d.put("values", &vec![5]);
    d.put("extra", &1u16);
    d.put("negate", &false);
    let reply = features_dispatch(&mut s, &request(3, "sum", d.encode()));
    let Reply::Tup(r) = reply else {
        panic!("{reply:?}")
    };
    assert_eq!(r.tup_result().unwrap(), (0, ""));
    let out = r.tup_data().unwrap();
    assert_eq!(out.get_required::<i32>("").unwrap(), 1);
    assert_eq!(out.get_required::<i64>("total").unwrap(), 6);

    // Unknown function: -3 in both versions.
    assert_eq!(
        features_dispatch(&mut s, &request(1, "nope", vec![])).ret(),
        Some(TARSSERVERNOFUNCERR)
    );
    assert_eq!(
        features_dispatch(&mut s, &request(3, "nope", TupData::new().encode())).ret(),
        Some(TARSSERVERNOFUNCERR)
    );
    // Undecodable or missing arguments: -1.
    assert_eq!(
        features_dispatch(&mut s, &request(1, "sum", vec![0xFF, 0x13])).ret(),
        Some(TARSSERVERDECODEERR)
    );
    assert_eq!(
        features_dispatch(&mut s, &request(1, "sum", vec![])).ret(),
        Some(TARSSERVERDECODEERR)
    );
    assert_eq!(
        features_dispatch(&mut s, &request(3, "sum", vec![1, 2, 3])).ret(),
        Some(TARSSERVERDECODEERR)
    );
    assert_eq!(
        features_dispatch(&mut s, &request(3, "sum", TupData::new().encode())).ret(),
        Some(TARSSERVERDECODEERR)
    );
    // A servant error becomes the code and description.
    let mut w = TarsWriter::new();
    w.write(1, &Level(-1));
    let Reply::Tars(r) = features_dispatch(&mut s, &request(1, "echoLevel", w.into_bytes())) else {
        panic!()
    };
    assert_eq!((r.ret, r.desc()), (-99, "negative level"));
    // Oneway: served, but no reply.
    let mut req = request(1, "ping", vec![]);
    req.packet_type = 1;
    assert_eq!(FeaturesServer(Impl::default()).dispatch(&req), Reply::None);
    req.context.insert("trace".into(), "t1".into());
    assert_eq!(features_dispatch(&mut s, &req), Reply::None);
    assert_eq!(s.pings, 1);
    assert_eq!(
        s.seen_context.as_deref(),
        Some("t1"),
        "the servant sees the caller's context"
    );
}

/// Serves the Features dispatcher on a loopback port for one connection at a time,
/// until the listener is dropped with the test (the thread ends with the process).
fn serve() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut servant = FeaturesServer(Impl::default());
        for conn in l.incoming() {
            let Ok(mut conn) = conn else { return };
            let mut sp = FrameSplitter::default();
            loop {
                match sp.read_from(&mut conn) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
                while let Ok(Some(frame)) = sp.next_frame() {
                    let req = RequestPacket::decode(frame).unwrap();
                    if let Some(bytes) = servant.dispatch(&req).encode_frame().unwrap() {
                        conn.write_all(&bytes).unwrap();
                    }
                }
            }
        }
    });
    addr
}

#[test]
fn proxy_calls_over_tcp_in_v1_and_v3() {
    let addr = serve();
    for protocol in [Protocol::Tars, Protocol::Tup] {
        let config = ProxyConfig {
            timeout: Duration::from_secs(5),
            protocol,
            ..ProxyConfig::default()
        };
        let mut p = FeaturesProxy::new(Proxy::with_config(addr, "Feat.Server.FeaturesObj", config));
        assert_eq!(p.sum(&[1, 2], 3, false).unwrap(), (2, 6), "{protocol:?}");
        assert_eq!(p.echo_level(Level::MID).unwrap(), (Level::MID, Shape(10)));
        let counts = BTreeMap::from([
            (Keyed::default(), 4),
            (
                Keyed {
                    rank: 1,
                    ..Keyed::default()
                },
                5,
            ),
        ]);
        let (rev, all) = p.swap(&Bytes(vec![1, 2, 3]), &counts).unwrap();
        assert_eq!((rev.0, all.i32v), (vec![3, 2, 1], 9));
        p.ping().unwrap();
        match p.echo_level(Level(-1)) {
            Err(CallError::Server {
                code: -99, desc, ..
            }) => assert_eq!(desc, "negative level"),
            other => panic!("{other:?}"),
        }
        // Oneway then a normal call on the same connection: the reply ids stay matched.
        p.ping_oneway().unwrap();
        p.proxy_mut()
            .context_mut()
            .insert("trace".into(), "abc".into());
        assert_eq!(p.sum(&[], 0, true).unwrap(), (0, 0));
    }
}

#[test]
fn proxy_times_out_and_reports_connect_errors() {
    // A peer that accepts and never answers.
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let config = ProxyConfig {
        timeout: Duration::from_millis(200),
        ..ProxyConfig::default()
    };
    let mut p = FeaturesProxy::new(Proxy::with_config(addr, "X.Y.Z", config));
    p.proxy_mut()
        .context_mut()
        .insert("trace".into(), "abc".into());
    p.proxy_mut().set_protocol(Protocol::Tup);
    let t = Instant::now();
    match p.echo_level(Level::LOW) {
        Err(CallError::Timeout { after, .. }) => assert_eq!(after, Duration::from_millis(200)),
        other => panic!("{other:?}"),
    }
    assert!(t.elapsed() < Duration::from_secs(3));
    // What was sent: a v3 request with the context, the timeout and the argument by name.
    let (mut conn, _) = l.accept().unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut sp = FrameSplitter::default();
    let req = loop {
        assert!(sp.read_from(&mut conn).unwrap() > 0);
        if let Some(f) = sp.next_frame().unwrap() {
            break RequestPacket::decode(f).unwrap();
        }
    };
    assert_eq!(
        (req.version, req.timeout, req.func_name.as_str()),
        (3, 200, "echoLevel")
    );
    assert_eq!(req.context.get("trace").map(String::as_str), Some("abc"));
    assert_eq!(
        req.tup_data()
            .unwrap()
            .get_required::<Level>("level")
            .unwrap(),
        Level::LOW
    );
    drop(conn);
    drop(l);
    // Nobody listens on the port any more.
    let mut p = FeaturesProxy::new(Proxy::new(addr, "X.Y.Z"));
    assert!(matches!(p.ping(), Err(CallError::Connect { .. })));
}
