//! tarsfork-shm: a swoole_table-style hash table in shared memory, safe across processes.
//!
//! A [`Table`] is a fixed-capacity hash table of typed rows (int, float and bounded
//! string columns) in one MAP_SHARED mapping of a file, normally under `/dev/shm`. The
//! owner creates it before forking; children inherit the mapping, and any other process
//! can open it by path. Counters (`incr`, `decr`, `store_int`, [`IntCell`]) are
//! lock-free; inserts, deletes and `set`s take a table lock whose holder is named by
//! pid and start time, so a killed holder is detected and its half-done operation
//! repaired, and a live (even stopped) holder is never robbed. See README.md for the
//! layout and the guarantees.
//!
//! ```
//! use tarsfork_shm::{Column, Schema, Table, Value};
//! # let dir = tempfile::tempdir().unwrap();
//! let schema = Schema::new(vec![
//!     Column::int("hits"),
//!     Column::float("load"),
//!     Column::string("state", 16),
//! ])?;
//! let table = Table::create(&dir.path().join("workers"), &schema, 1024)?;
//! table.set(b"w1", &[("state", Value::str("idle")), ("load", Value::Float(0.5))])?;
//! assert_eq!(table.incr(b"w1", "hits", 3)?, 3);
//! let row = table.get(b"w1")?.expect("row exists");
//! assert_eq!(row.text("state").as_deref(), Some("idle"));
//! # Ok::<(), tarsfork_shm::ShmError>(())
//! ```

#![warn(missing_docs)]

/// The README's examples, compiled and run as doctests.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

mod cell;
#[cfg(test)]
mod crash_tests;
mod error;
mod hazard;
mod hot;
#[cfg(test)]
mod hot_tests;
pub mod inspect;
mod layout;
mod lock;
mod mem;
mod procinfo;
mod schema;
mod table;
mod verify;

pub use cell::IntCell;
pub use error::{Result, ShmError};
pub use layout::{MAX_CAPACITY, MAX_KEY_LEN, SPARE_SLOTS};
pub use schema::{
    Column, ColumnKind, Row, Schema, Value, MAX_COLUMNS, MAX_COLUMN_NAME, MAX_STRING_LEN,
};
pub use table::{Iter, Table, VerifyReport};
