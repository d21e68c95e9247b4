//! Request and response packets (`RequestF.tars`), the server's result codes, and the
//! simple TUP (iVersion 3) parameter map.
//!
//! A packet's fields are written directly after the frame length, with no struct
//! wrapper; [`RequestPacket::decode`] and [`ResponsePacket::decode`] take that body (as
//! [`crate::frame::FrameSplitter`] returns it), `encode_frame` produces a whole frame.
//!
//! In iVersion 1 (TARS) the packet's buffer holds the call's arguments at tags 1..N
//! and the return value at tag 0. In iVersion 3 (simple TUP) it holds a [`TupData`]:
//! `map<string, vector<byte>>` at tag 0, parameter name → that value encoded alone at
//! tag 0, with `""` for the return value; a TUP reply is RequestPacket-shaped and
//! carries its result in `status` ([`STATUS_RESULT_CODE`], [`STATUS_RESULT_DESC`]).

mod fast;

use std::collections::BTreeMap;

use crate::codec::{
    Bytes, DecodeError, TarsDecode, TarsEncode, TarsReader, TarsStruct, TarsWriter,
};
use crate::frame::{FrameBuilder, FrameError};

/// iVersion of a plain TARS packet.
pub const VERSION_TARS: i16 = 1;
/// iVersion of a simple TUP packet (parameters keyed by name).
pub const VERSION_TUP: i16 = 3;

/// cPacketType of a call that expects a reply.
pub const PACKET_NORMAL: i8 = 0;
/// cPacketType of a call that expects no reply.
pub const PACKET_ONEWAY: i8 = 1;

/// `status` key of a TUP reply holding the result code as decimal text.
pub const STATUS_RESULT_CODE: &str = "STATUS_RESULT_CODE";
/// `status` key of a TUP reply holding the result description.
pub const STATUS_RESULT_DESC: &str = "STATUS_RESULT_DESC";

/// Success.
pub const TARSSERVERSUCCESS: i32 = 0;
/// The server could not decode the request.
pub const TARSSERVERDECODEERR: i32 = -1;
/// The server could not encode the reply.
pub const TARSSERVERENCODEERR: i32 = -2;
/// The servant has no such function.
pub const TARSSERVERNOFUNCERR: i32 = -3;
/// No such servant.
pub const TARSSERVERNOSERVANTERR: i32 = -4;
/// Servant or connection reset (grid mismatch).
pub const TARSSERVERRESETGRID: i32 = -5;
/// The request timed out in the server's queue.
pub const TARSSERVERQUEUETIMEOUT: i32 = -6;
/// An asynchronous call timed out.
pub const TARSASYNCCALLTIMEOUT: i32 = -7;
/// A call timed out.
pub const TARSINVOKETIMEOUT: i32 = -8;
/// The proxy could not connect.
pub const TARSPROXYCONNECTERR: i32 = -9;
/// The server is overloaded.
pub const TARSSERVEROVERLOAD: i32 = -10;
/// No adapter to send on.
pub const TARSADAPTERNULL: i32 = -11;
/// Called through an invalid ESET.
pub const TARSINVOKEBYINVALIDESET: i32 = -12;
/// The client could not decode the reply.
pub const TARSCLIENTDECODEERR: i32 = -13;
/// Any other failure.
pub const TARSSERVERUNKNOWNERR: i32 = -99;

/// The constant's name for a result code (`"TARSSERVERUNKNOWNERR"` for unknown codes
/// too, which is what a peer should make of them).
pub fn ret_name(code: i32) -> &'static str {
    match code {
        TARSSERVERSUCCESS => "TARSSERVERSUCCESS",
        TARSSERVERDECODEERR => "TARSSERVERDECODEERR",
        TARSSERVERENCODEERR => "TARSSERVERENCODEERR",
        TARSSERVERNOFUNCERR => "TARSSERVERNOFUNCERR",
        TARSSERVERNOSERVANTERR => "TARSSERVERNOSERVANTERR",
        TARSSERVERRESETGRID => "TARSSERVERRESETGRID",
        TARSSERVERQUEUETIMEOUT => "TARSSERVERQUEUETIMEOUT",
        TARSASYNCCALLTIMEOUT => "TARSASYNCCALLTIMEOUT",
        TARSINVOKETIMEOUT => "TARSINVOKETIMEOUT",
        TARSPROXYCONNECTERR => "TARSPROXYCONNECTERR",
        TARSSERVEROVERLOAD => "TARSSERVEROVERLOAD",
        TARSADAPTERNULL => "TARSADAPTERNULL",
        TARSINVOKEBYINVALIDESET => "TARSINVOKEBYINVALIDESET",
        TARSCLIENTDECODEERR => "TARSCLIENTDECODEERR",
        _ => "TARSSERVERUNKNOWNERR",
    }
}

/// Failures above the codec: packet bodies, TUP maps and their parameters.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PacketError {
    /// The bytes of a packet or a TUP map do not decode.
    #[error("cannot decode the {what}: {source}")]
    Decode {
        /// What was being decoded.
        what: &'static str,
        /// Why it failed.
        #[source]
        source: DecodeError,
    },
    /// A TUP parameter is absent.
    #[error("TUP parameter {name:?} is missing")]
    MissingParam {
        /// The parameter name.
        name: String,
    },
    /// A TUP parameter is present but does not decode as the expected type.
    #[error("cannot decode TUP parameter {name:?}: {source}")]
    Param {
        /// The parameter name.
        name: String,
        /// Why it failed.
        #[source]
        source: DecodeError,
    },
    /// `STATUS_RESULT_CODE` is not a decimal integer.
    #[error("TUP status {STATUS_RESULT_CODE} is not an integer: {0:?}")]
    BadResultCode(String),
    /// The packet could not be framed.
    #[error("cannot frame the packet: {0}")]
    Frame(#[from] FrameError),
}

/// A request (and, in TUP, also a reply), as `RequestF.tars` declares it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestPacket {
    /// Tag 1 `iVersion`: [`VERSION_TARS`] or [`VERSION_TUP`].
    pub version: i16,
    /// Tag 2 `cPacketType`: [`PACKET_NORMAL`] or [`PACKET_ONEWAY`].
    pub packet_type: i8,
    /// Tag 3 `iMessageType`: flags (hash, grid, dye...); 0 for plain calls.
    pub message_type: i32,
    /// Tag 4 `iRequestId`: matches a reply to its request.
    pub request_id: i32,
    /// Tag 5 `sServantName`, e.g. `tars.tarsnode.ServerObj`.
    pub servant_name: String,
    /// Tag 6 `sFuncName`.
    pub func_name: String,
    /// Tag 7 `sBuffer`: the arguments (v1) or a [`TupData`] (v3).
    pub buffer: Bytes,
    /// Tag 8 `iTimeout` in milliseconds.
    pub timeout: i32,
    /// Tag 9 `context`.
    pub context: BTreeMap<String, String>,
    /// Tag 10 `status`.
    pub status: BTreeMap<String, String>,
}

impl TarsStruct for RequestPacket {
    fn encode_fields(&self, w: &mut TarsWriter) {
        w.write_i16(1, self.version);
        w.write_i8(2, self.packet_type);
        w.write_i32(3, self.message_type);
        w.write_i32(4, self.request_id);
        w.write_str(5, &self.servant_name);
        w.write_str(6, &self.func_name);
        w.write_bytes(7, &self.buffer);
        w.write_i32(8, self.timeout);
        // Always written: @tars/rpc rejects a request without tags 9 and 10.
        w.write(9, &self.context);
        w.write(10, &self.status);
    }

    fn decode_fields(r: &mut TarsReader<'_>) -> Result<Self, DecodeError> {
        RequestPacketRef::decode_fields(r).map(RequestPacketRef::into_owned)
    }
}

impl RequestPacket {
    /// Decodes a packet body (the frame without its length prefix).
    pub fn decode(body: &[u8]) -> Result<Self, PacketError> {
        Self::decode_fields(&mut TarsReader::new(body)).map_err(|source| PacketError::Decode {
            what: "RequestPacket",
            source,
        })
    }

    /// Decodes a packet body into `self`, reusing its buffers: what a server does with
    /// one packet per connection or per worker. On error `self` holds unspecified
    /// (but valid) contents.
    pub fn decode_reusing(&mut self, body: &[u8]) -> Result<(), PacketError> {
        if fast::request_into(body, self).is_some() {
            return Ok(());
        }
        RequestPacketRef::decode(body)?.copy_into(self);
        Ok(())
    }

    /// The packet's fields, without a frame.
    pub fn encode_body(&self) -> Vec<u8> {
        let mut w = TarsWriter::with_capacity(self.size_hint());
        self.encode_fields(&mut w);
        w.into_bytes()
    }

    /// The packet as a complete frame.
    pub fn encode_frame(&self) -> Result<Vec<u8>, PacketError> {
        let mut b = FrameBuilder::with_capacity(self.size_hint());
        self.encode_fields(b.writer());
        Ok(b.finish()?)
    }

    /// Appends the packet as a complete frame to `out` (no intermediate buffer).
    pub fn append_frame(&self, out: &mut Vec<u8>) -> Result<(), PacketError> {
        append_frame_with(out, |w| self.encode_fields(w))
    }

    /// True for a call that expects no reply.
    pub fn is_oneway(&self) -> bool {
        self.packet_type == PACKET_ONEWAY
    }

    /// A simple TUP (iVersion 3) request carrying `data`.
    pub fn tup_request(
        request_id: i32,
        servant_name: &str,
        func_name: &str,
        data: &TupData,
        timeout_ms: i32,
    ) -> Self {
        Self {
            version: VERSION_TUP,
            packet_type: PACKET_NORMAL,
            message_type: 0,
            request_id,
            servant_name: servant_name.to_owned(),
            func_name: func_name.to_owned(),
            buffer: Bytes(data.encode()),
            timeout: timeout_ms,
            context: BTreeMap::new(),
            status: BTreeMap::new(),
        }
    }

    /// The TUP reply to this request: same ids and names, `data` as the buffer and the
    /// result in `status`. Both status keys are always written (as Tars.js does;
    /// TarsCpp writes them only for a non-zero code or a description, and readers
    /// treat absence as success).
    pub fn tup_reply(&self, ret: i32, desc: &str, data: &TupData) -> Self {
        let mut status = BTreeMap::new();
        status.insert(STATUS_RESULT_CODE.to_owned(), ret.to_string());
        status.insert(STATUS_RESULT_DESC.to_owned(), desc.to_owned());
        Self {
            version: VERSION_TUP,
            packet_type: PACKET_NORMAL,
            message_type: self.message_type,
            request_id: self.request_id,
            servant_name: self.servant_name.clone(),
            func_name: self.func_name.clone(),
            buffer: Bytes(data.encode()),
            timeout: 0,
            context: BTreeMap::new(),
            status,
        }
    }

    /// The result code and description of a TUP reply (absent keys mean 0 and `""`).
    pub fn tup_result(&self) -> Result<(i32, &str), PacketError> {
        let code = match self.status.get(STATUS_RESULT_CODE) {
            None => TARSSERVERSUCCESS,
            Some(text) => text
                .trim()
                .parse()
                .map_err(|_| PacketError::BadResultCode(text.clone()))?,
        };
        let desc = self
            .status
            .get(STATUS_RESULT_DESC)
            .map_or("", String::as_str);
        Ok((code, desc))
    }

    /// Decodes the buffer of a TUP packet.
    pub fn tup_data(&self) -> Result<TupData, PacketError> {
        TupData::decode(&self.buffer)
    }

    fn size_hint(&self) -> usize {
        32 + self.servant_name.len() + self.func_name.len() + self.buffer.len()
    }
}

/// A request decoded without copying: the names and the argument buffer borrow from
/// the frame, so decoding a typical request (empty `context` and `status`) allocates
/// nothing. For the server's hot path; [`Self::into_owned`] gives a [`RequestPacket`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestPacketRef<'a> {
    /// Tag 1 `iVersion`.
    pub version: i16,
    /// Tag 2 `cPacketType`.
    pub packet_type: i8,
    /// Tag 3 `iMessageType`.
    pub message_type: i32,
    /// Tag 4 `iRequestId`.
    pub request_id: i32,
    /// Tag 5 `sServantName`.
    pub servant_name: &'a str,
    /// Tag 6 `sFuncName`.
    pub func_name: &'a str,
    /// Tag 7 `sBuffer` (must be a SIMPLE_LIST, as every implementation writes it).
    pub buffer: &'a [u8],
    /// Tag 8 `iTimeout` in milliseconds.
    pub timeout: i32,
    /// Tag 9 `context`.
    pub context: BTreeMap<String, String>,
    /// Tag 10 `status`.
    pub status: BTreeMap<String, String>,
}

impl<'a> RequestPacketRef<'a> {
    /// Decodes a packet body (the frame without its length prefix).
    pub fn decode(body: &'a [u8]) -> Result<Self, PacketError> {
        if let Some(packet) = fast::request(body) {
            return Ok(packet);
        }
        Self::decode_fields(&mut TarsReader::new(body)).map_err(|source| PacketError::Decode {
            what: "RequestPacket",
            source,
        })
    }

    /// Reads the fields at the reader's cursor.
    pub fn decode_fields(r: &mut TarsReader<'a>) -> Result<Self, DecodeError> {
        let version = r.read_required(1)?;
        let packet_type = r.read_required(2)?;
        let message_type = r.read_required(3)?;
        let request_id = r.read_required(4)?;
        let servant_name = r.read_str_ref(5, true)?.unwrap_or_default();
        let func_name = r.read_str_ref(6, true)?.unwrap_or_default();
        let buffer = r.read_bytes_ref(7, true)?.unwrap_or_default();
        Ok(Self {
            version,
            packet_type,
            message_type,
            request_id,
            servant_name,
            func_name,
            buffer,
            timeout: r.read_required(8)?,
            // Declared require, but tolerated when absent: nothing depends on them.
            context: r.read_optional(9)?.unwrap_or_default(),
            status: r.read_optional(10)?.unwrap_or_default(),
        })
    }

    /// True for a call that expects no reply.
    pub fn is_oneway(&self) -> bool {
        self.packet_type == PACKET_ONEWAY
    }

    /// Copies the packet into `out`, reusing its strings' and buffer's allocations (a
    /// server decoding request after request into one packet allocates nothing for the
    /// names and arguments once they have grown to size).
    pub fn copy_into(self, out: &mut RequestPacket) {
        out.version = self.version;
        out.packet_type = self.packet_type;
        out.message_type = self.message_type;
        out.request_id = self.request_id;
        if out.servant_name != self.servant_name {
            out.servant_name.clear();
            out.servant_name.push_str(self.servant_name);
        }
        if out.func_name != self.func_name {
            out.func_name.clear();
            out.func_name.push_str(self.func_name);
        }
        out.buffer.0.clear();
        out.buffer.0.extend_from_slice(self.buffer);
        out.timeout = self.timeout;
        move_map(self.context, &mut out.context);
        move_map(self.status, &mut out.status);
    }

    /// An owned copy.
    pub fn into_owned(self) -> RequestPacket {
        RequestPacket {
            version: self.version,
            packet_type: self.packet_type,
            message_type: self.message_type,
            request_id: self.request_id,
            servant_name: self.servant_name.to_owned(),
            func_name: self.func_name.to_owned(),
            buffer: Bytes(self.buffer.to_vec()),
            timeout: self.timeout,
            context: self.context,
            status: self.status,
        }
    }
}

/// A reply in iVersion 1, as `RequestF.tars` declares it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResponsePacket {
    /// Tag 1 `iVersion`.
    pub version: i16,
    /// Tag 2 `cPacketType`.
    pub packet_type: i8,
    /// Tag 3 `iRequestId`, copied from the request.
    pub request_id: i32,
    /// Tag 4 `iMessageType`.
    pub message_type: i32,
    /// Tag 5 `iRet`: one of the `TARS*` result codes.
    pub ret: i32,
    /// Tag 6 `sBuffer`: return value at tag 0, out parameters at their tags.
    pub buffer: Bytes,
    /// Tag 7 `status`.
    pub status: BTreeMap<String, String>,
    /// Tag 8 `sResultDesc` (optional: `None` leaves the tag out, as TarsCpp does).
    pub result_desc: Option<String>,
    /// Tag 9 `context` (optional: `None` leaves the tag out).
    pub context: Option<BTreeMap<String, String>>,
}

impl TarsStruct for ResponsePacket {
    fn encode_fields(&self, w: &mut TarsWriter) {
        w.write_i16(1, self.version);
        w.write_i8(2, self.packet_type);
        w.write_i32(3, self.request_id);
        w.write_i32(4, self.message_type);
        w.write_i32(5, self.ret);
        w.write_bytes(6, &self.buffer);
        w.write(7, &self.status);
        if let Some(desc) = &self.result_desc {
            w.write_str(8, desc);
        }
        if let Some(context) = &self.context {
            w.write(9, context);
        }
    }

    fn decode_fields(r: &mut TarsReader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            version: r.read_required(1)?,
            packet_type: r.read_required(2)?,
            request_id: r.read_required(3)?,
            message_type: r.read_required(4)?,
            ret: r.read_required(5)?,
            buffer: r.read_required(6)?,
            status: r.read_optional(7)?.unwrap_or_default(),
            result_desc: r.read_optional(8)?,
            context: r.read_optional(9)?,
        })
    }
}

impl ResponsePacket {
    /// Decodes a packet body (the frame without its length prefix).
    pub fn decode(body: &[u8]) -> Result<Self, PacketError> {
        Self::decode_fields(&mut TarsReader::new(body)).map_err(|source| PacketError::Decode {
            what: "ResponsePacket",
            source,
        })
    }

    /// The packet's fields, without a frame.
    pub fn encode_body(&self) -> Vec<u8> {
        let mut w = TarsWriter::with_capacity(32 + self.buffer.len());
        self.encode_fields(&mut w);
        w.into_bytes()
    }

    /// The packet as a complete frame.
    pub fn encode_frame(&self) -> Result<Vec<u8>, PacketError> {
        let mut b = FrameBuilder::with_capacity(32 + self.buffer.len());
        self.encode_fields(b.writer());
        Ok(b.finish()?)
    }

    /// Appends the packet as a complete frame to `out` (no intermediate buffer).
    pub fn append_frame(&self, out: &mut Vec<u8>) -> Result<(), PacketError> {
        if fast::response_frame(self, out) {
            return Ok(());
        }
        append_frame_with(out, |w| self.encode_fields(w))
    }

    /// The v1 reply to `req`: its version, type, id and message type, with `ret` and
    /// the encoded result `buffer`. Tags 8 and 9 are left out, as TarsCpp sends them.
    pub fn reply_to(req: &RequestPacket, ret: i32, buffer: Vec<u8>) -> Self {
        Self {
            version: req.version,
            packet_type: req.packet_type,
            request_id: req.request_id,
            message_type: req.message_type,
            ret,
            buffer: Bytes(buffer),
            status: BTreeMap::new(),
            result_desc: None,
            context: None,
        }
    }

    /// The description, or `""` when absent.
    pub fn desc(&self) -> &str {
        self.result_desc.as_deref().unwrap_or("")
    }
}

/// A simple TUP buffer: `map<string, vector<byte>>` at tag 0, each value being one
/// item encoded alone at tag 0. Names are kept in ascending order, as TarsCpp writes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TupData {
    items: BTreeMap<String, Bytes>,
}

impl TupData {
    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }

    /// Encodes `value` at tag 0 and stores it under `name` (`""` for a return value).
    pub fn put<T: TarsEncode + ?Sized>(&mut self, name: &str, value: &T) {
        let mut w = TarsWriter::new();
        value.encode(&mut w, 0);
        self.items.insert(name.to_owned(), Bytes(w.into_bytes()));
    }

    /// Decodes the item under `name`, if present.
    pub fn get<T: TarsDecode>(&self, name: &str) -> Result<Option<T>, PacketError> {
        self.read_with(name, |r| r.read_required(0))
    }

    /// Decodes the item under `name`, failing if it is absent.
    pub fn get_required<T: TarsDecode>(&self, name: &str) -> Result<T, PacketError> {
        self.get(name)?.ok_or_else(|| missing_param(name))
    }

    /// The `string` item under `name`, borrowed; the same errors as
    /// `get_required::<String>`.
    pub fn get_str(&self, name: &str) -> Result<&str, PacketError> {
        self.read_with(name, |r| {
            r.read_str_ref(0, true).map(Option::unwrap_or_default)
        })?
        .ok_or_else(|| missing_param(name))
    }

    /// Runs `read` on the item under `name` (None if absent), naming the parameter in
    /// its error.
    pub(crate) fn read_with<'s, T>(
        &'s self,
        name: &str,
        read: impl FnOnce(&mut TarsReader<'s>) -> Result<T, DecodeError>,
    ) -> Result<Option<T>, PacketError> {
        let Some(bytes) = self.items.get(name) else {
            return Ok(None);
        };
        read(&mut TarsReader::new(bytes))
            .map(Some)
            .map_err(|source| PacketError::Param {
                name: name.to_owned(),
                source,
            })
    }

    /// The raw (encoded) items by name.
    pub fn items(&self) -> &BTreeMap<String, Bytes> {
        &self.items
    }

    /// True when `name` is present.
    pub fn contains(&self, name: &str) -> bool {
        self.items.contains_key(name)
    }

    /// The buffer for a packet.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = TarsWriter::new();
        w.write(0, &self.items);
        w.into_bytes()
    }

    /// Reads a packet's TUP buffer.
    pub fn decode(bytes: &[u8]) -> Result<Self, PacketError> {
        TarsReader::new(bytes)
            .read_required(0)
            .map(|items| Self { items })
            .map_err(|source| PacketError::Decode {
                what: "TUP map",
                source,
            })
    }
}

/// The error for a TUP parameter that is absent.
pub(crate) fn missing_param(name: &str) -> PacketError {
    PacketError::MissingParam {
        name: name.to_owned(),
    }
}

/// Moves `from` into `to`. Dropping a `BTreeMap`, even an empty one, walks an
/// iterator; most requests carry empty maps, and this skips both drops for them.
fn move_map(from: BTreeMap<String, String>, to: &mut BTreeMap<String, String>) {
    if from.is_empty() {
        if !to.is_empty() {
            to.clear();
        }
        // Empty: owns no allocation, so forgetting it frees nothing.
        std::mem::forget(from);
    } else {
        *to = from;
    }
}

/// Appends one frame to `out`: a 4-byte length placeholder, the fields written by
/// `fields` straight into `out`, then the length patched in. On error `out` is left as
/// it was.
fn append_frame_with(
    out: &mut Vec<u8>,
    fields: impl FnOnce(&mut TarsWriter),
) -> Result<(), PacketError> {
    let start = out.len();
    out.extend_from_slice(&[0u8; 4]);
    let mut w = TarsWriter::from_vec(std::mem::take(out));
    fields(&mut w);
    *out = w.into_bytes();
    let len = out.len() - start;
    match u32::try_from(len) {
        Ok(n) => {
            out[start..start + 4].copy_from_slice(&n.to_be_bytes());
            Ok(())
        }
        Err(_) => {
            out.truncate(start);
            Err(crate::frame::FrameError::TooLong {
                len: len as u64,
                max: u64::from(u32::MAX),
            }
            .into())
        }
    }
}
