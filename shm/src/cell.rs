//! Pre-resolved cell handles for hot paths (e.g. a worker's heartbeat).

use std::sync::atomic::Ordering;
use std::sync::Arc;

use crate::table::Inner;

/// One int cell of one row, resolved once by [`crate::Table::int_cell`].
///
/// `store`, `load` and `fetch_add` are each a single atomic instruction on the shared
/// mapping: no hashing, no lock, no pin. The handle is meant for rows that live as long
/// as the handle (a process's own scoreboard row). If the row is deleted, writes through
/// the handle go to the freed slot and, once the slot is reused, to the new row in it:
/// check [`IntCell::is_current`] if rows may be deleted under you, or use
/// [`crate::Table::incr`] / [`crate::Table::store_int`], which are safe against reuse.
#[derive(Clone)]
pub struct IntCell {
    inner: Arc<Inner>,
    slot: usize,
    kgen: u64,
    offset: usize,
}

impl std::fmt::Debug for IntCell {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IntCell")
            .field("slot", &self.slot)
            .field("offset", &self.offset)
            .finish()
    }
}

impl IntCell {
    pub(crate) fn new(inner: Arc<Inner>, slot: usize, kgen: u64, word: usize) -> IntCell {
        let offset = inner.geo.cell(slot, word);
        IntCell {
            inner,
            slot,
            kgen,
            offset,
        }
    }

    /// Stores `value`. On a read-only table this is a no-op returning false.
    #[inline]
    pub fn store(&self, value: i64) -> bool {
        if !self.inner.region.writable() {
            return false;
        }
        self.inner
            .region
            .u64_at(self.offset)
            .store(value as u64, Ordering::Release);
        true
    }

    /// Loads the current value.
    #[inline]
    pub fn load(&self) -> i64 {
        self.inner
            .region
            .u64_at(self.offset)
            .load(Ordering::Acquire) as i64
    }

    /// Adds `delta` (wrapping) and returns the previous value (like
    /// `AtomicI64::fetch_add`). On a read-only table nothing is added and the current
    /// value is returned.
    #[inline]
    pub fn fetch_add(&self, delta: i64) -> i64 {
        let cell = self.inner.region.u64_at(self.offset);
        if !self.inner.region.writable() {
            return cell.load(Ordering::Acquire) as i64;
        }
        cell.fetch_add(delta as u64, Ordering::AcqRel) as i64
    }

    /// Whether the row this handle was resolved for still exists (was not deleted).
    pub fn is_current(&self) -> bool {
        self.inner.kgen(self.slot).load(Ordering::Acquire) == self.kgen
    }
}
