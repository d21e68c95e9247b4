//! Model-based test: random operation sequences against the table and a HashMap must
//! agree on every result, including errors (full table, over-long strings), and the
//! table's structure must verify afterwards. A second property damages table files at
//! random and checks that opening and using them never panics or hangs.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail by panicking

use std::collections::HashMap;
use std::os::unix::fs::FileExt;

use proptest::prelude::*;
use tarsfork_shm::{Column, Schema, ShmError, Table, Value, SPARE_SLOTS};

const CAPACITY: usize = 6;
const MAX_S: usize = 10;

#[derive(Debug, Clone)]
enum Op {
    Set {
        key: u8,
        a: Option<i64>,
        s: Option<Vec<u8>>,
    },
    Incr {
        key: u8,
        delta: i64,
    },
    IncrFloat {
        key: u8,
        delta: i8,
    },
    StoreInt {
        key: u8,
        value: i64,
    },
    Del {
        key: u8,
    },
    Get {
        key: u8,
    },
    Exists {
        key: u8,
    },
}

fn op() -> impl Strategy<Value = Op> {
    // Ten keys over six slots: inserts hit "full" and deletes free slots for reuse.
    let key = 0u8..10;
    prop_oneof![
        (
            key.clone(),
            proptest::option::of(any::<i64>()),
            proptest::option::of(proptest::collection::vec(any::<u8>(), 0..=MAX_S + 2))
        )
            .prop_map(|(key, a, s)| Op::Set { key, a, s }),
        (key.clone(), -5i64..5).prop_map(|(key, delta)| Op::Incr { key, delta }),
        (key.clone(), any::<i8>()).prop_map(|(key, delta)| Op::IncrFloat { key, delta }),
        (key.clone(), any::<i64>()).prop_map(|(key, value)| Op::StoreInt { key, value }),
        key.clone().prop_map(|key| Op::Del { key }),
        key.clone().prop_map(|key| Op::Get { key }),
        key.prop_map(|key| Op::Exists { key }),
    ]
}

#[derive(Debug, Clone, PartialEq, Default)]
struct ModelRow {
    a: i64,
    f: f64,
    s: Vec<u8>,
}

fn schema() -> Schema {
    Schema::new(vec![
        Column::int("a"),
        Column::float("f"),
        Column::string("s", MAX_S),
    ])
    .unwrap()
}

fn key_bytes(k: u8) -> Vec<u8> {
    format!("key-{k}").into_bytes()
}

fn check_row(row: &tarsfork_shm::Row, want: &ModelRow) {
    assert_eq!(row.int("a"), Some(want.a));
    assert_eq!(row.float("f").map(f64::to_bits), Some(want.f.to_bits()));
    assert_eq!(row.bytes("s"), Some(want.s.as_slice()));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn table_behaves_like_a_hashmap(ops in proptest::collection::vec(op(), 1..120)) {
        let dir = tempfile::tempdir().unwrap();
        let t = Table::create(&dir.path().join("t"), &schema(), CAPACITY).unwrap();
        let mut model: HashMap<Vec<u8>, ModelRow> = HashMap::new();
        for op in ops {
            match op {
                Op::Set { key, a, s } => {
                    let k = key_bytes(key);
                    let mut values = Vec::new();
                    if let Some(a) = a {
                        values.push(("a", Value::Int(a)));
                    }
                    if let Some(s) = &s {
                        values.push(("s", Value::Bytes(s.clone())));
                    }
                    let r = t.set(&k, &values);
                    if s.as_ref().is_some_and(|s| s.len() > MAX_S) {
                        prop_assert!(matches!(r, Err(ShmError::ValueTooLong { .. })), "{r:?}");
                    } else if !model.contains_key(&k) && model.len() == CAPACITY {
                        prop_assert!(matches!(r, Err(ShmError::Full { .. })), "{r:?}");
                    } else {
                        r.unwrap();
                        let row = model.entry(k).or_default();
                        if let Some(a) = a {
                            row.a = a;
                        }
                        if let Some(s) = s {
                            row.s = s;
                        }
                    }
                }
                Op::Incr { key, delta } => {
                    let k = key_bytes(key);
                    let r = t.incr(&k, "a", delta);
                    if !model.contains_key(&k) && model.len() == CAPACITY {
                        prop_assert!(matches!(r, Err(ShmError::Full { .. })), "{r:?}");
                    } else {
                        let row = model.entry(k).or_default();
                        row.a = row.a.wrapping_add(delta);
                        prop_assert_eq!(r.unwrap(), row.a);
                    }
                }
                Op::IncrFloat { key, delta } => {
                    let k = key_bytes(key);
                    let r = t.incr_float(&k, "f", f64::from(delta));
                    if !model.contains_key(&k) && model.len() == CAPACITY {
                        prop_assert!(matches!(r, Err(ShmError::Full { .. })), "{r:?}");
                    } else {
                        let row = model.entry(k).or_default();
                        row.f += f64::from(delta);
                        prop_assert_eq!(r.unwrap().to_bits(), row.f.to_bits());
                    }
                }
                Op::StoreInt { key, value } => {
                    let k = key_bytes(key);
                    let r = t.store_int(&k, "a", value);
                    match model.get_mut(&k) {
                        Some(row) => {
                            r.unwrap();
                            row.a = value;
                        }
                        None => prop_assert!(matches!(r, Err(ShmError::KeyNotFound)), "{r:?}"),
                    }
                }
                Op::Del { key } => {
                    let k = key_bytes(key);
                    prop_assert_eq!(t.del(&k).unwrap(), model.remove(&k).is_some());
                }
                Op::Get { key } => {
                    let k = key_bytes(key);
                    match (t.get(&k).unwrap(), model.get(&k)) {
                        (Some(row), Some(want)) => check_row(&row, want),
                        (None, None) => {}
                        (got, want) => prop_assert!(false, "get {got:?} vs model {want:?}"),
                    }
                }
                Op::Exists { key } => {
                    let k = key_bytes(key);
                    prop_assert_eq!(t.exists(&k).unwrap(), model.contains_key(&k));
                }
            }
            prop_assert_eq!(t.len(), model.len());
        }
        let report = t.verify().unwrap();
        prop_assert_eq!(report.rows, model.len());
        prop_assert_eq!(report.free, CAPACITY + SPARE_SLOTS - model.len());
        let mut seen = 0;
        for row in t.iter() {
            let row = row.unwrap();
            check_row(&row, &model[row.key()]);
            seen += 1;
        }
        prop_assert_eq!(seen, model.len());
    }

}

proptest! {
    // Each case runs in a forked process with a deadline: a hang fails the test.
    #![proptest_config(ProptestConfig { cases: 96, timeout: 30_000, ..ProptestConfig::default() })]

    #[test]
    fn damaged_files_never_panic_or_hang(
        damage in proptest::collection::vec((any::<u64>(), any::<u64>(), any::<bool>()), 1..12)
    ) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t");
        let t = Table::create(&path, &schema(), 16).unwrap();
        for k in 0..12u8 {
            t.set(&key_bytes(k), &[("a", Value::Int(k.into())), ("s", Value::str("abc"))]).unwrap();
        }
        t.del(&key_bytes(3)).unwrap();
        let size = t.memory_size() as u64;
        let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        for (where_, value, small) in damage {
            // Half the damage lands past the header, where rows and chains live.
            let off = if where_ % 2 == 0 { where_ % size } else { 4096 + where_ % (size - 4096) };
            let off = off / 8 * 8;
            let value = if small { value % 64 } else { value };
            file.write_all_at(&value.to_le_bytes(), off).unwrap();
        }
        drop(file);
        // The owner (this process) is alive, so read-write opens are allowed too.
        for table in [Table::open(&path), Table::open_readonly(&path), Ok(t.clone())] {
            let Ok(table) = table else { continue };
            let _ = table.verify();
            for row in table.iter().take(64) {
                let _ = row;
            }
            for k in 0..14u8 {
                let key = key_bytes(k);
                let _ = table.get(&key);
                let _ = table.exists(&key);
                let _ = table.load_int(&key, "a");
                let _ = table.incr(&key, "a", 1);
                let _ = table.set(&key, &[("s", Value::str("x"))]);
                let _ = table.del(&key);
            }
            let _ = tarsfork_shm::inspect::render_text(&path);
            let _ = tarsfork_shm::inspect::render_json(&path);
        }
    }
}
