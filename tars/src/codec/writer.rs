//! The TARS encoder: typed field writers over a growable byte buffer.

use super::{TarsEncode, TarsType};

/// Encodes TARS fields into an owned byte buffer.
///
/// Every `write_*` method writes one complete field (head and payload) at `tag`.
/// Integers take the smallest form that holds the value (0 → ZERO, then INT8, INT16,
/// INT32, INT64), as Tars.js and TarsCpp write them. Encoding cannot fail: lengths
/// and counts are assumed to fit in an `i32` (anything larger could not be framed).
#[derive(Debug, Default, Clone)]
pub struct TarsWriter {
    buf: Vec<u8>,
}

impl TarsWriter {
    /// An empty writer.
    pub fn new() -> Self {
        Self { buf: Vec::new() }
    }

    /// An empty writer with room for `capacity` bytes.
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            buf: Vec::with_capacity(capacity),
        }
    }

    /// Continues writing after the bytes already in `buf` (e.g. a reserved frame header).
    pub fn from_vec(buf: Vec<u8>) -> Self {
        Self { buf }
    }

    /// The bytes written so far.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf
    }

    /// Gives up the buffer.
    pub fn into_bytes(self) -> Vec<u8> {
        self.buf
    }

    /// Number of bytes written so far.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// True when nothing has been written.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// Forgets the content but keeps the allocation, for reuse.
    pub fn clear(&mut self) {
        self.buf.clear();
    }

    /// Writes a head: one byte `(tag << 4) | type`, or for tags ≥ 15 the byte
    /// `0xF0 | type` followed by the tag.
    #[inline]
    pub fn write_head(&mut self, tag: u8, ty: TarsType) {
        let ty = ty as u8;
        if tag < 15 {
            self.buf.push((tag << 4) | ty);
        } else {
            self.buf.extend_from_slice(&[0xF0 | ty, tag]);
        }
    }

    /// Writes any encodable value at `tag` (dispatches to [`TarsEncode`]).
    #[inline]
    pub fn write<T: TarsEncode + ?Sized>(&mut self, tag: u8, value: &T) {
        value.encode(self, tag);
    }

    /// Writes a `bool` as the integer 0 or 1.
    #[inline]
    pub fn write_bool(&mut self, tag: u8, value: bool) {
        self.write_i8(tag, i8::from(value));
    }

    /// Writes a `byte`.
    #[inline]
    pub fn write_i8(&mut self, tag: u8, value: i8) {
        if value == 0 {
            self.write_head(tag, TarsType::Zero);
        } else {
            self.write_head(tag, TarsType::Int8);
            self.buf.push(value as u8);
        }
    }

    /// Writes a `short` in its smallest form.
    #[inline]
    pub fn write_i16(&mut self, tag: u8, value: i16) {
        match i8::try_from(value) {
            Ok(v) => self.write_i8(tag, v),
            Err(_) => {
                self.write_head(tag, TarsType::Int16);
                self.buf.extend_from_slice(&value.to_be_bytes());
            }
        }
    }

    /// Writes an `int` in its smallest form.
    #[inline]
    pub fn write_i32(&mut self, tag: u8, value: i32) {
        match i16::try_from(value) {
            Ok(v) => self.write_i16(tag, v),
            Err(_) => {
                self.write_head(tag, TarsType::Int32);
                self.buf.extend_from_slice(&value.to_be_bytes());
            }
        }
    }

    /// Writes a `long` in its smallest form.
    #[inline]
    pub fn write_i64(&mut self, tag: u8, value: i64) {
        match i32::try_from(value) {
            Ok(v) => self.write_i32(tag, v),
            Err(_) => {
                self.write_head(tag, TarsType::Int64);
                self.buf.extend_from_slice(&value.to_be_bytes());
            }
        }
    }

    /// Writes an `unsigned byte`, which TARS carries as a `short`.
    #[inline]
    pub fn write_u8(&mut self, tag: u8, value: u8) {
        self.write_i16(tag, i16::from(value));
    }

    /// Writes an `unsigned short`, which TARS carries as an `int`.
    #[inline]
    pub fn write_u16(&mut self, tag: u8, value: u16) {
        self.write_i32(tag, i32::from(value));
    }

    /// Writes an `unsigned int`, which TARS carries as a `long`.
    #[inline]
    pub fn write_u32(&mut self, tag: u8, value: u32) {
        self.write_i64(tag, i64::from(value));
    }

    /// Writes a `float`. Positive zero is written as ZERO (as Tars.js does, so the
    /// bytes match @tars/stream); every other value, `-0.0` included, in full width.
    #[inline]
    pub fn write_f32(&mut self, tag: u8, value: f32) {
        if value.to_bits() == 0 {
            self.write_head(tag, TarsType::Zero);
        } else {
            self.write_head(tag, TarsType::Float);
            self.buf.extend_from_slice(&value.to_be_bytes());
        }
    }

    /// Writes a `double`; zero is handled as in [`Self::write_f32`].
    #[inline]
    pub fn write_f64(&mut self, tag: u8, value: f64) {
        if value.to_bits() == 0 {
            self.write_head(tag, TarsType::Zero);
        } else {
            self.write_head(tag, TarsType::Double);
            self.buf.extend_from_slice(&value.to_be_bytes());
        }
    }

    /// Writes a `string` (STRING1 up to 255 bytes, else STRING4).
    #[inline]
    pub fn write_str(&mut self, tag: u8, value: &str) {
        self.write_string_bytes(tag, value.as_bytes());
    }

    /// Writes raw bytes as a `string` (for peers whose strings are not UTF-8).
    pub fn write_string_bytes(&mut self, tag: u8, value: &[u8]) {
        match u8::try_from(value.len()) {
            Ok(len) => {
                self.write_head(tag, TarsType::String1);
                self.buf.push(len);
            }
            Err(_) => {
                self.write_head(tag, TarsType::String4);
                self.buf
                    .extend_from_slice(&saturate_u32(value.len()).to_be_bytes());
            }
        }
        self.buf.extend_from_slice(value);
    }

    /// Writes a `vector<byte>` as SIMPLE_LIST: the head, an INT8 head at tag 0, the
    /// length as an integer at tag 0, then the raw bytes.
    pub fn write_bytes(&mut self, tag: u8, value: &[u8]) {
        self.write_head(tag, TarsType::SimpleList);
        self.write_head(0, TarsType::Int8);
        self.write_i32(0, saturate_i32(value.len()));
        self.buf.extend_from_slice(value);
    }

    /// Starts a LIST of `len` elements; the caller then writes each element at tag 0.
    pub fn write_list_begin(&mut self, tag: u8, len: usize) {
        self.write_head(tag, TarsType::List);
        self.write_i32(0, saturate_i32(len));
    }

    /// Starts a MAP of `len` entries; the caller then writes each key at tag 0 and
    /// its value at tag 1.
    pub fn write_map_begin(&mut self, tag: u8, len: usize) {
        self.write_head(tag, TarsType::Map);
        self.write_i32(0, saturate_i32(len));
    }

    /// Starts a nested struct at `tag`; its fields follow, then [`Self::write_struct_end`].
    #[inline]
    pub fn write_struct_begin(&mut self, tag: u8) {
        self.write_head(tag, TarsType::StructBegin);
    }

    /// Ends a nested struct.
    #[inline]
    pub fn write_struct_end(&mut self) {
        self.write_head(0, TarsType::StructEnd);
    }

    /// Appends bytes that are already TARS-encoded (e.g. a pre-encoded field).
    pub fn write_raw(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Mutable access to the buffer, for framing code that patches a length in place.
    pub fn buffer_mut(&mut self) -> &mut Vec<u8> {
        &mut self.buf
    }
}

/// Lengths beyond `i32::MAX` cannot travel in TARS; such a buffer could never be framed
/// (frames are far smaller), so saturating only avoids a silent wrap to a negative.
fn saturate_i32(len: usize) -> i32 {
    i32::try_from(len).unwrap_or(i32::MAX)
}

/// See [`saturate_i32`].
fn saturate_u32(len: usize) -> u32 {
    u32::try_from(len).unwrap_or(u32::MAX)
}
