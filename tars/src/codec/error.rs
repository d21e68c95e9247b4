//! What can go wrong while decoding TARS bytes, and where.

use super::TarsType;

/// A decoding failure: what went wrong and the byte offset (from the start of the
/// buffer given to [`super::TarsReader::new`]) where the offending item begins.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind} (at byte offset {offset})")]
pub struct DecodeError {
    /// What went wrong.
    pub kind: DecodeErrorKind,
    /// Byte offset of the head or length that could not be decoded.
    pub offset: usize,
}

impl DecodeError {
    /// Builds an error of `kind` at `offset`.
    pub fn new(kind: DecodeErrorKind, offset: usize) -> Self {
        Self { kind, offset }
    }
}

/// The ways TARS bytes can fail to decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeErrorKind {
    /// The input ended inside a head or a payload.
    #[error("input ends early: {needed} more byte(s) needed, {available} available")]
    UnexpectedEof {
        /// Bytes the item needs.
        needed: usize,
        /// Bytes left in the input.
        available: usize,
    },
    /// A head carries a type id outside 0..=13.
    #[error("unknown wire type id {0}")]
    UnknownType(u8),
    /// A required field is absent (a higher tag, the struct end or the input end came first).
    #[error("required field with tag {tag} is missing")]
    RequiredMissing {
        /// The missing tag.
        tag: u8,
    },
    /// The field at `tag` has a wire type that cannot hold the expected value.
    #[error("field tag {tag}: expected {expected}, found wire type {found}")]
    TypeMismatch {
        /// The field's tag.
        tag: u8,
        /// What the caller wanted (a TARS type name).
        expected: &'static str,
        /// What the head said.
        found: TarsType,
    },
    /// An integer does not fit the target type (e.g. 300 read as `byte`).
    #[error("field tag {tag}: value {value} out of range for {target}")]
    OutOfRange {
        /// The field's tag.
        tag: u8,
        /// The decoded value.
        value: i64,
        /// The TARS type it was read as.
        target: &'static str,
    },
    /// A length or element count is negative.
    #[error("negative length or count {0}")]
    NegativeLength(i64),
    /// A length or element count is larger than the bytes left could possibly hold.
    #[error("length or count {len} exceeds what the {remaining} remaining byte(s) can hold")]
    LengthExceedsInput {
        /// The declared length or count.
        len: u64,
        /// Bytes left in the input after the length.
        remaining: usize,
    },
    /// A length or element count exceeds the configured [`super::DecodeLimits::max_len`].
    #[error("length or count {len} exceeds the limit of {limit}")]
    LengthOverLimit {
        /// The declared length or count.
        len: u64,
        /// The configured limit.
        limit: usize,
    },
    /// Lists, maps and structs nest deeper than [`super::DecodeLimits::max_depth`].
    #[error("nesting deeper than the limit of {0}")]
    TooDeep(u32),
    /// The head of a length, list element or map entry has the wrong tag.
    #[error("expected tag {expected} inside a container, found tag {found}")]
    BadInnerTag {
        /// The tag the format requires here.
        expected: u8,
        /// The tag found.
        found: u8,
    },
    /// A SIMPLE_LIST whose inner head is not INT8.
    #[error("SIMPLE_LIST element head must be INT8, found {0}")]
    BadSimpleList(TarsType),
    /// A string field holds bytes that are not UTF-8.
    #[error("field tag {tag}: string is not valid UTF-8")]
    InvalidUtf8 {
        /// The field's tag.
        tag: u8,
    },
    /// A value is well-formed but not acceptable (e.g. an unknown enum value); for
    /// generated and hand-written decoders.
    #[error("field tag {tag}: invalid value {value} for {what}")]
    InvalidValue {
        /// The field's tag.
        tag: u8,
        /// The decoded value.
        value: i64,
        /// What it was decoded as (e.g. an enum name).
        what: &'static str,
    },
    /// Bytes are left after a complete value where none may be.
    #[error("{0} trailing byte(s) after the value")]
    TrailingBytes(usize),
}
