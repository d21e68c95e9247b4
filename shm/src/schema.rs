//! Columns, schemas, values and rows: the typed face of the raw row words.

use std::sync::Arc;

use crate::error::{Result, ShmError};

/// Most columns a schema may have (a `set` names its columns with a 32-bit mask).
pub const MAX_COLUMNS: usize = 32;
/// Longest column name, in bytes.
pub const MAX_COLUMN_NAME: usize = 31;
/// Largest `max_len` of a string column, in bytes.
pub const MAX_STRING_LEN: usize = 64 * 1024;

/// The type of a column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnKind {
    /// A signed 64-bit integer; `incr`/`decr` work on it lock-free.
    Int,
    /// A 64-bit float; `incr_float` works on it lock-free (compare-and-swap).
    Float,
    /// Bytes (usually UTF-8 text) of at most `max_len` bytes.
    Str {
        /// The longest value the column accepts.
        max_len: usize,
    },
}

impl ColumnKind {
    /// The name used in error messages and in the inspector.
    pub fn name(self) -> &'static str {
        match self {
            ColumnKind::Int => "int",
            ColumnKind::Float => "float",
            ColumnKind::Str { .. } => "string",
        }
    }

    /// How many 64-bit words a cell of this kind takes in a row.
    pub(crate) fn words(self) -> usize {
        match self {
            ColumnKind::Int | ColumnKind::Float => 1,
            // One length word, then the bytes packed little-endian.
            ColumnKind::Str { max_len } => 1 + max_len.div_ceil(8),
        }
    }

    /// The code stored in the header.
    pub(crate) fn code(self) -> u64 {
        match self {
            ColumnKind::Int => 1,
            ColumnKind::Float => 2,
            ColumnKind::Str { .. } => 3,
        }
    }

    /// Decodes a header code; `None` for anything unknown.
    pub(crate) fn from_code(code: u64, max_len: u64) -> Option<ColumnKind> {
        match code {
            1 => Some(ColumnKind::Int),
            2 => Some(ColumnKind::Float),
            3 => {
                let max_len = usize::try_from(max_len).ok()?;
                (1..=MAX_STRING_LEN)
                    .contains(&max_len)
                    .then_some(ColumnKind::Str { max_len })
            }
            _ => None,
        }
    }

    /// The `max_len` recorded in the header (0 for fixed-size kinds).
    pub(crate) fn max_len(self) -> usize {
        match self {
            ColumnKind::Str { max_len } => max_len,
            _ => 0,
        }
    }
}

/// One named column of a schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    name: String,
    kind: ColumnKind,
}

impl Column {
    /// An `i64` column.
    pub fn int(name: &str) -> Column {
        Column {
            name: name.to_owned(),
            kind: ColumnKind::Int,
        }
    }

    /// An `f64` column.
    pub fn float(name: &str) -> Column {
        Column {
            name: name.to_owned(),
            kind: ColumnKind::Float,
        }
    }

    /// A string/bytes column holding at most `max_len` bytes (1..=[`MAX_STRING_LEN`]).
    pub fn string(name: &str, max_len: usize) -> Column {
        Column {
            name: name.to_owned(),
            kind: ColumnKind::Str { max_len },
        }
    }

    /// The column's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The column's type.
    pub fn kind(&self) -> ColumnKind {
        self.kind
    }
}

/// The ordered columns of a table, with each column's place in the row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schema {
    columns: Vec<Column>,
    /// Column names packed like keys, so that resolving a name on the hot path is four
    /// word compares instead of a `memcmp` call per column.
    packed_names: Vec<[u64; 4]>,
    /// Word offset of each column inside the row's cell area.
    offsets: Vec<usize>,
    row_words: usize,
}

impl Schema {
    /// Builds a schema, checking names (1..=31 bytes, unique), count (1..=32) and string sizes.
    pub fn new(columns: Vec<Column>) -> Result<Schema> {
        if columns.is_empty() || columns.len() > MAX_COLUMNS {
            return Err(ShmError::InvalidSchema(format!(
                "{} columns, allowed 1..={MAX_COLUMNS}",
                columns.len()
            )));
        }
        let mut offsets = Vec::with_capacity(columns.len());
        let mut row_words = 0usize;
        for (i, c) in columns.iter().enumerate() {
            if c.name.is_empty() || c.name.len() > MAX_COLUMN_NAME {
                return Err(ShmError::InvalidSchema(format!(
                    "column name {:?} must be 1..={MAX_COLUMN_NAME} bytes",
                    c.name
                )));
            }
            if c.name.contains('\0') {
                return Err(ShmError::InvalidSchema(format!(
                    "column name {:?} contains NUL",
                    c.name
                )));
            }
            if columns[..i].iter().any(|o| o.name == c.name) {
                return Err(ShmError::InvalidSchema(format!(
                    "duplicate column {:?}",
                    c.name
                )));
            }
            if let ColumnKind::Str { max_len } = c.kind {
                if !(1..=MAX_STRING_LEN).contains(&max_len) {
                    return Err(ShmError::InvalidSchema(format!(
                        "string column {:?}: max_len {max_len} outside 1..={MAX_STRING_LEN}",
                        c.name
                    )));
                }
            }
            offsets.push(row_words);
            row_words += c.kind.words();
        }
        let packed_names = columns.iter().map(|c| pack_name(&c.name)).collect();
        Ok(Schema {
            columns,
            packed_names,
            offsets,
            row_words,
        })
    }

    /// The columns in order.
    pub fn columns(&self) -> &[Column] {
        &self.columns
    }

    /// The index of the column called `name`.
    #[inline]
    pub fn index_of(&self, name: &str) -> Result<usize> {
        self.position(name)
            .ok_or_else(|| ShmError::NoSuchColumn(name.to_owned()))
    }

    /// The index of the column called `name`, if any. Compared word by word: a vector
    /// compare of the just-packed words stalls on store forwarding.
    #[inline]
    fn position(&self, name: &str) -> Option<usize> {
        if name.len() > MAX_COLUMN_NAME {
            return None;
        }
        let want = pack_name(name);
        self.packed_names
            .iter()
            .position(|have| (0..4).all(|w| have[w] == want[w]))
    }

    /// Word offset of column `i` inside the cell area.
    pub(crate) fn offset(&self, i: usize) -> usize {
        self.offsets[i]
    }

    /// Number of 64-bit words of one row's cells.
    pub(crate) fn row_words(&self) -> usize {
        self.row_words
    }

    /// Resolves an int column by name.
    #[inline]
    pub(crate) fn int_column(&self, name: &str) -> Result<usize> {
        self.typed_column(name, ColumnKind::Int)
    }

    /// Resolves a float column by name.
    pub(crate) fn float_column(&self, name: &str) -> Result<usize> {
        self.typed_column(name, ColumnKind::Float)
    }

    /// The cell word of column `name` if it exists with kind `want`: the hot path of
    /// `incr`, which leaves building the error to `typed_column`.
    #[inline]
    pub(crate) fn word_of(&self, name: &str, want: ColumnKind) -> Option<usize> {
        let i = self.position(name)?;
        (self.columns[i].kind == want).then(|| self.offsets[i])
    }

    #[inline]
    fn typed_column(&self, name: &str, want: ColumnKind) -> Result<usize> {
        let i = self.index_of(name)?;
        let kind = self.columns[i].kind;
        if kind != want {
            return Err(ShmError::TypeMismatch {
                column: name.to_owned(),
                actual: kind.name(),
                wanted: want.name(),
            });
        }
        Ok(i)
    }

    /// Encodes `values` into a full row image (unset cells stay zero) and the mask of set columns.
    pub(crate) fn encode(&self, values: &[(&str, Value)]) -> Result<(u32, Vec<u64>)> {
        let mut image = vec![0u64; self.row_words];
        let mut mask = 0u32;
        for (name, value) in values {
            let i = self.index_of(name)?;
            let col = &self.columns[i];
            let off = self.offsets[i];
            match (col.kind, value) {
                (ColumnKind::Int, Value::Int(v)) => image[off] = *v as u64,
                (ColumnKind::Float, Value::Float(v)) => image[off] = v.to_bits(),
                // An int literal for a float column is unambiguous; accept it.
                (ColumnKind::Float, Value::Int(v)) => image[off] = (*v as f64).to_bits(),
                (ColumnKind::Str { max_len }, Value::Bytes(b)) => {
                    if b.len() > max_len {
                        return Err(ShmError::ValueTooLong {
                            column: col.name.clone(),
                            len: b.len(),
                            max: max_len,
                        });
                    }
                    image[off] = b.len() as u64;
                    pack_bytes(b, &mut image[off + 1..off + col.kind.words()]);
                }
                (kind, v) => {
                    return Err(ShmError::TypeMismatch {
                        column: col.name.clone(),
                        actual: kind.name(),
                        wanted: v.type_name(),
                    })
                }
            }
            mask |= 1 << i;
        }
        Ok((mask, image))
    }

    /// Decodes a row image into values; `None` if a string length is out of range (torn/corrupt).
    pub(crate) fn decode(&self, image: &[u64]) -> Option<Vec<Value>> {
        let mut out = Vec::with_capacity(self.columns.len());
        for (i, col) in self.columns.iter().enumerate() {
            let off = self.offsets[i];
            let w = *image.get(off)?;
            out.push(match col.kind {
                ColumnKind::Int => Value::Int(w as i64),
                ColumnKind::Float => Value::Float(f64::from_bits(w)),
                ColumnKind::Str { max_len } => {
                    let len = usize::try_from(w).ok().filter(|l| *l <= max_len)?;
                    let words = image.get(off + 1..off + col.kind.words())?;
                    Value::Bytes(unpack_bytes(words, len))
                }
            });
        }
        Some(out)
    }
}

/// A column name (at most 31 bytes, no NUL) packed into words, zero padded.
#[inline]
fn pack_name(name: &str) -> [u64; 4] {
    let mut words = [0u64; 4];
    pack_bytes(name.as_bytes(), &mut words);
    words
}

/// Packs bytes little-endian into words (the destination is zeroed first).
pub(crate) fn pack_bytes(src: &[u8], dst: &mut [u64]) {
    for (word, chunk) in dst.iter_mut().zip(src.chunks(8)) {
        // Shifting bytes in (rather than copying into a buffer and reloading it) avoids
        // a store-forwarding stall on short keys, which showed up in the incr profile.
        *word = chunk
            .iter()
            .enumerate()
            .fold(0u64, |w, (j, b)| w | (u64::from(*b) << (8 * j)));
    }
}

/// Unpacks the first `len` bytes of little-endian words (`len` must fit in `words`).
pub(crate) fn unpack_bytes(words: &[u64], len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len);
    for w in words {
        if out.len() >= len {
            break;
        }
        let bytes = w.to_le_bytes();
        let take = (len - out.len()).min(8);
        out.extend_from_slice(&bytes[..take]);
    }
    out
}

/// One cell's value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// For int columns.
    Int(i64),
    /// For float columns.
    Float(f64),
    /// For string columns: raw bytes (UTF-8 is not required).
    Bytes(Vec<u8>),
}

impl Value {
    /// A string value from text.
    pub fn str(s: &str) -> Value {
        Value::Bytes(s.as_bytes().to_vec())
    }

    /// The type's name for error messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Int(_) => "int",
            Value::Float(_) => "float",
            Value::Bytes(_) => "string",
        }
    }

    /// The int, if this is one.
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(v) => Some(*v),
            _ => None,
        }
    }

    /// The float, if this is one.
    pub fn as_float(&self) -> Option<f64> {
        match self {
            Value::Float(v) => Some(*v),
            _ => None,
        }
    }

    /// The bytes, if this is a string value.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Value::Bytes(v) => Some(v),
            _ => None,
        }
    }
}

impl From<i64> for Value {
    fn from(v: i64) -> Value {
        Value::Int(v)
    }
}

impl From<f64> for Value {
    fn from(v: f64) -> Value {
        Value::Float(v)
    }
}

impl From<&str> for Value {
    fn from(v: &str) -> Value {
        Value::str(v)
    }
}

impl From<&[u8]> for Value {
    fn from(v: &[u8]) -> Value {
        Value::Bytes(v.to_vec())
    }
}

/// A consistent copy of one row: no `set` was half-applied when it was read.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub(crate) key: Vec<u8>,
    pub(crate) values: Vec<Value>,
    pub(crate) schema: Arc<Schema>,
}

impl Row {
    /// The row's key.
    pub fn key(&self) -> &[u8] {
        &self.key
    }

    /// The values in schema order.
    pub fn values(&self) -> &[Value] {
        &self.values
    }

    /// The value of column `name`, if the column exists.
    pub fn get(&self, name: &str) -> Option<&Value> {
        let i = self.schema.index_of(name).ok()?;
        self.values.get(i)
    }

    /// The int in column `name` (None if missing or not an int column).
    pub fn int(&self, name: &str) -> Option<i64> {
        self.get(name)?.as_int()
    }

    /// The float in column `name` (None if missing or not a float column).
    pub fn float(&self, name: &str) -> Option<f64> {
        self.get(name)?.as_float()
    }

    /// The bytes in column `name` (None if missing or not a string column).
    pub fn bytes(&self, name: &str) -> Option<&[u8]> {
        self.get(name)?.as_bytes()
    }

    /// The string column as text, replacing invalid UTF-8.
    pub fn text(&self, name: &str) -> Option<String> {
        Some(String::from_utf8_lossy(self.bytes(name)?).into_owned())
    }
}
