//! Straight-line paths for the packets a server handles on every call.
//!
//! Requests: every client sends fields 1..10 in order, with one-byte heads and, most of
//! the time, empty `context` and `status` maps. The reader here goes over the body once,
//! front to back, with no per-field search. Anything else (a missing or reordered field,
//! a long tag, a non-empty map, a value out of range, bad UTF-8, trailing fields) makes
//! it give up, and the general decoder reads the packet from the start: the fast path
//! never accepts what the general one refuses and never decodes a field differently.
//!
//! Replies: a successful v1 reply (no description, no context, empty status) is laid
//! out in a small stack buffer and appended with one copy of the results, byte for
//! byte what the general encoder writes. Tests compare both paths on random packets.

use std::collections::BTreeMap;

use super::{RequestPacket, RequestPacketRef, ResponsePacket};

// Wire type ids (see `codec::TarsType`).
const INT8: u8 = 0;
const INT16: u8 = 1;
const INT32: u8 = 2;
const INT64: u8 = 3;
const STRING1: u8 = 6;
const STRING4: u8 = 7;
const MAP: u8 = 8;
const ZERO: u8 = 12;
const SIMPLE_LIST: u8 = 13;

struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    #[inline(always)]
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let bytes = self.buf.get(self.pos..end)?;
        self.pos = end;
        Some(bytes)
    }

    #[inline(always)]
    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N)?.try_into().ok()
    }

    /// The type of the next field, which must have a one-byte head with `tag`.
    #[inline(always)]
    fn head(&mut self, tag: u8) -> Option<u8> {
        let byte = *self.buf.get(self.pos)?;
        if byte >> 4 != tag {
            return None;
        }
        self.pos += 1;
        Some(byte & 0x0F)
    }

    /// An integer field at `tag`, in any of the integer forms.
    #[inline(always)]
    fn int(&mut self, tag: u8) -> Option<i64> {
        Some(match self.head(tag)? {
            ZERO => 0,
            INT8 => i64::from(i8::from_be_bytes(self.array()?)),
            INT16 => i64::from(i16::from_be_bytes(self.array()?)),
            INT32 => i64::from(i32::from_be_bytes(self.array()?)),
            INT64 => i64::from_be_bytes(self.array()?),
            _ => return None,
        })
    }

    /// The bytes of a `string` at `tag`, not yet checked to be UTF-8.
    #[inline(always)]
    fn str_bytes(&mut self, tag: u8) -> Option<&'a [u8]> {
        let len = match self.head(tag)? {
            STRING1 => usize::from(self.array::<1>()?[0]),
            STRING4 => usize::try_from(u32::from_be_bytes(self.array()?)).ok()?,
            _ => return None,
        };
        self.take(len)
    }

    /// A `vector<byte>` as SIMPLE_LIST: the head, an INT8 head at tag 0, the length.
    #[inline(always)]
    fn bytes(&mut self, tag: u8) -> Option<&'a [u8]> {
        if self.head(tag)? != SIMPLE_LIST || self.head(0)? != INT8 {
            return None;
        }
        let len = usize::try_from(self.int(0)?).ok()?;
        self.take(len)
    }

    /// A map at `tag` with no entries.
    #[inline(always)]
    fn empty_map(&mut self, tag: u8) -> Option<()> {
        (self.head(tag)? == MAP && self.int(0)? == 0).then_some(())
    }
}

/// The fields of a packet of the common shape, names not yet checked for UTF-8.
struct Fields<'a> {
    version: i16,
    packet_type: i8,
    message_type: i32,
    request_id: i32,
    servant_name: &'a [u8],
    func_name: &'a [u8],
    buffer: &'a [u8],
    timeout: i32,
}

/// Reads the whole body if it has the common shape (see the module notes).
#[inline(always)]
fn fields(body: &[u8]) -> Option<Fields<'_>> {
    let mut c = Cursor { buf: body, pos: 0 };
    let f = Fields {
        version: i16::try_from(c.int(1)?).ok()?,
        packet_type: i8::try_from(c.int(2)?).ok()?,
        message_type: i32::try_from(c.int(3)?).ok()?,
        request_id: i32::try_from(c.int(4)?).ok()?,
        servant_name: c.str_bytes(5)?,
        func_name: c.str_bytes(6)?,
        buffer: c.bytes(7)?,
        timeout: i32::try_from(c.int(8)?).ok()?,
    };
    c.empty_map(9)?;
    c.empty_map(10)?;
    (c.pos == body.len()).then_some(f)
}

/// The packet, if it has the common shape; None: use the general decoder.
#[inline]
pub(super) fn request(body: &[u8]) -> Option<RequestPacketRef<'_>> {
    let f = fields(body)?;
    Some(RequestPacketRef {
        version: f.version,
        packet_type: f.packet_type,
        message_type: f.message_type,
        request_id: f.request_id,
        servant_name: std::str::from_utf8(f.servant_name).ok()?,
        func_name: std::str::from_utf8(f.func_name).ok()?,
        buffer: f.buffer,
        timeout: f.timeout,
        context: BTreeMap::new(),
        status: BTreeMap::new(),
    })
}

/// Decodes a packet of the common shape into `out`, a packet a worker reuses from one
/// request to the next: names equal to the ones `out` already holds (the usual case:
/// one servant, a few functions) are neither checked for UTF-8 again nor copied.
/// None (with `out` untouched): use the general decoder.
#[inline]
pub(super) fn request_into(body: &[u8], out: &mut RequestPacket) -> Option<()> {
    let f = fields(body)?;
    let new_servant = fresh_name(&out.servant_name, f.servant_name)?;
    let new_func = fresh_name(&out.func_name, f.func_name)?;
    out.version = f.version;
    out.packet_type = f.packet_type;
    out.message_type = f.message_type;
    out.request_id = f.request_id;
    if let Some(name) = new_servant {
        out.servant_name.clear();
        out.servant_name.push_str(name);
    }
    if let Some(name) = new_func {
        out.func_name.clear();
        out.func_name.push_str(name);
    }
    out.buffer.0.clear();
    out.buffer.0.extend_from_slice(f.buffer);
    out.timeout = f.timeout;
    if !out.context.is_empty() {
        out.context.clear();
    }
    if !out.status.is_empty() {
        out.status.clear();
    }
    Some(())
}

/// `Some(None)`: `bytes` equal `held`; `Some(Some(s))`: a different, valid name; None:
/// not UTF-8.
#[inline(always)]
fn fresh_name<'a>(held: &str, bytes: &'a [u8]) -> Option<Option<&'a str>> {
    if held.as_bytes() == bytes {
        return Some(None);
    }
    std::str::from_utf8(bytes).ok().map(Some)
}

/// Heads of the reply's fixed parts: tag 6 SIMPLE_LIST, then its INT8 head at tag 0;
/// tag 7 MAP, then its count 0 as ZERO at tag 0.
const BUFFER_HEAD: [u8; 2] = [(6 << 4) | SIMPLE_LIST, INT8];
const EMPTY_STATUS: [u8; 2] = [(7 << 4) | MAP, ZERO];

/// The integer fields before the results: at most 5 × 9 bytes, plus the buffer's two
/// heads and its length (5 bytes).
struct Head {
    bytes: [u8; 64],
    len: usize,
}

impl Head {
    #[inline(always)]
    fn put(&mut self, bytes: &[u8]) {
        self.bytes[self.len..self.len + bytes.len()].copy_from_slice(bytes);
        self.len += bytes.len();
    }

    /// An integer at `tag` (< 15) in its smallest form, as `TarsWriter::write_i64`.
    #[inline(always)]
    fn int(&mut self, tag: u8, value: i64) {
        let head = tag << 4;
        if value == 0 {
            self.put(&[head | ZERO]);
        } else if let Ok(v) = i8::try_from(value) {
            self.put(&[head | INT8, v as u8]);
        } else if let Ok(v) = i16::try_from(value) {
            let [a, b] = v.to_be_bytes();
            self.put(&[head | INT16, a, b]);
        } else if let Ok(v) = i32::try_from(value) {
            let [a, b, c, d] = v.to_be_bytes();
            self.put(&[head | INT32, a, b, c, d]);
        } else {
            self.put(&[head | INT64]);
            self.put(&value.to_be_bytes());
        }
    }
}

/// Appends `r` as a frame if it has the common shape; false: use the general encoder.
#[inline]
pub(super) fn response_frame(r: &ResponsePacket, out: &mut Vec<u8>) -> bool {
    if !r.status.is_empty() || r.result_desc.is_some() || r.context.is_some() {
        return false;
    }
    let Ok(results_len) = i32::try_from(r.buffer.len()) else {
        return false;
    };
    let mut head = Head {
        bytes: [0; 64],
        len: 0,
    };
    head.int(1, i64::from(r.version));
    head.int(2, i64::from(r.packet_type));
    head.int(3, i64::from(r.request_id));
    head.int(4, i64::from(r.message_type));
    head.int(5, i64::from(r.ret));
    head.put(&BUFFER_HEAD);
    head.int(0, i64::from(results_len));
    let frame_len = 4 + head.len + r.buffer.len() + EMPTY_STATUS.len();
    let Ok(prefix) = u32::try_from(frame_len) else {
        return false;
    };
    out.reserve(frame_len);
    out.extend_from_slice(&prefix.to_be_bytes());
    out.extend_from_slice(&head.bytes[..head.len]);
    out.extend_from_slice(&r.buffer);
    out.extend_from_slice(&EMPTY_STATUS);
    true
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail by panicking

    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::super::append_frame_with;
    use super::*;
    use crate::codec::{Bytes, TarsReader, TarsStruct};

    /// Names of every length class: empty, short ASCII, non-ASCII, over 255 bytes.
    fn name() -> impl Strategy<Value = String> {
        prop_oneof![
            Just(String::new()),
            "[A-Za-z.]{1,40}",
            "[a-zé€]{1,10}",
            "[a-z]{256,300}",
        ]
    }

    /// Integers of every encoded width, with the boundaries between widths common.
    fn int32() -> impl Strategy<Value = i32> {
        prop_oneof![any::<i32>(), -300i32..300, -70_000i32..70_000]
    }

    fn int16() -> impl Strategy<Value = i16> {
        prop_oneof![any::<i16>(), -300i16..300]
    }

    fn small_map() -> impl Strategy<Value = BTreeMap<String, String>> {
        prop_oneof![
            3 => Just(BTreeMap::new()),
            1 => proptest::collection::btree_map("[a-z]{1,5}", "[a-z]{0,5}", 1..3),
        ]
    }

    fn packet() -> impl Strategy<Value = RequestPacket> {
        (
            (int16(), any::<i8>(), int32(), int32()),
            (name(), name()),
            proptest::collection::vec(any::<u8>(), 0..400),
            int32(),
            (small_map(), small_map()),
        )
            .prop_map(
                |(
                    (version, packet_type, message_type, request_id),
                    (s, f),
                    buffer,
                    timeout,
                    (context, status),
                )| {
                    RequestPacket {
                        version,
                        packet_type,
                        message_type,
                        request_id,
                        servant_name: s,
                        func_name: f,
                        buffer: Bytes(buffer),
                        timeout,
                        context,
                        status,
                    }
                },
            )
    }

    /// The general decoder alone (what `decode` did before the fast path).
    fn general(body: &[u8]) -> Option<RequestPacketRef<'_>> {
        RequestPacketRef::decode_fields(&mut TarsReader::new(body)).ok()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// Every well-formed packet with empty maps takes the fast path, and whatever
        /// the fast path accepts (here or after a byte is changed) the general decoder
        /// reads the same.
        #[test]
        fn the_fast_request_path_agrees_with_the_general_decoder(
            p in packet(),
            flip in any::<(usize, u8)>(),
        ) {
            let body = p.encode_body();
            let fast = super::request(&body);
            if p.context.is_empty() && p.status.is_empty() {
                prop_assert!(fast.is_some(), "common packet refused: {p:?}");
            }
            if let Some(f) = fast {
                prop_assert_eq!(Some(f), general(&body));
            }
            let mut changed = body.clone();
            let at = flip.0 % changed.len();
            changed[at] ^= flip.1.max(1);
            if let Some(f) = super::request(&changed) {
                prop_assert_eq!(Some(f), general(&changed));
            }
        }

        /// A reused packet decoded by `decode_reusing` from a run of packets (some of
        /// them damaged) always ends as the general decoder reads each one.
        #[test]
        fn decode_reusing_matches_a_fresh_decode(
            run in proptest::collection::vec((packet(), any::<(usize, u8)>(), any::<bool>()), 1..6),
        ) {
            let mut reused = RequestPacket::default();
            for (p, flip, damage) in run {
                let mut body = p.encode_body();
                if damage {
                    let at = flip.0 % body.len();
                    body[at] ^= flip.1.max(1);
                }
                let fresh = RequestPacket::decode(&body);
                let r = reused.decode_reusing(&body);
                prop_assert_eq!(r.is_ok(), fresh.is_ok());
                if let Ok(fresh) = fresh {
                    prop_assert_eq!(&reused, &fresh);
                }
            }
        }

        /// The fast reply is byte for byte the general encoder's frame, and it is taken
        /// exactly for replies without status, description or context.
        #[test]
        fn the_fast_reply_is_the_general_frame(
            ints in (int16(), any::<i8>(), int32(), int32(), int32()),
            len in prop_oneof![0usize..300, 32_700usize..32_800, 65_530usize..65_540],
            status in small_map(),
            desc in proptest::option::of("[a-z]{0,8}"),
            context in proptest::option::of(small_map()),
        ) {
            let r = ResponsePacket {
                version: ints.0,
                packet_type: ints.1,
                request_id: ints.2,
                message_type: ints.3,
                ret: ints.4,
                buffer: Bytes((0..len).map(|i| i as u8).collect()),
                status,
                result_desc: desc,
                context,
            };
            let mut general = b"before".to_vec();
            append_frame_with(&mut general, |w| r.encode_fields(w)).unwrap();
            let mut fast = b"before".to_vec();
            let took = response_frame(&r, &mut fast);
            let common = r.status.is_empty() && r.result_desc.is_none() && r.context.is_none();
            prop_assert_eq!(took, common);
            if took {
                prop_assert_eq!(fast, general);
            }
        }
    }
}
