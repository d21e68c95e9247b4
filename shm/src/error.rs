//! The one error type of the crate.

use std::io;
use std::path::PathBuf;

/// Everything a table operation can fail with; each variant carries what was being done.
#[derive(Debug, thiserror::Error)]
pub enum ShmError {
    /// A system call on the table file failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done, e.g. "create table file".
        op: &'static str,
        /// The table file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The file does not start with the table magic (or its creator has not finished it).
    #[error("{path}: not a tarsfork-shm table (bad magic)")]
    BadMagic {
        /// The file that was opened.
        path: PathBuf,
    },
    /// The file was written by an incompatible layout version.
    #[error("{path}: layout version {found}, this build reads version {expected}")]
    Version {
        /// The file that was opened.
        path: PathBuf,
        /// The version in the header.
        found: u64,
        /// The version this build writes and reads.
        expected: u64,
    },
    /// The header is inconsistent (hostile or damaged file).
    #[error("{path}: corrupt header: {what}")]
    BadHeader {
        /// The file that was opened.
        path: PathBuf,
        /// Which check failed.
        what: String,
    },
    /// The table's schema is not the one the caller expected.
    #[error("{path}: schema mismatch: {what}")]
    SchemaMismatch {
        /// The file that was opened.
        path: PathBuf,
        /// The first difference found.
        what: String,
    },
    /// The process that created the table has exited (or its pid was reused).
    #[error("{path}: owner process {pid} is gone; the table is stale")]
    OwnerGone {
        /// The file that was opened.
        path: PathBuf,
        /// The owner's pid recorded in the header.
        pid: u32,
    },
    /// A schema given to `Schema::new` / `Table::create` is not valid.
    #[error("invalid schema: {0}")]
    InvalidSchema(String),
    /// The requested capacity is zero or too large.
    #[error("capacity {capacity} out of range 1..={max}")]
    BadCapacity {
        /// The requested capacity.
        capacity: usize,
        /// The largest capacity allowed.
        max: usize,
    },
    /// A key is longer than [`crate::MAX_KEY_LEN`] bytes (never truncated).
    #[error("key of {len} bytes exceeds the {max}-byte limit")]
    KeyTooLong {
        /// The key's length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// No column of that name in the schema.
    #[error("no column named {0:?}")]
    NoSuchColumn(String),
    /// A value's type does not match its column's type.
    #[error("column {column:?} holds {actual}, not {wanted}")]
    TypeMismatch {
        /// The column.
        column: String,
        /// The column's type.
        actual: &'static str,
        /// The type the caller used.
        wanted: &'static str,
    },
    /// A string/bytes value is longer than its column's maximum (never truncated).
    #[error("value of {len} bytes for column {column:?} exceeds its {max}-byte limit")]
    ValueTooLong {
        /// The column.
        column: String,
        /// The value's length.
        len: usize,
        /// The column's maximum.
        max: usize,
    },
    /// The table holds `capacity` rows already.
    #[error("table is full ({capacity} rows)")]
    Full {
        /// The table's capacity.
        capacity: usize,
    },
    /// The key is not in the table (for operations that need an existing row).
    #[error("key not found")]
    KeyNotFound,
    /// A write was attempted on a table opened with `open_readonly`.
    #[error("table was opened read-only")]
    ReadOnly,
    /// Only the creating process may remove the table file.
    #[error("{path}: only the owner process {owner} may unlink it (this is {me})")]
    NotOwner {
        /// The table file.
        path: PathBuf,
        /// The owner's pid.
        owner: u32,
        /// The caller's pid.
        me: u32,
    },
    /// A wait was bounded and ran out (read-only readers, pinned free slots).
    #[error("timed out waiting for {0}")]
    Busy(&'static str),
    /// A structural invariant does not hold (found by `verify` or while walking).
    #[error("corrupt table: {0}")]
    Corrupt(String),
}

/// Shorthand used throughout the crate.
pub type Result<T, E = ShmError> = std::result::Result<T, E>;
