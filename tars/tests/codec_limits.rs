//! Decoder behaviour beyond the happy path: required/optional fields, unknown tags,
//! alternative wire forms, and hostile input (truncation, huge lengths, deep nesting).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeMap;

use support::json::{from_hex, to_hex};
use support::structs::*;
use tarsfork_tars::codec::{
    from_bytes, to_bytes, Bytes, DecodeError, DecodeErrorKind, DecodeLimits, TarsReader, TarsType,
    TarsWriter,
};

fn kind<T: std::fmt::Debug>(r: Result<T, DecodeError>) -> DecodeErrorKind {
    r.expect_err("decoding must fail").kind
}

#[test]
fn missing_required_field_names_its_tag_and_offset() {
    // Inner with only its optional field: STRUCT_BEGIN, b = "x", STRUCT_END.
    let bytes = from_hex("0a1601780b");
    let err = from_bytes::<Inner>(&bytes, 0).unwrap_err();
    assert_eq!(err.kind, DecodeErrorKind::RequiredMissing { tag: 0 });
    // The search stopped at the higher tag 1, offset 1.
    assert_eq!(err.offset, 1);
    let text = err.to_string();
    assert!(
        text.contains("tag 0") && text.contains("offset 1"),
        "{text}"
    );
    // Inner with no fields at all: the search stops at the STRUCT_END.
    let err = from_bytes::<Inner>(&from_hex("0a0b"), 0).unwrap_err();
    assert_eq!(
        (err.kind, err.offset),
        (DecodeErrorKind::RequiredMissing { tag: 0 }, 1)
    );
    // At the end of the input.
    let err = from_bytes::<i32>(&from_hex("0001"), 1).unwrap_err();
    assert_eq!(
        (err.kind, err.offset),
        (DecodeErrorKind::RequiredMissing { tag: 1 }, 2)
    );
}

#[test]
fn missing_optional_fields_take_their_defaults() {
    // Outer with only `inner` {a: 5}.
    let bytes = from_hex("0a0a00050b0b");
    let outer: Outer = from_bytes(&bytes, 0).unwrap();
    assert_eq!(outer.inner.a, 5);
    assert_eq!(outer.inner.b, "");
    assert!(outer.items.is_empty() && outer.by_name.is_empty());
    // StatPropMsgHead's iPropertyVer defaults to 1 (an IDL default, not zero).
    let mut w = TarsWriter::new();
    w.write_struct_begin(0);
    w.write_str(0, "App.Server");
    w.write_str(1, "1.2.3.4");
    w.write_str(2, "queue");
    w.write_struct_end();
    let head: StatPropMsgHead = from_bytes(w.as_bytes(), 0).unwrap();
    assert_eq!(head.i_property_ver, 1);
    assert_eq!(head.property_name, "queue");
}

/// Writes one field of every wire type at `tag`.
fn write_junk(w: &mut TarsWriter, tag: u8) {
    w.write_i64(tag, i64::MIN);
    w.write_str(tag, &"j".repeat(300));
    w.write_bytes(tag, &[1, 2, 3]);
    w.write(tag, &vec![vec![1i32, 2], vec![]]);
    let mut m = BTreeMap::new();
    m.insert(
        "k".to_owned(),
        Inner {
            a: 1,
            b: "v".into(),
        },
    );
    w.write(tag, &m);
    w.write(
        tag,
        &Inner {
            a: 9,
            b: "z".into(),
        },
    );
    w.write_f32(tag, 1.5);
    w.write_f64(tag, 2.5);
    w.write_i32(tag, 0);
}

#[test]
fn unknown_fields_of_every_type_are_skipped() {
    // Inner {a: 42, b: "ok"} with unknown fields before tag 0 cannot exist (tags are
    // ascending), so put them between the known fields and after them.
    let mut w = TarsWriter::new();
    w.write_struct_begin(7);
    w.write_i32(0, 42);
    write_junk(&mut w, 0); // same-tag duplicates after the field are skipped as unknown
    w.write_str(1, "ok");
    write_junk(&mut w, 2);
    write_junk(&mut w, 200);
    w.write_struct_end();
    w.write_i32(8, 77);
    let bytes = w.into_bytes();
    let mut r = TarsReader::new(&bytes);
    let inner: Inner = r.read_required(7).unwrap();
    assert_eq!(
        inner,
        Inner {
            a: 42,
            b: "ok".into()
        }
    );
    assert_eq!(r.read_required::<i32>(8).unwrap(), 77);
    r.finish().unwrap();

    // At top level, lower tags are skipped on the way to the wanted one.
    let mut w = TarsWriter::new();
    write_junk(&mut w, 3);
    w.write_str(9, "found");
    let bytes = w.into_bytes();
    assert_eq!(from_bytes::<String>(&bytes, 9).unwrap(), "found");
    // A higher tag than wanted ends the search without consuming it.
    let mut r = TarsReader::new(&bytes);
    assert_eq!(r.read_optional::<i32>(4).unwrap(), None);
    assert_eq!(
        r.read_optional::<String>(9).unwrap().as_deref(),
        Some("found")
    );
}

#[test]
fn narrower_and_alternative_forms_are_accepted() {
    // long from ZERO, INT8, INT16, INT32.
    for (hex, want) in [
        ("0c", 0i64),
        ("00ff", -1),
        ("010080", 128),
        ("0200008000", 32768),
    ] {
        assert_eq!(from_bytes::<i64>(&from_hex(hex), 0).unwrap(), want, "{hex}");
    }
    // Wider forms are fine when the value fits; not when it does not.
    assert_eq!(from_bytes::<i8>(&from_hex("01007f"), 0).unwrap(), 127);
    assert_eq!(
        kind(from_bytes::<i8>(&from_hex("010080"), 0)),
        DecodeErrorKind::OutOfRange {
            tag: 0,
            value: 128,
            target: "byte"
        }
    );
    assert!(matches!(
        kind(from_bytes::<u32>(&from_hex("00ff"), 0)),
        DecodeErrorKind::OutOfRange { value: -1, .. }
    ));
    // bool: any non-zero integer is true.
    assert!(from_bytes::<bool>(&from_hex("0002"), 0).unwrap());
    // float/double: ZERO, full-width zero, FLOAT for a double, DOUBLE for a float.
    assert_eq!(from_bytes::<f32>(&from_hex("0c"), 0).unwrap(), 0.0);
    assert_eq!(from_bytes::<f32>(&from_hex("0400000000"), 0).unwrap(), 0.0);
    assert_eq!(
        from_bytes::<f64>(
            &from_hex("0500000000 00000000".replace(' ', "").as_str()),
            0
        )
        .unwrap(),
        0.0
    );
    assert_eq!(from_bytes::<f64>(&from_hex("043fc00000"), 0).unwrap(), 1.5);
    assert_eq!(
        from_bytes::<f32>(&from_hex("053ff8000000000000"), 0).unwrap(),
        1.5
    );
    // vector<byte> also from a LIST of bytes (TarsCpp accepts it).
    let list = to_bytes(0, &vec![1i8, -1]);
    assert_eq!(from_bytes::<Bytes>(&list, 0).unwrap(), Bytes(vec![1, 0xff]));
    // -0.0 keeps its sign: written in full width.
    assert_eq!(to_hex(&to_bytes(0, &-0.0f64)), "058000000000000000");
    assert!(from_bytes::<f64>(&to_bytes(0, &-0.0f64), 0)
        .unwrap()
        .is_sign_negative());
}

#[test]
fn type_mismatch_and_unknown_types_are_reported() {
    let err = from_bytes::<i32>(&from_hex("f6c803746167"), 200).unwrap_err();
    assert_eq!(
        err.kind,
        DecodeErrorKind::TypeMismatch {
            tag: 200,
            expected: "int",
            found: TarsType::String1
        }
    );
    assert_eq!(err.offset, 0);
    assert_eq!(
        kind(from_bytes::<i32>(&from_hex("0e"), 0)),
        DecodeErrorKind::UnknownType(14)
    );
    assert_eq!(
        kind(from_bytes::<i32>(&from_hex("1f"), 0)),
        DecodeErrorKind::UnknownType(15)
    );
    // SIMPLE_LIST whose inner head is not INT8.
    assert_eq!(
        kind(from_bytes::<Bytes>(&from_hex("0d010c"), 0)),
        DecodeErrorKind::BadSimpleList(TarsType::Int16)
    );
    // List elements must sit at tag 0.
    assert_eq!(
        kind(from_bytes::<Vec<i32>>(&from_hex("0900011001"), 0)),
        DecodeErrorKind::BadInnerTag {
            expected: 0,
            found: 1
        }
    );
    // Invalid UTF-8 in a string.
    assert_eq!(
        kind(from_bytes::<String>(&from_hex("0602c328"), 0)),
        DecodeErrorKind::InvalidUtf8 { tag: 0 }
    );
    // Trailing bytes are reported by finish().
    let bytes = from_hex("00010c");
    let mut r = TarsReader::new(&bytes);
    assert_eq!(r.read_required::<i8>(0).unwrap(), 1);
    assert_eq!(
        r.finish().unwrap_err().kind,
        DecodeErrorKind::TrailingBytes(1)
    );
}

#[test]
fn every_truncation_of_a_valid_encoding_fails_cleanly() {
    let outer = Outer {
        inner: Inner {
            a: 7,
            b: "in".into(),
        },
        items: vec![Inner {
            a: 1,
            b: "p".into(),
        }],
        by_name: [(
            "k".to_owned(),
            Inner {
                a: 3,
                b: "r".into(),
            },
        )]
        .into(),
        l: i64::MIN,
        t14: true,
        t15: -5,
        t200: "tag200".into(),
    };
    let bytes = to_bytes(0, &outer);
    assert_eq!(from_bytes::<Outer>(&bytes, 0).unwrap(), outer);
    for cut in 0..bytes.len() {
        let err = from_bytes::<Outer>(&bytes[..cut], 0).unwrap_err();
        assert!(
            err.offset <= cut,
            "cut {cut}: offset {} beyond input",
            err.offset
        );
    }
}

#[test]
fn huge_lengths_and_counts_are_refused_before_allocation() {
    // LIST claiming i32::MAX elements, with 2 bytes of input.
    let err = from_bytes::<Vec<Inner>>(&from_hex("0902 7fffffff 0c".replace(' ', "").as_str()), 0)
        .unwrap_err();
    assert!(
        matches!(
            err.kind,
            DecodeErrorKind::LengthExceedsInput {
                len: 0x7fff_ffff,
                ..
            }
        ),
        "{err}"
    );
    // Negative count.
    assert_eq!(
        kind(from_bytes::<Vec<i32>>(&from_hex("0900ff"), 0)),
        DecodeErrorKind::NegativeLength(-1)
    );
    // STRING4 with a 4 GiB length.
    assert!(matches!(
        kind(from_bytes::<String>(&from_hex("07ffffffff61"), 0)),
        DecodeErrorKind::LengthExceedsInput {
            len: 0xffff_ffff,
            remaining: 1
        }
    ));
    // SIMPLE_LIST and MAP likewise (a map entry takes at least two bytes).
    assert!(matches!(
        kind(from_bytes::<Bytes>(&from_hex("0d000103e8aa"), 0)),
        DecodeErrorKind::LengthExceedsInput { len: 1000, .. }
    ));
    assert!(matches!(
        kind(from_bytes::<BTreeMap<i32, i32>>(&from_hex("080002"), 0)),
        DecodeErrorKind::LengthExceedsInput {
            len: 2,
            remaining: 0
        }
    ));
    // Skipping an unknown field applies the same checks.
    assert!(matches!(
        kind(from_bytes::<i32>(
            &from_hex("0902 7fffffff".replace(' ', "").as_str()),
            1
        )),
        DecodeErrorKind::LengthExceedsInput { .. }
    ));
    // A configured max_len narrows further.
    let bytes = to_bytes(0, "hello");
    let limits = DecodeLimits {
        max_len: 4,
        ..DecodeLimits::default()
    };
    let err = TarsReader::with_limits(&bytes, limits)
        .read_required::<String>(0)
        .unwrap_err();
    assert_eq!(
        err.kind,
        DecodeErrorKind::LengthOverLimit { len: 5, limit: 4 }
    );
}

#[test]
fn nesting_is_bounded_when_decoding_and_when_skipping() {
    // 100 nested lists: vector<vector<...>>, as bytes "09 00 01" repeated, then "09 0c".
    let mut nested = "090001".repeat(100);
    nested.push_str("090c");
    let bytes = from_hex(&nested);
    // Skipping (the value sits at a tag nobody asks for) hits the limit too.
    let err = from_bytes::<i32>(&bytes, 1).unwrap_err();
    assert_eq!(
        err.kind,
        DecodeErrorKind::TooDeep(DecodeLimits::DEFAULT_MAX_DEPTH)
    );
    // Nested structs: 200 STRUCT_BEGINs, skipped on the way to tag 1.
    let bytes = from_hex(&"0a".repeat(200));
    assert_eq!(
        kind(from_bytes::<i32>(&bytes, 1)),
        DecodeErrorKind::TooDeep(DecodeLimits::DEFAULT_MAX_DEPTH)
    );
    // Within the limit it works (depth 3).
    let v = vec![vec![vec![1i32]]];
    assert_eq!(
        from_bytes::<Vec<Vec<Vec<i32>>>>(&to_bytes(0, &v), 0).unwrap(),
        v
    );
    let limits = DecodeLimits {
        max_depth: 2,
        ..DecodeLimits::default()
    };
    let bytes = to_bytes(0, &v);
    assert_eq!(
        TarsReader::with_limits(&bytes, limits)
            .read_required::<Vec<Vec<Vec<i32>>>>(0)
            .unwrap_err()
            .kind,
        DecodeErrorKind::TooDeep(2)
    );
}

#[test]
fn every_tag_from_0_to_255_round_trips_for_every_type() {
    for tag in 0..=255u8 {
        let all = AllTypes {
            b: true,
            i8: -3,
            i16: 300,
            i32: -70000,
            i64: 1 << 40,
            f: 0.25,
            d: -1e300,
            s: "s".into(),
            li: vec![1, -2],
            bytes: Bytes(vec![0, 255]),
            m: [("a".to_owned(), "b".to_owned())].into(),
            u8: 255,
            u16: 65535,
            u32: u32::MAX,
        };
        let bytes = to_bytes(tag, &all);
        let head_len = if tag < 15 { 1 } else { 2 };
        assert_eq!(bytes[0] >> 4, tag.min(15), "tag {tag}");
        if tag >= 15 {
            assert_eq!(bytes[1], tag);
        }
        let mut r = TarsReader::new(&bytes);
        assert_eq!(
            r.peek_head().unwrap(),
            (tag, TarsType::StructBegin, head_len)
        );
        assert_eq!(r.read_required::<AllTypes>(tag).unwrap(), all, "tag {tag}");
        r.finish().unwrap();
    }
}

#[test]
fn unsigned_types_travel_one_size_up() {
    assert_eq!(to_hex(&to_bytes(0, &255u8)), "0100ff");
    assert_eq!(to_hex(&to_bytes(0, &65535u16)), "020000ffff");
    assert_eq!(to_hex(&to_bytes(0, &u32::MAX)), "0300000000ffffffff");
    assert_eq!(
        from_bytes::<u32>(&from_hex("0300000000ffffffff"), 0).unwrap(),
        u32::MAX
    );
    assert!(matches!(
        kind(from_bytes::<u32>(&from_hex("030000000100000000"), 0)),
        DecodeErrorKind::OutOfRange {
            value: 0x1_0000_0000,
            ..
        }
    ));
}
