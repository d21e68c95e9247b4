//! Structural invariants, checked by `Table::verify` and shown by the inspector.

use std::collections::HashSet;
use std::sync::atomic::Ordering;

use crate::error::{Result, ShmError};
use crate::layout::*;
use crate::lock::OP_NONE;
use crate::table::Inner;

/// What `verify` counted while checking.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct VerifyReport {
    /// Live rows reachable from the buckets (equals `len()`).
    pub rows: usize,
    /// Free slots, spares included (capacity + `SPARE_SLOTS` - rows).
    pub free: usize,
    /// Free slots a lock-free writer still has published (not reusable yet).
    pub pinned_free: usize,
    /// Hazard entries held by threads that have written lock-free.
    pub hazard_entries: usize,
    /// Longest bucket chain.
    pub longest_chain: usize,
}

/// Checks, for a table whose structure is not changing (the lock is held, or the caller
/// accepts false alarms on a busy read-only table):
/// - no operation is half done (intent record empty);
/// - every chain ends within `capacity` steps, visits each slot at most once, and holds
///   only live slots whose stored bucket and hash agree with the key's hash;
/// - every live slot is in exactly one chain; no key appears twice;
/// - no row's seqlock is open; keys and strings are within their limits;
/// - `len()` equals the live rows.
pub(crate) fn verify(inner: &Inner) -> Result<VerifyReport> {
    let bad = |what: String| Err(ShmError::Corrupt(what));
    let geo = &inner.geo;
    if inner.w(I_KIND).load(Ordering::Acquire) != OP_NONE {
        return bad("an operation is half done (intent record set)".into());
    }
    let mut seen = vec![false; geo.slots];
    let mut keys = HashSet::new();
    let mut report = VerifyReport::default();
    for b in 0..geo.n_buckets {
        let mut cur = inner.region.u32_at(geo.bucket(b)).load(Ordering::Acquire) as usize;
        let mut len = 0;
        while cur != 0 {
            let i = cur - 1;
            if i >= geo.slots {
                return bad(format!("bucket {b} links to slot {i} beyond the last slot"));
            }
            if seen[i] {
                return bad(format!("slot {i} reached twice (cycle or shared tail)"));
            }
            seen[i] = true;
            len += 1;
            let kg = inner.kgen(i).load(Ordering::Acquire);
            if kg % 4 != 3 {
                return bad(format!("slot {i} in bucket {b} is not live (kgen {kg})"));
            }
            let (next, sb) = inner.link_of(i);
            let sb = sb as usize;
            if sb != b {
                return bad(format!("slot {i} in bucket {b} records bucket {sb}"));
            }
            let key_len = inner.slot_w(i, S_KEYLEN).load(Ordering::Acquire) as usize;
            if key_len > MAX_KEY_LEN {
                return bad(format!("slot {i} key length {key_len}"));
            }
            let mut words = [0u64; KEY_WORDS];
            for (w, word) in words.iter_mut().enumerate() {
                *word = inner.slot_w(i, S_KEY + w * 8).load(Ordering::Acquire);
            }
            let key = crate::schema::unpack_bytes(&words, key_len);
            let k = KeyBuf::new(&key)?;
            if k.words != words {
                return bad(format!("slot {i} key has bytes past its length"));
            }
            let hash = hash_key(inner.seed, &words, key_len);
            if inner.slot_w(i, S_HASH).load(Ordering::Acquire) != hash {
                return bad(format!("slot {i} stored hash does not match its key"));
            }
            if (hash as usize) & (geo.n_buckets - 1) != b {
                return bad(format!("slot {i} key hashes outside bucket {b}"));
            }
            if !keys.insert(key) {
                return bad(format!("slot {i} duplicates a key"));
            }
            if inner.slot_w(i, S_SEQ).load(Ordering::Acquire) % 2 != 0 {
                return bad(format!("slot {i} has an open seqlock"));
            }
            let image: Vec<u64> = (0..geo.row_words)
                .map(|w| inner.cell(i, w).load(Ordering::Acquire))
                .collect();
            if inner.schema.decode(&image).is_none() {
                return bad(format!("slot {i} has an over-long string"));
            }
            cur = next as usize;
            if len > geo.slots {
                return bad(format!("bucket {b} chain does not end"));
            }
        }
        report.rows += len;
        report.longest_chain = report.longest_chain.max(len);
    }
    for (i, reached) in seen.iter().enumerate() {
        let kg = inner.kgen(i).load(Ordering::Acquire);
        if *reached {
            continue;
        }
        if kg % 4 != 0 {
            return bad(format!("slot {i} is not free (kgen {kg}) but in no chain"));
        }
        report.free += 1;
        if crate::hazard::published(inner, i) {
            report.pinned_free += 1;
        }
    }
    report.hazard_entries = crate::hazard::usage(inner).0;
    let count = inner.w(H_COUNT).load(Ordering::Acquire) as usize;
    if count != report.rows {
        return bad(format!(
            "row count {count} but {} rows reachable",
            report.rows
        ));
    }
    Ok(report)
}
