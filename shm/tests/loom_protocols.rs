//! Loom models of the crate's lock-free handshakes, with the same atomic orderings as
//! the code (named in each model). Loom explores every interleaving and every value the
//! C11 memory model lets a load return, which the multi-process tests cannot.
//!
//! These are models, not the code itself: the table lives in a real MAP_SHARED mapping
//! that loom cannot stand in for. Keep them in step with the code they name.
//!
//! Run: `RUSTFLAGS="--cfg loom" cargo test -p tarsfork-shm --test loom_protocols --release`

#![allow(unexpected_cfgs)]
#![cfg(loom)]
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail by panicking

use loom::sync::atomic::{fence, AtomicU64, Ordering};
use loom::sync::Arc;
use loom::thread;

/// One slot: its incarnation, one int cell, and one writer's hazard entry.
struct Slot {
    kgen: AtomicU64,
    cell: AtomicU64,
    hazard: AtomicU64,
}

/// `hazard::Reg::pinned_op` against `delete_locked` (`make_free`: store, fence)
/// followed by `insert_locked` reusing the slot after `hazard::published` (fence, scan)
/// found no hazard. The writer makes two adds to the row it looked up: the first
/// publishes the slot (store, fence) and re-checks the incarnation; the second, with the
/// slot still published ("sticky"), only re-checks. Neither add may land in the row that
/// reuses the slot.
#[test]
fn an_incr_never_lands_in_a_reused_slot() {
    loom::model(|| {
        const LIVE: u64 = 3;
        let s = Arc::new(Slot {
            kgen: AtomicU64::new(LIVE),
            cell: AtomicU64::new(10),
            hazard: AtomicU64::new(0),
        });
        let writer = {
            let s = s.clone();
            thread::spawn(move || {
                // The lock-free lookup found the row live (kgen == LIVE).
                s.hazard.store(1, Ordering::Relaxed);
                fence(Ordering::SeqCst);
                let mut applied = 0;
                if s.kgen.load(Ordering::Acquire) == LIVE {
                    s.cell.fetch_add(1, Ordering::AcqRel);
                    applied += 1;
                    // The next incr of the same row: still published, no fence.
                    if s.kgen.load(Ordering::Acquire) == LIVE {
                        s.cell.fetch_add(1, Ordering::AcqRel);
                        applied += 1;
                    }
                }
                applied
            })
        };
        // delete: make_free
        s.kgen.store(LIVE + 1, Ordering::Release);
        fence(Ordering::SeqCst);
        // a later insert: find_free -> published
        fence(Ordering::SeqCst);
        let reused = s.hazard.load(Ordering::Acquire) != 1;
        if reused {
            // insert_locked: being initialised, cells, live
            s.kgen.store(LIVE + 3, Ordering::Relaxed);
            fence(Ordering::Release);
            s.cell.store(100, Ordering::Relaxed);
            s.kgen.store(LIVE + 4, Ordering::Release);
        }
        let applied = writer.join().unwrap();
        let cell = s.cell.load(Ordering::Acquire);
        if reused {
            assert_eq!(cell, 100, "an incr landed in the reused row");
        } else {
            assert_eq!(cell, 10 + applied);
        }
    });
}

/// `update_locked` (seq odd, fence in `write_cells`, cells, seq even) against
/// `read_row` (seq, cells, acquire fence, seq again): a reader that accepts a snapshot
/// never sees one cell from before a set and one from after.
#[test]
fn a_seqlock_reader_never_sees_half_a_set() {
    loom::model(|| {
        let seq = Arc::new(AtomicU64::new(0));
        let a = Arc::new(AtomicU64::new(1));
        let b = Arc::new(AtomicU64::new(1));
        let writer = {
            let (seq, a, b) = (seq.clone(), a.clone(), b.clone());
            thread::spawn(move || {
                for x in [2u64, 3] {
                    let s = seq.load(Ordering::Acquire);
                    seq.store(s + 1, Ordering::Relaxed);
                    fence(Ordering::Release);
                    a.store(x, Ordering::Relaxed);
                    b.store(x, Ordering::Relaxed);
                    seq.store(s + 2, Ordering::Release);
                }
            })
        };
        loop {
            let s1 = seq.load(Ordering::Acquire);
            if s1 % 2 == 1 {
                thread::yield_now();
                continue;
            }
            let va = a.load(Ordering::Relaxed);
            let vb = b.load(Ordering::Relaxed);
            fence(Ordering::Acquire);
            if seq.load(Ordering::Relaxed) == s1 {
                assert_eq!(va, vb, "torn row");
                break;
            }
            thread::yield_now();
        }
        writer.join().unwrap();
    });
}

/// `insert_locked` (key and cells, kgen live with Release, then the bucket head with
/// Release) against `walk` (head with Acquire, kgen with Acquire, fields): a walker that
/// reaches a live slot through the head sees its key and cells complete.
#[test]
fn a_walker_sees_a_published_row_complete() {
    loom::model(|| {
        let head = Arc::new(AtomicU64::new(0));
        let kgen = Arc::new(AtomicU64::new(0));
        let key = Arc::new(AtomicU64::new(0));
        let cell = Arc::new(AtomicU64::new(0));
        let inserter = {
            let (head, kgen, key, cell) = (head.clone(), kgen.clone(), key.clone(), cell.clone());
            thread::spawn(move || {
                kgen.store(2, Ordering::Relaxed);
                fence(Ordering::Release);
                key.store(0xC0FFEE, Ordering::Relaxed);
                cell.store(42, Ordering::Relaxed);
                kgen.store(3, Ordering::Release);
                head.store(1, Ordering::Release);
            })
        };
        if head.load(Ordering::Acquire) == 1 {
            let kg = kgen.load(Ordering::Acquire);
            assert_eq!(kg, 3, "reachable before live");
            assert_eq!(key.load(Ordering::Relaxed), 0xC0FFEE);
            assert_eq!(cell.load(Ordering::Relaxed), 42);
        }
        inserter.join().unwrap();
    });
}

/// `insert_locked` reinitialising a free slot (kgen to 2 mod 4, fence, new link, kgen
/// live) against `walk` standing on that slot (kgen Acquire, link, acquire fence, kgen
/// again): a walker that accepts the slot's link (kgen unchanged and not 2 mod 4) gets
/// the link of the incarnation it saw, never the new chain under the old incarnation.
#[test]
fn a_walker_never_follows_a_reused_slot_into_another_chain() {
    loom::model(|| {
        const OLD_LINK: u64 = 5; // bucket 0, next slot 4
        const NEW_LINK: u64 = (1 << 32) | 9; // bucket 1, next slot 8
        let kgen = Arc::new(AtomicU64::new(4));
        let link = Arc::new(AtomicU64::new(OLD_LINK));
        let inserter = {
            let (kgen, link) = (kgen.clone(), link.clone());
            thread::spawn(move || {
                kgen.store(6, Ordering::Relaxed);
                fence(Ordering::Release);
                link.store(NEW_LINK, Ordering::Relaxed);
                kgen.store(7, Ordering::Release);
            })
        };
        let kg = kgen.load(Ordering::Acquire);
        let seen = link.load(Ordering::Relaxed);
        fence(Ordering::Acquire);
        if kgen.load(Ordering::Relaxed) == kg && kg % 4 != 2 {
            let want = if kg == 4 { OLD_LINK } else { NEW_LINK };
            assert_eq!(seen, want, "link from another incarnation (kgen {kg})");
        }
        inserter.join().unwrap();
    });
}

/// `begin` (intent fields Relaxed, kind Release) against a recoverer that took the lock
/// word over (CAS Acquire after the holder's Acquire CAS) and reads the kind with
/// Acquire: a set kind comes with complete fields.
#[test]
fn a_recoverer_sees_a_complete_intent_record() {
    loom::model(|| {
        let lock = Arc::new(AtomicU64::new(0));
        let kind = Arc::new(AtomicU64::new(0));
        let slot = Arc::new(AtomicU64::new(0));
        let holder = {
            let (lock, kind, slot) = (lock.clone(), kind.clone(), slot.clone());
            thread::spawn(move || {
                if lock
                    .compare_exchange(0, 1, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
                {
                    slot.store(7, Ordering::Relaxed);
                    kind.store(1, Ordering::Release);
                    // ... and dies here, never releasing the lock.
                }
            })
        };
        // The recoverer finds holder 1 dead and takes the word over.
        if lock
            .compare_exchange(1, 2, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
            && kind.load(Ordering::Acquire) == 1
        {
            assert_eq!(slot.load(Ordering::Relaxed), 7, "incomplete intent record");
        }
        holder.join().unwrap();
    });
}
