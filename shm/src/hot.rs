//! `incr`'s shortcut for a repeated counter: the hot row.
//!
//! A thread that `incr`s one row over and over (a request counter, a worker's
//! scoreboard) would otherwise pay, per call, for the registry search, the column name
//! lookup and the key hint of hazard.rs around the one atomic add that matters. With two
//! processes adding to one counter, each nanosecond spent around the add is time in which
//! the other core takes the counter's cache line, so this work costs far more under
//! contention than alone (shm/README.md has the figures). The hot row keeps, per thread,
//! just enough to do the same add directly: a few compares of words only this thread
//! writes, one load of the row's incarnation, the add.
//!
//! It is only a cache of the lock-free path's state: it is armed by that path right after
//! an add, and is valid only while this thread's hazard entry names its slot; the safety
//! argument is the hazard protocol's (hazard.rs), unchanged.

use std::cell::Cell;
use std::sync::atomic::Ordering;

use crate::hazard::FORK_GEN;
use crate::layout::{KEY_WORDS, S_KGEN};
use crate::schema::MAX_COLUMN_NAME;
use crate::table::Inner;

thread_local! {
    /// Const-initialised and without a destructor, so reaching it is one
    /// thread-pointer-relative address, with no lazy-init or registration check.
    static HOT: Hot = const { Hot::new() };
}

/// Words of a packed column name.
const NAME_WORDS: usize = MAX_COLUMN_NAME.div_ceil(8);

/// The int cell this thread last changed with `incr`: which table (by `Inner::uid`
/// and fork generation), key and column it was, and where the row and cell are.
///
/// Invariant: while `uid` is non-zero, this thread's hazard entry in that table names
/// the slot whose incarnation word is at `kgen_off` (`Reg::pinned`), so the slot cannot
/// be reused: if its
/// incarnation still reads `kgen`, the cell belongs to the same row, and an add there
/// is exactly what the full path would do. Every change of `Reg::pinned` forgets the
/// hot row first (`Reg::set_pinned` calls [`forget_table`]), and the registrations'
/// destructor calls [`forget_all`].
struct Hot {
    uid: Cell<u64>,
    gen: Cell<u64>,
    kgen: Cell<u64>,
    /// Byte offsets of the slot's incarnation word and of the cell.
    kgen_off: Cell<usize>,
    cell_off: Cell<usize>,
    key_len: Cell<usize>,
    key: [Cell<u64>; KEY_WORDS],
    name_len: Cell<usize>,
    name: [Cell<u64>; NAME_WORDS],
}

impl Hot {
    const fn new() -> Hot {
        Hot {
            uid: Cell::new(0),
            gen: Cell::new(0),
            kgen: Cell::new(0),
            kgen_off: Cell::new(0),
            cell_off: Cell::new(0),
            key_len: Cell::new(0),
            key: [const { Cell::new(0) }; KEY_WORDS],
            name_len: Cell::new(0),
            name: [const { Cell::new(0) }; NAME_WORDS],
        }
    }
}

/// Packs `bytes` (at most `8 * N`) into `cells` as zero-padded little-endian words.
fn store_packed<const N: usize>(cells: &[Cell<u64>; N], bytes: &[u8]) {
    let mut words = [0u64; N];
    crate::schema::pack_bytes(bytes, &mut words);
    for (c, w) in cells.iter().zip(words) {
        c.set(w);
    }
}

/// Arms the shortcut for (`inner`, `key`, `column`): an `incr` has just added to cell
/// `word` of `slot` (incarnation `kgen`), which this thread's entry names.
pub(crate) fn remember(
    inner: &Inner,
    key: &[u8],
    column: &str,
    slot: usize,
    kgen: u64,
    word: usize,
) {
    if key.len() > KEY_WORDS * 8 || column.len() > NAME_WORDS * 8 {
        return;
    }
    HOT.with(|h| {
        store_packed(&h.key, key);
        store_packed(&h.name, column.as_bytes());
        h.key_len.set(key.len());
        h.name_len.set(column.len());
        h.kgen.set(kgen);
        h.kgen_off.set(inner.geo.slot(slot) + S_KGEN);
        h.cell_off.set(inner.geo.cell(slot, word));
        h.gen.set(FORK_GEN.load(Ordering::Relaxed));
        h.uid.set(inner.uid);
    });
}

/// Disarms the shortcut if it is armed for the table with this `uid`: called before
/// this thread's entry there stops naming the slot it names.
pub(crate) fn forget_table(uid: u64) {
    HOT.with(|h| {
        if h.uid.get() == uid {
            h.uid.set(0);
        }
    });
}

/// Disarms the shortcut whatever table it is for: this thread's entries are going.
pub(crate) fn forget_all() {
    HOT.with(|h| h.uid.set(0));
}

/// For tests: (table uid, fork generation, incarnation word offset) of the armed hot row.
#[cfg(test)]
pub(crate) fn armed() -> Option<(u64, u64, usize)> {
    HOT.with(|h| (h.uid.get() != 0).then(|| (h.uid.get(), h.gen.get(), h.kgen_off.get())))
}

/// The shortcut: adds `delta` to the hot cell if (`inner`, `key`, `column`) is the
/// hot row and the row still exists; returns the new value. None: take the full path.
#[inline(always)]
pub(crate) fn hot_incr(inner: &Inner, key: &[u8], column: &str, delta: i64) -> Option<i64> {
    HOT.with(|h| {
        if h.uid.get() != inner.uid
            || h.gen.get() != FORK_GEN.load(Ordering::Relaxed)
            || h.key_len.get() != key.len()
            || h.name_len.get() != column.len()
            || !words_match(key, |w| h.key[w].get())
            || !words_match(column.as_bytes(), |w| h.name[w].get())
        {
            return None;
        }
        // The entry keeps naming the slot (see `Hot`), so no insert can reuse it: an
        // unchanged incarnation means the row is the one remembered.
        if inner.w(h.kgen_off.get()).load(Ordering::Acquire) != h.kgen.get() {
            return None;
        }
        let cell = inner.w(h.cell_off.get());
        Some((cell.fetch_add(delta as u64, Ordering::AcqRel) as i64).wrapping_add(delta))
    })
}

/// Whether `bytes` equals the packed little-endian words `word(0)`, `word(1)`, … (the
/// caller has compared the lengths), read a word at a time straight from the slice (no
/// packed copy, no `memcmp` call).
#[inline(always)]
pub(crate) fn words_match(bytes: &[u8], word: impl Fn(usize) -> u64) -> bool {
    let mut chunks = bytes.chunks_exact(8);
    for (w, chunk) in (&mut chunks).enumerate() {
        let mut b = [0u8; 8];
        b.copy_from_slice(chunk);
        if word(w) != u64::from_le_bytes(b) {
            return false;
        }
    }
    let tail = chunks.remainder();
    tail.is_empty() || word(bytes.len() / 8) == tail_word(tail)
}

/// The 1..=7 bytes of `tail` as a little-endian word, from two overlapping loads of the
/// widest fitting size: a byte that both loads cover lands on the same bits twice, so
/// the OR is exact, and no loop or per-byte branch is needed.
#[inline(always)]
fn tail_word(tail: &[u8]) -> u64 {
    let n = tail.len();
    let load = |at: usize, width: usize| -> u64 {
        let mut b = [0u8; 8];
        b[..width].copy_from_slice(&tail[at..at + width]);
        u64::from_le_bytes(b)
    };
    if n >= 4 {
        load(0, 4) | (load(n - 4, 4) << (8 * (n - 4)))
    } else if n >= 2 {
        load(0, 2) | (load(n - 2, 2) << (8 * (n - 2)))
    } else {
        load(0, 1)
    }
}

#[cfg(test)]
mod tests {
    use super::words_match;

    /// Every length a key or column name can have, equal and differing at each byte.
    #[test]
    fn words_match_agrees_with_packing_at_every_length() {
        for len in 0..=crate::layout::MAX_KEY_LEN {
            let bytes: Vec<u8> = (0..len)
                .map(|i| (i as u8).wrapping_mul(37) ^ 0xA5)
                .collect();
            let mut words = [0u64; crate::layout::KEY_WORDS];
            crate::schema::pack_bytes(&bytes, &mut words);
            assert!(words_match(&bytes, |w| words[w]), "len {len}");
            for at in 0..len {
                let mut other = bytes.clone();
                other[at] ^= 0x40;
                assert!(!words_match(&other, |w| words[w]), "len {len}, byte {at}");
            }
        }
    }
}
