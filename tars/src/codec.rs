//! The TARS binary encoding (spec: `shared/spec/tars-platform.md` §3).
//!
//! Every value travels as a field: a head `(tag << 4) | type` (tags ≥ 15 take a second
//! byte), then a payload. [`TarsWriter`] writes fields; [`TarsReader`] finds them by tag
//! in a borrowed buffer; the traits [`TarsEncode`] and [`TarsDecode`] connect Rust types
//! to both.
//!
//! # Type mapping (what `tars2rs` generates)
//!
//! | TARS | Rust | on the wire |
//! |---|---|---|
//! | `bool` | `bool` | INT8 0/1 (ZERO for false) |
//! | `byte` / `short` / `int` / `long` | `i8` / `i16` / `i32` / `i64` | smallest integer form |
//! | `unsigned byte` / `unsigned short` / `unsigned int` | `u8` / `u16` / `u32` | as `short` / `int` / `long` |
//! | `float` / `double` | `f32` / `f64` | FLOAT / DOUBLE; `+0.0` as ZERO (see below) |
//! | `string` | `String` | STRING1 / STRING4, UTF-8 |
//! | `vector<byte>` | [`Bytes`] | SIMPLE_LIST |
//! | `vector<T>` | `Vec<T>` | LIST |
//! | `map<K, V>` | `BTreeMap<K, V>` | MAP, ascending key order |
//! | struct | a type implementing [`TarsStruct`] | STRUCT_BEGIN … STRUCT_END |
//!
//! `BTreeMap` is the map to generate: its ascending order is the order a C++
//! `std::map` writes, so output is deterministic and byte-equal to TarsCpp's. A struct
//! used as a map key (e.g. `StatMicMsgHead`) therefore needs `Ord` (derive
//! `PartialEq, Eq, PartialOrd, Ord`; or order by the IDL's `key[...]` fields).
//! `HashMap` also implements the traits for hand-written code.
//!
//! Float zero: Tars.js writes `0.0` as a ZERO head, TarsCpp in full width; both decode.
//! This writer follows Tars.js for `+0.0` (byte-equal to @tars/stream) and writes
//! `-0.0` in full width so its sign survives.
//!
//! # How a generated struct implements the traits
//!
//! Given `struct Inner { 0 require int a; 1 optional string b = "x"; 2 optional
//! vector<byte> raw; };`, the generator writes one [`TarsStruct`] impl; blanket impls
//! then make `Inner`, `Vec<Inner>` and `BTreeMap<_, Inner>` encodable and decodable:
//!
//! ```
//! use tarsfork_tars::codec::{Bytes, DecodeError, TarsReader, TarsStruct, TarsWriter};
//!
//! #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
//! pub struct Inner {
//!     pub a: i32,
//!     pub b: String,
//!     pub raw: Bytes,
//! }
//!
//! impl Default for Inner {
//!     // IDL defaults live here.
//!     fn default() -> Self {
//!         Self { a: 0, b: "x".to_owned(), raw: Bytes::default() }
//!     }
//! }
//!
//! impl TarsStruct for Inner {
//!     // Write every field (optional ones too, as Tars.js does), ascending tags.
//!     fn encode_fields(&self, w: &mut TarsWriter) {
//!         w.write(0, &self.a);
//!         w.write(1, &self.b);
//!         w.write(2, &self.raw);
//!     }
//!     // Read in ascending tag order; an absent optional field takes its IDL default.
//!     fn decode_fields(r: &mut TarsReader<'_>) -> Result<Self, DecodeError> {
//!         Ok(Self {
//!             a: r.read_required(0)?,
//!             b: r.read_optional(1)?.unwrap_or_else(|| "x".to_owned()),
//!             raw: r.read_optional(2)?.unwrap_or_default(),
//!         })
//!     }
//! }
//!
//! // A field at tag 3 of some outer struct or argument list:
//! let value = Inner { a: 7, b: "hi".into(), raw: Bytes(vec![1, 2]) };
//! let mut w = TarsWriter::new();
//! w.write(3, &value);
//! let bytes = w.into_bytes();
//!
//! let mut r = TarsReader::new(&bytes);
//! let back: Inner = r.read_required(3)?;
//! assert_eq!(back, value);
//! # Ok::<(), DecodeError>(())
//! ```
//!
//! An enum is generated as a type implementing [`TarsEncode`] (write its `i32`) and
//! [`TarsDecode`] (read an `i32` with `i32::decode_value`, map it, and report an unknown
//! value with [`DecodeErrorKind::InvalidValue`] — or keep it, as the generator decides).
//! Interface arguments are plain fields at tags 1..N of a buffer (return value at tag
//! 0): write them with [`TarsWriter::write`] and read them with
//! [`TarsReader::read_required`] on a reader over the whole buffer.
//!
//! # Hostile input
//!
//! Decoding never panics and never allocates from an unchecked number: every length
//! and count is compared with the bytes left before use, collections reserve at most
//! 64 KiB ahead of their decoded elements, and nesting is bounded by
//! [`DecodeLimits::max_depth`]. Errors carry the byte offset ([`DecodeError`]).

mod error;
mod impls;
mod reader;
mod writer;

pub use error::{DecodeError, DecodeErrorKind};
pub use reader::{DecodeLimits, TarsReader};
pub use writer::TarsWriter;

/// Wire types: the low four bits of a head.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum TarsType {
    /// One byte (also `bool`, `byte`).
    Int8 = 0,
    /// Two bytes, big-endian.
    Int16 = 1,
    /// Four bytes, big-endian.
    Int32 = 2,
    /// Eight bytes, big-endian.
    Int64 = 3,
    /// IEEE 754 single, big-endian.
    Float = 4,
    /// IEEE 754 double, big-endian.
    Double = 5,
    /// A string of up to 255 bytes: one length byte, then the bytes.
    String1 = 6,
    /// A string with a four-byte big-endian length.
    String4 = 7,
    /// A map: count at tag 0, then key at tag 0 and value at tag 1 per entry.
    Map = 8,
    /// A list: count at tag 0, then each element at tag 0.
    List = 9,
    /// Opens a nested struct.
    StructBegin = 10,
    /// Closes a nested struct (always at tag 0).
    StructEnd = 11,
    /// A numeric zero with no payload.
    Zero = 12,
    /// `vector<byte>`: an INT8 head, the length at tag 0, the raw bytes.
    SimpleList = 13,
}

impl TarsType {
    /// The type with wire id `id`, if there is one.
    pub fn from_id(id: u8) -> Option<Self> {
        Some(match id {
            0 => Self::Int8,
            1 => Self::Int16,
            2 => Self::Int32,
            3 => Self::Int64,
            4 => Self::Float,
            5 => Self::Double,
            6 => Self::String1,
            7 => Self::String4,
            8 => Self::Map,
            9 => Self::List,
            10 => Self::StructBegin,
            11 => Self::StructEnd,
            12 => Self::Zero,
            13 => Self::SimpleList,
            _ => return None,
        })
    }
}

impl std::fmt::Display for TarsType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = match self {
            Self::Int8 => "INT8",
            Self::Int16 => "INT16",
            Self::Int32 => "INT32",
            Self::Int64 => "INT64",
            Self::Float => "FLOAT",
            Self::Double => "DOUBLE",
            Self::String1 => "STRING1",
            Self::String4 => "STRING4",
            Self::Map => "MAP",
            Self::List => "LIST",
            Self::StructBegin => "STRUCT_BEGIN",
            Self::StructEnd => "STRUCT_END",
            Self::Zero => "ZERO",
            Self::SimpleList => "SIMPLE_LIST",
        };
        write!(f, "{name}({})", *self as u8)
    }
}

/// A value that can be written as one TARS field.
pub trait TarsEncode {
    /// Writes `self` as a complete field (head and payload) at `tag`.
    fn encode(&self, w: &mut TarsWriter, tag: u8);
}

/// A value that can be read from one TARS field.
pub trait TarsDecode: Sized {
    /// Decodes the payload of a field whose head — `tag` and wire type `ty` — the reader
    /// has just consumed. Narrower and alternative wire forms are accepted where TARS
    /// allows them. Callers normally use [`TarsReader::read_required`] or
    /// [`TarsReader::read_optional`] instead.
    fn decode_value(r: &mut TarsReader<'_>, tag: u8, ty: TarsType) -> Result<Self, DecodeError>;
}

/// A TARS struct: its fields, without the STRUCT_BEGIN/STRUCT_END around them.
///
/// Implementing this gives [`TarsEncode`] and [`TarsDecode`] (which add the struct
/// wrapper and skip unknown trailing fields). The same two methods serve a top-level
/// field list, such as a packet body, that has no wrapper.
pub trait TarsStruct: Sized {
    /// Writes the fields in ascending tag order.
    fn encode_fields(&self, w: &mut TarsWriter);
    /// Reads the fields in ascending tag order; must not consume the STRUCT_END.
    fn decode_fields(r: &mut TarsReader<'_>) -> Result<Self, DecodeError>;
}

/// A `vector<byte>`: travels as SIMPLE_LIST (raw bytes), unlike `Vec<i8>`/`Vec<u8>`,
/// which travel as a LIST of integer fields.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Bytes(pub Vec<u8>);

impl From<Vec<u8>> for Bytes {
    fn from(v: Vec<u8>) -> Self {
        Self(v)
    }
}

impl From<&[u8]> for Bytes {
    fn from(v: &[u8]) -> Self {
        Self(v.to_vec())
    }
}

impl From<Bytes> for Vec<u8> {
    fn from(b: Bytes) -> Self {
        b.0
    }
}

impl std::ops::Deref for Bytes {
    type Target = Vec<u8>;
    fn deref(&self) -> &Vec<u8> {
        &self.0
    }
}

impl std::ops::DerefMut for Bytes {
    fn deref_mut(&mut self) -> &mut Vec<u8> {
        &mut self.0
    }
}

/// Encodes `value` as a single field at `tag`.
pub fn to_bytes<T: TarsEncode + ?Sized>(tag: u8, value: &T) -> Vec<u8> {
    let mut w = TarsWriter::new();
    value.encode(&mut w, tag);
    w.into_bytes()
}

/// Decodes the required field at `tag` from `bytes` (other fields are skipped).
pub fn from_bytes<T: TarsDecode>(bytes: &[u8], tag: u8) -> Result<T, DecodeError> {
    TarsReader::new(bytes).read_required(tag)
}
