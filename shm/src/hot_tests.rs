//! The hot-row shortcut of `incr` (hot.rs): after every operation of a random
//! mix over two tables, several keys and columns, the thread's hot row is either not
//! armed or its slot is the one this thread's hazard entry names, which is what makes an
//! add through it safe against slot reuse. And the shortcut really is taken.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use crate::hazard::hot_row_state;
use crate::{Column, Schema, ShmError, Table, Value};

#[path = "../tests/common/mod.rs"]
mod common;
use common::{Children, Exit, Rng};

fn schema() -> Schema {
    Schema::new(vec![Column::int("a"), Column::int("b"), Column::float("f")]).unwrap()
}

#[test]
fn the_hot_slot_is_always_the_one_the_entry_names() {
    let dir = tempfile::tempdir().unwrap();
    let tables = [
        Table::create(&dir.path().join("t0"), &schema(), 4).unwrap(),
        Table::create(&dir.path().join("t1"), &schema(), 4).unwrap(),
    ];
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut armed = 0;
    for step in 0..20_000 {
        let t = &tables[rng.below(2) as usize];
        let key = [b'k', b'0' + rng.below(6) as u8];
        let column = if rng.below(4) == 0 { "b" } else { "a" };
        let r = match rng.below(8) {
            0..=2 => t.incr(&key, column, 1).map(drop),
            3 => t.incr_float(&key, "f", 0.5).map(drop),
            4 => t.store_int(&key, column, 7),
            5 => t.del(&key).map(drop),
            6 => t.set(&key, &[(column, Value::Int(3))]),
            _ => t.load_int(&key, column).map(drop),
        };
        match r {
            Ok(()) | Err(ShmError::Full { .. }) | Err(ShmError::KeyNotFound) => {}
            Err(e) => panic!("step {step}: {e}"),
        }
        for t in &tables {
            match hot_row_state(&t.inner) {
                None => {}
                Some(true) => armed += 1,
                Some(false) => panic!("step {step}: hot row names a slot the entry does not"),
            }
        }
    }
    // Most steps leave a hot row armed (a third of them are `incr`s).
    assert!(armed > 5_000, "armed after only {armed} steps");
    for t in &tables {
        t.verify().unwrap();
    }
}

#[test]
fn a_repeated_incr_takes_the_shortcut_and_a_delete_disarms_it() {
    let dir = tempfile::tempdir().unwrap();
    let t = Table::create(&dir.path().join("t"), &schema(), 8).unwrap();
    assert_eq!(hot_row_state(&t.inner), None);
    // The first incr inserts the row under the lock; the next one finds it with a walk
    // (and leaves the per-thread hint); the third, the same key twice in a row
    // lock-free, arms the shortcut.
    assert_eq!(t.incr(b"ctr", "a", 1).unwrap(), 1);
    assert_eq!(hot_row_state(&t.inner), None);
    assert_eq!(t.incr(b"ctr", "a", 1).unwrap(), 2);
    assert_eq!(hot_row_state(&t.inner), None);
    assert_eq!(t.incr(b"ctr", "a", 1).unwrap(), 3);
    assert_eq!(hot_row_state(&t.inner), Some(true));
    assert_eq!(
        crate::hot::hot_incr(&t.inner, b"ctr", "a", 3),
        Some(6),
        "the shortcut serves the same key and column"
    );
    assert_eq!(crate::hot::hot_incr(&t.inner, b"ctr", "b", 1), None);
    assert_eq!(crate::hot::hot_incr(&t.inner, b"ctr\0", "a", 1), None);
    assert_eq!(crate::hot::hot_incr(&t.inner, b"ct", "a", 1), None);
    assert!(t.del(b"ctr").unwrap());
    // The row is gone: the shortcut refuses, and the full path starts a new row.
    assert_eq!(crate::hot::hot_incr(&t.inner, b"ctr", "a", 1), None);
    assert_eq!(t.incr(b"ctr", "a", 1).unwrap(), 1);
    assert_eq!(t.incr(b"ctr", "a", 1).unwrap(), 2);
    assert_eq!(t.incr(b"ctr", "a", 1).unwrap(), 3);
    assert_eq!(hot_row_state(&t.inner), Some(true));
    // Another op moving the entry's pin disarms the shortcut.
    t.set(b"other", &[("a", Value::Int(1))]).unwrap();
    t.store_int(b"other", "a", 9).unwrap();
    assert_eq!(hot_row_state(&t.inner), None);
    assert_eq!(t.incr(b"ctr", "a", 1).unwrap(), 4);
    assert_eq!(
        hot_row_state(&t.inner),
        None,
        "a key after another is not armed"
    );
    assert_eq!(t.incr(b"ctr", "a", 1).unwrap(), 5);
    assert_eq!(hot_row_state(&t.inner), Some(true));
}

#[test]
fn a_forked_child_never_uses_its_parents_hot_row() {
    let dir = tempfile::tempdir().unwrap();
    let t = Table::create(&dir.path().join("t"), &schema(), 8).unwrap();
    for _ in 0..3 {
        t.incr(b"ctr", "a", 1).unwrap();
    }
    assert_eq!(hot_row_state(&t.inner), Some(true));
    let mut kids = Children::default();
    kids.spawn(|| {
        // The parent's hot row relies on the parent's entry: not the child's to use.
        let mut code = match crate::hot::hot_incr(&t.inner, b"ctr", "a", 1) {
            None if hot_row_state(&t.inner).is_none() => 0,
            _ => 10,
        };
        for _ in 0..1000 {
            if t.incr(b"ctr", "a", 1).is_err() {
                code = 11;
            }
        }
        if hot_row_state(&t.inner) != Some(true) {
            code = 12;
        }
        code
    });
    for _ in 0..1000 {
        t.incr(b"ctr", "a", 1).unwrap();
    }
    assert_eq!(
        kids.wait_all(Duration::from_secs(30)),
        vec![Exit::Code(0)],
        "child failed its checks"
    );
    assert_eq!(t.load_int(b"ctr", "a").unwrap(), Some(2003));
    assert_eq!(hot_row_state(&t.inner), Some(true));
}
