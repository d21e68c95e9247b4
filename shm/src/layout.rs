//! Where everything lives in the file. All offsets are bytes from the start of the
//! mapping; all fields are 64-bit little-endian words accessed atomically, except the
//! bucket heads and the `next`/`bucket` fields of a slot, which are 32-bit.
//!
//! ```text
//! [0, 4096)        header: identity, geometry, owner, lock word, count, intent record,
//!                  column descriptors
//! buckets_off      n_buckets × u32 chain heads (slot index + 1; 0 = empty)
//! image_off        row_words × u64: the intent record's row image (for redoing a `set`)
//! haz_off          256 × 128-byte hazard entries: owner token, published slot + 1
//! slots_off        (capacity + 256) × slot_size: the rows
//! ```
//!
//! There are `HAZ_ENTRIES` more slots than rows may be live: each hazard entry keeps at
//! most one free slot from being reused (see hazard.rs), so an insert below capacity
//! always finds a free slot nobody pins, without waiting for any other process.
//!
//! A slot is two parts, on separate cache lines so that lock-free counters (which write
//! the cell part) do not evict the read-mostly key part that lookups read. The
//! incarnation `kgen` counts 4 per row lifetime: free (0 mod 4) -> being initialised
//! (2) -> live (3) -> free (4):
//!
//! ```text
//! +0   kgen   incarnation: odd = live row, even = free; changes on insert and delete
//! +8   seq    seqlock over the cells: odd while a `set` is writing them
//! +16  hash   the key's hash
//! +24  link   bucket this slot was inserted into << 32 | next slot in the chain
//!             (index + 1; 0 = end)
//! +32  keylen
//! +40  key    8 words (63 bytes max, zero padded)
//! +128 cells  row_words words
//! ```

use crate::error::{Result, ShmError};
use crate::schema::{Schema, MAX_COLUMNS};

/// "TFSHMTB1" little-endian: the first word of every table file, written last at creation.
pub(crate) const MAGIC: u64 = u64::from_le_bytes(*b"TFSHMTB1");
/// Bumped whenever the layout changes incompatibly.
pub(crate) const LAYOUT_VERSION: u64 = 3;
/// Longest key, in bytes.
pub const MAX_KEY_LEN: usize = 63;
/// Largest capacity a table may be created with.
pub const MAX_CAPACITY: usize = 1 << 26;
/// Words of key storage in a slot.
pub(crate) const KEY_WORDS: usize = 8;

pub(crate) const HEADER_SIZE: usize = 4096;
/// x86's adjacent-line prefetcher moves 128-byte pairs of cache lines: what different
/// cores write must not share one.
const PAIR: usize = 128;

// Header fields (byte offsets).
pub(crate) const H_MAGIC: usize = 0;
pub(crate) const H_VERSION: usize = 8;
pub(crate) const H_HEADER_SIZE: usize = 16;
pub(crate) const H_CAPACITY: usize = 24;
pub(crate) const H_BUCKETS: usize = 32;
pub(crate) const H_COLUMNS: usize = 40;
pub(crate) const H_ROW_WORDS: usize = 48;
pub(crate) const H_SLOT_SIZE: usize = 56;
pub(crate) const H_BUCKETS_OFF: usize = 64;
pub(crate) const H_IMAGE_OFF: usize = 72;
pub(crate) const H_SLOTS_OFF: usize = 80;
pub(crate) const H_TOTAL: usize = 88;
pub(crate) const H_OWNER_PID: usize = 96;
pub(crate) const H_OWNER_START: usize = 104;
pub(crate) const H_SEED: usize = 112;
/// The table lock word: 0 = free, else the holder's process token. Own cache line.
pub(crate) const H_LOCK: usize = 128;
/// Number of live rows. Own cache line.
pub(crate) const H_COUNT: usize = 192;
/// Where the next free-slot search starts.
pub(crate) const H_CURSOR: usize = 256;
/// The intent record: what the lock holder is in the middle of (see `lock.rs`).
pub(crate) const H_INTENT: usize = 320;
pub(crate) const I_KIND: usize = H_INTENT;
pub(crate) const I_SLOT: usize = H_INTENT + 8;
pub(crate) const I_BUCKET: usize = H_INTENT + 16;
pub(crate) const I_COUNT: usize = H_INTENT + 24;
pub(crate) const I_SEQ: usize = H_INTENT + 32;
pub(crate) const I_MASK: usize = H_INTENT + 40;
/// How many hazard entries have ever been claimed (scans stop there).
pub(crate) const H_HAZ_HWM: usize = 384;
/// How many times the lock was taken over from a dead holder.
pub(crate) const H_RECOVERIES: usize = 448;
/// Hazard entries (threads that write lock-free at the same time).
pub(crate) const HAZ_ENTRIES: usize = 256;
/// Slots a table has beyond its capacity: one per hazard entry, which may keep one free
/// slot from reuse, so that an insert below capacity never waits for another process.
pub const SPARE_SLOTS: usize = HAZ_ENTRIES;
/// Two cache lines per entry, so publishing never contends with another thread: x86's
/// adjacent-line prefetcher works on 128-byte pairs, and two entries sharing a pair
/// bounce between cores as if they shared a line.
pub(crate) const HAZ_ENTRY_SIZE: usize = 128;
/// Column descriptors: 64 bytes each (name 32 bytes, kind, max_len, 2 spare words).
pub(crate) const H_COLDESC: usize = 1024;
pub(crate) const COLDESC_SIZE: usize = 64;

// Slot fields (byte offsets inside a slot).
pub(crate) const S_KGEN: usize = 0;
pub(crate) const S_SEQ: usize = 8;
pub(crate) const S_HASH: usize = 16;
/// `bucket << 32 | next`: both read with one load, so a walker never pairs a bucket
/// with a next pointer from another incarnation.
pub(crate) const S_LINK: usize = 24;
/// Words of the read-mostly part of a slot.
pub(crate) const META_WORDS: usize = S_CELLS / 8;
pub(crate) const S_KEYLEN: usize = 32;
pub(crate) const S_KEY: usize = 40;
pub(crate) const S_CELLS: usize = 128;

const _: () = assert!(H_COLDESC + MAX_COLUMNS * COLDESC_SIZE <= HEADER_SIZE);
const _: () = assert!(S_KEY + KEY_WORDS * 8 <= S_CELLS);

/// Sizes and offsets derived from (schema, capacity); recomputed and compared on open,
/// so a hostile header cannot make any offset point outside the mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Geometry {
    pub(crate) capacity: usize,
    /// Slots in the file: `capacity` plus one spare per hazard entry.
    pub(crate) slots: usize,
    pub(crate) n_buckets: usize,
    pub(crate) row_words: usize,
    pub(crate) slot_size: usize,
    pub(crate) buckets_off: usize,
    pub(crate) image_off: usize,
    pub(crate) haz_off: usize,
    pub(crate) slots_off: usize,
    pub(crate) total: usize,
}

fn round_up(n: usize, to: usize) -> Option<usize> {
    n.checked_add(to - 1).map(|v| v / to * to)
}

impl Geometry {
    /// Computes the geometry, or says why it does not fit.
    pub(crate) fn new(schema: &Schema, capacity: usize) -> Result<Geometry> {
        if capacity == 0 || capacity > MAX_CAPACITY {
            return Err(ShmError::BadCapacity {
                capacity,
                max: MAX_CAPACITY,
            });
        }
        let overflow = || ShmError::BadCapacity {
            capacity,
            max: MAX_CAPACITY,
        };
        let row_words = schema.row_words();
        // One bucket per row on average at most; a power of two so the hash is masked.
        let n_buckets = capacity.next_power_of_two();
        let slot_size = S_CELLS + round_up(row_words * 8, 64).ok_or_else(overflow)?;
        let buckets_off = HEADER_SIZE;
        let image_off = round_up(buckets_off + n_buckets * 4, 64).ok_or_else(overflow)?;
        let haz_off = round_up(image_off + row_words * 8, PAIR).ok_or_else(overflow)?;
        let slots_off = haz_off + HAZ_ENTRIES * HAZ_ENTRY_SIZE;
        let slots = capacity + SPARE_SLOTS;
        let total = slots
            .checked_mul(slot_size)
            .and_then(|s| s.checked_add(slots_off))
            .and_then(|t| round_up(t, 4096))
            .ok_or_else(overflow)?;
        Ok(Geometry {
            capacity,
            slots,
            n_buckets,
            row_words,
            slot_size,
            buckets_off,
            image_off,
            haz_off,
            slots_off,
            total,
        })
    }

    /// Byte offset of slot `i`.
    #[inline]
    pub(crate) fn slot(&self, i: usize) -> usize {
        self.slots_off + i * self.slot_size
    }

    /// Byte offset of bucket head `b`.
    #[inline]
    pub(crate) fn bucket(&self, b: usize) -> usize {
        self.buckets_off + b * 4
    }

    /// Byte offset of cell word `w` of slot `i`.
    #[inline]
    pub(crate) fn cell(&self, i: usize, w: usize) -> usize {
        self.slot(i) + S_CELLS + w * 8
    }
}

/// Keys are hashed with a per-table random seed so that a client choosing keys cannot
/// aim them all at one chain without knowing it.
/// Splits a link word into (next, bucket).
#[inline]
pub(crate) fn split_link(link: u64) -> (u32, u32) {
    (link as u32, (link >> 32) as u32)
}

/// Builds a link word.
#[inline]
pub(crate) fn make_link(next: u32, bucket: u32) -> u64 {
    (u64::from(bucket) << 32) | u64::from(next)
}

#[inline]
pub(crate) fn hash_key(seed: u64, words: &[u64; KEY_WORDS], len: usize) -> u64 {
    const K: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut h = seed ^ (len as u64).wrapping_mul(K);
    for w in &words[..len.div_ceil(8)] {
        h = (h ^ *w).wrapping_mul(K).rotate_left(29);
    }
    // fmix64 from MurmurHash3: spreads the high bits into the low bits the mask keeps.
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

/// A key, validated and packed into the words a slot stores.
#[derive(Debug, Clone, Copy)]
pub(crate) struct KeyBuf {
    pub(crate) words: [u64; KEY_WORDS],
    pub(crate) len: usize,
}

impl KeyBuf {
    /// Packs `key`, refusing keys over [`MAX_KEY_LEN`] bytes.
    #[inline]
    pub(crate) fn new(key: &[u8]) -> Result<KeyBuf> {
        if key.len() > MAX_KEY_LEN {
            return Err(ShmError::KeyTooLong {
                len: key.len(),
                max: MAX_KEY_LEN,
            });
        }
        Ok(KeyBuf::pack(key))
    }

    /// Packs a key already known to be at most [`MAX_KEY_LEN`] bytes (longer input is
    /// cut at 64 bytes; callers check first). Built in place, so the hot path does not
    /// copy the 72-byte buffer through a `Result`.
    #[inline(always)]
    pub(crate) fn pack(key: &[u8]) -> KeyBuf {
        let mut words = [0u64; KEY_WORDS];
        crate::schema::pack_bytes(key, &mut words);
        KeyBuf {
            words,
            len: key.len().min(KEY_WORDS * 8),
        }
    }

    /// Number of words holding key bytes.
    pub(crate) fn nwords(&self) -> usize {
        self.len.div_ceil(8)
    }
}
