//! The properties the fuzz targets check, shared with `tars/tests/fuzz_regressions.rs`
//! (which replays every input that once broke them). Each function panics when a
//! property fails; decoding errors are fine, panics and wrong answers are not.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;

use tarsfork_tars::codec::{
    Bytes, DecodeError, DecodeLimits, TarsDecode, TarsEncode, TarsReader, TarsStruct, TarsWriter,
};
use tarsfork_tars::frame::{check_frame_len, FrameError, FrameSplitter};
use tarsfork_tars::packet::{RequestPacket, RequestPacketRef, ResponsePacket, TupData};

/// A recursive struct, so nesting is reachable through generated-style code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub id: i64,
    pub name: String,
    pub raw: Bytes,
    pub children: Vec<Node>,
    pub attrs: BTreeMap<String, Vec<u32>>,
}

impl TarsStruct for Node {
    fn encode_fields(&self, w: &mut TarsWriter) {
        w.write(0, &self.id);
        w.write(1, &self.name);
        w.write(2, &self.raw);
        w.write(3, &self.children);
        w.write(200, &self.attrs);
    }
    fn decode_fields(r: &mut TarsReader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            id: r.read_required(0)?,
            name: r.read_optional(1)?.unwrap_or_default(),
            raw: r.read_optional(2)?.unwrap_or_default(),
            children: r.read_optional(3)?.unwrap_or_default(),
            attrs: r.read_optional(200)?.unwrap_or_default(),
        })
    }
}

/// If `data` decodes as a `T` at `tag`, its encoding must decode to the same value and
/// re-encode to the same bytes (the canonical form is a fixed point).
fn round_trip<T>(data: &[u8], tag: u8, limits: DecodeLimits)
where
    T: TarsEncode + TarsDecode + PartialEq + std::fmt::Debug,
{
    let Ok(value) = TarsReader::with_limits(data, limits).read_required::<T>(tag) else {
        return;
    };
    let mut w = TarsWriter::new();
    w.write(tag, &value);
    let canonical = w.into_bytes();
    let again: T = TarsReader::with_limits(&canonical, DecodeLimits::default())
        .read_required(tag)
        .unwrap_or_else(|e| panic!("canonical encoding of {value:?} does not decode: {e}"));
    assert_eq!(again, value, "value changed through encode/decode");
    let mut w = TarsWriter::new();
    w.write(tag, &again);
    assert_eq!(
        w.into_bytes(),
        canonical,
        "canonical encoding is not a fixed point"
    );
}

/// Decodes `data` every way the library offers; the first byte picks limits and tag.
pub fn decoder(data: &[u8]) {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let limits = DecodeLimits {
        max_depth: u32::from(sel & 0x1f) + 1,
        max_len: if sel & 0x20 != 0 { 64 } else { usize::MAX },
    };
    let tag = sel >> 6;

    // Packets and TUP maps.
    // The borrowed decoder agrees with the owned one, success or error.
    match (RequestPacketRef::decode(rest), RequestPacket::decode(rest)) {
        (Ok(view), Ok(owned)) => assert_eq!(view.into_owned(), owned),
        (Err(a), Err(b)) => assert_eq!(a, b),
        (a, b) => panic!("borrowed and owned decoders disagree: {a:?} vs {b:?}"),
    }
    if let Ok(p) = RequestPacket::decode(rest) {
        let back = RequestPacket::decode(&p.encode_body()).expect("re-encoded RequestPacket");
        assert_eq!(back, p);
        if let Ok(tup) = p.tup_data() {
            let _ = tup.get::<String>("");
            let _ = tup.get::<Node>("n");
        }
    }
    if let Ok(p) = ResponsePacket::decode(rest) {
        let back = ResponsePacket::decode(&p.encode_body()).expect("re-encoded ResponsePacket");
        assert_eq!(back, p);
    }
    if let Ok(tup) = TupData::decode(rest) {
        assert_eq!(TupData::decode(&tup.encode()).expect("re-encoded TUP"), tup);
        for name in tup.items().keys() {
            let _ = tup.get::<BTreeMap<i32, Vec<String>>>(name);
        }
    }

    // Generic values.
    round_trip::<Node>(rest, tag, limits);
    round_trip::<Vec<Vec<i16>>>(rest, tag, limits);
    round_trip::<BTreeMap<String, Bytes>>(rest, tag, limits);
    round_trip::<BTreeMap<Node, i8>>(rest, tag, limits);
    round_trip::<Pair<Wrapper<u8>, Wrapper<u32>>>(rest, tag, limits);
    let _ = TarsReader::with_limits(rest, limits).read_required::<f64>(tag);
    let _ = TarsReader::with_limits(rest, limits).read_required::<Vec<f32>>(tag);
    let _ = TarsReader::with_limits(rest, limits).read_required::<bool>(tag);
    let _ = TarsReader::with_limits(rest, limits).read_str_ref(tag, false);
    let _ = TarsReader::with_limits(rest, limits).read_bytes_ref(tag, true);

    // Skipping whatever is there, field after field, must end (error or input end)
    // and always make progress.
    let mut r = TarsReader::with_limits(rest, limits);
    while !r.is_empty() {
        let before = r.position();
        if r.skip_field().is_err() {
            break;
        }
        assert!(r.position() > before, "skip_field made no progress");
    }
}

/// An unsigned value at tag 0 of a struct (so unsigned decoding is round-tripped too).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Wrapper<T>(pub T);

impl<T: TarsEncode + TarsDecode> TarsStruct for Wrapper<T> {
    fn encode_fields(&self, w: &mut TarsWriter) {
        w.write(0, &self.0);
    }
    fn decode_fields(r: &mut TarsReader<'_>) -> Result<Self, DecodeError> {
        Ok(Self(r.read_required(0)?))
    }
}

impl Ord for Node {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (
            self.id,
            &self.name,
            &self.raw.0,
            &self.children,
            &self.attrs,
        )
            .cmp(&(
                other.id,
                &other.name,
                &other.raw.0,
                &other.children,
                &other.attrs,
            ))
    }
}

impl PartialOrd for Node {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// A struct of two structs, at tags 0 and 1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pair<A, B>(pub A, pub B);

impl<A: TarsStruct, B: TarsStruct> TarsStruct for Pair<A, B> {
    fn encode_fields(&self, w: &mut TarsWriter) {
        w.write(0, &self.0);
        w.write(1, &self.1);
    }
    fn decode_fields(r: &mut TarsReader<'_>) -> Result<Self, DecodeError> {
        Ok(Pair(r.read_required(0)?, r.read_required(1)?))
    }
}

/// The reference: frames cut from the whole stream at once, and where it fails.
fn reference_frames(stream: &[u8], max: usize) -> (Vec<&[u8]>, Option<FrameError>) {
    let mut frames = Vec::new();
    let mut at = 0;
    while stream.len() - at >= 4 {
        let len = u32::from_be_bytes([stream[at], stream[at + 1], stream[at + 2], stream[at + 3]]);
        match check_frame_len(len, max) {
            Err(e) => return (frames, Some(e)),
            Ok(body) if stream.len() - at - 4 >= body => {
                frames.push(&stream[at + 4..at + 4 + body]);
                at += 4 + body;
            }
            Ok(_) => break,
        }
    }
    (frames, None)
}

/// Feeds `data` to a splitter in pieces whose sizes come from the data itself and
/// checks it yields exactly the frames (and the error) of a one-shot parse.
pub fn frame_splitter(data: &[u8]) {
    let Some((&sel, stream)) = data.split_first() else {
        return;
    };
    let max = 4 + usize::from(sel) * 4;
    let (want, want_err) = reference_frames(stream, max);

    let mut s = FrameSplitter::new(max);
    let mut got: Vec<Vec<u8>> = Vec::new();
    let mut err = None;
    let mut at = 0;
    let mut step = 1 + usize::from(sel % 7);
    'feed: while at < stream.len() {
        let end = (at + step).min(stream.len());
        s.feed(&stream[at..end]);
        at = end;
        step = 1 + (step * 5 + 3) % 23;
        loop {
            match s.next_frame() {
                Ok(Some(f)) => got.push(f.to_vec()),
                Ok(None) => break,
                Err(e) => {
                    err = Some(e);
                    break 'feed;
                }
            }
        }
        assert!(
            s.buffered() <= max + 23,
            "splitter holds {} bytes",
            s.buffered()
        );
    }
    assert_eq!(got, want, "frames differ from a one-shot parse");
    assert_eq!(err, want_err, "errors differ from a one-shot parse");

    // The same through read_from, one read per scripted chunk.
    struct Chunks<'a>(&'a [u8], usize);
    impl std::io::Read for Chunks<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = self.0.len().min(buf.len()).min(self.1);
            self.1 = 1 + (self.1 * 3) % 17;
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }
    let mut src = Chunks(stream, 1 + usize::from(sel % 5));
    let mut s = FrameSplitter::new(max);
    let mut got: Vec<Vec<u8>> = Vec::new();
    let mut err = None;
    'read: while s.read_from(&mut src).expect("in-memory read") > 0 {
        loop {
            match s.next_frame() {
                Ok(Some(f)) => got.push(f.to_vec()),
                Ok(None) => break,
                Err(e) => {
                    err = Some(e);
                    break 'read;
                }
            }
        }
    }
    assert_eq!(got, want, "read_from: frames differ from a one-shot parse");
    assert_eq!(
        err, want_err,
        "read_from: errors differ from a one-shot parse"
    );

    // Both ways mixed, shrinking now and then, as a long-lived connection would.
    let mut s = FrameSplitter::new(max);
    let mut got: Vec<Vec<u8>> = Vec::new();
    let mut err = None;
    let mut at = 0;
    let mut turn = usize::from(sel);
    'mixed: while at < stream.len() {
        turn = turn.wrapping_mul(31).wrapping_add(7);
        let n = 1 + turn % 13;
        let end = (at + n).min(stream.len());
        match turn % 3 {
            0 => s.feed(&stream[at..end]),
            1 => {
                let mut src = Chunks(&stream[at..end], n);
                while s.read_from(&mut src).expect("in-memory read") > 0 {}
            }
            _ => {
                s.shrink();
                s.feed(&stream[at..end]);
            }
        }
        at = end;
        loop {
            match s.next_frame() {
                Ok(Some(f)) => got.push(f.to_vec()),
                Ok(None) => break,
                Err(e) => {
                    err = Some(e);
                    break 'mixed;
                }
            }
        }
    }
    assert_eq!(got, want, "mixed: frames differ from a one-shot parse");
    assert_eq!(err, want_err, "mixed: errors differ from a one-shot parse");
}
