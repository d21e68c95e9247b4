//! The table lock and crash repair.
//!
//! Inserts, deletes and `set`s take one table-wide lock: a word holding the holder's
//! process token (pid + start time). A waiter that finds the holder dead (no such pid,
//! a zombie, or a different process under the same pid) takes the word over with a
//! compare-and-swap, so exactly one waiter recovers, and a live holder (even a stopped
//! one) is never robbed.
//!
//! Before changing anything, the holder writes an intent record (kind last). Every step
//! after it is either idempotent or checkable, so `repair` finishes or cancels the
//! operation from the record alone, in time independent of the table's size:
//! - insert: if the slot is linked into its chain the insert completed; otherwise the
//!   slot is returned to the free state. The row count is restored from the record.
//! - delete: the slot is marked free and unlinked if it still is linked.
//! - set: if the row's seqlock is odd the cells are rewritten from the saved image and
//!   the seqlock closed; the set is then complete.

use std::sync::atomic::{fence, Ordering};
use std::time::{Duration, Instant};

use crate::error::{Result, ShmError};
use crate::layout::*;
use crate::procinfo::{my_token, token_alive};
use crate::table::Inner;

/// No operation in progress.
pub(crate) const OP_NONE: u64 = 0;
/// Inserting a new row into `slot` of `bucket`.
pub(crate) const OP_INSERT: u64 = 1;
/// Deleting the row in `slot` of `bucket`.
pub(crate) const OP_DELETE: u64 = 2;
/// Writing the masked cells of `slot` from the image area.
pub(crate) const OP_SET: u64 = 3;

/// Marks a numbered step of a locked operation where test builds can simulate death.
macro_rules! crash_point {
    ($step:expr) => {
        #[cfg(test)]
        if crate::lock::crash::here($step) {
            return Err(crate::error::ShmError::Busy("simulated crash"));
        }
    };
}
pub(crate) use crash_point;

/// How often a waiter checks whether the lock holder is still alive. The issue asks for
/// a dead holder to be recovered within 10 ms; 1 ms leaves room for the repair.
const LIVENESS_PERIOD: Duration = Duration::from_millis(1);

/// Holds the table lock; releasing it repairs first if an operation was left half done
/// (only possible if the holder's code returned early or unwound).
pub(crate) struct LockGuard<'a> {
    inner: &'a Inner,
}

impl Drop for LockGuard<'_> {
    fn drop(&mut self) {
        // A simulated death leaves the lock and the intent record as they are.
        #[cfg(test)]
        if crash::CRASHED.get() {
            return;
        }
        if self.inner.w(I_KIND).load(Ordering::Acquire) != OP_NONE {
            // Errors here mean a corrupt record; verify() will report it.
            let _ = self.inner.repair();
        }
        self.inner.w(H_LOCK).store(0, Ordering::Release);
    }
}

/// Backoff for waits on other processes: spin briefly, then yield, then sleep.
pub(crate) struct Backoff {
    n: u32,
}

impl Backoff {
    pub(crate) fn new() -> Backoff {
        Backoff { n: 0 }
    }

    /// True exactly once: when the spin phase has just ended (the holder is slow or gone).
    pub(crate) fn spun_out(&self) -> bool {
        self.n == 64
    }

    pub(crate) fn snooze(&mut self) {
        self.n = self.n.saturating_add(1);
        if self.n <= 64 {
            std::hint::spin_loop();
        } else if self.n <= 128 {
            std::thread::yield_now();
        } else {
            std::thread::sleep(Duration::from_micros(20));
        }
    }
}

impl Inner {
    /// Takes the table lock, recovering it from a dead holder.
    pub(crate) fn lock(&self) -> Result<LockGuard<'_>> {
        if !self.region.writable() {
            return Err(ShmError::ReadOnly);
        }
        let me = my_token();
        let word = self.w(H_LOCK);
        if word
            .compare_exchange(0, me, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            let mut backoff = Backoff::new();
            // The first liveness check comes as soon as spinning is over (a live holder
            // keeps the lock for about a microsecond; yields can take a whole time slice
            // each on a busy machine), then one every period.
            let mut last_check = Instant::now();
            loop {
                let cur = word.load(Ordering::Relaxed);
                if cur == 0 {
                    if word
                        .compare_exchange(0, me, Ordering::Acquire, Ordering::Relaxed)
                        .is_ok()
                    {
                        break;
                    }
                } else if backoff.spun_out() || last_check.elapsed() >= LIVENESS_PERIOD {
                    last_check = Instant::now();
                    // Only a dead holder is replaced; the CAS fails if another waiter
                    // recovered first or the holder released meanwhile.
                    if !token_alive(cur)
                        && word
                            .compare_exchange(cur, me, Ordering::Acquire, Ordering::Relaxed)
                            .is_ok()
                    {
                        self.w(H_RECOVERIES).fetch_add(1, Ordering::Relaxed);
                        break;
                    }
                }
                backoff.snooze();
            }
        }
        let guard = LockGuard { inner: self };
        if self.w(I_KIND).load(Ordering::Acquire) != OP_NONE {
            self.repair()?;
        }
        Ok(guard)
    }

    /// The lock word: 0 if free, else the holder's token.
    pub(crate) fn lock_holder(&self) -> u64 {
        self.w(H_LOCK).load(Ordering::Acquire)
    }

    /// Publishes an intent record. The fields are stored before the kind, so a record
    /// whose kind is set is complete.
    pub(crate) fn begin(&self, kind: u64, slot: usize, bucket: usize, seq: u64, mask: u32) {
        self.w(I_SLOT).store(slot as u64, Ordering::Relaxed);
        self.w(I_BUCKET).store(bucket as u64, Ordering::Relaxed);
        let count = self.w(H_COUNT).load(Ordering::Relaxed);
        self.w(I_COUNT).store(count, Ordering::Relaxed);
        self.w(I_SEQ).store(seq, Ordering::Relaxed);
        self.w(I_MASK).store(u64::from(mask), Ordering::Relaxed);
        self.w(I_KIND).store(kind, Ordering::Release);
    }

    /// Marks the operation finished.
    pub(crate) fn end(&self) {
        self.w(I_KIND).store(OP_NONE, Ordering::Release);
    }

    /// Finishes or cancels the operation in the intent record. Caller holds the lock.
    pub(crate) fn repair(&self) -> Result<()> {
        let kind = self.w(I_KIND).load(Ordering::Acquire);
        if kind == OP_NONE {
            return Ok(());
        }
        let slot = self.w(I_SLOT).load(Ordering::Relaxed);
        let bucket = self.w(I_BUCKET).load(Ordering::Relaxed);
        let count = self.w(I_COUNT).load(Ordering::Relaxed);
        let seq0 = self.w(I_SEQ).load(Ordering::Relaxed);
        let mask = self.w(I_MASK).load(Ordering::Relaxed);
        let (Ok(slot), Ok(bucket)) = (usize::try_from(slot), usize::try_from(bucket)) else {
            return Err(ShmError::Corrupt("intent record out of range".into()));
        };
        if slot >= self.geo.slots || bucket >= self.geo.n_buckets {
            return Err(ShmError::Corrupt(format!(
                "intent record names slot {slot} / bucket {bucket}"
            )));
        }
        match kind {
            OP_INSERT => {
                if self.chain_contains(bucket, slot)? {
                    if self.kgen(slot).load(Ordering::Acquire) % 4 != 3 {
                        return Err(ShmError::Corrupt(format!(
                            "slot {slot} is linked but not live"
                        )));
                    }
                    self.w(H_COUNT)
                        .store(count.saturating_add(1), Ordering::Release);
                } else {
                    self.make_free(slot);
                    self.w(H_COUNT).store(count, Ordering::Release);
                }
            }
            OP_DELETE => {
                self.make_free(slot);
                if self.chain_contains(bucket, slot)? {
                    self.unlink(bucket, slot)?;
                }
                self.w(H_COUNT)
                    .store(count.saturating_sub(1), Ordering::Release);
            }
            OP_SET => {
                let seq = self.slot_w(slot, S_SEQ).load(Ordering::Acquire);
                if seq == seq0.wrapping_add(1) {
                    self.write_cells(slot, mask as u32, |w| {
                        self.w(self.geo.image_off + w * 8).load(Ordering::Relaxed)
                    });
                    self.slot_w(slot, S_SEQ)
                        .store(seq0.wrapping_add(2), Ordering::Release);
                }
            }
            other => {
                return Err(ShmError::Corrupt(format!("intent record of kind {other}")));
            }
        }
        self.end();
        Ok(())
    }

    /// Moves a slot's incarnation forward to the next free value (a multiple of 4),
    /// then a SeqCst fence: the delete must be ordered before any later insert's hazard
    /// scan (see `hazard.rs`).
    pub(crate) fn make_free(&self, slot: usize) {
        let kg = self.kgen(slot).load(Ordering::Acquire);
        let add = (4 - kg % 4) % 4;
        if add != 0 {
            self.kgen(slot)
                .store(kg.wrapping_add(add), Ordering::Release);
            // Pairs with the fence in `hazard::publish`.
            fence(Ordering::SeqCst);
        }
    }

    /// Writes the masked columns' cells of `slot` inside an open seqlock window, taking
    /// each word from `word(w)` (w = word index in the row).
    pub(crate) fn write_cells(&self, slot: usize, mask: u32, word: impl Fn(usize) -> u64) {
        fence(Ordering::Release);
        for (c, col) in self.schema.columns().iter().enumerate() {
            if mask & (1 << c) == 0 {
                continue;
            }
            let off = self.schema.offset(c);
            for w in off..off + col.kind().words() {
                self.cell(slot, w).store(word(w), Ordering::Relaxed);
            }
        }
    }
}

/// Test builds can stop an operation at a numbered step, leaving the table exactly as a
/// process killed there would: lock word still naming the holder, intent record set.
#[cfg(test)]
pub(crate) mod crash {
    use std::cell::Cell;

    thread_local! {
        /// The step to stop at (0 = never).
        pub(crate) static AT: Cell<u32> = const { Cell::new(0) };
        /// Set once stopped: the lock guard then neither repairs nor unlocks.
        pub(crate) static CRASHED: Cell<bool> = const { Cell::new(false) };
    }

    /// Whether to stop at `step`.
    pub(crate) fn here(step: u32) -> bool {
        if AT.get() == step {
            CRASHED.set(true);
            true
        } else {
            false
        }
    }
}
