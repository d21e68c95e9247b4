//! Hazard entries: how a lock-free writer keeps a slot from being reused under it.
//!
//! A lock-free `incr` finds its row without the lock, so the row could be deleted and
//! its slot given to another key between the lookup and the atomic add; the add would
//! then land in someone else's row. To prevent that, each thread that writes lock-free
//! owns an entry in a registry inside the table and, around the add, publishes the slot
//! it is about to touch (sequentially consistent store), then re-checks the slot's
//! incarnation. An insert (under the lock) never reuses a free slot that any live
//! entry publishes. Either the inserter's scan sees the published slot, or the writer's
//! re-check sees the delete that preceded the scan and retries: the add can only land on
//! the row it looked up (or on that row after its delete, which is then discarded).
//!
//! Cost on the fast path: one store to a cache line only this thread writes, plus the
//! re-check load — the contended counter line still sees exactly one atomic operation.
//!
//! Entries name their owner by process token, so entries of killed processes are
//! reclaimed; a thread releases its entry when it exits; after `fork()` a child never
//! uses its parent's entries (a fork generation, bumped by a `pthread_atfork` child
//! handler, invalidates the copied thread-local cache).
//!
//! hot.rs keeps a per-thread shortcut over this path for a key `incr`ed again and
//! again; it is valid only while the entry names its slot, so every change of the
//! entry's slot goes through `Reg::set_pinned`, which disarms it first.

use std::cell::RefCell;
use std::sync::atomic::{fence, AtomicU64, Ordering};
use std::sync::{Arc, Once, Weak};

#[cfg(test)]
use crate::layout::S_KGEN;
use crate::layout::{hash_key, KeyBuf};
use crate::layout::{HAZ_ENTRIES, HAZ_ENTRY_SIZE, H_HAZ_HWM};
use crate::procinfo::{my_token, token_alive};
use crate::table::{Inner, Walk};

/// Bumped in every child right after fork.
pub(crate) static FORK_GEN: AtomicU64 = AtomicU64::new(0);
static ATFORK: Once = Once::new();
/// Identifies an `Inner` within this process (addresses can be reused).
pub(crate) static NEXT_UID: AtomicU64 = AtomicU64::new(1);

extern "C" fn after_fork_in_child() {
    FORK_GEN.fetch_add(1, Ordering::Relaxed);
}

fn install_atfork() {
    ATFORK.call_once(|| {
        // Without the handler a child could share its parent's entry; it only fails on
        // ENOMEM, and then every registration is refused (writers take the lock instead).
        if !crate::mem::on_fork_in_child(after_fork_in_child) {
            FORK_GEN.store(u64::MAX, Ordering::Relaxed);
        }
    });
}

struct Reg {
    uid: u64,
    gen: u64,
    index: usize,
    table: Weak<Inner>,
    /// The row this thread last wrote lock-free.
    last: Option<LastRow>,
    /// The slot this thread's entry names (published, then fenced), if any.
    pinned: Option<usize>,
}

/// This thread's registrations; released when the thread exits.
struct Regs(Vec<Reg>);

impl Drop for Regs {
    fn drop(&mut self) {
        // The entries go: so does the hot row that relies on one of them.
        crate::hot::forget_all();
        let gen = FORK_GEN.load(Ordering::Relaxed);
        for reg in &self.0 {
            if reg.gen == gen {
                if let Some(inner) = reg.table.upgrade() {
                    inner.release_entry(reg.index);
                }
            }
        }
    }
}

thread_local! {
    static REGS: RefCell<Regs> = const { RefCell::new(Regs(Vec::new())) };
}

/// For tests: whether this thread's hot row is in `inner`'s table, and if so, whether
/// its invariant holds (this thread's entry there names the hot slot): `None` when not
/// armed for `inner`, `Some(holds)` when armed.
#[cfg(test)]
pub(crate) fn hot_row_state(inner: &Inner) -> Option<bool> {
    let gen = FORK_GEN.load(Ordering::Relaxed);
    let (uid, hot_gen, kgen_off) = crate::hot::armed()?;
    if uid != inner.uid || hot_gen != gen {
        return None;
    }
    let holds = REGS.with(|regs| {
        regs.borrow()
            .0
            .iter()
            .find(|r| r.uid == inner.uid && r.gen == gen)
            .is_some_and(|r| {
                r.pinned.is_some_and(|slot| {
                    inner.geo.slot(slot) + S_KGEN == kgen_off
                        && inner.entry_slot(r.index).load(Ordering::Acquire) == slot as u64 + 1
                })
            })
    });
    Some(holds)
}

impl Inner {
    fn entry_owner(&self, i: usize) -> &AtomicU64 {
        self.w(self.geo.haz_off + i * HAZ_ENTRY_SIZE)
    }

    fn entry_slot(&self, i: usize) -> &AtomicU64 {
        self.w(self.geo.haz_off + i * HAZ_ENTRY_SIZE + 8)
    }

    fn release_entry(&self, i: usize) {
        self.entry_slot(i).store(0, Ordering::Release);
        self.entry_owner(i).store(0, Ordering::Release);
    }

    /// Claims entry `i` if its owner is `expected` (0 = free, or a dead token).
    fn claim(&self, i: usize, expected: u64, me: u64) -> bool {
        if self
            .entry_owner(i)
            .compare_exchange(expected, me, Ordering::AcqRel, Ordering::Relaxed)
            .is_err()
        {
            return false;
        }
        // Only the winner of the owner CAS touches the slot word.
        self.entry_slot(i).store(0, Ordering::Release);
        self.w(H_HAZ_HWM).fetch_max(i as u64 + 1, Ordering::AcqRel);
        true
    }

    fn register(&self) -> Option<usize> {
        let me = my_token();
        for i in 0..HAZ_ENTRIES {
            if self.entry_owner(i).load(Ordering::Relaxed) == 0 && self.claim(i, 0, me) {
                return Some(i);
            }
        }
        // Full: take over an entry whose owner process is gone.
        for i in 0..HAZ_ENTRIES {
            let owner = self.entry_owner(i).load(Ordering::Acquire);
            if owner != 0 && !token_alive(owner) && self.claim(i, owner, me) {
                return Some(i);
            }
        }
        None
    }
}

/// First use of `inner` by this thread (or since a fork): claims an entry.
#[cold]
fn register_thread(inner: &Arc<Inner>) -> Option<usize> {
    install_atfork();
    let gen = FORK_GEN.load(Ordering::Relaxed);
    if gen == u64::MAX {
        return None;
    }
    let index = inner.register()?;
    REGS.with(|regs| {
        let mut regs = regs.borrow_mut();
        // Entries copied from the parent across fork belong to the parent: forget them.
        regs.0.retain(|r| r.gen == gen);
        regs.0.push(Reg {
            uid: inner.uid,
            gen,
            index,
            table: Arc::downgrade(inner),
            last: None,
            pinned: None,
        });
    });
    Some(index)
}

/// How the lock-free path of a single-cell operation ended.
pub(crate) enum Fast<R> {
    /// `op` ran on the row's cell.
    Done(R),
    /// The row does not exist (one consistent walk found no such key).
    Missing,
    /// No hazard entry to be had, or the row kept being deleted and reinserted: the
    /// caller takes the lock.
    Locked,
}

/// The lock-free path of a single-cell operation: with this thread's entry in `inner`,
/// finds the row (from the per-thread hint if the key is the last one used, else with
/// one walk) and runs `op` on cell `word` under the hazard. `key` is at most
/// `MAX_KEY_LEN` bytes (callers check). With `hot: Some(column)` (an int `incr`), the
/// row it ran on becomes this thread's hot row (see hot.rs).
#[inline(always)]
pub(crate) fn fast_op<R>(
    inner: &Arc<Inner>,
    key: &[u8],
    word: usize,
    hot: Option<&str>,
    op: impl Fn(&AtomicU64) -> R,
) -> Fast<R> {
    let gen = FORK_GEN.load(Ordering::Relaxed);
    let done = REGS.with(|regs| {
        let mut regs = regs.borrow_mut();
        let reg = regs
            .0
            .iter_mut()
            .find(|r| r.uid == inner.uid && r.gen == gen)?;
        Some(reg.run(inner, key, word, hot, &op))
    });
    match done {
        Some(r) => r,
        // First use by this thread: claim an entry, then go again (it is found now).
        None if register_thread(inner).is_some() => fast_op(inner, key, word, hot, op),
        None => Fast::Locked,
    }
}

impl Reg {
    #[inline(always)]
    fn run<R>(
        &mut self,
        inner: &Inner,
        key: &[u8],
        word: usize,
        hot: Option<&str>,
        op: &impl Fn(&AtomicU64) -> R,
    ) -> Fast<R> {
        for _ in 0..crate::table::MAX_RESTARTS {
            // (slot, incarnation, whether the hint gave them: the key was this thread's
            // last one too).
            let (slot, kg, again) = match &self.last {
                Some(last) if last.is(key) => (last.slot, last.kgen, true),
                _ => match self.look_up(inner, key) {
                    Walk::Found(slot, kg) => (slot, kg, false),
                    Walk::Missing => return Fast::Missing,
                    Walk::Restart => {
                        std::hint::spin_loop();
                        continue;
                    }
                },
            };
            if let Some(r) = self.pinned_op(inner, slot, kg, word, op) {
                // Armed only for a key used twice in a row: a thread that goes from key
                // to key pays nothing for a shortcut it would never take.
                if let (Some(column), true) = (hot, again) {
                    crate::hot::remember(inner, key, column, slot, kg, word);
                }
                return Fast::Done(r);
            }
            // Deleted since it was found (and maybe reinserted elsewhere): look again.
            self.last = None;
        }
        Fast::Locked
    }

    /// One walk for `key`, remembered as the hint when found.
    #[inline(never)]
    fn look_up(&mut self, inner: &Inner, key: &[u8]) -> Walk {
        let k = KeyBuf::pack(key);
        let found = inner.walk(&k, hash_key(inner.seed, &k.words, k.len));
        if let Walk::Found(slot, kgen) = found {
            self.last = Some(LastRow { key: k, slot, kgen });
        }
        found
    }

    /// Runs `op` on cell `word` of `slot` if the slot still holds incarnation `kg`, with
    /// the slot published in this thread's entry so that no insert can reuse it
    /// meanwhile. None if the row was deleted since it was found.
    ///
    /// The publication stays after the call ("sticky"): while the entry keeps naming
    /// `slot`, every reuse scan that starts after the first publish's fence sees it, so
    /// the slot holds incarnation `kg` or, once deleted, stays free. The next operation
    /// on the same slot then needs only the incarnation check, not another store and
    /// fence. A thread pins at most one free slot this way, which the spare slots cover
    /// (layout.rs).
    #[inline(always)]
    fn pinned_op<R>(
        &mut self,
        inner: &Inner,
        slot: usize,
        kg: u64,
        word: usize,
        op: &impl Fn(&AtomicU64) -> R,
    ) -> Option<R> {
        let cell = inner.cell(slot, word);
        if self.pinned != Some(slot) {
            self.set_pinned(inner, Some(slot));
            publish(inner, self.index, slot);
        }
        // If the row was deleted before the (first) publish, this load sees it; if not,
        // no insert can reuse the slot while the entry names it.
        if inner.kgen(slot).load(Ordering::Acquire) != kg {
            // Let the deleted row's slot go.
            self.set_pinned(inner, None);
            inner.entry_slot(self.index).store(0, Ordering::Release);
            return None;
        }
        Some(op(cell))
    }

    /// Records which slot the entry is about to name. The hot row relies on the entry
    /// naming its slot, so it is forgotten before the entry changes.
    #[inline]
    fn set_pinned(&mut self, inner: &Inner, slot: Option<usize>) {
        crate::hot::forget_table(inner.uid);
        self.pinned = slot;
    }
}

/// The key, slot and incarnation of the row a thread last wrote lock-free. Only a hint:
/// `pinned_op` re-checks the incarnation, and a key cannot change without it.
struct LastRow {
    key: KeyBuf,
    slot: usize,
    kgen: u64,
}

impl LastRow {
    /// Whether `key` is this row's key.
    #[inline(always)]
    fn is(&self, key: &[u8]) -> bool {
        key.len() == self.key.len && crate::hot::words_match(key, |w| self.key.words[w])
    }
}

/// Publishes `slot` in entry `i`. The SeqCst fence orders the publish before the
/// caller's re-check of the slot's incarnation; it pairs with the fences after a delete
/// (`make_free`) and before a reuse scan (`published`): of two SeqCst fences one comes
/// first, so either the scan sees the publish or the re-check sees the delete. (Fences
/// rather than SeqCst accesses, so that the loom model in tests/loom_protocols.rs
/// checks exactly this code's pattern.)
#[inline]
fn publish(inner: &Inner, i: usize, slot: usize) {
    inner
        .entry_slot(i)
        .store(slot as u64 + 1, Ordering::Relaxed);
    fence(Ordering::SeqCst);
}

/// Whether some live writer has published `slot`. Entries of dead owners are freed on
/// the way. Caller holds the lock and has already marked the slot free.
pub(crate) fn published(inner: &Inner, slot: usize) -> bool {
    // Pairs with the fence in `publish` (see there). The delete that freed `slot` ran
    // `make_free`, whose own fence precedes this one.
    fence(Ordering::SeqCst);
    let hwm = (inner.w(H_HAZ_HWM).load(Ordering::Acquire) as usize).min(HAZ_ENTRIES);
    for i in 0..hwm {
        if inner.entry_slot(i).load(Ordering::Acquire) != slot as u64 + 1 {
            continue;
        }
        let owner = inner.entry_owner(i).load(Ordering::Acquire);
        if owner == 0 {
            continue;
        }
        if !token_alive(owner) {
            // A killed writer: free its entry (the CAS fails if someone re-claimed it).
            if inner
                .entry_owner(i)
                .compare_exchange(owner, 0, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
            {
                continue;
            }
        }
        return true;
    }
    false
}

/// Entries in use by live owners and the high-water mark (for the inspector/tests).
pub(crate) fn usage(inner: &Inner) -> (usize, usize) {
    let hwm = (inner.w(H_HAZ_HWM).load(Ordering::Acquire) as usize).min(HAZ_ENTRIES);
    let used = (0..hwm)
        .filter(|i| inner.entry_owner(*i).load(Ordering::Acquire) != 0)
        .count();
    (used, hwm)
}
