//! The TARS decoder: a cursor over borrowed bytes that finds fields by tag.

use super::{DecodeError, DecodeErrorKind, TarsDecode, TarsType};

/// Bounds that keep hostile input from exhausting the stack or memory.
///
/// Lengths and counts are always checked against the bytes left in the input before
/// anything is allocated, so the input size already bounds memory; `max_len` narrows
/// that further for callers who want a tighter cap per item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeLimits {
    /// Deepest nesting of lists, maps and structs (each level costs stack).
    pub max_depth: u32,
    /// Largest accepted string/byte length or element count.
    pub max_len: usize,
}

impl DecodeLimits {
    /// Default nesting limit: far beyond any real IDL, far below a stack overflow.
    pub const DEFAULT_MAX_DEPTH: u32 = 64;
}

impl Default for DecodeLimits {
    fn default() -> Self {
        Self {
            max_depth: Self::DEFAULT_MAX_DEPTH,
            max_len: usize::MAX,
        }
    }
}

/// Upper bound on bytes reserved ahead for a collection before its elements arrive: a
/// count is only a claim, so larger collections grow as they are actually decoded.
const MAX_PREALLOC_BYTES: usize = 64 * 1024;

/// Capacity to reserve for `count` elements of `T` (checked count, bounded bytes).
pub(crate) fn prealloc<T>(count: usize) -> usize {
    let size = std::mem::size_of::<T>().max(1);
    count.min(MAX_PREALLOC_BYTES / size)
}

/// Decodes TARS fields from a borrowed byte slice.
///
/// The reader is a cursor. [`Self::read_required`] / [`Self::read_optional`] look for a
/// field with a given tag at the cursor: fields with lower tags are skipped (unknown or
/// unwanted fields, for forward compatibility), and the search stops, without consuming
/// anything, at a higher tag, at a STRUCT_END or at the end of the input. Fields must
/// therefore be read in ascending tag order, as they are written.
#[derive(Debug, Clone)]
pub struct TarsReader<'a> {
    buf: &'a [u8],
    pos: usize,
    depth: u32,
    limits: DecodeLimits,
    /// Offset of the head most recently read, so errors about its payload can point at it.
    head_pos: usize,
}

impl<'a> TarsReader<'a> {
    /// A reader at the start of `buf` with [`DecodeLimits::default`].
    pub fn new(buf: &'a [u8]) -> Self {
        Self::with_limits(buf, DecodeLimits::default())
    }

    /// A reader at the start of `buf` with the given limits.
    pub fn with_limits(buf: &'a [u8], limits: DecodeLimits) -> Self {
        Self {
            buf,
            pos: 0,
            depth: 0,
            limits,
            head_pos: 0,
        }
    }

    /// Current offset from the start of the buffer.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// Bytes left after the cursor.
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// True when the cursor is at the end of the input.
    pub fn is_empty(&self) -> bool {
        self.pos >= self.buf.len()
    }

    /// The limits in force.
    pub fn limits(&self) -> DecodeLimits {
        self.limits
    }

    /// Builds an error of `kind` located at `offset`.
    pub fn error_at(&self, kind: DecodeErrorKind, offset: usize) -> DecodeError {
        DecodeError::new(kind, offset)
    }

    /// Builds an error of `kind` located at the head most recently read (for use in
    /// [`TarsDecode::decode_value`] implementations).
    pub fn error(&self, kind: DecodeErrorKind) -> DecodeError {
        DecodeError::new(kind, self.head_pos)
    }

    /// Fails unless the whole input has been consumed.
    pub fn finish(&self) -> Result<(), DecodeError> {
        if self.is_empty() {
            Ok(())
        } else {
            Err(self.error_at(DecodeErrorKind::TrailingBytes(self.remaining()), self.pos))
        }
    }

    // ---- raw bytes ----------------------------------------------------------------

    /// Takes the next `n` bytes, or fails without moving if fewer are left.
    #[inline]
    pub fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let available = self.remaining();
        if n > available {
            return Err(self.error_at(
                DecodeErrorKind::UnexpectedEof {
                    needed: n,
                    available,
                },
                self.pos,
            ));
        }
        let start = self.pos;
        self.pos += n;
        Ok(&self.buf[start..self.pos])
    }

    #[inline]
    fn take_array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let bytes = self.take(N)?;
        let mut out = [0u8; N];
        out.copy_from_slice(bytes);
        Ok(out)
    }

    #[inline]
    fn take_u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take_array::<1>()?[0])
    }

    // ---- heads --------------------------------------------------------------------

    /// Reads a head: returns its tag and type and moves past it.
    #[inline]
    pub fn read_head(&mut self) -> Result<(u8, TarsType), DecodeError> {
        let start = self.pos;
        let (tag, ty, len) = self.peek_head()?;
        self.pos += len;
        self.head_pos = start;
        Ok((tag, ty))
    }

    /// Looks at the head at the cursor without moving: its tag, type and size in bytes.
    #[inline]
    pub fn peek_head(&self) -> Result<(u8, TarsType, usize), DecodeError> {
        let Some(&first) = self.buf.get(self.pos) else {
            return Err(self.error_at(
                DecodeErrorKind::UnexpectedEof {
                    needed: 1,
                    available: 0,
                },
                self.pos,
            ));
        };
        let ty = TarsType::from_id(first & 0x0F)
            .ok_or_else(|| self.error_at(DecodeErrorKind::UnknownType(first & 0x0F), self.pos))?;
        let tag = first >> 4;
        if tag < 15 {
            return Ok((tag, ty, 1));
        }
        match self.buf.get(self.pos + 1) {
            Some(&tag) => Ok((tag, ty, 2)),
            None => Err(self.error_at(
                DecodeErrorKind::UnexpectedEof {
                    needed: 2,
                    available: 1,
                },
                self.pos,
            )),
        }
    }

    /// Moves to the field with `tag` and consumes its head, returning its type; or
    /// returns `None`, consuming only skipped lower-tag fields, when a higher tag, a
    /// STRUCT_END or the end of input comes first.
    pub fn seek_tag(&mut self, tag: u8) -> Result<Option<TarsType>, DecodeError> {
        while !self.is_empty() {
            let start = self.pos;
            let (found, ty, len) = self.peek_head()?;
            if ty == TarsType::StructEnd || found > tag {
                return Ok(None);
            }
            self.pos += len;
            self.head_pos = start;
            if found == tag {
                return Ok(Some(ty));
            }
            self.skip_value(ty)?;
        }
        Ok(None)
    }

    // ---- typed reads by tag ------------------------------------------------------

    /// Reads the field at `tag`, failing with [`DecodeErrorKind::RequiredMissing`] if absent.
    #[inline]
    pub fn read_required<T: TarsDecode>(&mut self, tag: u8) -> Result<T, DecodeError> {
        match self.seek_tag(tag)? {
            Some(ty) => T::decode_value(self, tag, ty),
            None => Err(self.error_at(DecodeErrorKind::RequiredMissing { tag }, self.pos)),
        }
    }

    /// Reads the field at `tag` if present.
    #[inline]
    pub fn read_optional<T: TarsDecode>(&mut self, tag: u8) -> Result<Option<T>, DecodeError> {
        match self.seek_tag(tag)? {
            Some(ty) => T::decode_value(self, tag, ty).map(Some),
            None => Ok(None),
        }
    }

    /// Reads the field at `tag`; required-ness decides whether absence is an error.
    /// Returns `None` only for an absent optional field.
    #[inline]
    pub fn read<T: TarsDecode>(
        &mut self,
        tag: u8,
        required: bool,
    ) -> Result<Option<T>, DecodeError> {
        if required {
            self.read_required(tag).map(Some)
        } else {
            self.read_optional(tag)
        }
    }

    /// Reads the `string` at `tag` without copying it (UTF-8 checked).
    pub fn read_str_ref(
        &mut self,
        tag: u8,
        required: bool,
    ) -> Result<Option<&'a str>, DecodeError> {
        match self.seek_present(tag, required)? {
            Some(ty) => self.str_payload(tag, ty).map(Some),
            None => Ok(None),
        }
    }

    /// Reads the `vector<byte>` at `tag` without copying it (SIMPLE_LIST only).
    pub fn read_bytes_ref(
        &mut self,
        tag: u8,
        required: bool,
    ) -> Result<Option<&'a [u8]>, DecodeError> {
        match self.seek_present(tag, required)? {
            Some(TarsType::SimpleList) => self.simple_list_payload().map(Some),
            Some(found) => Err(self.error(DecodeErrorKind::TypeMismatch {
                tag,
                expected: "vector<byte>",
                found,
            })),
            None => Ok(None),
        }
    }

    fn seek_present(&mut self, tag: u8, required: bool) -> Result<Option<TarsType>, DecodeError> {
        match self.seek_tag(tag)? {
            None if required => {
                Err(self.error_at(DecodeErrorKind::RequiredMissing { tag }, self.pos))
            }
            other => Ok(other),
        }
    }

    // ---- payloads (after the head) -----------------------------------------------

    /// Reads an integer payload of any integer form (ZERO, INT8..INT64) as `i64`.
    #[inline]
    pub fn int_payload(
        &mut self,
        tag: u8,
        ty: TarsType,
        expected: &'static str,
    ) -> Result<i64, DecodeError> {
        Ok(match ty {
            TarsType::Zero => 0,
            TarsType::Int8 => i64::from(i8::from_be_bytes(self.take_array()?)),
            TarsType::Int16 => i64::from(i16::from_be_bytes(self.take_array()?)),
            TarsType::Int32 => i64::from(i32::from_be_bytes(self.take_array()?)),
            TarsType::Int64 => i64::from_be_bytes(self.take_array()?),
            found => {
                return Err(self.error(DecodeErrorKind::TypeMismatch {
                    tag,
                    expected,
                    found,
                }))
            }
        })
    }

    /// Reads a floating-point payload: ZERO, FLOAT or DOUBLE (both zero forms accepted).
    #[inline]
    pub fn float_payload(
        &mut self,
        tag: u8,
        ty: TarsType,
        expected: &'static str,
    ) -> Result<f64, DecodeError> {
        Ok(match ty {
            TarsType::Zero => 0.0,
            TarsType::Float => f64::from(f32::from_be_bytes(self.take_array()?)),
            TarsType::Double => f64::from_be_bytes(self.take_array()?),
            found => {
                return Err(self.error(DecodeErrorKind::TypeMismatch {
                    tag,
                    expected,
                    found,
                }))
            }
        })
    }

    /// Reads a `string` payload as raw bytes (STRING1 or STRING4).
    pub fn string_bytes_payload(&mut self, tag: u8, ty: TarsType) -> Result<&'a [u8], DecodeError> {
        let len_at = self.pos;
        let len = match ty {
            TarsType::String1 => u64::from(self.take_u8()?),
            TarsType::String4 => u64::from(u32::from_be_bytes(self.take_array()?)),
            found => {
                return Err(self.error(DecodeErrorKind::TypeMismatch {
                    tag,
                    expected: "string",
                    found,
                }))
            }
        };
        let len = self.check_len(len, 1, len_at)?;
        self.take(len)
    }

    /// Reads a `string` payload, checking it is UTF-8.
    pub fn str_payload(&mut self, tag: u8, ty: TarsType) -> Result<&'a str, DecodeError> {
        let at = self.head_pos;
        let bytes = self.string_bytes_payload(tag, ty)?;
        std::str::from_utf8(bytes)
            .map_err(|_| self.error_at(DecodeErrorKind::InvalidUtf8 { tag }, at))
    }

    /// Reads the rest of a SIMPLE_LIST after its head: the INT8 head, the length, the bytes.
    pub fn simple_list_payload(&mut self) -> Result<&'a [u8], DecodeError> {
        let at = self.pos;
        let (_, inner) = self.read_head()?;
        if inner != TarsType::Int8 {
            return Err(self.error_at(DecodeErrorKind::BadSimpleList(inner), at));
        }
        let len = self.read_len(1)?;
        self.take(len)
    }

    /// Reads the length or count that opens a LIST, MAP or SIMPLE_LIST: an integer at
    /// tag 0. `min_item_bytes` is the least each item occupies, so a count that the
    /// remaining input cannot hold is refused before anything is allocated.
    pub fn read_len(&mut self, min_item_bytes: usize) -> Result<usize, DecodeError> {
        let at = self.pos;
        let (tag, ty) = self.read_head()?;
        if tag != 0 {
            return Err(self.error_at(
                DecodeErrorKind::BadInnerTag {
                    expected: 0,
                    found: tag,
                },
                at,
            ));
        }
        let len = self.int_payload(0, ty, "length")?;
        let len = u64::try_from(len)
            .map_err(|_| self.error_at(DecodeErrorKind::NegativeLength(len), at))?;
        self.check_len(len, min_item_bytes, at)
    }

    fn check_len(&self, len: u64, min_item_bytes: usize, at: usize) -> Result<usize, DecodeError> {
        let remaining = self.remaining();
        let fits = usize::try_from(len).ok().filter(|&n| {
            n.checked_mul(min_item_bytes)
                .is_some_and(|need| need <= remaining)
        });
        let Some(len) = fits else {
            return Err(self.error_at(DecodeErrorKind::LengthExceedsInput { len, remaining }, at));
        };
        if len > self.limits.max_len {
            return Err(self.error_at(
                DecodeErrorKind::LengthOverLimit {
                    len: len as u64,
                    limit: self.limits.max_len,
                },
                at,
            ));
        }
        Ok(len)
    }

    /// Reads the head of a list element or map entry and checks it carries `tag`.
    #[inline]
    pub fn read_inner_head(&mut self, tag: u8) -> Result<TarsType, DecodeError> {
        let at = self.pos;
        let (found, ty) = self.read_head()?;
        if found != tag {
            return Err(self.error_at(
                DecodeErrorKind::BadInnerTag {
                    expected: tag,
                    found,
                },
                at,
            ));
        }
        Ok(ty)
    }

    /// Reads one element of a list or map (its head must carry `tag`).
    #[inline]
    pub fn read_element<T: TarsDecode>(&mut self, tag: u8) -> Result<T, DecodeError> {
        let ty = self.read_inner_head(tag)?;
        T::decode_value(self, tag, ty)
    }

    // ---- nesting ------------------------------------------------------------------

    /// Enters a list, map or struct, failing when that would exceed the depth limit.
    /// Pair with [`Self::leave`].
    #[inline]
    pub fn enter(&mut self) -> Result<(), DecodeError> {
        if self.depth >= self.limits.max_depth {
            return Err(self.error(DecodeErrorKind::TooDeep(self.limits.max_depth)));
        }
        self.depth += 1;
        Ok(())
    }

    /// Leaves a level entered with [`Self::enter`].
    #[inline]
    pub fn leave(&mut self) {
        self.depth = self.depth.saturating_sub(1);
    }

    // ---- skipping -----------------------------------------------------------------

    /// Skips the payload of a field whose head (of type `ty`) was just read.
    pub fn skip_value(&mut self, ty: TarsType) -> Result<(), DecodeError> {
        match ty {
            TarsType::Zero | TarsType::StructEnd => {}
            TarsType::Int8 => {
                self.take(1)?;
            }
            TarsType::Int16 => {
                self.take(2)?;
            }
            TarsType::Int32 | TarsType::Float => {
                self.take(4)?;
            }
            TarsType::Int64 | TarsType::Double => {
                self.take(8)?;
            }
            TarsType::String1 | TarsType::String4 => {
                self.string_bytes_payload(0, ty)?;
            }
            TarsType::SimpleList => {
                self.simple_list_payload()?;
            }
            TarsType::List => {
                self.enter()?;
                let count = self.read_len(1)?;
                for _ in 0..count {
                    let (_, ty) = self.read_head()?;
                    self.skip_value(ty)?;
                }
                self.leave();
            }
            TarsType::Map => {
                self.enter()?;
                let count = self.read_len(2)?;
                for _ in 0..count * 2 {
                    let (_, ty) = self.read_head()?;
                    self.skip_value(ty)?;
                }
                self.leave();
            }
            TarsType::StructBegin => {
                self.enter()?;
                self.skip_to_struct_end()?;
                self.leave();
            }
        }
        Ok(())
    }

    /// Reads and skips one whole field (head and payload) at the cursor.
    pub fn skip_field(&mut self) -> Result<(), DecodeError> {
        let (_, ty) = self.read_head()?;
        self.skip_value(ty)
    }

    /// Skips the remaining fields of the current struct and consumes its STRUCT_END.
    pub fn skip_to_struct_end(&mut self) -> Result<(), DecodeError> {
        loop {
            let (_, ty) = self.read_head()?;
            if ty == TarsType::StructEnd {
                return Ok(());
            }
            self.skip_value(ty)?;
        }
    }
}
